from decimal import Decimal

import pytest

from flyte_decl.quantity import (
    QuantityError,
    format_bytes,
    format_cpu,
    format_seconds,
    memory_warning,
    parse_cpu,
    parse_duration,
    parse_memory,
)


@pytest.mark.parametrize(
    ("text", "cores"),
    [
        ("500m", "0.5"),
        ("1", "1"),
        ("0.5", "0.5"),
        (1, "1"),
        (0.25, "0.25"),
        ("1e3", "1000"),
        ("2.", "2"),
        (".5", "0.5"),
    ],
)
def test_cpu_values_are_exact(text, cores):
    assert parse_cpu(text) == Decimal(cores)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("250Mi", 250 * 2**20),
        ("1.5Gi", 1536 * 2**20),
        ("2G", 2 * 10**9),
        ("1e3", 1000),
        ("1k", 1000),
        ("1Ki", 1024),
    ],
)
def test_memory_values_are_exact(text, size):
    assert parse_memory(text) == size


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ("1K", "'1K' is not a quantity", "suffixes are case-sensitive: use k (10^3) or Ki (2^10)"),
        ("1gi", "'1gi' is not a quantity", "suffixes are case-sensitive: use Gi"),
        ("250MB", "'250MB' is not a quantity", "suffixes are case-sensitive: use M or Mi"),
        ("2 Gi", "'2 Gi' is not a quantity", "remove the spaces, e.g. '2Gi'"),
        (1024, "memory 1024 is a bare number, which means 1024 bytes", "write a unit, e.g. '1Gi' or '512Mi'"),
        (1, "memory 1 is a bare number, which means 1 byte", "write a unit, e.g. '1Gi' or '512Mi'"),
        (
            "1024",
            "memory 1024 is a bare number, which means 1024 bytes",
            "write a unit, e.g. '1Gi' or '512Mi'",
        ),
        ("500m", "memory '500m' is in milli-bytes", "'m' means 1/1000 of a byte; write 500M or 500Mi"),
        ("-1Gi", "memory '-1Gi' is negative", "memory must be 0 or more bytes"),
    ],
)
def test_invalid_memory(text, message, hint):
    with pytest.raises(QuantityError) as caught:
        parse_memory(text)
    assert (caught.value.message, caught.value.hint) == (message, hint)


def test_cpu_refuses_memory_units_and_negatives():
    with pytest.raises(QuantityError, match="uses a memory unit"):
        parse_cpu("1Gi")
    with pytest.raises(QuantityError, match="is negative"):
        parse_cpu("-1")
    with pytest.raises(QuantityError, match="must be a number"):
        parse_cpu(True)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", Decimal("0.25")), (30, 30), ("1d", 86400)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == Decimal(seconds)


@pytest.mark.parametrize("text", ["5x", "1h 30m", "", "m5", "30"])
def test_invalid_durations(text):
    with pytest.raises(QuantityError, match="is not a duration"):
        parse_duration(text)


def test_decimal_memory_warning():
    assert memory_warning("2G") == "'2G' is decimal (2,000,000,000 bytes); did you mean 2Gi?"
    assert memory_warning("2Gi") is None


def test_formatting_round_trips():
    assert format_bytes(250 * 2**20) == "250Mi"
    assert format_bytes(1536 * 2**20) == "1536Mi"
    assert format_bytes(1000) == "1000"
    assert format_cpu(0.5) == "500m"
    assert format_cpu(2) == "2"
    assert format_seconds(5400) == "1h30m"
    assert format_seconds(0.25) == "250ms"
