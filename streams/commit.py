"""Group commit: everything staged in one event-loop pass, one append.

The write path stages each atomic step's encoded record here and gets a
sequence number back. Once per loop pass the committer hands all pending
records to the log in one ``append`` (one write and one fsync for the file
log, one produce batch for Kafka). While that append is in flight, new records
keep arriving and form the next batch, so throughput grows with load instead
of stalling on fsync latency.

Callers that must not answer before their step is durable register a waiter
for its sequence number (see ``store.server``). With ``sync=False`` (Redis's
``appendfsync everysec``) records are written each pass and fsynced once a
second; nobody waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Callable, Protocol

from .log import Log, LogWriteError

log = logging.getLogger("fjord.commit")

#: With ``sync=False``, how long staged records gather before one append.
ASYNC_GATHER_SECONDS = 0.002


class DurabilityWaiter(Protocol):
    def on_durable(self, seq: int) -> None: ...
    def on_lost(self, seq: int, error: Exception) -> None: ...


class GroupCommitter:
    """Batches staged records into log appends and tracks what is durable.

    ``staged`` and ``durable`` are sequence numbers (records staged since the
    committer started); ``durable >= n`` means the n-th staged record is on
    the log. ``on_failure(error)`` is called when a batch could not be
    written: every record staged since the last durable one is lost and the
    owner must rebuild its state from the log.
    """

    def __init__(self, log_: Log, *, sync: bool = True, fsync_interval: float = 1.0,
                 on_failure: Callable[[Exception], None] | None = None):
        self.log = log_
        self.sync = sync
        self.fsync_interval = fsync_interval
        self.on_failure = on_failure
        self.staged = 0
        self.durable = 0
        self.last_offset = log_.end_offset - 1
        self._pending: list[bytes] = []
        self._waiters: deque[tuple[int, DurabilityWaiter]] = deque()
        self._scheduled = False
        self._inflight = False
        self._loop = asyncio.get_running_loop()
        self._syncer: asyncio.Task | None = None
        self._task: asyncio.Task | None = None
        self.batches = 0
        self.records = 0
        self.max_batch = 0
        self.last_error: str | None = None
        self.last_error_time = 0.0
        if not sync:
            self._syncer = self._loop.create_task(self._sync_every_interval())

    def set_sync(self, sync: bool) -> None:
        """Switch between fsync-per-batch and fsync-every-interval in place.

        Sequence numbers and waiters carry over, so connections waiting on
        a record are released exactly as before. Switching to sync also
        fsyncs what the interval mode had only written."""
        if sync == self.sync:
            return
        self.sync = sync
        if sync:
            if self._syncer is not None:
                self._syncer.cancel()
                self._syncer = None
            self._loop.create_task(self.log.sync())
        else:
            self._syncer = self._loop.create_task(self._sync_every_interval())

    @property
    def pending(self) -> bool:
        """True while some staged record is not yet durable."""
        return self.staged != self.durable

    def stage(self, payload: bytes) -> int:
        """Queue one encoded record; return its sequence number."""
        self._pending.append(payload)
        self.staged += 1
        if not self._scheduled and not self._inflight:
            self._scheduled = True
            if self.sync:
                self._loop.call_soon(self._flush)
            else:
                # Nobody waits for these records, so gather a few passes'
                # worth: each append is a hand-off to the I/O thread, which
                # costs more than the write itself for small batches.
                self._loop.call_later(ASYNC_GATHER_SECONDS, self._flush)
        return self.staged

    def wait(self, seq: int, waiter: DurabilityWaiter) -> None:
        """Call ``waiter.on_durable`` once record ``seq`` is durable (or
        ``on_lost`` if it never will be). Sequence numbers must be registered
        in non-decreasing order, which the single-threaded loop guarantees.
        A record that is already durable is reported at once."""
        if seq <= self.durable and not self._waiters:
            waiter.on_durable(self.durable)
            return
        self._waiters.append((seq, waiter))

    def _flush(self) -> None:
        self._scheduled = False
        if self._inflight or not self._pending:
            return
        batch, self._pending = self._pending, []
        self._inflight = True
        # Keep a strong reference: the loop itself only holds tasks weakly.
        self._task = task = self._loop.create_task(self.log.append(batch, sync=self.sync))
        task.add_done_callback(lambda t, n=len(batch): self._flushed(t, n))

    def _flushed(self, task: asyncio.Task, n: int) -> None:
        self._inflight = False
        self._task = None
        if task.cancelled():
            # We cannot know whether the batch reached the disk; it is not
            # acknowledged, so it counts as lost.
            self._fail(LogWriteError("log append was cancelled"))
            return
        exc = task.exception()
        if exc is not None:
            self._fail(exc)
            return
        first = task.result()
        self.last_offset = first + n - 1
        self.batches += 1
        self.records += n
        if n > self.max_batch:
            self.max_batch = n
        self.durable += n
        # Start the next batch before running callbacks, so a failing
        # callback cannot stall the write path.
        if self._pending and self.sync:
            self._flush()
        elif self._pending and not self._scheduled:
            self._scheduled = True
            self._loop.call_later(ASYNC_GATHER_SECONDS, self._flush)
        waiters, durable = self._waiters, self.durable
        while waiters and waiters[0][0] <= durable:
            waiter = waiters.popleft()[1]
            try:
                waiter.on_durable(durable)
            except Exception:  # noqa: BLE001 - one broken waiter must not hold the others
                log.exception("durability waiter failed")

    def _fail(self, exc: BaseException) -> None:
        """Everything staged after the last durable record is lost: tell
        every waiter, forget the pending records and tell the owner."""
        error = exc if isinstance(exc, Exception) else LogWriteError(str(exc))
        lost_from = self.durable + 1
        log.error("log append failed, %d staged record(s) lost: %s", self.staged - self.durable, error)
        self.last_error = str(error)
        self.last_error_time = time.time()
        self._pending = []
        self.staged = self.durable
        waiters, self._waiters = self._waiters, deque()
        for _, w in waiters:
            try:
                w.on_lost(lost_from, error)
            except Exception:  # noqa: BLE001
                log.exception("durability waiter failed")
        if self.on_failure is not None:
            self.on_failure(error)

    async def _sync_every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.fsync_interval)
            try:
                await self.log.sync()
            except Exception as exc:  # noqa: BLE001 - reported, next tick retries
                self.last_error = str(exc)
                log.error("periodic fsync failed: %s", exc)

    async def drain(self) -> None:
        """Wait until everything staged so far is durable."""
        while self._pending or self._inflight:
            await asyncio.sleep(0.001)
        await self.log.sync()

    async def close(self) -> None:
        if self._syncer is not None:
            self._syncer.cancel()
        await self.drain()
