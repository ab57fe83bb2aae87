"""Kubernetes quantities and durations: one grammar, exact values.

Quantities follow Kubernetes exactly (case-sensitive)::

    parse_cpu("500m")        # Decimal('0.5')
    parse_memory("250Mi")    # 262144000
    parse_memory("1.5Gi")    # 1610612736
    parse_duration("1h30m")  # Decimal('5400')

Invalid input raises QuantityError with a message and a hint meant for the user.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from functools import lru_cache

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+\.?\d*|\.\d+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE]?)$"
)
# Case slips and look-alikes people write, mapped to what they meant.
_SUFFIX_SLIPS = {
    "K": "k (10^3) or Ki (2^10)",
    "KB": "k or Ki",
    "KiB": "Ki",
    "MB": "M or Mi",
    "MiB": "Mi",
    "GB": "G or Gi",
    "GiB": "Gi",
    "TB": "T or Ti",
    "ki": "Ki",
    "mi": "Mi",
    "gi": "Gi",
    "ti": "Ti",
    "g": "G or Gi",
    "kb": "k or Ki",
    "mb": "M or Mi",
    "gb": "G or Gi",
}

QUANTITY_PATTERN = r"^[+-]?(\d+\.?\d*|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE])?$"
MEMORY_PATTERN = r"^[+-]?(\d+\.?\d*|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[kMGTPE])$"
DURATION_PATTERN = r"^((\d+\.?\d*|\.\d+)(ms|s|m|h|d))+$"


class QuantityError(ValueError):
    """A quantity or duration that does not follow the grammar; `hint` says how to fix it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@lru_cache(maxsize=4096)
def parse_quantity(text: str) -> tuple[Decimal, str]:
    """Parse a Kubernetes quantity string into (exact value, suffix)."""
    match = _QUANTITY.match(text)
    if not match:
        raise QuantityError(f"{text!r} is not a quantity", _quantity_hint(text))
    number, suffix = match["number"], match["suffix"]
    value = Decimal(number)
    if suffix in _BINARY:
        value *= _BINARY[suffix]
    elif suffix[:1] in ("e", "E") and suffix not in _DECIMAL:
        value = value.scaleb(int(suffix[1:]))
    else:
        value *= _DECIMAL[suffix]
    return value, suffix


def _quantity_hint(text: str) -> str:
    stripped = text.strip()
    if stripped != text or " " in text:
        return "remove the spaces, e.g. '2Gi'"
    match = re.match(r"^[+-]?(\d+\.?\d*|\.\d+)(.*)$", text)
    if match and match[2] in _SUFFIX_SLIPS:
        return f"suffixes are case-sensitive: use {_SUFFIX_SLIPS[match[2]]}"
    return "write a number with an optional suffix: 500m, 1, 0.5, 250Mi, 1.5Gi, 2G"


@lru_cache(maxsize=4096)
def parse_cpu(value: object) -> Decimal:
    """Cores from a number or a quantity string: 1, 0.5, "500m", "2"."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise QuantityError(
            f"cpu must be a number or a quantity string, got {type(value).__name__}", "e.g. 1, 0.5 or '500m'"
        )
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise QuantityError(f"cpu {value} is not a finite number", "e.g. 1, 0.5 or '500m'")
        cores = Decimal(str(value))
    else:
        cores, suffix = parse_quantity(value)
        if suffix in _BINARY:
            raise QuantityError(f"cpu {value!r} uses a memory unit", "cpu is in cores: 1, 0.5 or '500m'")
    if cores < 0:
        raise QuantityError(f"cpu {value!r} is negative", "cpu must be 0 or more cores")
    return cores


@lru_cache(maxsize=4096)
def parse_memory(value: object, *, field: str = "memory") -> int:
    """Bytes from a quantity string: "250Mi", "1.5Gi", "2G". Bare numbers and millibytes are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise QuantityError(
            f"{field} must be a quantity string, got {type(value).__name__}", "e.g. '512Mi' or '1Gi'"
        )
    if isinstance(value, (int, float)) or re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", value):
        raise QuantityError(
            f"{field} {value} is a bare number, which means {value} bytes",
            "write a unit, e.g. '1Gi' or '512Mi'",
        )
    amount, suffix = parse_quantity(value)
    if suffix in ("m", "u", "n"):
        raise QuantityError(
            f"{field} {value!r} is in milli-bytes",
            f"'m' means 1/1000 of a byte; write {value[:-1]}M or {value[:-1]}Mi",
        )
    if amount < 0:
        raise QuantityError(f"{field} {value!r} is negative", f"{field} must be 0 or more bytes")
    return int(amount.to_integral_value(rounding="ROUND_CEILING"))


