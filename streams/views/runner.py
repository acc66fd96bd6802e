"""The fold loop: apply batches of changes to one view, checkpoint, measure.

Input is an async iterator of ``(next_offset, changes)`` pairs: the changes
of one or more WHOLE records, and the log position just after them. A runner
only ever stands at a record boundary, so a checkpoint never holds half a
MULTI/EXEC. Records no view cares about still move the position (the pair
comes with an empty list), which is what makes ``wait_for`` (read your
writes) answer as soon as the view has seen an offset.

Errors in a view's ``apply`` are counted (``errors``, ``last_error``) and
the change is skipped: one bad value must not stop a view for everyone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncIterator, Callable, Iterable

from .state import Checkpoint, CheckpointStore
from .view import Change, View

log = logging.getLogger("fjord.views")


def _filter_of(view: View) -> Callable[[Change], bool]:
    """``view.wants``, or, when the view keeps the base class's filter, the
    compiled closure behind it (one call less per event)."""
    if type(view).wants is View.wants and "wants" not in view.__dict__:
        test = view.__dict__.get("_wants")
        if test is None:
            test = view.__dict__["_wants"] = view._make_filter()
        return test
    return view.wants


class ViewRunner:
    """Owns one view's state and position; ``feed`` folds, ``run`` loops."""

    def __init__(self, view: View, store: CheckpointStore | None = None, *, start_offset: int = 0,
                 end_offset: Callable[[], int] | None = None, checkpoint_seconds: float = 1.0,
                 checkpoint_records: int = 50_000,
                 on_touched: Callable[["ViewRunner", set], None] | None = None):
        self.view = view
        self.store = store
        self.end_offset = end_offset or (lambda: self.next_offset)
        self.checkpoint_seconds = checkpoint_seconds
        self.checkpoint_records = checkpoint_records
        self.on_touched = on_touched
        self.fingerprint = view.fingerprint()
        self.applied = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_error_time = 0.0
        self.rebuilds = 0
        self.rebuild_reason = ""
        cp = store.load(view.name) if store is not None else None
        if cp is not None and cp.fingerprint == self.fingerprint and cp.next_offset >= start_offset:
            self.state = cp.state
            self.next_offset = cp.next_offset
            self.applied = cp.applied
            self.restored = True
        else:
            if cp is not None:
                self.rebuild_reason = ("definition changed" if cp.fingerprint != self.fingerprint
                                       else "checkpoint older than the log")
                self.rebuilds = 1
                log.info("view %s: %s, rebuilding from offset %d", view.name, self.rebuild_reason, start_offset)
            self.state = view.initial()
            self.next_offset = start_offset
            self.restored = False
        self.started_offset = self.next_offset
        #: the log's end when the runner started: below it, the view is
        #: catching up (or rebuilding), and INFO shows progress
        self.target_offset = self.next_offset
        self.last_time_ms = 0
        self._saved_offset = self.next_offset
        self._saved_at = time.monotonic()
        self._saving: asyncio.Future | None = None
        self._waiters: list[tuple[int, asyncio.Future]] = []
        self._rate_events = 0
        self._rate_t0 = time.monotonic()
        self.rate = 0.0
        self.running = False

    # ------------------------------------------------------------ fold

    def feed(self, next_offset: int, changes: Iterable[Change]) -> None:
        """Apply whole records' changes, then stand at ``next_offset``."""
        view, state = self.view, self.state
        wants, apply = _filter_of(view), view.apply
        touched: set = set()
        n = 0
        last = None
        for change in changes:
            if not wants(change):
                continue
            n += 1
            try:
                t = apply(state, change)
            except Exception as exc:  # noqa: BLE001 - counted, shown in INFO, skipped
                self.errors += 1
                self.last_error = f"offset {change.offset}: {type(exc).__name__}: {exc}"
                self.last_error_time = time.time()
                if self.errors <= 10 or self.errors % 1000 == 0:
                    log.warning("view %s failed on %s", view.name, self.last_error)
                continue
            if t:
                touched.update(t)
            last = change
        if last is not None:
            self.last_time_ms = last.time_ms
        self.applied += n
        self._rate_events += n
        if next_offset > self.next_offset:
            self.next_offset = next_offset
        if touched and self.on_touched is not None:
            self.on_touched(self, touched)
        if self._waiters:
            self._wake()

    # ------------------------------------------------------------ loop

    async def run(self, batches: AsyncIterator[tuple[int, list[Change]]]) -> None:
        """Fold every batch until the iterator ends or the task is cancelled;
        checkpoint on the way and at the end."""
        self.running = True
        try:
            async for next_offset, changes in batches:
                self.feed(next_offset, changes)
                self.maybe_checkpoint()
        finally:
            self.running = False

    def maybe_checkpoint(self) -> None:
        """Start a checkpoint write (off the loop) when one is due."""
        if self.store is None or self._saving is not None or self.next_offset == self._saved_offset:
            return
        now = time.monotonic()
        if now - self._saved_at < self.checkpoint_seconds and \
                self.next_offset - self._saved_offset < self.checkpoint_records:
            return
        data = CheckpointStore.encode(self.checkpoint())
        offset = self.next_offset
        loop = asyncio.get_running_loop()
        self._saving = fut = loop.run_in_executor(None, self.store.write_bytes, self.view.name, data)
        self._saved_at = now

        def done(f: asyncio.Future) -> None:
            self._saving = None
            if f.cancelled() or f.exception() is not None:
                log.error("view %s: checkpoint failed: %s", self.view.name,
                          "cancelled" if f.cancelled() else f.exception())
                return
            self._saved_offset = offset

        fut.add_done_callback(done)

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.view.name, self.fingerprint, self.next_offset, self.state, self.applied)

    async def flush(self) -> None:
        """Write a checkpoint of the current position now (at stop)."""
        if self._saving is not None:
            try:
                await self._saving
            except Exception:  # noqa: BLE001 - logged by its callback
                pass
        if self.store is not None and self.next_offset != self._saved_offset:
            data = CheckpointStore.encode(self.checkpoint())
            offset = self.next_offset
            await asyncio.get_running_loop().run_in_executor(None, self.store.write_bytes, self.view.name, data)
            self._saved_offset = offset

    # ------------------------------------------------------------ read your writes

    async def wait_for(self, offset: int, timeout: float | None) -> bool:
        """Wait until the view reflects the record at ``offset``."""
        if self.next_offset > offset:
            return True
        fut = asyncio.get_running_loop().create_future()
        item = (offset, fut)
        self._waiters.append(item)
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            if item in self._waiters:
                self._waiters.remove(item)

    def _wake(self) -> None:
        pos = self.next_offset
        for offset, fut in list(self._waiters):
            if pos > offset and not fut.done():
                fut.set_result(None)

    # ------------------------------------------------------------ metrics

    def stats(self) -> dict:
        """Figures for FJORD.VIEW INFO, INFO and /metrics."""
        now = time.monotonic()
        dt = now - self._rate_t0
        if dt >= 1.0:
            self.rate = self._rate_events / dt
            self._rate_events = 0
            self._rate_t0 = now
        end = self.end_offset()
        lag = max(end - self.next_offset, 0)
        if self.next_offset < self.target_offset:
            state = "rebuilding" if not self.restored else "catching-up"
        else:
            state = "running" if self.running else "stopped"
        span = max(self.target_offset - self.started_offset, 1)
        progress = min(1.0, (self.next_offset - self.started_offset) / span)
        lag_seconds = 0.0
        if lag and self.last_time_ms:
            lag_seconds = max(time.time() - self.last_time_ms / 1000, 0.0)
        return {
            "state": state, "offset": self.next_offset, "lag_events": lag,
            "lag_seconds": round(lag_seconds, 3), "applied": self.applied,
            "rate": round(self.rate, 1), "errors": self.errors, "last_error": self.last_error or "",
            "rebuilds": self.rebuilds, "rebuild_reason": self.rebuild_reason,
            "progress": round(progress, 4), "checkpoint": self._saved_offset,
            "fingerprint": self.fingerprint,
        }
