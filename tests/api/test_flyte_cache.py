"""`flyte.Cache` as Flyte defines it: behavior, version_override, ignored_inputs, salt and max_age decide
whether a call reuses recorded outputs, in code (`@env.task(cache=Cache(...))`) and in environments.yaml.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

import flyte_decl as flyte
from flyte_decl._cache import FunctionBodyPolicy, VersionParameters, bound_inputs, cache_key
from flyte_decl._task_environment import cache_settings
from flyte_decl.config.load import load

PROGRAM = """
from datetime import timedelta

import flyte

env = flyte.TaskEnvironment(name="cachedemo")


@env.task(cache=CACHE)
async def one(x: int, note: str = "") -> int:
    print("computing", x)
    return x


@env.task
async def main() -> list[int]:
    return [await one(1, "a"), await one(1, "b"), await one(x=1, note="c")]
"""


def _run(run_program, cache: str, *args: str, program: str = PROGRAM) -> dict:
    """Run `program` with `cache=CACHE`; the run's JSON."""
    done = run_program(program.replace("CACHE", cache), "run", *args, "--json", "prog.py", "main")
    assert done.code == 0, done.err
    return json.loads(done.out)


def _ones(run: dict) -> list[str]:
    return [a["phase"] for a in run["actions"] if a["task"] == "cachedemo.one"]


def test_override_keys_on_the_version_and_leaves_ignored_inputs_out(run_program) -> None:
    cache = 'flyte.Cache(behavior="override", version_override="v1", ignored_inputs=("note",))'
    first = _run(run_program, cache)
    assert first["outputs"] == [1, 1, 1]
    # The second and third calls (another note, by keyword) hit the first one's outputs in the same run.
    assert _ones(first) == ["succeeded", "cached", "cached"]
    assert _ones(_run(run_program, cache)) == ["cached", "cached", "cached"]
    # The version is the override, not the source: an edited body still hits, a new version misses.
    edited = PROGRAM.replace('print("computing", x)', 'print("computing again", x)')
    assert _ones(_run(run_program, cache, program=edited)) == ["cached", "cached", "cached"]
    auto = cache.replace('behavior="override"', 'behavior="auto"')
    assert _ones(_run(run_program, auto, program=edited)) == ["cached"] * 3
    assert _ones(_run(run_program, cache.replace("v1", "v2"))) == ["succeeded", "cached", "cached"]


def test_inputs_count_unless_ignored_and_disable_never_reuses(run_program) -> None:
    assert _ones(_run(run_program, '"auto"')) == ["succeeded", "succeeded", "succeeded"]
    assert _ones(_run(run_program, '"auto"')) == ["cached", "cached", "cached"]
    assert _ones(_run(run_program, 'flyte.Cache(behavior="disable")')) == ["succeeded"] * 3


def test_salt_changes_the_source_version_and_overwrite_cache_runs_anyway(run_program) -> None:
    salted = 'flyte.Cache(behavior="auto", salt="s1", ignored_inputs="note")'
    assert _ones(_run(run_program, salted)) == ["succeeded", "cached", "cached"]
    assert _ones(_run(run_program, salted.replace("s1", "s2"))) == ["succeeded", "cached", "cached"]
    assert _ones(_run(run_program, salted, "--overwrite-cache")) == ["succeeded"] * 3


def test_max_age_ignores_outputs_recorded_longer_ago(run_program) -> None:
    aged = 'flyte.Cache(behavior="override", version_override="v1", ignored_inputs="note", max_age=AGE)'
    assert _ones(_run(run_program, aged.replace("AGE", "3600"))) == ["succeeded", "cached", "cached"]
    # max_age is not part of the key (the version is fixed): the next run finds the same outputs, too
    # old for it...
    too_old = _run(run_program, aged.replace("AGE", "timedelta(milliseconds=1)"))
    assert _ones(too_old) == ["succeeded", "cached", "cached"]
    # ...and a later one with an hour's age reuses the newest ones.
    again = _run(run_program, aged.replace("AGE", "timedelta(hours=1)"))
    assert {a["message"] for a in again["actions"][1:]} == {f"outputs reused from {too_old['run']}/a2"}


# -- the key and the version, as Flyte defines them ------------------------------------------------


def _f(x: int, note: str = "") -> int:
    return x


def _f_commented(x: int, note: str = "") -> int:
    # a comment is not part of the syntax tree
    return x


def test_version_is_the_override_else_the_syntax_tree_hash_with_salt() -> None:
    params = VersionParameters(func=_f)
    assert flyte.Cache("override", version_override="v1", salt="s").get_version(params) == "v1"
    assert flyte.Cache("disable", version_override="v1").get_version(params) == ""
    auto = flyte.Cache("auto").get_version(params)
    assert len(auto) == 64 and auto != flyte.Cache("auto", salt="s").get_version(params)
    body = FunctionBodyPolicy()
    assert body.get_version("", params) != body.get_version("", VersionParameters(func=_f_commented))
    with pytest.raises(
        ValueError, match="^Version parameters must be provided when version_override is not set.$"
    ):
        flyte.Cache("auto").get_version()


