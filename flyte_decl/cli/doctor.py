"""`flyte-decl doctor`: which limit mechanisms work on this machine, its capacity, and versions."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import click

from flyte_decl import __version__
from flyte_decl.quantity import format_bytes
from flyte_decl.runtime import cgroup2
from flyte_decl.runtime.limits import Mechanisms, detect_mechanisms, systemd_scope_for_run
from flyte_decl.runtime.scheduler import machine_capacity
from flyte_decl.spec import Capacity
from flyte_decl.words import counted


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def doctor(fmt: str) -> None:
    """Report how CPU, memory and time limits are enforced here, and what the scheduler can hand out."""
    mechanisms = detect_mechanisms()
    capacity = machine_capacity(Capacity())  # what the scheduler hands out when the config is silent
    enforcement = {
        **mechanisms.describe(),
        **_cgroups(mechanisms),
        "timeout": "wall clock, SIGTERM then SIGKILL of the whole process tree",
        "max_inline_io_bytes": "serialized inputs and outputs are measured at the process boundary",
        "orphans": "actions die with the runner (fork-server guard, subreaper, lifeline); leftovers swept at start",
    }
    report = {
        "flyte_decl": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "capacity": {
            "cpu": capacity.cpu / 1000,
            "memory": format_bytes(capacity.memory),
            "gpu": capacity.gpu,
        },
        "enforcement": enforcement,
    }
    if fmt == "json":
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"flyte-decl {report['flyte_decl']} on Python {report['python']} ({report['platform']})")
    click.echo(
        f"capacity: {capacity.cpu / 1000:g} CPU{'s' * (capacity.cpu != 1000)}, {format_bytes(capacity.memory)} memory, "
        f"{counted(capacity.gpu, 'GPU')}"
    )
    for what, how in enforcement.items():
        click.echo(f"{what + ':':22} {how}")


def _cgroups(mechanisms: Mechanisms) -> dict[str, str]:
    """The `cgroups` line: how the v2 subtree was obtained, or why the kernel does not enforce here.

    Where a run would re-execute itself in a systemd user scope, this asks the same question
    inside such a scope, so the lines say what a run will really get there.
    """
    if mechanisms.situation:
        how = f"cgroup v2, {mechanisms.situation} {os.path.dirname(mechanisms.cgroup_root or '')}"
        return {"cgroups": f"{how}; {mechanisms.note}" if mechanisms.note else how}
    if not mechanisms.note:
        return {}
    command = systemd_scope_for_run([sys.executable, "-m", "flyte_decl", "doctor", "--format", "json"])
    if command is None:
        return {"cgroups": mechanisms.note}
    try:
        scoped = subprocess.run(
            command, env={**os.environ, cgroup2.ENV_IN_SCOPE: "1"}, capture_output=True, text=True, timeout=60
        )
        inside = json.loads(scoped.stdout)["enforcement"]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        return {"cgroups": f"{mechanisms.note}, but it failed here: {exc}"}
    how = f"a run re-executes itself in a delegated systemd user scope ({cgroup2.ENV_SYSTEMD_SCOPE}=0 turns it off)"
    return {"memory": inside["memory"], "cpu": inside["cpu"], "cgroups": how}
