"""`explain TASK` reads every value but locates only what TASK's resolution uses (`config/focus.py`).

Every case is held to the usual reading: `check(..., snapshot={})` reads each file whole with its
marks (a snapshot turns the focused reading off), and both must give the same problems, the same
resolved tasks with the same origins, or the same error. Problems anywhere in a file still fail
`explain`, each with its place.
"""

from __future__ import annotations

import os
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz import yaml_documents

from flyte_decl.config import focus
from flyte_decl.config.load import check
from flyte_decl.config.read import read_yaml
from flyte_decl.problems import ConfigLoadError, UsageError

CONFIG = """
version: 1
defaults:
  resources: {cpu: 1, memory: 512Mi}
queues:
  spot: {concurrency: 2}
environments:
  base:
    env_vars: {LEVEL: base}
  mid:
    extends: base
    resources:
      memory: 1Gi
  top:
    extends: mid
    queue: spot
    tasks:
      t:
        fn: 'm:t'
        timeout: 5m
  other:
    resources: {memory: 2Gi}
    tasks:
      u: {fn: 'm:u'}
overrides:
  - match: {task: t}
    set: {retries: 2}
profiles:
  flat:
    environments:
      top: {extends: other}
"""


@pytest.fixture(autouse=True)
def _in_project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Files show as the commands show them, relative to the folder they run in."""
    monkeypatch.chdir(tmp_path)


def outcome(tmp_path: Path, task: str, files: list[str] | None = None, **options: Any) -> Any:
    """What `check` gives for explain of `task`: (problems, resolved tasks), every problem as shown."""
    try:
        checked = check(files, cwd=tmp_path, root_task=task, only_root=True, **options)
    except ConfigLoadError as exc:
        return [str(p) for p in exc.problems], None
    except UsageError as exc:
        return [f"usage error: {exc}"], None
    return [str(p) for p in checked.problems], checked.resolved.tasks if checked.resolved else None


def same_as_usual(tmp_path: Path, task: str, files: list[str] | None = None, **options: Any) -> Any:
    """The outcome of explain's reading, after asserting it is the usual reading's."""
    focused = outcome(tmp_path, task, files, **options)
    assert focused == outcome(tmp_path, task, files, snapshot={}, **options)
    return focused


def focuses(path: Path, task: str) -> bool:
    """Whether explain of `task` reads `path` focused (not the usual way), leaving some lines out."""
    text = path.read_text()
    plain = focus.read_plain(text)
    if plain is None:
        return False
    return focus.focused_text(text, plain, focus.needed_environments([plain.data], task)) != text


def test_explain_locates_only_its_environments_and_shows_what_the_usual_reading_shows(write, tmp_path):
    path = write(CONFIG)
    assert focuses(path, "top.t")
    problems, tasks = same_as_usual(tmp_path, "top.t")
    assert problems == [] and list(tasks) == ["top.t"]
    origins = {field: str(origin) for field, (_, origin) in tasks["top.t"].fields.items()}
    assert origins["env_vars.LEVEL"] == "environment base (environments.yaml:8)"
    assert origins["resources.memory.limit"] == "environment mid (environments.yaml:12)"
    assert origins["queue"] == "environment top (environments.yaml:15)"
    assert origins["retries.count"] == "overrides[0] (environments.yaml:26)"
    # A profile that changes `extends` reaches an environment the file's own chain does not.
    _, tasks = same_as_usual(tmp_path, "top.t", profile="flat")
    assert (
        str(tasks["top.t"].fields["resources.memory.limit"][1]) == "environment other (environments.yaml:21)"
    )
    for short in ("t", "u", "other.u", "x", "top.x"):
        same_as_usual(tmp_path, short)
    _, tasks = same_as_usual(tmp_path, "top.t", sets=["resources.memory=3Gi"], queue="default")
    assert [str(tasks["top.t"].fields[f][1]) for f in ("resources.memory.limit", "queue")] == [
        "cli --set (<cli --set>)",
        "cli --queue (<cli --queue>)",
    ]
    problems, _ = same_as_usual(tmp_path, "top.t", queue="nowhere")
    assert problems == [
        "<cli --queue>: error: queue: unknown queue 'nowhere' (expected one of: default, spot)"
    ]


def test_focused_text_keeps_every_line_number_and_the_needed_entries(write):
    text = textwrap.dedent(CONFIG).lstrip()
    plain = focus.read_plain(text)
    assert plain is not None and [name for name, *_ in plain.keys] == ["base", "mid", "top", "other"]
    focused = focus.focused_text(text, plain, {"top"})
    assert focused.split("\n") == [
        "" if 9 <= number <= 12 or 20 <= number <= 23 else line
        for number, line in enumerate(text.split("\n"), 1)
    ]
    located, whole = read_yaml(focused, "f"), read_yaml(text, "f")
    assert located.marks.items() <= whole.marks.items()
    assert located.key_marks.items() <= whole.key_marks.items()
    assert ("environments", "top", "tasks", "t", "timeout") in located.marks
    assert ("environments", "mid") not in located.marks


@pytest.mark.parametrize(
    ("where", "line", "expected"),
    [
        pytest.param(
            "other",
            "    resources: {memory: 2Gb}",
            "environments.yaml:21:25: error: environments.other.resources.memory: '2Gb' is not a "
            "quantity (write a number with an optional suffix: 500m, 1, 0.5, 250Mi, 1.5Gi, 2G)",
            id="another environment",
        ),
        pytest.param(
            "base",
            "    env_vars: {LEVEL: [1]}",
            "environments.yaml:8:23: error: environments.base.env_vars.LEVEL: must be a string, "
            'got a list (quote it: "[1]")',
            id="the extends chain",
        ),
        pytest.param(
            "other",
            "    resources: {memory: 2Gi, memory: 1Gi}",
            "environments.yaml:21:30: error: environments.other.resources.memory: duplicate key "
            "(first defined at line 21; remove one of them)",
            id="a duplicate key",
        ),
        pytest.param(
            "other",
            "    resources: {memory: '${FOCUS_UNSET}'}",
            "environments.yaml:21:25: error: environments.other.resources.memory: environment variable "
            "FOCUS_UNSET is not set (export FOCUS_UNSET, or give a default: ${FOCUS_UNSET:-value})",
            id="an unset variable",
        ),
        pytest.param(
            "other",
            "    interruptible: on",
            "environments.yaml:21:20: error: environments.other.interruptible: YAML 1.1 reads 'on' as "
            'true (write true if you mean true, or quote it: "on")',
            id="a YAML 1.1 form",
        ),
        pytest.param(
            "other",
            "    resources: {memory: 2Gi",
            "environments.yaml:22:10: error: invalid YAML: did not find expected ',' or '}' "
            "(while parsing a flow mapping at line 21)",
            id="a syntax error",
        ),
        pytest.param(
            "other",
            "    resources: {cpu: {request: 2, limit: 1}}",
            "environments.yaml:21:32: error: environments.other.resources.cpu.request: request 2 is above the "
            "limit 1 (a request cannot exceed its limit; lower the request or raise the limit)",
            id="a request above its limit",
        ),
        pytest.param(
            "other",
            "    extends: nowhere",
            "environments.yaml:21:14: error: environments.other.extends: unknown environment 'nowhere' "
            "(did you mean 'other'?)",
            id="an unknown reference",
        ),
    ],
)
def test_explain_reports_a_problem_anywhere_in_the_file_at_its_place(
    write, tmp_path, flyte_decl, where, line, expected
):
    os.environ.pop("FOCUS_UNSET", None)
    lines = textwrap.dedent(CONFIG).lstrip().split("\n")
    at = {"other": 20, "base": 7}[where]  # the (0-based) line after the environment's key
    write("\n".join([*lines[:at], line, *lines[at + 1 :]]))
    problems, _ = same_as_usual(tmp_path, "top.t")
    assert problems == [expected]
    result = flyte_decl("explain", "top.t")
    assert (result.code, result.err.strip()) == (2, expected)


def test_a_syntax_error_at_the_end_of_the_file_fails_explain(write, tmp_path, flyte_decl):
    write(CONFIG + "extra: [\n")
    result = flyte_decl("explain", "top.t")
    assert (result.code, result.err.strip()) == (
        2,
        "environments.yaml:32:1: error: invalid YAML: did not find expected node content "
        "(while parsing a flow node at line 32)",
    )
    same_as_usual(tmp_path, "top.t")


def test_a_warning_in_another_environment_is_the_usual_readings(write, tmp_path):
    write(CONFIG.replace("{memory: 2Gi}", "{memory: 2Gi, cpu: 0.5m}"))
    problems, _ = same_as_usual(tmp_path, "top.t")
    assert problems != []


def test_two_files_overlay_and_the_second_may_change_the_chain(write, tmp_path):
    write(CONFIG)
    write("environments:\n  top:\n    extends: other\n", "more.yaml")
    _, tasks = same_as_usual(tmp_path, "top.t", ["environments.yaml", "more.yaml"])
    assert (
        str(tasks["top.t"].fields["resources.memory.limit"][1]) == "environment other (environments.yaml:21)"
    )
    assert str(tasks["top.t"].fields["queue"][1]) == "environment top (environments.yaml:15)"
    write("environments:\n  top: {extends: [1]}\n", "bad.yaml")
    problems, _ = same_as_usual(tmp_path, "top.t", ["environments.yaml", "bad.yaml"])
    assert problems[0].startswith("bad.yaml:2:")


def test_toml_is_read_the_usual_way(write, tmp_path, flyte_decl):
    write(
        """
        version = 1
        [environments.a]
        resources = {memory = "1Gi"}
        [environments.a.tasks.t]
        fn = "m:t"
        [environments.b]
        resources = {memory = "1Gb"}
        """,
        "environments.toml",
    )
    assert focus.read_focused([tmp_path / "environments.toml"], "a.t") is None
    same_as_usual(tmp_path, "a.t")
    result = flyte_decl("explain", "a.t")
    assert (result.code, result.err.strip()) == (
        2,
        "environments.toml:7:23: error: environments.b.resources.memory: '1Gb' is not a quantity "
        "(write a number with an optional suffix: 500m, 1, 0.5, 250Mi, 1.5Gi, 2G)",
    )


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(CONFIG.replace("\n  top:\n", "\n  ? top\n  :\n"), id="an explicit key"),
        pytest.param(CONFIG.replace("\n", "\r\n"), id="CRLF line breaks"),
        pytest.param(
            CONFIG.replace("      u: {fn: 'm:u'}", "      u: {fn: 'm:u'}\n# the end"), id="a comment"
        ),
        pytest.param(
            CONFIG.replace("        timeout: 5m", "        timeout: 5m\n    description: |+\n      kept\n"),
            id="a block scalar keeping its line breaks",
        ),
        pytest.param(CONFIG.replace("  base:\n", "  base: &base\n"), id="an anchor"),
        pytest.param(CONFIG.replace("    extends: base\n", "    <<: {queue: spot}\n"), id="a merge key"),
        pytest.param(CONFIG.replace("extends: mid", "extends: !!str mid"), id="a tag"),
        pytest.param(CONFIG.replace("\nenvironments:", "\nenvironments: &e"), id="an anchored mapping"),
        pytest.param(CONFIG.replace("  base:", "  base:\u2028"), id="a Unicode line break"),
        pytest.param(
            "version: 1\nenvironments: {top: {tasks: {t: {fn: 'm:t'}}}, b: {}}\n", id="flow environments"
        ),
        pytest.param("{version: 1, environments: {top: {tasks: {t: {fn: 'm:t'}}}}}\n", id="a flow document"),
        pytest.param(CONFIG + "---\nversion: 1\n", id="two documents"),
        pytest.param("\ufeff" + CONFIG, id="a byte-order mark"),
    ],
)
def test_every_layout_gives_the_usual_outcome(write, tmp_path, text):
    write(text)
    same_as_usual(tmp_path, "top.t")


def test_lines_a_key_does_not_start_are_never_left_out(write):
    text = CONFIG.replace("\n  top:\n", "\n  ? top\n  :\n")
    plain = focus.read_plain(text)
    assert plain is not None and focus.focused_text(text, plain, {"top"}) == text
    crlf = CONFIG.replace("\n", "\r\n")
    plain = focus.read_plain(crlf)
    assert plain is not None and focus.focused_text(crlf, plain, {"top"}) != crlf


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# nothing\n",
        "[1, 2]\n",
        "a: &x 1\nb: *x\n",
        "a: {<<: {b: 1}}\n",
        "a: !!str 1\n",
        "a: 1\na: 2\n",
        "a: {[1]: 2}\n",
        "a: 0755\n",
        "a: on\n",
        "a: 2001-12-14\n",
        "a: 99999999999999999999\n",
        "a: '${FOCUS_UNSET}'\n",
        "a: " + "[" * 40 + "]" * 40 + "\n",
        "a: 1\n---\nb: 2\n",
        "a: [\n",
    ],
)
def test_read_plain_leaves_to_read_yaml_what_only_it_reads_or_reports(text):
    os.environ.pop("FOCUS_UNSET", None)
    assert focus.read_plain(text) is None


def typed(value: Any) -> Any:
    """`value` with each scalar's type beside it: `1 == True == 1.0` must not pass for equal data."""
    if isinstance(value, dict):
        return {key: typed(child) for key, child in value.items()}
    if isinstance(value, list):
        return [typed(child) for child in value]
    return type(value).__name__, value


