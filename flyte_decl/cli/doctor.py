"""`flyte-decl doctor`: which limit mechanisms work on this machine, its capacity, and versions."""

from __future__ import annotations

import json
import platform
import sys

import click

from flyte_decl import __version__
from flyte_decl.quantity import format_bytes
from flyte_decl.runtime.limits import detect_mechanisms
from flyte_decl.runtime.scheduler import machine_capacity
from flyte_decl.spec import Capacity


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def doctor(fmt: str) -> None:
    """Report how CPU, memory and time limits are enforced here, and what the scheduler can hand out."""
    mechanisms = detect_mechanisms()
    capacity = machine_capacity(Capacity())  # what the scheduler hands out when the config is silent
    enforcement = {
        **mechanisms.describe(),
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
        f"capacity: {capacity.cpu / 1000:g} CPUs, {format_bytes(capacity.memory)} memory, {capacity.gpu} GPUs"
    )
    for what, how in enforcement.items():
        click.echo(f"{what + ':':22} {how}")
