"""Datetimes cross the action boundary as Flyte carries them (UTC timestamps: naive taken as UTC, aware
converted), directly and in lists, dicts and tuples; dates, timedeltas and dataclass fields are unchanged.
The CLI reads Flyte's spellings of times, and JSON shows them as ISO 8601.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import NamedTuple

import pytest

from flyte_decl.runtime.datetimes import as_flyte_carries, json_default
from flyte_decl.runtime.wire import dump_payload, load_payload

UTC = timezone.utc
PLUS2 = timezone(timedelta(hours=2))


@dataclass
class Box:
    at: datetime


class Pair(NamedTuple):
    first: datetime
    second: int


def test_payloads_carry_datetimes_as_utc_like_flyte() -> None:
    naive, aware = datetime(2024, 1, 1, 12), datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=PLUS2)
    utc_naive, utc_aware = (
        datetime(2024, 1, 1, 12, tzinfo=UTC),
        datetime(2024, 1, 1, 10, 0, 0, 123456, tzinfo=UTC),
    )
    args = (
        naive,
        aware,
        date(2024, 1, 2),
        timedelta(days=1),
        [naive, [aware]],
        {"k": aware},
        Box(naive),
        None,
    )
    got = load_payload(dump_payload((args, {"when": naive})))
    assert got == (
        (utc_naive, utc_aware, date(2024, 1, 2), timedelta(days=1), [utc_naive, [utc_aware]], {"k": utc_aware},
         Box(naive), None),
        {"when": utc_naive},
    )  # fmt: skip
    assert got[0][0].tzinfo is UTC and got[0][6].at.tzinfo is None  # a dataclass field keeps its naivety
    assert load_payload(dump_payload(Pair(aware, 1))) == Pair(utc_aware, 1)
    assert type(load_payload(dump_payload(Pair(aware, 1)))) is Pair


def test_a_payload_without_datetimes_is_pickled_once_as_is() -> None:
    value = {"n": list(range(10)), "s": "text"}
    assert as_flyte_carries(value) == value
    assert load_payload(dump_payload(value)) == value


def test_times_in_json_are_iso_8601() -> None:
    value = {
        "at": datetime(2024, 1, 1, 10, tzinfo=UTC),
        "day": date(2024, 1, 2),
        "span": timedelta(days=1, hours=2),
    }
    assert json.dumps(value, default=json_default) == (
        '{"at": "2024-01-01T10:00:00+00:00", "day": "2024-01-02", "span": "P1DT2H"}'
    )
    with pytest.raises(TypeError, match="^Object of type Box is not JSON serializable$"):
        json_default(Box(datetime(2024, 1, 1)))


PROGRAM = """
from datetime import date, datetime, timedelta

import flyte

env = flyte.TaskEnvironment(name="dt")


@env.task
async def show(d: datetime, td: timedelta = timedelta(0)) -> str:
    return repr((d, td))


@env.task
async def main() -> list:
    return [await show(datetime(2024, 1, 1, 12)), datetime(2024, 1, 1, 12)]
"""


def _run(run_program, *args: str):
    return run_program(PROGRAM, "run", "--json", "prog.py", *args)


def test_a_child_sees_utc_and_json_shows_iso(run_program) -> None:
    done = _run(run_program, "main")
    assert done.code == 0, done.err
    assert json.loads(done.out)["outputs"] == [
        "(datetime.datetime(2024, 1, 1, 12, 0, tzinfo=datetime.timezone.utc), datetime.timedelta(0))",
        "2024-01-01T12:00:00+00:00",
    ]


@pytest.mark.parametrize(
    ("given", "seen"),
    [
        (["--d", "2024-01-01T12:00:00+02:00"], "datetime.datetime(2024, 1, 1, 10, 0, tzinfo=datetime.timezone.utc)"),
        (["--d", "2024-01-01 12:00:00"], "datetime.datetime(2024, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)"),
        (["--d", "2024-01-02 - P1D"], "datetime.datetime(2024, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)"),
        (["--d", "2024-01-01T12:00:00Z + 1:30"], "datetime.datetime(2024, 1, 1, 12, 1, 30, tzinfo=datetime.timezone.utc)"),
    ],
)  # fmt: skip
def test_the_cli_reads_flyte_spellings_of_datetimes(run_program, given, seen) -> None:
    done = _run(run_program, "show", *given)
    assert done.code == 0, done.err
    assert json.loads(done.out)["outputs"] == f"({seen}, datetime.timedelta(0))"


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ("1:24", 84),
        ("10 minutes", 600),
        ("[1 day | 2 hours]", 93600),
        ("P1DT2H", 93600),
        ("90", 90),
    ],
)
def test_the_cli_reads_flyte_spellings_of_durations(run_program, given, seconds) -> None:
    done = _run(run_program, "show", "--d", "2024-01-01", "--td", given)
    assert done.code == 0, done.err
    assert json.loads(done.out)["outputs"].endswith(f"{timedelta(seconds=seconds)!r})")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (["--d", "junk - P1D"], "error: --d: input should be a valid datetime or date, invalid character in year, "
         "got 'junk - P1D' (expected datetime; lists and mappings are JSON, e.g. '[1,2]')\n"),
        (["--d", "now", "--td", "10 fortnights"], "error: --td: input should be a valid timedelta, invalid character "
         "in hour, got '10 fortnights' (expected timedelta; lists and mappings are JSON, e.g. '[1,2]')\n"),
    ],
)  # fmt: skip
def test_a_bad_time_on_the_cli_is_one_usage_error(run_program, given, message) -> None:
    done = _run(run_program, "show", *given)
    assert (done.code, done.err) == (2, message)


DEFAULTS = """
from datetime import datetime
import flyte

env = flyte.TaskEnvironment(name="dtdef")


@env.task
async def main(t: datetime = datetime(2024, 1, 1, 12), ts: list[datetime] = [datetime(2024, 1, 2)], n: int = 1) -> str:
    return f"{t} {ts[0]} {n}"
"""


def test_a_datetime_default_reaches_the_task_as_flyte_carries_it(run_program) -> None:
    # Flyte's type engine carries defaults too: the task sees them UTC-aware, as if they were passed.
    done = run_program(DEFAULTS, "run", "--json", "prog.py", "main")
    assert done.code == 0, done.err
    assert json.loads(done.out)["outputs"] == "2024-01-01 12:00:00+00:00 2024-01-02 00:00:00+00:00 1"
    done = run_program(DEFAULTS, "run", "--json", "prog.py", "main", "--ts", '["2024-01-03T00:00:00+02:00"]')
    assert done.code == 0, done.err
    assert json.loads(done.out)["outputs"] == "2024-01-01 12:00:00+00:00 2024-01-02 22:00:00+00:00 1"
