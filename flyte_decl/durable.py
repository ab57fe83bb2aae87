"""`flyte.durable`: Flyte's replayable clock and sleep; locally the plain clock and sleep (no replay).

Each works sync and as `await f.aio(...)`, as Flyte's::

    t = flyte.durable.time()              # seconds since the epoch
    dt = await flyte.durable.now.aio()    # timezone-aware UTC datetime
    await flyte.durable.sleep.aio(1.0)
"""

from __future__ import annotations

import asyncio
import time as _time
from datetime import datetime, timezone
from typing import Any

from flyte_decl._syncify import SyncAio

__all__ = ["now", "sleep", "time"]


class _Sleep(SyncAio):
    async def aio(self, *args: Any) -> Any:
        await asyncio.sleep(*args)


time = SyncAio(_time.time, "Seconds since the epoch.")
now = SyncAio(lambda: datetime.now(timezone.utc), "The current UTC time, timezone-aware.")
sleep = _Sleep(_time.sleep, "Sleep this many seconds (the async form does not block the loop).")