@pytest.mark.parametrize(
    "text",
    [
        CONFIG,
        "a: [1, -2, +3, 0, 1.5, -.5, 1., 1e3, 1.0e+3, true, False, null, ~, '', x, '1', \"on\"]\n",
        "a: {b: , c: Null, d: 'x\\ny', e: \"\\u00e9\", f: '$${x}', g: '${FOCUS_SET}', h: '${FOCUS_UNSET:-d}'}\n",
        "a: |\n  text\n  more\nb: >-\n  folded\n  line\n",
        "a:\n  - {x: 1}\n  - - 2\n    - 3\n",
        "'<<': 1\n'1': 2\n",
        "%YAML 1.1\n---\na: 1\n...\n",
    ],
)
def test_read_plain_reads_what_read_yaml_reads(text):
    os.environ["FOCUS_SET"] = "set"
    os.environ.pop("FOCUS_UNSET", None)
    plain = focus.read_plain(textwrap.dedent(text))
    assert plain is not None
    assert typed(plain.data) == typed(read_yaml(textwrap.dedent(text), "f").data)


SETTINGS = [
    "resources: {cpu: 1, memory: 1Gi}", "resources: {memory: {request: 2Gi, limit: 1Gi}}",
    "resources: {cpu: 2Gb}", "resources:\n  cpu: 500m\n  memory: 3Gi", "queue: spot", "queue: nowhere",
    "timeout: 5m", "timeout: {max_runtime: 1h}", "env_vars: {A: x, B: '1'}", "env_vars:\n  A: |+\n    kept\n",
    "retries: 2", "retries: {count: 2, backoff: 1s}", "interruptible: true", "interruptible: on",
    "description: 'two\n  lines'", "cache: auto", "memory: 1Gi", "# a comment",
]  # fmt: skip


