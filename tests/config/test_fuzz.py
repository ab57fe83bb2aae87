"""Fuzz `flyte-decl validate` with generated YAML and TOML documents (Hypothesis).

Every document, however hostile, must end in exit 0, 1 or 2 with no traceback, every line it prints
must be a located one-line problem (`FILE:LINE:COL: error: ...`) or the summary, and each document
must be validated within a bound of CPU time.

The documents mix the format's own keys with values found to break parsers and validators: integers
of thousands of digits, `1e1000000`, YAML 1.1 forms (`0755`, `1:30`, `on`), `${VAR}`, deep nesting,
aliases and merge keys, long `extends` chains, wrong types where mappings are expected, and raw
mutations of valid text.

CI runs a few hundred documents (a few seconds). To run many more on demand::

    FLYTE_DECL_FUZZ_EXAMPLES=10000 python -m pytest tests/config/test_fuzz.py -q

`FLYTE_DECL_FUZZ_SEED=N` fixes the seed (Hypothesis prints a failing example's seed as well).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from flyte_decl.cli.main import _run, cli

EXAMPLES = int(os.environ.get("FLYTE_DECL_FUZZ_EXAMPLES", "200"))
CPU_SECONDS_PER_DOCUMENT = 5.0  # CPU time, not wall time (shared machines); a document takes milliseconds

# Values that broke a parser or validator once, or look like they might, written as raw text.
TRICKY = [
    "9" * 5000, "-" + "9" * 30, "9223372036854775808", "0", "-1", "1e1000000", "1e999999", "1e-999999",
    '"1e401"', '""', "''", "0755", "010", "0x400", "0o17", "0b101", "1:30", "1_000", "3.10", ".inf", "-.nan",
    "on", "off", "yes", "NO", "~", "null", "true", "5m", "0m", "1n", "500m", "1", "0.5", "2", "1e40",
    "250Mi", "1gi", "2GB", "9Ei", "1Ei", "1.5Gi", "30s", "30d", "25d", "24d", "999999999999h", "1h30m",
    "2x", "0.5x", "1e400x", "+512Mi", "+1gi", "'${FUZZ_UNSET}'", "'${FUZZ_EMPTY:-2}'", "'${FUZZ_EMPTY-x}'",
    "'$${literal}'", "auto", "disable", "default", "spot", "'m:f'", "'A100:2'", "'A100:" + "9" * 300 + "'",
    "[]", "{}", "[1, 2]", "{request: 1, limit: 2}", "{request: [1], limit: {a: 1}}", "'é ☃'", "\"\\u0000\"",
]  # fmt: skip
KEYS = [
    "version", "defaults", "queues", "capacity", "environments", "overrides", "profiles", "resources", "cpu",
    "memory", "gpu", "disk", "shm", "request", "limit", "queue", "task_queue", "env_vars", "secrets",
    "retries", "count", "backoff", "on_oom", "max", "timeout", "max_inline_io_bytes", "cache", "reusable",
    "replicas", "idle_ttl", "concurrency", "interruptible", "image", "tasks", "fn", "extends", "depends_on",
    "match", "set", "environment", "task", "description", "e0", "e1", "t", "LOG_LEVEL", "<<", "Bad Key",
]  # fmt: skip
LINE = re.compile(r"^(\S.*?)(:\d+:\d+)?: (error|warning): ")
SUMMARY = re.compile(r"^(ok: .*|note: .*|\d+ errors?( \(\d+ warnings?\))?)$")

scalars = st.sampled_from(TRICKY)


def _flow(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    mapping = st.lists(st.tuples(st.sampled_from(KEYS), children), max_size=4).map(
        lambda items: "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    )
    sequence = st.lists(children, max_size=3).map(lambda items: "[" + ", ".join(items) + "]")
    return mapping | sequence


flow_values = st.recursive(scalars, _flow, max_leaves=12)


@st.composite
def settings_block(draw: st.DrawFn, indent: int) -> list[str]:
    pad = " " * indent
    lines = []
    for key in draw(st.lists(st.sampled_from(KEYS[7:40]), max_size=5, unique=True)):
        lines.append(f"{pad}{key}: {draw(flow_values)}")
    return lines


@st.composite
def yaml_documents(draw: st.DrawFn) -> str:
    lines = [f"version: {draw(st.sampled_from(['1', '1', '2', '01', 'on']))}"]
    if draw(st.booleans()):
        lines += ["defaults: &defaults", *draw(settings_block(2))]
    count = draw(st.integers(0, 6))
    chain = draw(st.booleans())
    lines.append("environments:")
    for i in range(count):
        lines.append(f"  e{i}:")
        if chain and i + 1 < count or draw(st.integers(0, 5)) == 0:
            lines.append(f"    extends: e{draw(st.integers(0, count)) if not chain else i + 1}")
        if draw(st.integers(0, 4)) == 0:
            lines.append("    <<: *defaults" if "defaults: &defaults" in lines else "    <<: {}")
        lines += draw(settings_block(4))
        lines.append(f"    tasks: {{t{i}: {{fn: {draw(st.sampled_from(['m:f', 'x', '1', '{}']))}}}}}")
    if draw(st.booleans()):
        lines += ["overrides:", f"  - match: {draw(flow_values)}", f"    set: {draw(flow_values)}"]
    if draw(st.booleans()):
        lines += ["profiles:", "  prod:", "    environments:", "      e0:", *draw(settings_block(8))]
    text = "\n".join(lines) + "\n"
    return _mutate(draw, text)


@st.composite
def toml_documents(draw: st.DrawFn) -> str:
    lines = [f"version = {draw(st.sampled_from(['1', '2', '1.0', '0x1']))}"]
    for i in range(draw(st.integers(0, 3))):
        lines.append(f"[environments.e{i}]")
        for key in draw(st.lists(st.sampled_from(KEYS[7:40]), max_size=4, unique=True)):
            value = draw(
                st.sampled_from(TRICKY + ['"500m"', '"1Gi"', "[[[[1]]]]", "{request = 1, limit = 2}"])
            )
            lines.append(f"{key} = {value}")
        lines.append(f'[environments.e{i}.tasks.t]\nfn = "m:f"')
    if draw(st.booleans()):
        depth = draw(st.integers(1, 200))
        lines.append("x = " + "[" * depth + "]" * depth)
    return _mutate(draw, "\n".join(lines) + "\n")


def _mutate(draw: st.DrawFn, text: str) -> str:
    """Sometimes damage the text: cut it, repeat a slice, or insert characters."""
    how = draw(st.integers(0, 7))
    if how == 0 and text:
        return text[: draw(st.integers(0, len(text)))]
    if how == 1 and text:
        start = draw(st.integers(0, len(text) - 1))
        return text[:start] + text[start : start + 40] * draw(st.integers(2, 50)) + text[start:]
    if how == 2:
        start = draw(st.integers(0, len(text)))
        return text[:start] + draw(st.text(max_size=8)) + text[start:]
    if how == 3:
        return "\ufeff" + text
    return text


def validate(text: str, name: str) -> tuple[int, list[str], float]:
    with tempfile.TemporaryDirectory(prefix="flyte-decl-fuzz-") as folder:
        path = Path(folder) / name
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        out, err = io.StringIO(), io.StringIO()
        start = time.process_time()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = _run(cli.main, ["validate", "-c", str(path)])
        elapsed = time.process_time() - start
    return code, (out.getvalue() + err.getvalue()).splitlines(), elapsed


def check(text: str, name: str) -> None:
    os.environ["FUZZ_EMPTY"] = ""
    os.environ.pop("FUZZ_UNSET", None)
    code, lines, elapsed = validate(text, name)
    assert code in (0, 1, 2), (code, lines)
    assert elapsed < CPU_SECONDS_PER_DOCUMENT, f"{elapsed:.1f} s of CPU"
    for line in lines:
        assert "Traceback" not in line
        assert LINE.match(line) or SUMMARY.match(line), line
    if code == 2:
        assert lines and all(LINE.match(line) for line in lines), lines


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # timed by check() with a bound of its own
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
_seed = (
    seed(int(os.environ["FLYTE_DECL_FUZZ_SEED"])) if "FLYTE_DECL_FUZZ_SEED" in os.environ else (lambda f: f)
)


@_seed
@FUZZ
@given(yaml_documents())
def test_validate_never_tracebacks_on_yaml(text: str) -> None:
    check(text, "environments.yaml")


@_seed
@FUZZ
@given(toml_documents())
def test_validate_never_tracebacks_on_toml(text: str) -> None:
    check(text, "environments.toml")
