"""Kubernetes quantities and durations: one grammar, exact values.

Quantities follow Kubernetes exactly (case-sensitive)::

    parse_cpu("500m")        # Decimal('0.5')
    parse_memory("250Mi")    # 262144000
    parse_memory("1.5Gi")    # 1610612736
    parse_duration("1h30m")  # Decimal('5400')

Invalid input raises QuantityError with a message and a hint meant for the user. Every value is
range-checked against what the runtime can represent: cpu at most MAX_CPU cores (and a limit at
least MIN_CPU_LIMIT, the kernel's smallest CFS quota), bytes at most MAX_BYTES (1Ei), durations at
most MAX_SECONDS (24d: the runner's timers wait in poll(2), whose timeout is a 32-bit count of
milliseconds, about 24.8 days). Magnitudes far outside those are refused without being computed.
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

MAX_CPU = Decimal(100_000)  # cores; the kernel's largest CFS quota is about 175,000 cores
MIN_CPU_LIMIT = Decimal("0.01")  # the kernel's smallest CFS quota: 1 ms per 100 ms period, 10m
MAX_BYTES = 2**60  # 1Ei; cgroups hold a 63-bit byte count
MAX_SECONDS = Decimal(24 * 86400)  # 24d; poll(2) waits at most 2**31 - 1 ms (24.8 days)
_MAX_EXPONENT = 30  # a quantity above 1e30 is over every maximum: it is not computed

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
    """Parse a Kubernetes quantity string into (exact value, suffix).

    A magnitude above 1e30 comes back as Decimal("Infinity") (over every maximum, never computed:
    `1e999999` would take seconds to expand), one below 1e-30 as 0.
    """
    match = _QUANTITY.match(text)
    if not match:
        raise QuantityError(f"{text!r} is not a quantity", _quantity_hint(text))
    number, suffix = match["number"], match["suffix"]
    value = Decimal(number)
    if suffix in _BINARY:
        shift, scale = 19, Decimal(_BINARY[suffix])
    elif suffix[:1] in ("e", "E") and suffix not in _DECIMAL:
        digits = suffix[1:].lstrip("+-").lstrip("0") or "0"
        exponent = int(digits) if len(digits) <= 6 else 10**7
        shift, scale = (-exponent if suffix[1:2] == "-" else exponent), Decimal(1)
    else:
        shift, scale = 0, _DECIMAL[suffix]
    if value and value.adjusted() + shift > _MAX_EXPONENT:
        return Decimal("Infinity").copy_sign(value), suffix
    if value and value.adjusted() + shift < -_MAX_EXPONENT:
        return Decimal(0), suffix
    if scale == 1 and shift:
        return value.scaleb(shift), suffix
    return value * scale, suffix


def _quantity_hint(text: str) -> str:
    stripped = text.strip()
    if stripped != text or " " in text:
        return "remove the spaces, e.g. '2Gi'"
    match = re.match(r"^[+-]?(\d+\.?\d*|\.\d+)(.*)$", text)
    if match and match[2] in _SUFFIX_SLIPS:
        return f"suffixes are case-sensitive: use {_SUFFIX_SLIPS[match[2]]}"
    return "write a number with an optional suffix: 500m, 1, 0.5, 250Mi, 1.5Gi, 2G"


def parse_cpu(value: object) -> Decimal:
    """Cores from a number or a quantity string: 1, 0.5, "500m", "2"; at most MAX_CPU."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise QuantityError(
            f"cpu must be a number or a quantity string, got {_type_name(value)}", "e.g. 1, 0.5 or '500m'"
        )
    return _parse_cpu(value)


@lru_cache(maxsize=4096)
def _parse_cpu(value: int | float | str) -> Decimal:
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise QuantityError(f"cpu {value} is not a finite number", "e.g. 1, 0.5 or '500m'")
        infinite = Decimal("Infinity") if value > 0 else Decimal("-Infinity")
        cores = Decimal(str(value)) if abs(value) < 10**_MAX_EXPONENT else infinite
    else:
        cores, suffix = parse_quantity(value)
        if suffix in _BINARY:
            raise QuantityError(f"cpu {value!r} uses a memory unit", "cpu is in cores: 1, 0.5 or '500m'")
    if cores < 0:
        raise QuantityError(f"cpu {value!r} is negative", "cpu must be 0 or more cores")
    if cores > MAX_CPU:
        raise QuantityError(
            f"cpu {_shown(value)} is above the maximum of {MAX_CPU} cores", f"write at most {MAX_CPU}"
        )
    return cores


def cpu_limit_problem(value: object) -> QuantityError | None:
    """Why a cpu value cannot be enforced as a limit (non-zero and below MIN_CPU_LIMIT), or None.

    The kernel's smallest CFS quota is 1 ms per 100 ms period: a smaller limit would run at 10m
    while every report showed the declared value.
    """
    try:
        cores = parse_cpu(value)
    except QuantityError:
        return None  # reported as not a quantity, where it is written
    if cores < MIN_CPU_LIMIT:
        return QuantityError(
            f"cpu limit {_shown(value)} is below the minimum of 10m that can be enforced",
            "the kernel's smallest CPU quota is 10m (1 ms per 100 ms); write at least 10m, or no limit",
        )
    return None