def test_key_binds_inputs_to_names_and_leaves_ignored_ones_out() -> None:
    assert bound_inputs(_f, (1,), {}) == {"x": 1, "note": ""}
    positional = cache_key("e.one", "v1", bound_inputs(_f, (1, "a"), {}))
    assert positional == cache_key("e.one", "v1", bound_inputs(_f, (), {"note": "a", "x": 1}))
    assert positional != cache_key("e.one", "v1", bound_inputs(_f, (1, "b"), {}))
    assert cache_key("e.one", "v1", {"x": 1, "note": "a"}, ["note"]) == cache_key("e.one", "v1", {"x": 1}, [])
    assert positional != cache_key("e.one", "v2", bound_inputs(_f, (1, "a"), {}))
    assert positional != cache_key("e.two", "v1", bound_inputs(_f, (1, "a"), {}))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: flyte.Cache("always"),
            ValueError,
            "Invalid cache behavior 'always': use 'auto', 'override' or "
            "'disable' (aliases accepted: enable, enabled, false, no, none, off, on, true, yes)",
        ),  # fmt: skip
        (lambda: flyte.Cache("auto", max_age=-1), ValueError, "max_age must be nonnegative"),
        (
            lambda: flyte.Cache("auto", max_age=1.5),
            TypeError,
            "max_age must be an int (seconds), timedelta, or None",
        ),
        (lambda: flyte.Cache("auto", version_override=1), TypeError, "version_override must be a str, got 1"),
        (
            lambda: flyte.Cache("auto", ignored_inputs=(1,)),
            TypeError,
            "ignored_inputs must be input names, got (1,)",
        ),
        (
            lambda: cache_settings(3),
            TypeError,
            "Expected cache to be of type str or Cache, got <class 'int'>",  # Flyte's message
        ),
    ],
)
def test_cache_arguments_are_checked(call, error, message) -> None:
    with pytest.raises(error) as caught:
        call()
    assert str(caught.value) == message


def test_cache_becomes_the_config_mapping() -> None:
    assert cache_settings("ON") == "auto"
    assert cache_settings(flyte.Cache("off")) == {"behavior": "disable"}
    cache = flyte.Cache("override", version_override="v1", ignored_inputs="note", salt="s", serialize=True,
                        max_age=timedelta(days=1))  # fmt: skip
    assert cache.get_ignored_inputs() == ("note",) and cache.is_enabled()
    assert cache_settings(cache) == {"behavior": "override", "version_override": "v1", "ignored_inputs": ["note"],
                                     "salt": "s", "serialize": True, "max_age": 86400.0}  # fmt: skip


# -- environments.yaml ------------------------------------------------------------------------------


CONFIG = """\
version: 1
defaults:
  cache: {behavior: override, version_override: v1, ignored_inputs: [note], salt: s, max_age: 7d, serialize: true}
environments:
  env1:
    tasks:
      kept: {fn: "m:f"}
      plain: {fn: "m:f", cache: auto}
      disabled: {fn: "m:f", cache: {behavior: disable}}
"""


def test_yaml_cache_mapping_reaches_the_spec_and_a_lower_one_is_replaced_whole(write) -> None:
    tasks = load([str(write(CONFIG))]).run_config().tasks
    kept = tasks["env1.kept"]
    assert (kept.cache, kept.cache_options.version_override, kept.cache_options.ignored_inputs) == (
        "override",
        "v1",
        ("note",),
    )
    assert (kept.cache_options.salt, kept.cache_options.max_age, kept.cache_options.serialize) == (
        "s",
        604800.0,
        True,
    )
    for name, behavior in (("env1.plain", "auto"), ("env1.disabled", "disable")):
        assert tasks[name].cache == behavior
        assert tasks[name].cache_options == type(kept.cache_options)()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("{version_override: v1}", "3:10: error: defaults.cache.behavior: missing required key 'behavior'"),
        ("{behavior: auto, versions: v1}", "3:27: error: defaults.cache.versions: unknown key"),
        ("{behavior: always}",
         "3:21: error: defaults.cache.behavior: must be 'auto', 'override' or 'disable', got 'always'"),
        ("{behavior: auto, max_age: soon}",
         "3:36: error: defaults.cache.max_age: 'soon' is not a duration (e.g. 30s, 5m, 1h30m, 250ms or 30)"),
        ("{behavior: auto, ignored_inputs: note}",
         "3:43: error: defaults.cache.ignored_inputs: must be a list, got a string"),
    ],
)  # fmt: skip
def test_a_bad_yaml_cache_mapping_is_one_error_line(flyte_decl, write, setting: str, message: str) -> None:
    write(f"version: 1\ndefaults:\n  cache: {setting}\n")
    done = flyte_decl("validate")
    assert (done.code, done.out) == (1, f"environments.yaml:{message}\n1 error\n")
