"""A config snapshot: the texts a run was resolved from, captured on first read and replayed later."""

from pathlib import Path

from flyte_decl.config.load import load

BASE = "version: 1\nenvironments:\n  env1:\n    resources: {memory: 1Gi}\n    tasks:\n      t: {fn: 'm:t'}\n"
OVERLAY = "version: 1\nenvironments:\n  env1:\n    resources: {cpu: 2}\n"


def test_first_read_captures_every_file_and_a_replay_ignores_later_edits(tmp_path: Path) -> None:
    base, overlay = tmp_path / "environments.yaml", tmp_path / "more.yaml"
    base.write_text(BASE)
    overlay.write_text(OVERLAY)
    snapshot: dict[str, str] = {}

    first = load([base, overlay], snapshot=snapshot).run_config().tasks["env1.t"]
    assert snapshot == {str(base.resolve()): BASE, str(overlay.resolve()): OVERLAY}

    base.write_text(BASE.replace("1Gi", "2Gi"))
    replayed = load(list(snapshot), snapshot=snapshot).run_config().tasks["env1.t"]
    current = load([base, overlay]).run_config().tasks["env1.t"]
    assert (first.memory_limit, first.cpu_limit, first.root_dir) == (1 << 30, 2.0, tmp_path.resolve())
    assert replayed == first
    assert current.memory_limit == 2 << 30


def test_a_discovered_file_is_captured_too(tmp_path: Path) -> None:
    (tmp_path / "environments.yaml").write_text(BASE)
    snapshot: dict[str, str] = {}
    load(cwd=tmp_path, snapshot=snapshot)
    assert snapshot == {str((tmp_path / "environments.yaml").resolve()): BASE}
