"""The change feed: the log's events in order, with the key's value before
and after each one when asked.

``ChangeFeed(log, start_offset, images=..., databases=..., snapshot_dir=...)``
reads records from ``start_offset`` on, tailing the log forever
(``Log.wait_for``) unless ``stop_at`` is given. Two ways to read it:

- ``batches()`` yields ``(next_offset, changes)`` once per record: the
  record's changes (possibly none: a skipped or empty record still moves
  the position) and the offset just after it. Views use it, so a
  checkpoint never splits a MULTI/EXEC.
- ``changes()`` yields one ``Change`` per event (triggers).

``images`` says what ``Change.old``/``Change.new`` hold:

- False/None: nothing, and no shadow keyspace at all (the cheap feed: a
  record costs its decode and one tuple per event);
- True or ``"json"``: JSON-ready images (triggers/images.py) of the key
  just before and just after the event;
- ``"raw"``: ``new`` only, ``{"type", "value"}`` holding the shadow's own
  value object (valid while the record is being handled; see
  ``View.images``), which costs no conversion per event.

Images need a *shadow keyspace*: a ``store.keyspace.Keyspace`` at the
feed's read position, built from the newest snapshot at or before
``start_offset`` plus a replay of the log up to it (``prepare()``, called by
the first read), then advanced by applying each event as it is read. It
costs about as much memory as the dataset itself.

A read-only ``FileLog`` (another process's log, ``fjord triggers run``) never
signals new records, so while waiting the feed polls it: it calls the log's
``refresh()`` if it has one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator, NamedTuple

from streams.events import Event
from streams.log import Log, LogError
from streams.materializer import Materializer

# epoch fencing (store/fencing.py): readers skip a deposed writer's records
from streams.materializer import EpochFence, fence_at

from store.keyspace import APPLIERS, type_name

from .images import image_of

log = logging.getLogger("fjord.changefeed")

#: how long to wait for new records before polling a log that cannot signal them
POLL_SECONDS = 0.05

#: records handled between two yields to the event loop during a catch-up
YIELD_EVERY = 256


class Change(NamedTuple):
    """One event read from the log. ``old``/``new`` are images (or None: no
    key, keyless event, or a feed without images)."""

    offset: int
    index: int
    time_ms: int
    origin: str | None
    event: Event
    old: dict | None = None
    new: dict | None = None

    @property
    def id(self) -> str:
        """Stable id of the event: ``"<offset>-<index>"``."""
        return f"{self.offset}-{self.index}"


_new_tuple = tuple.__new__  # a Change without NamedTuple.__new__'s Python frame (once per event)


def images_mode(images) -> str | None:
    """Normalise an ``images`` argument: None, ``"raw"`` or ``"json"``."""
    if not images:
        return None
    if images == "raw":
        return "raw"
    return "json"


_TYPE_TEXT: dict[type, str] = {}


def raw_image(value) -> dict | None:
    """The cheap image: the shadow's own value, with its type name."""
    if value is None:
        return None
    name = _TYPE_TEXT.get(type(value))
    if name is None:
        name = _TYPE_TEXT[type(value)] = type_name(value).decode()
    return {"type": name, "value": value}


def record_changes(shadow, rec, mode: str | None) -> list[Change]:
    """Apply one record to ``shadow`` (None: no images) and give its changes
    with images by ``mode`` (None, "raw", "json"). Event types the keyspace
    has no applier for (not key effects) pass through without images.
    The appliers are called directly, not through ``Keyspace.apply``: a
    shadow is private (no observers), and this runs for every event."""
    offset, time_ms, origin, events = rec.offset, rec.time_ms, rec.origin, rec.events
    if shadow is None or mode is None:
        if shadow is not None:
            apply_events(shadow, events)
        return [_new_tuple(Change, (offset, i, time_ms, origin, ev, None, None)) for i, ev in enumerate(events)]
    dbs = shadow.dbs
    ndbs = len(dbs)
    out = []
    for i, ev in enumerate(events):
        old = new = None
        applier = APPLIERS.get(ev.type)
        if applier is not None:
            key, db = ev.key, ev.db
            if key is not None and db is not None and 0 <= db < ndbs:
                data = dbs[db].data
                if mode == "raw":
                    applier(shadow, ev)
                    new = raw_image(data.get(key))
                else:
                    old = image_of(data.get(key))
                    applier(shadow, ev)
                    new = image_of(data.get(key))
            else:
                applier(shadow, ev)
        out.append(_new_tuple(Change, (offset, i, time_ms, origin, ev, old, new)))
    return out


