"""An attempt's resource samples packed into one small blob, for the run store's `series` table.

Samples are (epoch seconds, tree RSS bytes, cumulative CPU seconds), about every 100 ms. Stored as
three delta-encoded integer columns (microseconds, bytes, CPU microseconds) compressed with zlib:
regular intervals and slowly moving totals make the deltas repeat, so a sample costs a few bytes
rather than a row and an index entry (about 66 bytes).

    data = pack(samples)
    unpack(data) == samples      # to the microsecond
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Sequence

Sample = tuple[float, int, float]
_SCALE = 1_000_000  # seconds -> microseconds


def pack(samples: Sequence[Sample]) -> bytes:
    """The samples as one blob; an empty list packs too."""
    columns = [array("q"), array("q"), array("q")]
    previous = (0, 0, 0)
    for at, rss, cpu in samples:
        current = (round(at * _SCALE), int(rss), round(cpu * _SCALE))
        for column, now, before in zip(columns, current, previous, strict=True):
            column.append(now - before)
        previous = current
    return zlib.compress(b"".join(column.tobytes() for column in columns), 9)


def unpack(data: bytes) -> list[Sample]:
    """The samples of a blob made by `pack`."""
    raw = array("q")
    raw.frombytes(zlib.decompress(data))
    count = len(raw) // 3
    out: list[Sample] = []
    at = rss = cpu = 0
    for i in range(count):
        at += raw[i]
        rss += raw[count + i]
        cpu += raw[2 * count + i]
        out.append((at / _SCALE, rss, cpu / _SCALE))
    return out