@st.composite
def plain_documents(draw: st.DrawFn) -> str:
    """Block-style documents of plain data: environments along `extends`, tasks, overrides, a profile."""

    def block(indent: int) -> list[str]:
        pad = " " * indent
        chosen = draw(st.lists(st.sampled_from(SETTINGS), max_size=3, unique_by=lambda s: s.split(":")[0]))
        return [pad + line for setting in chosen for line in setting.split("\n")]

    count = draw(st.integers(1, 6))
    lines = ["version: 1", "queues:", "  spot: {concurrency: 2}", "defaults:", *block(2), "environments:"]
    for i in range(count):
        lines.append(f"  e{i}:")
        if i and draw(st.booleans()):
            lines.append(f"    extends: e{draw(st.integers(0, count))}")
        lines += block(4)
        lines += ["    tasks:", f"      t{i}:", f"        fn: 'm:t{i}'", *block(8)]
        if draw(st.booleans()):
            lines.append("      t: {fn: 'm:t'}")
    if draw(st.booleans()):
        lines += ["overrides:", f"  - match: {{task: t{draw(st.integers(0, count))}}}", "    set:", *block(6)]
    if draw(st.booleans()):
        lines += ["profiles:", "  prod:", "    environments:", f"      e{draw(st.integers(0, count))}:"]
        lines += [f"        extends: e{draw(st.integers(0, count))}", *block(8)]
    return "\n".join(lines) + "\n"


