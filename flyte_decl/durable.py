"""`flyte.durable`: Flyte's replayable clock and sleep; locally the plain clock and sleep (no replay).

await flyte.durable.sleep.aio(1.0)
flyte.durable.time(), flyte.durable.now()
"""

from __future__ import annotations

import asyncio
import time as _time
from datetime import datetime, timezone

__all__ = ["now", "sleep", "time"]


def time() -> float:
    """Seconds since the epoch."""
    return _time.time()


def now() -> datetime:
    """The current UTC time, timezone-aware."""
    return datetime.now(timezone.utc)


class _Sleep:
    def __call__(self, seconds: float) -> None:
        _time.sleep(seconds)

    async def aio(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


sleep = _Sleep()
