"""`flyte-decl doctor` reports the mechanisms the runner will use and the scheduler's capacity."""

import json
import os

from flyte_decl.runtime.limits import detect_mechanisms


def test_doctor_json_matches_what_the_runner_detects(flyte_decl):
    result = flyte_decl("doctor", "--format", "json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["capacity"]["cpu"] == len(os.sched_getaffinity(0))
    mechanisms = detect_mechanisms()
    assert report["enforcement"]["memory"] == mechanisms.describe()["memory"]
    assert report["enforcement"]["cpu"] == mechanisms.describe()["cpu"]


def test_doctor_text_names_capacity_and_each_limit(flyte_decl):
    lines = flyte_decl("doctor").out.splitlines()
    assert lines[1].startswith(f"capacity: {len(os.sched_getaffinity(0))} CPUs, ")
    # A `cgroups` line says why wherever the kernel does not enforce memory or cpu (an ordinary user here).
    why = ["cgroups"] if detect_mechanisms().note else []
    assert [line.split(":")[0] for line in lines[2:]] == [
        "memory",
        "cpu",
        *why,
        "timeout",
        "max_inline_io_bytes",
        "orphans",
    ]
