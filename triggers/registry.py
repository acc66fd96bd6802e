"""The durable registry of subscriptions: ``Keyspace.meta`` namespace
``"trigger"``, changed only by ``fjord-meta-set``/``fjord-meta-del`` events.

Creating, pausing or deleting a trigger is a write like any other: an event
on the log, applied to the keyspace, replayed at start, kept in snapshots.
So subscriptions survive restarts and a separate dispatcher process
(``fjord triggers run``) learns of them by reading the log (``MetaFollower``).
"""

from __future__ import annotations

import orjson

from streams.events import Event

from .subscription import Subscription, TriggerError

NS = "trigger"
#: where runners log their delivery position (read back after a failover)
POSITION_NS = "trigger-position"


def _emit(session, type_: str, data: dict) -> None:
    """``Session.emit`` for a keyless, database-less event."""
    ev = Event(type_, None, None, data)
    session.keyspace.apply(ev)
    session.events.append(ev)


_FIELDS = frozenset(Subscription.__dataclass_fields__)


def _load(raw: bytes) -> Subscription:
    """The stored form; fields a later version added are ignored."""
    doc = orjson.loads(raw)
    return Subscription(**{k: v for k, v in doc.items() if k in _FIELDS})


def get(meta: dict, name: str) -> Subscription | None:
    raw = meta.get((NS, name))
    return None if raw is None else _load(raw)


def all_subscriptions(meta: dict) -> list[Subscription]:
    """Every stored subscription, by name."""
    return [_load(v) for (ns, _), v in sorted(meta.items()) if ns == NS]


def emit_create(session, sub: Subscription) -> None:
    """Store ``sub`` (TriggerError if the name is taken). ``created`` is
    set to the log's end now: where ``START LATEST`` begins."""
    meta = session.keyspace.meta
    if (NS, sub.name) in meta:
        raise TriggerError(f"ERR trigger '{sub.name}' already exists")
    server = getattr(session, "server", None)
    if server is not None and server.log is not None:
        sub.created = server.log.end_offset
    _emit(session, "fjord-meta-set", {"ns": NS, "name": sub.name, "value": orjson.dumps(sub.to_json())})


def emit_delete(session, name: str) -> bool:
    """Delete a trigger; False if there is none of that name."""
    if (NS, name) not in session.keyspace.meta:
        return False
    _emit(session, "fjord-meta-del", {"ns": NS, "name": name})
    if (POSITION_NS, name) in session.keyspace.meta:
        _emit(session, "fjord-meta-del", {"ns": POSITION_NS, "name": name})
    return True


def emit_position(session, name: str, offset: int, created: int) -> None:
    """Log a trigger's delivery position (see triggers/dispatcher.py)."""
    _emit(session, "fjord-meta-set", {"ns": POSITION_NS, "name": name,
                                      "value": orjson.dumps({"offset": offset, "created": created})})


def logged_position(meta: dict, name: str) -> dict | None:
    raw = meta.get((POSITION_NS, name))
    try:
        doc = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("offset"), int) else None


def emit_set_paused(session, name: str, paused: bool) -> bool:
    """Pause or resume a trigger; False if there is none of that name."""
    sub = get(session.keyspace.meta, name)
    if sub is None:
        return False
    if sub.paused != paused:
        sub.paused = paused
        _emit(session, "fjord-meta-set", {"ns": NS, "name": name, "value": orjson.dumps(sub.to_json())})
    return True


class MetaFollower:
    """``Keyspace.meta`` rebuilt by a process that does not own the log:
    the newest snapshot's metadata section, then the log's ``fjord-meta-*``
    events, tailing. ``meta`` is current up to ``position``."""

    def __init__(self, log_, snapshot_dir: str | None):
        self.log = log_
        self.snapshot_dir = snapshot_dir
        self.meta: dict[tuple[str, str], bytes] = {}
        self.position = 0
        self.feed = None

    def caught_up(self, offset: int) -> bool:
        """Whether every record below ``offset`` has been read."""
        return self.feed is not None and self.feed.position >= offset

    def load_snapshot(self) -> None:
        from streams import snapshot

        from store.snapshotting import META

        if not self.snapshot_dir:
            return
        try:
            infos = snapshot.list_snapshots(self.snapshot_dir)
        except FileNotFoundError:
            infos = []
        infos = [i for i in infos if i.offset <= self.log.end_offset]
        if not infos:
            return
        info = infos[-1]
        for section in snapshot.read_sections(info):
            if section.get("type") == META:
                for k, v in zip(section["keys"], section["values"]):
                    ns, _, name = k.partition(b"\0")
                    self.meta[(ns.decode(), name.decode())] = v
        self.position = info.offset

    async def follow(self, on_change=None) -> None:
        """Apply the log's metadata events forever; ``on_change()`` after each."""
        from .changefeed import ChangeFeed

        if self.position < self.log.start_offset:
            self.position = self.log.start_offset
        self.feed = feed = ChangeFeed(self.log, self.position)
        async for ch in feed.changes():
            ev = ch.event
            if ev.type == "fjord-meta-set":
                self.meta[(ev.data["ns"].decode(), ev.data["name"].decode())] = ev.data["value"]
            elif ev.type == "fjord-meta-del":
                self.meta.pop((ev.data["ns"].decode(), ev.data["name"].decode()), None)
            else:
                continue
            self.position = ch.offset + 1
            if on_change is not None:
                on_change()