def apply_events(shadow, events) -> None:
    """Advance ``shadow`` over events without computing images."""
    for ev in events:
        applier = APPLIERS.get(ev.type)
        if applier is not None:
            applier(shadow, ev)


class ChangeFeed:
    """Reads ``log`` from ``start_offset``; see the module doc."""

    def __init__(self, log_: Log, start_offset: int, *, images: bool | str | None = False, databases: int = 16,
                 snapshot_dir: str | None = None, poll_seconds: float = POLL_SECONDS):
        self.log = log_
        #: what to compute: None, "raw" or "json" (settable until the first read)
        self.mode = images_mode(images)
        self.databases = databases
        self.snapshot_dir = snapshot_dir
        self.poll_seconds = poll_seconds
        #: offset of the next record to read (every record below it was yielded whole)
        self.position = start_offset
        self.shadow = None
        self.fence = EpochFence(0 if start_offset == 0 else None)

    @property
    def images(self) -> bool:
        """Whether this feed keeps a shadow keyspace (computes images)."""
        return self.mode is not None

    async def prepare(self) -> None:
        """Build the shadow keyspace at ``self.position`` (newest snapshot at
        or before it, then the log up to it), unless there is one. Reads
        call it; call it first to start from a snapshot's keys."""
        if self.shadow is not None:
            return
        from store.keyspace import Keyspace
        from store.snapshotting import load_types

        load_types()
        ks = Keyspace(self.databases)
        base = None
        if self.snapshot_dir:
            from store.snapshotter import load_latest

            base, _, _ = await load_latest(ks, self.snapshot_dir, self.position)
        start = base.offset if base is not None else 0
        if start < self.log.start_offset:
            raise LogError(
                f"cannot build images from offset {self.position}: the log starts at {self.log.start_offset} "
                f"and no snapshot at or before offset {self.position} covers the records before it")
        # the snapshot's claim is the epoch in force at its offset
        from store.fencing import fence_for

        mat = Materializer(self.log, ks, start, fence_for(ks) if base is not None else EpochFence(0))
        if self.position > start:
            await mat.catch_up(self.position)
        self.fence = mat.fence
        self.shadow = ks

    _prepare_shadow = prepare  # the name older callers used

    async def wait(self, offset: int) -> None:
        """Wait (at most ``poll_seconds``) for the record at ``offset``."""
        if await self.log.wait_for(offset, self.poll_seconds):
            return
        refresh = getattr(self.log, "refresh", None)
        if refresh is not None:
            await refresh()

    _wait = wait

    async def batches(self, stop_at: int | None = None) -> AsyncIterator[tuple[int, list[Change]]]:
        """Yield ``(next_offset, changes)`` for every record from the read
        position on, in log order; a record a fence skips gives ``[]``.
        ``self.position`` is already ``next_offset`` when the pair is
        yielded (a view folds the whole batch before it asks again)."""
        if self.mode is not None:
            await self.prepare()
        elif self.fence is not None and self.fence.epoch is None:
            # starting mid-log: learn the epoch in force there (a guess from
            # the first record would be wrong if it is a deposed writer's)
            self.fence = await fence_at(self.log, self.position)
        shadow, mode, fence = self.shadow, self.mode, self.fence
        admit = fence.admit if fence is not None else None
        pos = self.position  # local: changes() holds self.position back while it hands a record out
        while True:
            end = self.log.end_offset
            if stop_at is not None:
                end = min(end, stop_at)
            if pos >= end:
                if stop_at is not None and pos >= stop_at:
                    return
                await self.wait(pos)
                continue
            n = 0
            async for rec in self.log.read(pos, end):
                if rec.offset != pos:
                    raise LogError(f"the change feed expected offset {pos}, the log gave {rec.offset}")
                if admit is not None and not admit(rec):
                    changes = []
                else:
                    changes = record_changes(shadow, rec, mode)
                pos += 1
                self.position = pos
                yield pos, changes
                n += 1
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # a long catch-up must not starve clients
            await asyncio.sleep(0)

    async def changes(self, stop_at: int | None = None) -> AsyncIterator[Change]:
        """Yield every event from the read position on, in log order.
        ``self.position`` moves past a record only once all its events were
        taken: a trigger's checkpoint must not skip the rest of a record
        while its reader waits for room in the middle of it."""
        async for next_offset, changes in self.batches(stop_at):
            if changes:
                self.position = next_offset - 1
                for change in changes:
                    yield change
                self.position = next_offset
