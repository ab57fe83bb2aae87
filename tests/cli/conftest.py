"""A project folder for the run-history tests: a config, a task module, and ways to run the CLI on it.

`ws.cli(...)` runs the CLI in-process (fast); `ws.spawn(...)` starts the real command as a process,
for what needs one: a runner to kill, two runners at once, a follower beside a run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flyte_decl.store.store import Store

CONFIG = """
version: 1
environments:
  wf:
    resources: {cpu: 1, memory: 256Mi}
    env_vars: {GREETING: hello}
    tasks:
      fan: {fn: "histwf:fan"}
      piece: {fn: "histwf:piece"}
      cpiece: {fn: "histwf:cpiece", cache: auto}
      greet: {fn: "histwf:greet"}
      chatty: {fn: "histwf:chatty"}
  vault:
    secrets: [API_TOKEN]
    env_vars: {TOKEN_COPY: "${API_TOKEN:-unset}"}
    tasks:
      reveal: {fn: "histwf:reveal"}
"""

MODULE = """
import asyncio
import os
import pathlib
import time


def _work(i):
    print(f"piece {i}", flush=True)
    if pathlib.Path("slow").exists():  # long enough for several resource samples
        time.sleep(float(pathlib.Path("slow").read_text()))
    fail = pathlib.Path(f"fail-{i}")
    if fail.exists():  # after the delay written in it, so that the other pieces are done by then
        time.sleep(float(fail.read_text() or 0))
        raise ValueError(f"piece {i} failed on purpose")
    if pathlib.Path(f"block-{i}").exists():  # hold here (until killed, or the file is gone)
        pathlib.Path(f"blocked-{i}").touch()
        while pathlib.Path(f"block-{i}").exists():
            time.sleep(0.05)
    return i * 10


async def piece(i: int) -> int:
    return _work(i)


async def cpiece(i: int) -> int:
    return _work(i)


async def fan(n: int = 4, cached: bool = False) -> list:
    print("fan starts", flush=True)
    task = cpiece if cached else piece
    return list(await asyncio.gather(*(task(i) for i in range(n))))


def greet(name: str = "world") -> str:
    return f"{os.environ['GREETING']} {name}"


def reveal(echo: bool = False) -> str:
    token = os.environ["API_TOKEN"]
    print("token is", token, "and its copy", os.environ["TOKEN_COPY"], flush=True)
    return token if echo else f"{len(token)} characters"


def chatty(lines: int = 3, pause: float = 0.0) -> int:
    for i in range(lines):
        print(f"line {i}", flush=True)
        time.sleep(pause)
    return lines
"""


@dataclass
class Workspace:
    root: Path
    cli: Callable[..., Any]  # -> CliResult(code, out, err)

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        """The real `flyte-decl ARGS` as its own process in the workspace."""
        return subprocess.Popen(
            [sys.executable, "-m", "flyte_decl", *args],
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def store(self) -> Store:
        return Store.open(self.root / ".flyte-decl", create=False)

    def touch(self, name: str, text: str = "") -> Path:
        path = self.root / name
        path.write_text(text)
        return path

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.02)


@pytest.fixture
def ws(
    tmp_path: Path, flyte_decl: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    monkeypatch.delenv("FLYTE_DECL_HOME", raising=False)
    monkeypatch.setenv("API_TOKEN", "ws-token-9f8e7d")  # `vault` declares it: a run checks it is set
    (tmp_path / "environments.yaml").write_text(textwrap.dedent(CONFIG).lstrip())
    (tmp_path / "histwf.py").write_text(textwrap.dedent(MODULE).lstrip())
    yield Workspace(tmp_path, flyte_decl)
    # In-process runs imported this folder's module: the next test's folder has its own.
    sys.modules.pop("histwf", None)
    while str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))