FOCUS = settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
TASKS = st.sampled_from(["e0.t0", "e1.t1", "e2.t2", "t1", "t", "x"])
PROFILES = st.sampled_from([(), ("prod",)])


@FOCUS
@given(plain_documents(), TASKS, PROFILES)
def test_explain_of_a_plain_document_is_the_usual_readings(text, task, profile):
    """Documents that mostly read plain and leave lines out, read both ways."""
    plain = focus.read_plain(text)
    if plain is not None:
        assert typed(plain.data) == typed(read_yaml(text, "f").data)
    with tempfile.TemporaryDirectory(prefix="flyte-decl-focus-") as folder:
        Path(folder, "environments.yaml").write_text(text)
        same_as_usual(Path(folder), task, profile=profile)


@settings(FOCUS, max_examples=40)  # most take the usual reading only
@given(yaml_documents(), TASKS, PROFILES)
def test_explain_of_any_document_is_the_usual_readings(text, task, profile):
    """test_fuzz's documents (hostile ones, mostly left to the usual reading), read both ways."""
    os.environ["FUZZ_EMPTY"] = ""
    os.environ.pop("FUZZ_UNSET", None)
    plain = focus.read_plain(text.removeprefix("\ufeff"))
    if plain is not None:
        assert typed(plain.data) == typed(read_yaml(text.removeprefix("\ufeff"), "f").data)
    with tempfile.TemporaryDirectory(prefix="flyte-decl-focus-") as folder:
        Path(folder, "environments.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
        same_as_usual(Path(folder), task, profile=profile)
