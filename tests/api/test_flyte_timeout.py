"""`flyte.Timeout(max_runtime=, max_queued_time=, deadline=)` enforced as Flyte's cluster defines them: the
deadline bounds the whole action across attempts and backoffs, max_queued_time each attempt's wait for a
queue slot; each has its failure kind and the Flyte error class a caller catches.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

import flyte_decl as flyte
from flyte_decl._task_environment import timeout_settings
from flyte_decl.config.load import load

PROGRAM = """
import asyncio

import flyte

env = flyte.TaskEnvironment(name="bounds", queue="one")


@env.task(retries=9, timeout=flyte.Timeout(max_runtime=1, deadline=5))
async def sleepy() -> str:
    await asyncio.sleep(10)
    return "never"


@env.task(retries=flyte.RetryStrategy(count=3, backoff=30), timeout=flyte.Timeout(deadline=5))
async def failing() -> str:
    raise ValueError("again")


@env.task(retries=1, timeout=flyte.Timeout(max_queued_time=1))
async def nap(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@env.task(queue="default")
async def gathered() -> str:
    try:
        await asyncio.gather(nap(5), nap(5))
    except flyte.errors.MaxQueuedTimeExceededError as e:
        return f"{type(e).__name__} {e.code} {isinstance(e, flyte.errors.TaskTimeoutError)}: {e}"
    return "both ran"


pool = flyte.TaskEnvironment(name="pool", reusable=flyte.ReusePolicy(replicas=1, idle_ttl=30))


@pool.task(timeout=flyte.Timeout(max_queued_time=1))
async def warm(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@env.task(queue="default")
async def pooled() -> str:
    try:
        await asyncio.gather(warm(4), warm(4))
    except flyte.errors.MaxQueuedTimeExceededError as e:
        return e.code
    return "both ran"


@env.task(queue="default")
async def caught() -> str:
    try:
        return await sleepy()
    except flyte.errors.DeadlineExceededError as e:
        return f"{type(e).__name__} {e.code}: {e}"
"""

CONFIG = """\
version: 1
queues:
  one: {concurrency: 1}
"""


def _run(run_program, write, task: str):
    write(CONFIG)
    started = time.monotonic()
    done = run_program(PROGRAM, "run", "--json", "prog.py", task)
    assert done.out, done.err
    return done, json.loads(done.out), time.monotonic() - started


def test_deadline_ends_the_action_across_its_retries(run_program, write) -> None:
    done, run, seconds = _run(run_program, write, "sleepy")
    assert (done.code, run["status"]) == (1, "timed_out")
    *retried, last = [(a["attempt"], a["phase"], a["kind"], a["message"]) for a in run["actions"]]
    # Attempts of 1 s each, retried at once, until the deadline 5 s after the first was queued (under
    # load the fork server's start takes part of that): far fewer than the 10 attempts allowed.
    assert len(retried) < 5
    assert set(retried) == {
        (n, "timed_out", "timed_out", "bounds.sleepy ran longer than its timeout of 1s") for n in range(1, len(retried) + 1)
    }  # fmt: skip
    message = "bounds.sleepy did not finish within its deadline of 5s (retries included)"
    assert last == (len(retried) + 1, "timed_out", "deadline_exceeded", message)
    assert seconds < 9  # about 5 s, not 10 attempts of 1 s
    assert done.err.endswith(
        f"bounds.sleepy[0] timed_out (deadline_exceeded), attempt {last[0]}: {message}\n"
    )


def test_deadline_fires_during_a_retry_backoff(run_program, write) -> None:
    done, run, seconds = _run(run_program, write, "failing")
    assert (done.code, run["status"]) == (1, "timed_out")
    last = run["actions"][-1]
    assert (last["attempt"], last["kind"], last["log_path"]) == (2, "deadline_exceeded", None)
    assert seconds < 12  # the 30 s backoff is cut short at 5 s


def test_a_caller_catches_deadline_exceeded(run_program, write) -> None:
    done, run, _ = _run(run_program, write, "caught")
    assert done.code == 0, done.err
    assert run["outputs"] == (
        "DeadlineExceededError DeadlineExceededError: bounds.sleepy (a2) failed: deadline_exceeded: "
        "bounds.sleepy did not finish within its deadline of 5s (retries included)"
    )


def test_max_queued_time_fails_an_attempt_waiting_for_its_queue(run_program, write) -> None:
    done, run, seconds = _run(run_program, write, "gathered")
    assert done.code == 0, done.err
    assert run["outputs"] == (
        "MaxQueuedTimeExceededError MaxQueuedTimeExceededError True: bounds.nap (a3) failed: queued_timeout: "
        "bounds.nap waited longer than its max_queued_time of 1s for a slot in queue 'one' or for capacity"
    )
    waited = [(a["id"], a["attempt"], a["phase"], a["kind"]) for a in run["actions"] if a["id"] == "a3"]
    # Per attempt, as in Flyte: its retry queues again and waits again.
    assert waited == [("a3", 1, "timed_out", "queued_timeout"), ("a3", 2, "timed_out", "queued_timeout")]
    assert seconds < 8  # not one 5 s nap after the other


def test_max_queued_time_covers_the_wait_for_a_busy_warm_worker(run_program, write) -> None:
    done, run, _ = _run(run_program, write, "pooled")
    assert (done.code, run["outputs"]) == (0, "MaxQueuedTimeExceededError"), done.err
    assert [a["kind"] for a in run["actions"] if a["task"] == "pool.warm"] == [None, "queued_timeout"]


# -- declarations ----------------------------------------------------------------------------------


def test_timeout_becomes_the_config_value() -> None:
    assert timeout_settings(30) == 30.0
    assert timeout_settings(flyte.Timeout(max_runtime=timedelta(minutes=1))) == 60.0
    assert timeout_settings(flyte.Timeout(max_runtime=10, deadline=3)) == {
        "max_runtime": 10.0,
        "deadline": 3.0,
    }
    assert timeout_settings(flyte.Timeout(max_queued_time=timedelta(seconds=5), deadline=0)) == {
        "max_queued_time": 5.0
    }
    assert timeout_settings(flyte.Timeout()) is None
    timeout = flyte.Timeout(max_runtime=300, max_queued_time=600)
    assert (timeout.max_runtime, timeout.max_queued_time, timeout.deadline) == (
        300,
        600,
        None,
    )  # kept as given


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (flyte.Timeout(deadline=-1), "deadline must be >= 0 seconds, got -1.0"),
        (
            flyte.Timeout(max_queued_time="1m"),
            "Timeout must be an instance of Timeout, int, or timedelta, got '1m'",
        ),
        (-2, "timeout must be >= 0 seconds, got -2.0"),
    ],
)
def test_bad_timeouts_are_refused(value, message) -> None:
    with pytest.raises(ValueError) as caught:
        timeout_settings(value)
    assert str(caught.value) == message


def test_yaml_timeout_mapping_reaches_the_spec_and_replaces_a_lower_one_whole(write) -> None:
    config = write("""\
        version: 1
        defaults:
          timeout: {max_runtime: 2s, max_queued_time: 1m, deadline: 1h}
        environments:
          env1:
            tasks:
              kept: {fn: "m:f"}
              scalar: {fn: "m:f", timeout: 30s}
              bounded: {fn: "m:f", timeout: {deadline: 10s}}
        """)  # fmt: skip
    tasks = load([str(config)]).run_config().tasks
    bounds = {name: (t.timeout, t.max_queued_time, t.deadline) for name, t in tasks.items()}
    assert bounds == {
        "env1.kept": (2.0, 60.0, 3600.0),
        "env1.scalar": (30.0, None, None),
        "env1.bounded": (None, None, 10.0),
    }


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("{deadline: soon}", "3:23: error: defaults.timeout.deadline: 'soon' is not a duration (e.g. 30s, 5m, 1h30m, 250ms or 30)"),
        ("{max_runtime: 1s, budget: 2s}", "3:30: error: defaults.timeout.budget: unknown key"),
        ("{deadline: 30d}", "3:23: error: defaults.timeout.deadline: duration '30d' is above the maximum of 24d "
         "(the runner's timers wait at most 24 days; write at most 24d)"),
    ],
)  # fmt: skip
def test_a_bad_yaml_timeout_mapping_is_one_error_line(flyte_decl, write, setting: str, message: str) -> None:
    write(f"version: 1\ndefaults:\n  timeout: {setting}\n")
    done = flyte_decl("validate")
    assert (done.code, done.out) == (1, f"environments.yaml:{message}\n1 error\n")


def test_dry_run_shows_every_bound(run_program, write) -> None:
    write(CONFIG)
    done = run_program(PROGRAM, "run", "--dry-run", "prog.py", "sleepy")
    assert done.code == 0, done.err
    lines = done.out.splitlines()
    assert (
        "  timeout              1s         runner wall clock (SIGTERM to the tree, SIGKILL 1s later)" in lines
    )
    assert (
        "  deadline             5s         runner wall clock from first queued, across retries (then as timeout)"
        in lines
    )
