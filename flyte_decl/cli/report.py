"""`flyte-decl report RUN -o FILE.html`: one self-contained HTML page of a run.

flyte-decl report r12 -o report.html     # tasks, failures, every action, timeline, calls, plots
"""

from __future__ import annotations

from pathlib import Path

import click

from flyte_decl import masking
from flyte_decl.cli.history import open_store, run_actions, store_option
from flyte_decl.problems import UsageError
from flyte_decl.render.report import render_report


@click.command()
@click.argument("run", metavar="RUN")
@store_option
@click.option(
    "-o", "--output", metavar="FILE.html", default=None, help="Where to write it. Default: RUN.html."
)
def report(run: str, config: str | None, output: str | None) -> None:
    """Write an HTML report of RUN (an id like r12, or `last`): no network needed to view it."""
    store = open_store(config)
    found = store.run(run)
    actions = run_actions(store, found)
    samples = store.samples(found.id)
    for action in actions:
        action.samples = samples.get((action.id, action.attempt), [])
    path = Path(output or f"{found.id}.html")
    tails = {(a.id, a.attempt): log_tail(a.log_path) for a in actions if a.kind}
    page = masking.current().text(render_report(found, actions, tails, task_reports(found.log_dir)))
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(
            f"cannot write the report to {path}: {reason} (hint: choose a writable path with -o)"
        ) from None
    click.echo(f"wrote {path}: run {found.id}, {len(actions)} action attempts")


def task_reports(log_dir: Path) -> dict[str, str]:
    """The `flyte.report` page of each action that wrote one, as a file URL by action id.

    A task's report is `report.html` in its raw-data folder, `LOG_DIR/data/RUN/ACTION/`.
    """
    return {
        page.parent.name: page.resolve().as_uri() for page in sorted(log_dir.glob("data/*/*/report.html"))
    }


def log_tail(path: Path | None, lines: int = 20, limit: int = 64 * 1024) -> list[str]:
    """The last `lines` lines of a log file (reading at most its last `limit` bytes); [] if it is gone."""
    if path is None or not path.is_file():
        return []
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - limit))
        text = handle.read().decode(errors="replace")
    return text.splitlines()[-lines:]
