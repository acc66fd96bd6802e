"""Replay: fold log records into anything with an ``apply(event)`` method.

The server's keyspace, the snapshotter, point-in-time restore and views all
rebuild state the same way, so replay lives here, below the store.
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass
from typing import Callable, Protocol

from .events import Event
from .log import Log, LogCorruptError

log = logging.getLogger("fjord.replay")


class Applier(Protocol):
    def apply(self, event: Event) -> None: ...


#: event type of an epoch claim (store/fencing.py writes them)
CLAIM = "fjord-epoch"


class EpochFence:
    """Which records count (ARCHITECTURE.md invariant 5).

    A claim record (one ``fjord-epoch`` event, record epoch = claimed epoch)
    counts iff it claims an epoch above the current one: the first claim in
    log order wins. Any other record counts iff its epoch (None: 0) equals
    the current epoch, so the records a deposed writer appends after its
    successor's claim are skipped by every reader alike.

    ``epoch=None`` means "unknown" (a reader starting mid-log without the
    state of a snapshot that knew it): the first record read sets it.
    """

    __slots__ = ("epoch", "skipped")

    def __init__(self, epoch: int | None = 0):
        self.epoch = epoch
        self.skipped = 0

    def admit(self, record) -> bool:
        events = record.events
        if len(events) == 1 and events[0].type == CLAIM:
            claimed = events[0].data.get("epoch")
            if type(claimed) is int and (self.epoch is None or claimed > self.epoch):
                self.epoch = claimed
                return True
            self.skipped += 1
            return False
        epoch = record.epoch or 0
        if self.epoch is None:
            self.epoch = epoch
        if epoch == self.epoch:
            return True
        self.skipped += 1
        return False


@dataclass
class ReplayStats:
    records: int = 0
    events: int = 0
    seconds: float = 0.0
    next_offset: int = 0
    #: records of a deposed writer (or losing claims) left out, see EpochFence
    skipped: int = 0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class Materializer:
    """Applies records from ``log`` to ``target`` in offset order.

    ``offset`` is the next offset to apply: a materializer always knows how
    far its state goes, which is what lets a caller resume or wait for it.
    ``fence`` decides which records count; by default the epoch is 0 from
    offset 0 and unknown (see ``EpochFence``) when starting later.
    """

    def __init__(self, log_: Log, target: Applier, offset: int = 0, fence: EpochFence | None = None):
        self.log = log_
        self.target = target
        self.offset = offset
        self.fence = fence if fence is not None else EpochFence(0 if offset == 0 else None)

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
        admit = self.fence.admit
        # Counters in locals, written back at the end: restart time is this
        # loop (self.offset stays exact record by record, for a caller that
        # catches an error half-way).
        offset = self.offset
        records = events = skipped = 0
        async for record in self.log.read(offset, end):
            if record.offset != offset:
                raise LogCorruptError(
                    f"replay expected the record at offset {offset} but the log gave offset {record.offset}"
                )
            if admit(record):
                evs = record.events
                for event in evs:
                    apply(event)
                events += len(evs)
            else:
                skipped += 1
            records += 1
            offset += 1
            self.offset = offset
            if progress is not None and records % 5000 == 0:
                progress(offset, end)
        stats.records, stats.events, stats.skipped = records, events, skipped
        if self.offset < min(end, self.log.end_offset):
            raise LogCorruptError(f"replay stopped at offset {self.offset}, before the log's end {end}")
        stats.seconds = time.perf_counter() - t0
        stats.next_offset = self.offset
        if progress is not None:
            progress(self.offset, end)
        return stats



# Where the epoch in force is already known, per log: offset -> epoch of the
# fence just before the record at that offset. The epoch only ever grows
# along the log (a claim wins only above the current one), so two known
# points with the same epoch pin every offset between them: a reader that
# starts between them needs no scan. The server records the ends of its
# replay and its claims; ``fence_at`` records what it scanned.
_known_epochs: "weakref.WeakKeyDictionary[object, dict[int, int]]" = weakref.WeakKeyDictionary()


def _log_key(log_):
    return getattr(log_, "inner", None) or log_  # a ConfirmingLog is its inner log's reader


def remember_epoch(log_: Log, offset: int, epoch: int | None) -> None:
    """Note that the fence stands at ``epoch`` just before ``offset``."""
    if epoch is None:
        return
    try:
        points = _known_epochs.setdefault(_log_key(log_), {})
    except TypeError:  # not weak-referenceable: nothing cached
        return
    points[offset] = epoch
    if len(points) > 64:  # keep the first and last point of each run of one epoch: the same knowledge
        keys = sorted(points)
        drop = [k for a, k, b in zip(keys, keys[1:], keys[2:]) if points[a] == points[k] == points[b]]
        for k in drop:
            del points[k]


async def fence_at(log_: Log, offset: int) -> EpochFence:
    """The fence as it stands just before ``offset``, for a reader that
    starts mid-log without a snapshot that knew the epoch.

    A guess from the first record read would be wrong when that record is a
    deposed writer's, so: if known points around ``offset`` (see
    ``remember_epoch``; the log's offset 0 is epoch 0) agree, that epoch;
    else the records from the nearest known point below (or the log's
    start) up to ``offset`` are read (decode only, nothing is applied).
    """
    try:
        points = dict(_known_epochs.get(_log_key(log_), {}))
    except TypeError:
        points = {}
    start = log_.start_offset
    if start == 0:
        points.setdefault(0, 0)
    below = [o for o in points if o <= offset]
    above = [o for o in points if o >= offset]
    if below and above and points[max(below)] == points[min(above)]:
        return EpochFence(points[max(below)])
    below = [o for o in below if o >= start]  # a scan can start only where the log still is
    if below:
        base = max(below)
        fence = EpochFence(points[base])
    else:
        base = start
        fence = EpochFence(None)
    if base < offset:
        admit = fence.admit
        async for record in log_.read(base, offset):
            admit(record)
    fence.skipped = 0
    remember_epoch(log_, offset, fence.epoch)
    return fence
