"""Flyte's display labels: `flyte.group(name)` and `short_name` are shown beside an action's label (live
lines, `-v`, `runs show`, `logs`, the report) and never change what names it; `python prog.py` echoes
what actions print and records its run as `flyte-decl run` does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from flyte_decl import _alias
from flyte_decl.render.history import render_run
from flyte_decl.runtime.records import display_label
from flyte_decl.store.store import StoredAction, StoredRun

PROGRAM = """
import asyncio

import flyte

env = flyte.TaskEnvironment(name="labels")


@env.task(short_name="shown")
async def child(x: int) -> int:
    print(f"child {x}")
    return x + 1


@env.task
async def twice(x: int) -> int:
    return 2 * x


@env.task(short_name="entry")
async def main() -> list[int]:
    with flyte.group("firsts"):
        a = await child(1)
    b = await child.override(short_name="renamed")(2)
    c = [r async for r in flyte.map.aio(twice, [5], group_name="doubles")]
    return [a, b, *c]


if __name__ == "__main__":
    run = flyte.run(main)
    print(run.outputs())
"""


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != _alias.ENV_AS_FLYTE}
    return {**env, "FLYTE_DECL_HOME": str(home)}


def _program(folder: Path, *, changed_import: bool = False) -> Path:
    text = textwrap.dedent(PROGRAM).lstrip()
    if changed_import:
        text = text.replace("import flyte\n", "import flyte_decl as flyte\n")
    path = folder / "labels.py"
    path.write_text(text)
    return path


def _cli(folder: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flyte_decl", *args], cwd=folder, capture_output=True, text=True,
                          timeout=120, env=_env(home))  # fmt: skip


def test_display_label_puts_the_group_before_and_the_short_name_after() -> None:
    assert display_label("env.t[3]", None, None) == "env.t[3]"
    assert display_label("env.t[3]", "squares", None) == "squares/env.t[3]"
    assert display_label("env.t[3]", None, "renamed") == 'env.t[3] "renamed"'
    assert display_label("env.t[3]#2", "g", "s") == 'g/env.t[3]#2 "s"'


def test_runs_show_gives_labels_columns_of_their_own() -> None:
    run = StoredRun("r4", "labels.main", "labels", "succeeded", None, "", 0.0, 1.0, "host", 7, "run", None, None,
                    {}, None, [2, 3], {"target": ["main"], "texts": {}}, Path("/logs/r4"), {})  # fmt: skip

    def action(n: int, task: str, index: int, group: str | None, short: str | None) -> StoredAction:
        return StoredAction("r4", f"a{n}", 1, None if n == 1 else "a1", task, "labels", index, "default", {},
                            "succeeded", None, "", "", 0.0, 0.0, 0.5, None, 0, None, None, None, None, None,
                            None, None, None, group, short)  # fmt: skip

    actions = [
        action(1, "labels.main", 0, None, "entry"),
        action(2, "labels.child", 0, "firsts", "shown"),
        action(3, "labels.child", 1, None, "renamed"),
    ]
    table = render_run(run, actions).split("\n\n", 1)[1]
    assert table == textwrap.dedent("""\
        ACTION  TASK                NAME     GROUP   PHASE      DURATION  MEMORY PEAK/LIMIT  CPU AVG/LIMIT
        a1      labels.main[0]      entry    -       succeeded  0.50s     -                  -
        a2      ├─ labels.child[0]  shown    firsts  succeeded  0.50s     -                  -
        a3      └─ labels.child[1]  renamed  -       succeeded  0.50s     -                  -""")


def test_cli_run_shows_groups_and_short_names_and_keeps_the_task_identity(tmp_path: Path) -> None:
    _program(tmp_path)
    home = tmp_path / "home"
    result = _cli(tmp_path, home, "run", "labels.py", "main", "-v")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[2, 3, 10]\n"
    lines = [re.sub(r", pid \d+| in [\d.]+s", "", line) for line in result.stderr.splitlines()[2:-1]]
    expected = [
        'labels.main[0] "entry" (a1) queued',
        'labels.main[0] "entry" (a1) running',
        'firsts/labels.child[0] "shown" (a2) queued',
        'firsts/labels.child[0] "shown" (a2) running',
        'firsts/labels.child[0] "shown" | child 1',
        'firsts/labels.child[0] "shown" (a2) succeeded',
        'labels.child[1] "renamed" (a3) queued',
        'labels.child[1] "renamed" (a3) running',
        'labels.child[1] "renamed" | child 2',
        'labels.child[1] "renamed" (a3) succeeded',
        "labels.twice_doubles/labels.twice[0] (a4) queued",  # flyte.map's group, named as Flyte names it
        "labels.twice_doubles/labels.twice[0] (a4) running",
        "labels.twice_doubles/labels.twice[0] (a4) succeeded",
        'labels.main[0] "entry" (a1) succeeded',
    ]
    # Each action's lines in this order; between actions, a caller may go on before its child's exit is seen.
    assert sorted(lines) == sorted(expected)
    for prefix in ("labels.main", "firsts/", "labels.child[1]", "labels.twice_doubles/"):
        assert [x for x in lines if x.startswith(prefix)] == [x for x in expected if x.startswith(prefix)]
    shown = json.loads(_cli(tmp_path, home, "runs", "show", "last", "--format", "json").stdout)["actions"]
    assert [(a["label"], a["group"], a["short_name"]) for a in shown] == [
        ("labels.main[0]", None, "entry"),
        ("labels.child[0]", "firsts", "shown"),
        ("labels.child[1]", None, "renamed"),
        ("labels.twice[0]", "labels.twice_doubles", None),
    ]
    table = _cli(tmp_path, home, "runs", "show", "last").stdout.split("\n\n", 1)[1].splitlines()
    assert [line.split()[:5] for line in table] == [
        ["ACTION", "TASK", "NAME", "GROUP", "PHASE"],
        ["a1", "labels.main[0]", "entry", "-", "succeeded"],
        ["a2", "├─", "labels.child[0]", "shown", "firsts"],
        ["a3", "├─", "labels.child[1]", "renamed", "-"],
        ["a4", "└─", "labels.twice[0]", "-", "labels.twice_doubles"],
    ]
    # The label still names the action; the short name does not.
    logs = _cli(tmp_path, home, "logs", "last", "labels.child[1]")
    assert (logs.returncode, logs.stdout) == (0, "child 2\n")
    assert _cli(tmp_path, home, "logs", "last", "renamed").returncode == 2
    assert _cli(tmp_path, home, "logs", "last").stdout == (
        'firsts/labels.child[0] "shown" | child 1\nlabels.child[1] "renamed" | child 2\n'
    )


def test_the_report_shows_groups_and_short_names(tmp_path: Path) -> None:
    _program(tmp_path)
    home = tmp_path / "home"
    assert _cli(tmp_path, home, "run", "labels.py", "main").returncode == 0
    assert _cli(tmp_path, home, "report", "last", "-o", "r1.html").returncode == 0
    page = (tmp_path / "r1.html").read_text()
    data = json.loads(
        re.search(r'<script id="run-data" type="application/json">(.*?)</script>', page).group(1)
    )
    names = data["names"]
    assert names == ["entry", "firsts", "labels.twice_doubles", "renamed", "shown"]
    labels = [(r[0], names[r[14]] if r[14] is not None else None, names[r[15]] if r[15] is not None else None)
              for r in data["rows"]]  # fmt: skip
    assert labels == [
        ("a1", None, "entry"),
        ("a2", "firsts", "shown"),
        ("a3", None, "renamed"),
        ("a4", "labels.twice_doubles", None),
    ]
    assert '"name", (a) => a.shortName' in page and '"group", (a) => a.group' in page  # the table's columns


def test_python_prog_echoes_what_actions_print_and_records_the_run(tmp_path: Path) -> None:
    program = _program(tmp_path, changed_import=True)
    home = tmp_path / "home"
    result = subprocess.run([sys.executable, str(program)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env=_env(home))  # fmt: skip
    assert result.returncode == 0, result.stderr
    # As in Flyte's local mode: the tasks' own lines, unprefixed, then what the program prints (two
    # processes' lines may come in either order).
    *printed, last = result.stdout.splitlines()
    assert (sorted(printed), last, result.stderr) == (
        ["child 1", "child 2"],
        "ActionOutputs(o0=[2, 3, 10])",
        "",
    )
    runs = json.loads(_cli(tmp_path, home, "runs", "list", "--format", "json").stdout)
    assert [(r["run"], r["task"], r["status"], r["outputs"]) for r in runs] == [
        ("r1", "labels.main", "succeeded", [2, 3, 10])
    ]
    assert runs[0]["log_dir"] == str(home / "logs" / "r1")
    assert _cli(tmp_path, home, "logs", "last", "a2").stdout == "child 1\n"
    rerun = _cli(tmp_path, home, "rerun", "last", "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["outputs"] == [2, 3, 10]


def test_python_prog_failure_raises_and_is_recorded_failed(tmp_path: Path) -> None:
    program = tmp_path / "fails.py"
    program.write_text(
        textwrap.dedent("""
        import flyte_decl as flyte

        env = flyte.TaskEnvironment(name="fails")


        @env.task
        def boom() -> int:
            print("about to fail")
            raise ValueError("no")


        if __name__ == "__main__":
            flyte.run(boom)
        """)
    )
    home = tmp_path / "home"
    result = subprocess.run([sys.executable, str(program)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env=_env(home))  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == "about to fail\n"
    assert result.stderr.splitlines()[-1] == "flyte_decl.errors.RuntimeUserError: no"
    runs = json.loads(_cli(tmp_path, home, "runs", "list", "--format", "json").stdout)
    assert [(r["run"], r["status"], r["kind"], r["message"]) for r in runs] == [
        ("r1", "failed", "user_error", "ValueError: no")
    ]


def test_a_store_of_schema_2_gains_the_label_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    import sqlite3

    from flyte_decl.store import schema
    from flyte_decl.store.store import Store

    conn = sqlite3.connect(tmp_path / "runs.db", isolation_level=None)
    for number in range(2):
        for statement in schema._statements(schema.MIGRATIONS[number]):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO runs (id, task, environment, status, created_at, host, pid, pid_started_at, snapshot, log_dir)"
        " VALUES ('r1', 'e.t', 'e', 'succeeded', 0, 'h', 1, 0, '{}', '/logs/r1')"
    )
    conn.execute(
        "INSERT INTO actions (run_id, action, attempt, task, environment, idx, queue, limits, phase, queued_at)"
        " VALUES ('r1', 'a1', 1, 'e.t', 'e', 0, 'default', '{}', 'succeeded', 0)"
    )
    conn.close()
    store = Store.open(tmp_path)
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    [action] = store.actions("r1")
    assert (action.label, action.group, action.short_name, action.display) == ("e.t[0]", None, None, "e.t[0]")
    store.close()