def memory_warning(value: str) -> str | None:
    """A decimal unit where a binary one was probably meant: '2G' is 2,000,000,000 bytes, not 2Gi."""
    match = _QUANTITY.match(value)
    if match and match["suffix"] in ("k", "M", "G", "T"):
        binary = "Ki" if match["suffix"] == "k" else match["suffix"] + "i"
        return f"{value!r} is decimal ({int(parse_quantity(value)[0]):,} bytes); did you mean {match['number']}{binary}?"
    return None


def parse_bytes_or_quantity(value: object, *, field: str) -> int:
    """An integer number of bytes (as Flyte's max_inline_io_bytes), or a memory quantity string."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise QuantityError(
                f"{field} {value} is negative", "write 0 or more bytes, or a quantity like '10Mi'"
            )
        return value
    return parse_memory(value, field=field)


_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ms|s|m|h|d)")
_UNIT_SECONDS = {
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
    "d": Decimal(86400),
}


@lru_cache(maxsize=4096)
def parse_duration(value: object, *, field: str = "duration") -> Decimal:
    """Seconds from "30s", "5m", "1h30m", "250ms", or a number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise QuantityError(
            f"{field} must be a duration, got {type(value).__name__}", "e.g. 30s, 5m, 1h30m, 250ms or 30"
        )
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise QuantityError(f"{field} {value} must be 0 or more seconds", "e.g. 30s, 5m or 30")
        return Decimal(str(value))
    pos, total = 0, Decimal(0)
    for match in _DURATION_PART.finditer(value):
        if match.start() != pos:
            break
        total += Decimal(match[1]) * _UNIT_SECONDS[match[2]]
        pos = match.end()
    if pos != len(value) or not value:
        raise QuantityError(f"{value!r} is not a duration", "e.g. 30s, 5m, 1h30m, 250ms or 30")
    return total


def format_bytes(amount: int) -> str:
    """The shortest exact binary quantity for a byte count, else a rounded one: 262144000 -> '250Mi'."""
    for suffix, scale in reversed(_BINARY.items()):
        if amount >= scale and amount % scale == 0 and amount // scale < 10_000:
            return f"{amount // scale}{suffix}"
    for suffix, scale in reversed(_BINARY.items()):
        if amount >= scale:
            return f"{amount / scale:.1f}{suffix}"
    return str(amount)


def format_cpu(cores: float | Decimal) -> str:
    """Cores as Kubernetes writes them: 0.5 -> '500m', 2 -> '2'."""
    value = Decimal(str(cores))
    if value == value.to_integral_value():
        return str(int(value))
    millis = value * 1000
    if millis == millis.to_integral_value():
        return f"{int(millis)}m"
    return str(value)


def format_seconds(seconds: float | Decimal) -> str:
    """Seconds in the duration grammar: 5400 -> '1h30m', 0.25 -> '250ms'."""
    value = Decimal(str(seconds))
    if value < 1 and value != 0:
        return f"{(value * 1000).normalize():f}ms"
    parts = []
    for unit, scale in (("h", 3600), ("m", 60)):
        count = int(value // scale)
        if count:
            parts.append(f"{count}{unit}")
            value -= count * scale
    if value or not parts:
        parts.append(f"{value.normalize():f}s")
    return "".join(parts)
