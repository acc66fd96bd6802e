"""``MemoryLog``: a log held in a list, for tests and tools.

It honours the same contract as ``FileLog`` (tests/test_log_contract.py), so
code written against ``Log`` can be exercised without a disk or a broker.
"""

from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator, Sequence

from .events import Record, decode_record
from .log import Log


class MemoryLog(Log):
    """Records kept in memory; ``sync=False`` appends become durable on ``sync()``."""

    def __init__(self) -> None:
        self._payloads: list[bytes] = []
        self._times: list[int] = []
        self._durable = 0

    @property
    def start_offset(self) -> int:
        return 0

    @property
    def end_offset(self) -> int:
        return self._durable

    async def append(self, payloads: Sequence[bytes], *, sync: bool = True) -> int:
        await asyncio.sleep(0)
        first = len(self._payloads)
        now = int(time.time() * 1000)
        self._payloads.extend(payloads)
        self._times.extend([now] * len(payloads))
        if sync:
            await self.sync()
        return first

    async def sync(self) -> None:
        self._durable = len(self._payloads)
        self._notify_end()

    async def read(self, start: int, end: int | None = None) -> AsyncIterator[Record]:
        end = self._durable if end is None else min(end, self._durable)
        for offset in range(max(start, 0), end):
            yield decode_record(offset, self._payloads[offset])
            if offset % 1000 == 999:
                await asyncio.sleep(0)

    async def close(self) -> None:
        """Like a file log, closing makes what was appended durable."""
        await self.sync()
