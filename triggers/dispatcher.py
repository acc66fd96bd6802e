"""The dispatcher: one ``Runner`` per subscription, from the log to a sink.

A runner reads the change feed (triggers/changefeed.py) from its checkpoint,
keeps the events its subscription matches, and hands them to its sink in
batches (``batch_size`` events, waiting up to ``window_ms`` to fill one).
Up to ``concurrency`` batches are in flight at once, but never two holding
events of the same key: a key's later events wait until its batch is back.

**Ordering per key.** When an event fails, its key is *held*: that event
and every later event of the same key wait in the key's queue until the
failed one succeeds or is dead-lettered; events of other keys go on. A
partial failure (``Outcome.failed_ids``) holds the failed events' keys, and
the events after a failed one *of the same key* in that batch are sent again
after it (so they may arrive twice, with the same id).

**Retries.** A failed event is retried after the subscription's backoff
schedule (or the receiver's ``Retry-After`` if longer). A whole batch that
fails is split in halves and each half sent again at once (``bisect``), down
to single events, so one bad event does not hold back its neighbours. After
``max_attempts`` failed attempts, or once older than ``max_age_s``, the event
goes to the dead-letter file (triggers/deadletter.py) and its key moves on.
``DLQ NONE`` keeps retrying at the last backoff instead: never dropped.

**Checkpoint.** The checkpoint is the lowest log offset holding an event not
yet done; it is saved (atomically) a few times a second and after stopping,
and registered with the retention registry. After a crash the runner
resumes from it: events after it that were already delivered are delivered
again with the same ``"<offset>-<index>"`` id (at-least-once).

**Write-back loops.** Records whose origin is ``trigger:<name>`` are skipped
by the subscription ``name``: a function that writes back to Fjord over a
connection tagged with ``FJORD.ORIGIN trigger:<name>`` (the function sink
does this for its handlers) cannot trigger itself.

**Position in the log.** Inside the server, a busy runner also logs its
position every few seconds (``trigger-position`` metadata), which replicas
replay: a promoted replica, or a server whose checkpoint files were lost,
resumes from there (re-delivering a few seconds at most) instead of from
the trigger's creation.

**Disable.** ``Outcome.disable`` (HTTP 410) stops delivery; the reason is
kept in the checkpoint and the service is told (it pauses the trigger).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Callable

from streams.log import Log

from .changefeed import ChangeFeed
from .checkpoint import Checkpoint
from .deadletter import DeadLetters
from .delivery import Batch, ChangeRecord, Outcome, Sink
from .images import json_bytes, to_json
from .retry import backoff_seconds
from .subscription import Subscription

log = logging.getLogger("fjord.triggers")

#: events read and not yet done, at most (the reader waits beyond it)
MAX_BUFFERED = 20_000
#: how often a changed checkpoint is saved (seconds)
CHECKPOINT_SECONDS = 0.2
#: how often, at most, a busy trigger's position is also written to the log
#: (``fjord-meta-set`` namespace ``trigger-position``), so replicas and a
#: promoted writer resume near it instead of from the trigger's creation
PUBLISH_SECONDS = 5.0


class _Item:
    """One event on its way: the record, its key group and its failures."""

    __slots__ = ("rec", "kid", "failures", "due", "error", "redrive")

    def __init__(self, rec: ChangeRecord, kid, redrive: bool = False):
        self.rec = rec
        self.kid = kid
        self.failures = 0
        self.due = 0.0
        self.error: str | None = None
        self.redrive = redrive


def batch_id(records: list[ChangeRecord]) -> str:
    """Stable for the same records: first and last record ids."""
    return records[0].id if len(records) == 1 else f"{records[0].id}_{records[-1].id}"


def make_record(sub: Subscription, change) -> ChangeRecord:
    """The sink's view of one change, shaped by the subscription's view."""
    ev = change.event
    view = sub.view
    return ChangeRecord(
        id=f"{change.offset}-{change.index}", offset=change.offset, index=change.index,
        time_ms=change.time_ms, db=ev.db, key=None if ev.key is None else json_bytes(ev.key),
        type=ev.type, data=to_json(ev.data), view=view,
        old_image=change.old if view in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES") else None,
        new_image=change.new if view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES") else None,
    )


def resolve_start(sub: Subscription, log_: Log) -> int:
    """The offset a subscription without a checkpoint starts from
    (``time:`` starts are resolved by the runner, which reads the log)."""
    if sub.start == "LATEST":
        return max(sub.created, log_.start_offset)
    if sub.start == "TRIM_HORIZON" or sub.start.startswith("time:"):
        return log_.start_offset
    return max(int(sub.start), log_.start_offset)


class Runner:
    """Delivers one subscription's events; see the module doc."""

    def __init__(self, sub: Subscription, log_: Log, sink_factory: Callable[[Subscription], Sink], *,
                 directory: str, databases: int = 16, snapshot_dir: str | None = None, consumers=None,
                 on_disable: Callable[[str, str], None] | None = None,
                 publish_position: Callable[[str, int, int], None] | None = None,
                 logged_position: dict | None = None):
        self.sub = sub
        self.log = log_
        self.sink_factory = sink_factory
        self.databases = databases
        self.snapshot_dir = snapshot_dir
        self.checkpoint = Checkpoint(directory, sub.name, consumers)
        self.dlq = DeadLetters(directory, sub.name)
        self.on_disable = on_disable
        self.publish_position = publish_position
        self.logged_position = logged_position
        self.sink: Sink | None = None
        self.feed: ChangeFeed | None = None
        self.ready: deque[_Item] = deque()
        self.held: dict[object, deque[_Item]] = {}
        #: keys in a batch in flight, and events of theirs read meanwhile
        self.inflight: set = set()
        self._running: set[asyncio.Task] = set()
        self.waiting: dict[object, deque[_Item]] = {}
        #: offset -> [events not yet done, record time]; insertion order = log order
        self.pending: dict[int, list] = {}
        self.redrive_left = 0
        #: events read and not yet done (the reader pauses at MAX_BUFFERED)
        self.buffered = 0
        self.disabled: str | None = None
        self.state = "starting"
        self.delivered = self.retried = self.failed = self.dead_lettered = 0
        self.last_error: str | None = None
        self.last_error_time: float | None = None
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._start_offset = 0
        self._resumed = False

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        cp = await asyncio.to_thread(self.checkpoint.load)
        if cp is not None and cp.get("created") != self.sub.created:
            cp = None  # a checkpoint of an earlier trigger of the same name
        logged = self.logged_position
        if logged is not None and logged.get("created") == self.sub.created and \
                (cp is None or logged.get("offset", -1) > cp["offset"]):
            # the position the writer logged is newer (a promoted replica, a lost data dir)
            cp = {"offset": logged["offset"], "disabled": cp.get("disabled") if cp else None}
        self._resumed = cp is not None
        if self._resumed:
            self._start_offset = max(cp["offset"], self.log.start_offset)
            self.disabled = cp.get("disabled")
        else:
            self._start_offset = resolve_start(self.sub, self.log)
        self.sink = self.sink_factory(self.sub)
        loop = asyncio.get_running_loop()
        for entry in await asyncio.to_thread(self.dlq.pending_redrive):
            self._add_redrive(entry)
        self._tasks = [loop.create_task(self._read()), loop.create_task(self._deliver_loop()),
                       loop.create_task(self._checkpoint_loop())]
        for t in self._tasks:
            t.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.state = "failed"
            self._error(f"dispatcher stopped: {exc!r}")
            log.error("trigger %s: %s", self.sub.name, self.last_error, exc_info=exc)

    async def stop(self, *, save: bool = True) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping
                pass
        self._tasks = []
        if save and self.feed is not None:
            try:
                await asyncio.to_thread(self._save)
            except OSError as exc:
                log.error("trigger %s: could not save its checkpoint: %s", self.sub.name, exc)
        if self.sink is not None:
            try:
                await self.sink.close()
            except Exception:  # noqa: BLE001
                log.exception("closing the sink of trigger %s", self.sub.name)
        self.state = "stopped"

    def update(self, sub: Subscription) -> None:
        """The stored subscription changed (pause/resume)."""
        was_paused = self.sub.paused
        self.sub = sub
        if was_paused and not sub.paused:
            self.disabled = None
        self._wake.set()

    # ------------------------------------------------------------ reading

    async def _read(self) -> None:
        sub = self.sub
        offset = self._start_offset
        if sub.start.startswith("time:") and not self._resumed:
            offset = await self._offset_at_time(int(sub.start[5:]), offset)
        self.feed = ChangeFeed(self.log, offset, images=sub.needs_images, databases=self.databases,
                               snapshot_dir=self.snapshot_dir)
        skip_origin = f"trigger:{sub.name}"
        pending = self.pending
        ready = self.ready
        async for ch in self.feed.changes():
            if ch.origin == skip_origin or not self.sub.matches(ch.event):
                continue
            rec = make_record(self.sub, ch)
            slot = pending.get(ch.offset)
            if slot is None:
                pending[ch.offset] = [1, ch.time_ms]
            else:
                slot[0] += 1
            ev = ch.event
            ready.append(_Item(rec, (ev.db, ev.key)))
            self.buffered += 1
            self._wake.set()
            if self.buffered >= MAX_BUFFERED:
                # ready, held and waiting together: a long outage must not
                # pile the whole backlog up in memory (the log keeps it)
                self._space.clear()
                await self._space.wait()

    async def _offset_at_time(self, at_ms: int, start: int) -> int:
        """First offset whose record was written at or after ``at_ms``."""
        async for rec in self.log.read(start, self.log.end_offset):
            if rec.time_ms >= at_ms:
                return rec.offset
        return self.log.end_offset

    def _add_redrive(self, entry: dict) -> None:
        try:
            rec = ChangeRecord(**entry["record"])
        except (KeyError, TypeError):
            log.error("trigger %s: skipping a malformed dead letter: %r", self.sub.name, entry)
            return
        key = rec.key if not isinstance(rec.key, dict) else rec.key.get("b64")
        self.ready.appendleft(_Item(rec, ("redrive", rec.db, key), redrive=True))
        self.redrive_left += 1
        self._wake.set()

    # ------------------------------------------------------------ delivering

    def _take_batch(self, limit: int) -> list[_Item]:
        """Due heads of held keys, then ready events, up to ``limit``. A key
        is in at most one batch in flight: events of a key whose batch is
        out wait in ``waiting`` (or behind its held head)."""
        now = time.monotonic()
        batch: list[_Item] = []
        inflight = self.inflight
        for kid, q in self.held.items():
            if len(batch) >= limit:
                break
            head = q[0]
            if head.due <= now and kid not in inflight:
                batch.append(head)
                inflight.add(kid)
        ready, held, waiting = self.ready, self.held, self.waiting
        taken: set = set()
        while ready and len(batch) < limit:
            item = ready.popleft()
            kid = item.kid
            q = held.get(kid)
            if q is not None:
                q.append(item)  # behind its key's failed (or waiting) event
            elif kid in inflight and kid not in taken:
                waiting.setdefault(kid, deque()).append(item)  # behind its key's batch in flight
            else:
                batch.append(item)
                inflight.add(kid)
                taken.add(kid)
        return batch

    def _next_due(self) -> float | None:
        dues = [q[0].due for kid, q in self.held.items() if kid not in self.inflight]
        return min(dues) if dues else None

    async def _deliver_loop(self) -> None:
        running = self._running
        try:
            while True:
                if self.sub.paused or self.disabled:
                    self.state = "paused" if self.sub.paused else "disabled"
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                self.state = "running"
                size = self.sub.batch_size
                batch = self._take_batch(size) if len(running) < self.sub.concurrency else []
                if batch and len(batch) < size and self.sub.window_ms and not self.held and not running:
                    deadline = time.monotonic() + self.sub.window_ms / 1000
                    while len(batch) < size:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._wake.clear()
                        if not self.ready:
                            try:
                                await asyncio.wait_for(self._wake.wait(), left)
                            except asyncio.TimeoutError:
                                break
                        batch.extend(self._take_batch(size - len(batch)))
                if batch:
                    running.add(asyncio.get_running_loop().create_task(self._deliver_batch(batch)))
                    continue
                self._wake.clear()
                due = self._next_due()
                timeout = None if due is None else max(0.0, due - time.monotonic())
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
        finally:
            for t in list(running):
                t.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)

    async def _deliver_batch(self, items: list[_Item]) -> None:
        """One batch, then its keys are free again."""
        try:
            await self._deliver(items)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug here must not stop the trigger
            log.exception("trigger %s: delivering a batch failed", self.sub.name)
            self._error(f"internal error: {exc!r}")
        finally:
            # before waking the loop: it must see this batch's slot free
            self._running.discard(asyncio.current_task())
            self._release([it.kid for it in items])
            self._wake.set()

    def _release(self, kids) -> None:
        """Keys whose batch is back: events that waited behind it go on,
        behind the key's held events if any (they are later in the log)."""
        for kid in dict.fromkeys(kids):
            self.inflight.discard(kid)
            behind = self.waiting.pop(kid, None)
            if not behind:
                continue
            q = self.held.get(kid)
            if q is not None:
                q.extend(behind)
            else:
                self.ready.extendleft(reversed(behind))

    async def _send(self, items: list[_Item]) -> Outcome:
        records = [i.rec for i in items]
        batch = Batch(self.sub.name, batch_id(records), records, attempt=max(i.failures for i in items) + 1)
        if batch.attempt > 1:
            self.retried += len(items)
        try:
            outcome = await self.sink.deliver(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a sink must not raise; treat it as a failure
            outcome = Outcome(False, error=f"sink raised {exc!r}")
        return outcome

    async def _deliver(self, items: list[_Item]) -> None:
        outcome = await self._send(items)
        if outcome.disable:
            self._error(outcome.error or "the receiver disabled the subscription")
            self._requeue(items, failed=set())
            self.disabled = self.last_error
            self.state = "disabled"
            await asyncio.to_thread(self._save)
            if self.on_disable is not None:
                self.on_disable(self.sub.name, self.disabled)
            return
        if outcome.ok and not outcome.failed_ids:
            await self._done(items)
            return
        self._error(outcome.error or ("partial batch failure" if outcome.failed_ids else "delivery failed"))
        if outcome.failed_ids:
            failed_ids = set(outcome.failed_ids)
            failed_keys = set()
            good, bad = [], []
            for it in items:
                if it.rec.id in failed_ids or it.kid in failed_keys:
                    failed_keys.add(it.kid)
                    bad.append(it)
                else:
                    good.append(it)
            if not bad:  # ids the batch did not hold: the whole batch failed
                bad, good = items, []
            await self._done(good)
            await self._fail(bad, {i.rec.id for i in bad if i.rec.id in failed_ids} or None, outcome.retry_after)
            return
        if self.sub.bisect and len(items) > 1 and outcome.retry_after is None:
            half = len(items) // 2
            await self._deliver(items[:half])
            rest = []
            for it in items[half:]:
                q = self.held.get(it.kid)
                if q is not None and it not in q:
                    q.append(it)  # its key failed in the first half: behind it
                elif q is None or q[0] is it:
                    rest.append(it)
            if rest:
                await self._deliver(rest)
            return
        await self._fail(items, None, outcome.retry_after)

    async def _fail(self, items: list[_Item], failed_ids: set[str] | None, retry_after: float | None) -> None:
        """``items`` were not delivered; those in ``failed_ids`` (all when
        None) failed, the others only wait behind a failed one of their key."""
        now_ms = time.time() * 1000
        max_age_ms = self.sub.max_age_s * 1000
        dead: list[_Item] = []
        failed: set[int] = set()
        for it in items:
            if failed_ids is not None and it.rec.id not in failed_ids:
                continue
            it.failures += 1
            it.error = self.last_error
            self.failed += 1
            failed.add(id(it))
            exhausted = it.failures >= self.sub.max_attempts or now_ms - it.rec.time_ms > max_age_ms
            if exhausted and self.sub.dlq != "none":
                dead.append(it)
            else:
                it.due = time.monotonic() + backoff_seconds(self.sub.backoff_ms, it.failures, retry_after)
        if dead:
            await self._dead_letter(dead)
        dead_ids = {id(d) for d in dead}
        self._requeue([it for it in items if id(it) not in dead_ids], failed)
        if dead:
            await self._done(dead, delivered=False)

    def _requeue(self, items: list[_Item], failed: set[int]) -> None:
        """Put undelivered items back in their keys' queues, in order."""
        by_key: dict[object, list[_Item]] = {}
        for it in items:
            by_key.setdefault(it.kid, []).append(it)
        now = time.monotonic()
        for kid, its in by_key.items():
            q = self.held.get(kid)
            if q is None:
                q = self.held[kid] = deque()
            for it in reversed(its):
                if q and q[0] is it:
                    continue  # a held head that failed again stays the head
                q.appendleft(it)
            if id(q[0]) not in failed and q[0].due < now:
                q[0].due = now

    async def _dead_letter(self, items: list[_Item]) -> None:
        entries = [{"id": it.rec.id, "subscription": self.sub.name, "record": _record_doc(it.rec),
                    "error": it.error, "attempts": it.failures, "dead_lettered_ms": int(time.time() * 1000)}
                   for it in items]
        await asyncio.to_thread(self.dlq.append_sync, entries)
        self.dead_lettered += len(items)
        log.warning("trigger %s: dead-lettered %d event(s) (%s)", self.sub.name, len(items), items[0].error)

    async def _done(self, items: list[_Item], delivered: bool = True) -> None:
        """``items`` are finished: delivered (or dead-lettered)."""
        if not items:
            return
        if delivered:
            self.delivered += len(items)
        pending, held = self.pending, self.held
        now = time.monotonic()
        for it in items:
            q = held.get(it.kid)
            if q is not None and q and q[0] is it:
                q.popleft()
                if q:
                    q[0].due = max(q[0].due, 0.0) if q[0].failures else now
                else:
                    del held[it.kid]
            if it.redrive:
                self.redrive_left -= 1
                continue
            self.buffered -= 1
            slot = pending.get(it.rec.offset)
            if slot is not None:
                slot[0] -= 1
                if slot[0] <= 0:
                    del pending[it.rec.offset]
        if self.buffered < MAX_BUFFERED // 2:
            self._space.set()
        if self.redrive_left == 0 and any(it.redrive for it in items):
            await asyncio.to_thread(self.dlq.finish_redrive)
        self._wake.set()

    def _error(self, message: str) -> None:
        self.last_error = message
        self.last_error_time = time.time()

    # ------------------------------------------------------------ checkpoint

    def position(self) -> int:
        """Lowest offset not yet done (everything below it is)."""
        for offset in self.pending:
            return offset
        return self.feed.position if self.feed is not None else self._start_offset

    def _save(self) -> None:
        self.checkpoint.save_sync(self.position(), self.sub.created, self.disabled)

    async def _checkpoint_loop(self) -> None:
        published_at = time.monotonic()
        published_work = 0
        while True:
            await asyncio.sleep(CHECKPOINT_SECONDS)
            work = self.delivered + self.dead_lettered
            if self.publish_position is not None and work != published_work and \
                    time.monotonic() - published_at >= PUBLISH_SECONDS:
                # only after deliveries: the position record itself must not
                # count as progress, or an idle trigger would log forever
                try:
                    self.publish_position(self.sub.name, self.position(), self.sub.created)
                except Exception:  # noqa: BLE001 - the file checkpoint still holds
                    log.exception("trigger %s: logging its position failed", self.sub.name)
                published_at, published_work = time.monotonic(), work
            if self.feed is not None:
                try:
                    await asyncio.to_thread(self._save)
                except OSError as exc:
                    self._error(f"could not save the checkpoint: {exc}")

    # ------------------------------------------------------------ commands

    async def redrive(self) -> int:
        """Deliver the dead letters again; returns how many."""
        entries = await asyncio.to_thread(self.dlq.take_for_redrive)
        already = self.redrive_left
        # entries of an unfinished earlier redrive are already queued
        for entry in entries[already:]:
            self._add_redrive(entry)
        if not entries:
            await asyncio.to_thread(self.dlq.finish_redrive)
        return max(0, len(entries) - already)

    def stats(self) -> dict:
        now_ms = time.time() * 1000
        backlog = sum(slot[0] for slot in self.pending.values())
        unread = max(0, self.log.end_offset - (self.feed.position if self.feed else self._start_offset))
        oldest = None
        for slot in self.pending.values():
            oldest = slot[1]
            break
        return {
            "state": self.state,
            "lag_events": backlog + unread,
            "lag_seconds": round(max(0.0, (now_ms - oldest) / 1000), 3) if oldest is not None else 0.0,
            "delivered": self.delivered,
            "retried": self.retried,
            "failed": self.failed,
            "dead_lettered": self.dead_lettered,
            "last_error": self.last_error,
            "last_error_time": self.last_error_time,
            "checkpoint": self.position(),
            "disabled_reason": self.disabled,
        }


def _record_doc(rec: ChangeRecord) -> dict:
    return {name: getattr(rec, name) for name in ChangeRecord.__slots__}
