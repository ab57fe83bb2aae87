"""The run's console: a live view on a terminal (through a pseudo-terminal), lines elsewhere, -q and -v."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def _on_terminal(ws, *args: str) -> tuple[int, str, str]:
    """Run `flyte-decl ARGS` with stderr on a pseudo-terminal; (exit code, stdout, screen text)."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "LINES": "40", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen([sys.executable, "-m", "flyte_decl", *args], cwd=ws.root, stdout=subprocess.PIPE,
                               stderr=slave, stdin=subprocess.DEVNULL, env=env)  # fmt: skip
    os.close(slave)
    screen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    out = process.stdout.read().decode() if process.stdout else ""
    code = process.wait()
    os.close(master)
    text = screen.decode(errors="replace").replace("\x1b[2K", "\n")  # each line the view redraws, apart
    return code, out, "\n".join(line for line in ANSI.sub("", text).split("\n") if line.strip())


def test_the_live_view_on_a_terminal(ws) -> None:
    ws.touch("slow", "0.4")  # long enough for the view to draw running actions
    code, out, screen = _on_terminal(ws, "run", "fan", "--n", "3")
    assert (code, out) == (0, "[0, 10, 20]\n")
    assert "\x1b" not in screen
    lines = screen.splitlines()
    assert any(re.fullmatch(r"run r1 +\S+ +━+ +\d+/\d+ actions done", line.strip()) for line in lines)
    assert any(line.split()[:3] == ["running", "elapsed", "rss"] for line in lines)  # while they run
    assert any(re.match(r"wf\.piece\[\d\] +\d+\.\d+s +\S+ / 256Mi \(\d+%\)", line) for line in lines)
    for i in range(3):
        assert f"wf.piece[{i}] | piece {i}" in lines  # task output above the live area, whole lines
    # The final state stays: every action done, the per-task table, then the summary line.
    assert lines[-1].startswith("run r1 succeeded in ")
    assert re.search(r"run r1 .* 4/4 actions done", screen)
    assert [line.split() for line in lines if line.startswith("wf.piece ")][-1] == [
        "wf.piece", "-", "-", "3", "-", "-", "-"
    ]  # fmt: skip


def test_quiet_prints_only_the_result_and_errors(ws) -> None:
    code, out, screen = _on_terminal(ws, "run", "fan", "--n", "2", "-q")
    assert (code, out, screen) == (0, "[0, 10]\n", "")
    ws.touch("fail-1")
    code, out, screen = _on_terminal(ws, "run", "fan", "--n", "2", "--quiet")
    assert (code, out) == (1, "")
    assert screen.splitlines()[0].startswith("run r2 failed in ")
    assert screen.splitlines()[-1] == "ValueError: piece 1 failed on purpose"


def test_off_a_terminal_lines_stream_with_one_summary_line(ws) -> None:
    result = ws.cli("run", "fan", "--n", "2")
    lines = result.err.splitlines()
    assert lines[0].startswith("run r1: wf.fan in wf") and lines[1].startswith("config: ")
    assert sorted(lines[2:-1]) == ["wf.fan[0] | fan starts", "wf.piece[0] | piece 0", "wf.piece[1] | piece 1"]
    assert lines[-1].startswith("run r1 succeeded in ") and lines[-1].endswith(
        f"(3 succeeded); logs in {ws.root}/.flyte-decl/logs/r1"
    )
    one = ws.cli("run", "greet").err.splitlines()[-1]
    assert re.fullmatch(
        rf"run r2 succeeded in \d+\.\d+s: 1 action \(1 succeeded\); logs in {ws.root}/\S+/r2", one
    )


def test_verbose_prints_every_phase_change(ws) -> None:
    result = ws.cli("run", "fan", "--n", "1", "-v")
    phases = [line for line in result.err.splitlines() if line.startswith("wf.piece[0] (a2) ")]
    assert [line.split(" ")[2].rstrip(",") for line in phases] == ["queued", "running", "succeeded"]
    assert re.fullmatch(r"wf\.piece\[0\] \(a2\) running, pid \d+", phases[1])
    assert re.fullmatch(r"wf\.piece\[0\] \(a2\) succeeded in \d+\.\d+s", phases[2])
    both = ws.cli("run", "fan", "-q", "-v")
    assert (both.code, both.err) == (2, "error: -q/--quiet and -v/--verbose cannot be used together\n")
