"""`flyte-decl logs RUN [ACTION] [--follow]` on real runs."""

from __future__ import annotations

import time


def test_logs_of_a_run_and_of_one_action(ws) -> None:
    ws.cli("run", "fan", "--n", "2")

    whole = ws.cli("logs", "r1")
    assert whole.code == 0
    assert sorted(whole.out.splitlines()) == [
        "wf.fan[0] | fan starts",
        "wf.piece[0] | piece 0",
        "wf.piece[1] | piece 1",
    ]
    for name in ("a3", "wf.piece[1]", "piece[1]"):
        assert ws.cli("logs", "r1", name).out == "piece 1\n", name
    assert ws.cli("logs", "last", "fan").out == "fan starts\n"


def test_each_attempt_of_a_retried_action_is_shown(ws) -> None:
    ws.touch("fail-0")
    ws.cli("run", "piece", "--i", "0", "--set", "retries=1")
    out = ws.cli("logs", "r1", "a1").out.splitlines()
    assert [line for line in out if not line.startswith(" ")] == [
        "--- a1 wf.piece[0] attempt 1 ---", "piece 0", "Traceback (most recent call last):",
        "ValueError: piece 0 failed on purpose",
        "--- a1 wf.piece[0] attempt 2 ---", "piece 0", "Traceback (most recent call last):",
        "ValueError: piece 0 failed on purpose",
    ]  # fmt: skip
    everything = ws.cli("logs", "r1").out.splitlines()
    assert everything[:2] == ["wf.piece[0] | piece 0", "wf.piece[0] | Traceback (most recent call last):"]
    assert everything[-1] == "wf.piece[0]#2 | ValueError: piece 0 failed on purpose"


def test_a_cached_action_says_why_it_has_no_log(ws) -> None:
    ws.cli("run", "fan", "--n", "1", "--cached")
    ws.cli("run", "fan", "--n", "1", "--cached")
    result = ws.cli("logs", "r2", "a2")
    assert (result.code, result.out) == (0, "")
    assert result.err == "note: a2 wf.cpiece[0] was cached (outputs reused from r1/a2): no process ran\n"


def test_follow_prints_lines_as_they_come_until_the_run_ends(ws) -> None:
    runner = ws.spawn("run", "chatty", "--lines", "6", "--pause", "0.3")
    ws.wait_for(lambda: (ws.root / ".flyte-decl" / "logs" / "r1" / "a1.1.log").exists(), "the action's log")
    started = time.monotonic()
    follower = ws.spawn("logs", "r1", "--follow")
    out, err = follower.communicate(timeout=30)
    assert runner.wait(timeout=30) == 0
    assert (follower.returncode, err) == (0, "")
    assert out.splitlines() == [f"chatty[0] | line {i}".replace("chatty", "wf.chatty") for i in range(6)]
    assert time.monotonic() - started > 0.6  # it waited for lines still to come


def test_action_errors_are_one_line_with_a_hint(ws) -> None:
    ws.cli("run", "fan", "--n", "3")
    cases = [
        (("logs", "r1", "A03"), "error: run r1 has no action 'A03' (did you mean 'a3'? see 'flyte-decl runs show r1')"),
        (("logs", "r1", "a9"),
         "error: run r1 has no action 'a9' (hint: an action id like a1, or a label like env.task[0]; "
         "see 'flyte-decl runs show r1')"),
        (("logs", "r1", "pieces[1]"),
         "error: run r1 has no action 'pieces[1]' (did you mean 'piece[1]'? see 'flyte-decl runs show r1')"),
        (("logs", "r1", "nothing"),
         "error: run r1 has no action 'nothing' (hint: an action id like a1, or a label like env.task[0]; "
         "see 'flyte-decl runs show r1')"),
        (("logs", "r1", "piece"),
         "error: 'piece' names 3 actions of run r1: a2 (wf.piece[0]), a3 (wf.piece[1]), a4 (wf.piece[2]) "
         "(hint: give one of them)"),
    ]  # fmt: skip
    for args, expected in cases:
        result = ws.cli(*args)
        assert (result.code, result.err.strip(), result.out) == (2, expected, ""), args
