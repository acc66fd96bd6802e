"""``TailCache``: a writer's latest acknowledged records, kept in memory.

A writer whose log lives elsewhere (a Kafka broker) keeps the payloads of
its own most recent acknowledged records here, by offset, so that in-process
readers (the rebuild after a failed append, tailing triggers, WAIT) need no
round trip, and above all work while the broker is away: the rebuild after a
failed produce replays the newest snapshot plus this tail, and the node keeps
serving reads. Offsets held are always contiguous; anything that breaks the
sequence (records this writer did not append, or the repeats of a retried
batch) empties the cache, and those reads go to the broker.
"""

from __future__ import annotations

from collections import deque
from itertools import islice

#: Default memory bound (payload bytes).
TAIL_CACHE_BYTES = 16 << 20


class TailCache:
    """Contiguous ``(offset, payload)`` pairs, oldest dropped past ``max_bytes``."""

    def __init__(self, max_bytes: int = TAIL_CACHE_BYTES):
        self.max_bytes = max_bytes
        self._items: deque[tuple[int, bytes]] = deque()
        self._bytes = 0
        #: where the writer's next acknowledged batch should start
        self.expected = 0

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0

    def add(self, bases: list[int], batches: list[list[bytes]]) -> None:
        """Remember acknowledged batches (first offset of each, payloads).

        A batch that does not start where the previous one ended means the
        broker stored something else in between: a retried batch's first
        copy sits below, so these records are the repeats readers must skip.
        They are not cached (only the broker's read, with its duplicate
        check, may serve them)."""
        expected = self.expected
        self.expected = bases[-1] + len(batches[-1])
        for base, members in zip(bases, batches):
            if base != expected:
                self.clear()
                return
            expected = base + len(members)
        items = self._items
        if items and items[-1][0] + 1 != bases[0]:
            self.clear()  # records we never held came between
        for base, members in zip(bases, batches):
            for i, payload in enumerate(members):
                items.append((base + i, payload))
                self._bytes += len(payload)
        while self._bytes > self.max_bytes and len(items) > 1:
            self._bytes -= len(items.popleft()[1])

    def covers(self, start: int, end: int) -> bool:
        items = self._items
        return bool(items) and items[0][0] <= start and items[-1][0] + 1 >= end

    def slice(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """The pairs for ``start <= offset < end`` (a copy: appends go on
        while the caller yields them). Only call when ``covers``."""
        first = self._items[0][0]
        return list(islice(self._items, start - first, end - first))
