"""Replay: fold log records into anything with an ``apply(event)`` method.

The server's keyspace, the snapshotter, point-in-time restore and views all
rebuild state the same way, so replay lives here, below the store.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from .events import Event
from .log import Log, LogCorruptError

log = logging.getLogger("fjord.replay")


class Applier(Protocol):
    def apply(self, event: Event) -> None: ...


@dataclass
class ReplayStats:
    records: int = 0
    events: int = 0
    seconds: float = 0.0
    next_offset: int = 0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class Materializer:
    """Applies records from ``log`` to ``target`` in offset order.

    ``offset`` is the next offset to apply: a materializer always knows how
    far its state goes, which is what lets a caller resume or wait for it.
    """

    def __init__(self, log_: Log, target: Applier, offset: int = 0):
        self.log = log_
        self.target = target
        self.offset = offset

    async def catch_up(self, end: int | None = None,
                       progress: Callable[[int, int], None] | None = None) -> ReplayStats:
        """Apply every record from ``self.offset`` to ``end`` (default: the
        log's end when called). ``progress(done_offset, end)`` is called every
        few thousand records."""
        if end is None:
            end = self.log.end_offset
        stats = ReplayStats(next_offset=self.offset)
        t0 = time.perf_counter()
        apply = self.target.apply
        async for record in self.log.read(self.offset, end):
            if record.offset != self.offset:
                raise LogCorruptError(
                    f"replay expected the record at offset {self.offset} but the log gave offset {record.offset}"
                )
            for event in record.events:
                apply(event)
            stats.events += len(record.events)
            stats.records += 1
            self.offset = record.offset + 1
            if progress is not None and stats.records % 5000 == 0:
                progress(self.offset, end)
        if self.offset < min(end, self.log.end_offset):
            raise LogCorruptError(f"replay stopped at offset {self.offset}, before the log's end {end}")
        stats.seconds = time.perf_counter() - t0
        stats.next_offset = self.offset
        if progress is not None:
            progress(self.offset, end)
        return stats