def parse_memory(value: object, *, field: str = "memory") -> int:
    """Bytes from a quantity string: "250Mi", "1.5Gi", "2G"; at most MAX_BYTES (1Ei).

    Bare numbers and millibytes are refused.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise QuantityError(
            f"{field} must be a quantity string, got {_type_name(value)}", "e.g. '512Mi' or '1Gi'"
        )
    return _parse_memory(value, field)


@lru_cache(maxsize=4096)
def _parse_memory(value: int | float | str, field: str) -> int:
    if isinstance(value, (int, float)) or re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", value):
        raise QuantityError(
            f"{field} {_shown(value, quote=False)} is a bare number, which means {_shown(value, quote=False)} "
            + ("byte" if float(value) == 1 else "bytes"),
            "write a unit, e.g. '1Gi' or '512Mi'",
        )
    amount, suffix = parse_quantity(value)
    if suffix in ("m", "u", "n"):
        raise QuantityError(
            f"{field} {value!r} is in milli-bytes",
            f"'m' means 1/1000 of a byte; write {value[:-1]}M or {value[:-1]}Mi",
        )
    if amount < 0:
        raise QuantityError(f"{field} {_shown(value)} is negative", f"{field} must be 0 or more bytes")
    return _bytes_at_most_max(amount, value, field)


def _bytes_at_most_max(amount: Decimal | int, value: object, field: str) -> int:
    if amount > MAX_BYTES:
        raise QuantityError(f"{field} {_shown(value)} is above the maximum of 1Ei", "write at most 1Ei")
    return int(Decimal(amount).to_integral_value(rounding="ROUND_CEILING"))


def memory_warning(value: str) -> str | None:
    """A decimal unit where a binary one was probably meant: '2G' is 2,000,000,000 bytes, not 2Gi."""
    match = _QUANTITY.match(value)
    if match and match["suffix"] in ("k", "M", "G", "T"):
        try:
            amount = parse_memory(value)
        except QuantityError:
            return None  # reported as an error where it is written
        binary = "Ki" if match["suffix"] == "k" else match["suffix"] + "i"
        return f"{value!r} is decimal ({amount:,} bytes); did you mean {match['number']}{binary}?"
    return None


def _type_name(value: object) -> str:
    return {dict: "a mapping", list: "a list", type(None): "null"}.get(type(value), type(value).__name__)


def _shown(value: object, *, quote: bool = True) -> str:
    """A value for a message: quoted if text; an integer of thousands of digits by its size."""
    if isinstance(value, int) and abs(value) >= 10**_MAX_EXPONENT:
        return f"{value.bit_length()}-bit integer"
    # Text is shown whole, however long: a value cut short could show part of a secret that the
    # output masking (which matches whole values) would no longer recognise.
    return repr(value) if isinstance(value, str) and quote else str(value)


def parse_bytes_or_quantity(value: object, *, field: str) -> int:
    """An integer number of bytes (as Flyte's max_inline_io_bytes), or a memory quantity string."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise QuantityError(
                f"{field} {_shown(value)} is negative", "write 0 or more bytes, or a quantity like '10Mi'"
            )
        return _bytes_at_most_max(value, value, field)
    return parse_memory(value, field=field)


_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ms|s|m|h|d)")
_UNIT_SECONDS = {
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
    "d": Decimal(86400),
}


def parse_duration(value: object, *, field: str = "duration", timer: bool = False) -> Decimal:
    """Seconds from "30s", "5m", "1h30m", "250ms", or a number of seconds.

    With `timer` (a timeout, backoff or idle TTL the runner waits for), at most MAX_SECONDS (24d).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise QuantityError(
            f"{field} must be a duration, got {_type_name(value)}", "e.g. 30s, 5m, 1h30m, 250ms or 30"
        )
    total = _parse_duration(value, field)
    if timer and total > MAX_SECONDS:
        raise QuantityError(
            f"{field} {_shown(value)} is above the maximum of 24d",
            "the runner's timers wait at most 24 days; write at most 24d",
        )
    return total


@lru_cache(maxsize=4096)
def _parse_duration(value: int | float | str, field: str) -> Decimal:
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise QuantityError(f"{field} {_shown(value)} must be 0 or more seconds", "e.g. 30s, 5m or 30")
        total = Decimal(str(value)) if value < 10**_MAX_EXPONENT else Decimal("Infinity")
    else:
        pos, total = 0, Decimal(0)
        for match in _DURATION_PART.finditer(value):
            if match.start() != pos:
                break
            total += Decimal(match[1]) * _UNIT_SECONDS[match[2]]
            pos = match.end()
        if pos != len(value) or not value:
            raise QuantityError(f"{_shown(value)} is not a duration", "e.g. 30s, 5m, 1h30m, 250ms or 30")
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
