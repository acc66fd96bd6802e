"""Keyspace notifications: Redis's ``notify-keyspace-events``, made from the
log's events.

Redis publishes a notification from inside each command; Fjord derives them
from the effect events, the single record of what changed: each event type
maps to a Redis event class and the notification name(s) Redis sends for it
(``EVENTS``; checked against redis-server 7.0.15 by subscribing to
``__key*@*__:*`` and running each command there). Two effects need more than
the type:

- ``set`` carrying an ``expire_at`` notifies ``set`` then ``expire``, as
  SET EX / SETEX do (not when KEEPTTL merely kept the old time);
- an event that leaves a collection empty (``lpop``, ``hdel``, ``srem``,
  ``zpopmin``, ``ltrim``, ...) is followed by ``del``: the appliers remove
  the emptied key, and Redis notifies that.

The second needs the state right after the event, so while notifications are
on, an observer on ``Keyspace.apply`` notes each event with whether its key
still exists; ``Server.commit`` then calls ``flush`` just after staging the
record, and each message goes to its subscribers' connections, where it
waits, like a reply, until the record is durable: a notification is
information about a write and must not arrive before the write could survive
a crash. While notifications are off the observer is not registered, so the
write path pays only ``Server.commit``'s truth test of ``pending``. A PUBLISH
that follows writes of the same EXEC waits in ``pending`` too (``defer``), so
it neither overtakes their notifications nor goes out before they are staged.

Not generated: ``new`` (flag ``n``: would need the state *before* each
event) and ``keymiss`` (``m``: reads leave no events); both flags are
accepted and shown as Redis shows them. A command that changes nothing
writes no event, so it notifies nothing, where Redis notifies a few such
no-ops (LTRIM keeping the whole list). Inside MULTI/EXEC a client's own
notifications come before EXEC's reply, not between its elements.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from streams.events import Event

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("fjord.notify")

KEYSPACE = 1 << 0  # K
KEYEVENT = 1 << 1  # E
GENERIC = 1 << 2  # g
STRING = 1 << 3  # $
LIST = 1 << 4  # l
SET = 1 << 5  # s
HASH = 1 << 6  # h
ZSET = 1 << 7  # z
EXPIRED = 1 << 8  # x
EVICTED = 1 << 9  # e
STREAM = 1 << 10  # t
KEY_MISS = 1 << 11  # m
MODULE = 1 << 12  # d
NEW = 1 << 13  # n
#: what ``A`` stands for (not m or n, as in Redis)
ALL = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE

_CLASSES = {"g": GENERIC, "$": STRING, "l": LIST, "s": SET, "h": HASH, "z": ZSET, "x": EXPIRED, "e": EVICTED,
            "t": STREAM, "m": KEY_MISS, "d": MODULE, "n": NEW, "K": KEYSPACE, "E": KEYEVENT, "A": ALL}
#: the order CONFIG GET spells the classes in (without ``A``)
_ORDER = "g$lshzxetdn"

INVALID_FLAGS = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."


class EventFlags(str):
    """The setting's value: Redis's spelling of the flags, plus the bits.

    Redis's spelling drops ``n`` when ``A`` is set (so does CONFIG REWRITE),
    but the flag stays on; hence the bits travel with the text."""

    mask: int

    def __new__(cls, mask: int) -> "EventFlags":
        self = super().__new__(cls, flags_string(mask))
        self.mask = mask
        return self


def parse_flags(text: str) -> int:
    """``notify-keyspace-events`` text -> bits; ValueError names Redis's reason."""
    mask = 0
    for c in text:
        bit = _CLASSES.get(c)
        if bit is None:
            raise ValueError(INVALID_FLAGS)
        mask |= bit
    return mask


def flags_string(mask: int) -> str:
    """The bits spelled as CONFIG GET shows them: ``KEA`` -> ``AKE``."""
    if mask & ALL == ALL:
        out = "A"
    else:
        out = "".join(c for c in _ORDER if mask & _CLASSES[c])
    if mask & KEYSPACE:
        out += "K"
    if mask & KEYEVENT:
        out += "E"
    if mask & KEY_MISS:
        out += "m"
    return out


# --------------------------------------------------------------- event mapping

#: event type -> ((class, notification name), ...), in the order Redis sends them
EVENTS: dict[str, tuple[tuple[int, bytes], ...]] = {}


def notifies(event_type: str, cls: int, *names: str) -> None:
    """Declare the notifications an event type makes (data-type modules
    added later can call this for their own types)."""
    EVENTS[event_type] = tuple((cls, (n or event_type).encode()) for n in (names or (event_type,)))


for _t in ("del", "expire", "persist", "rename_from", "rename_to", "move_from", "move_to", "copy_to", "restore"):
    notifies(_t, GENERIC)
notifies("expired", EXPIRED)
notifies("evicted", EVICTED)
for _t in ("set", "incrby", "incrbyfloat", "append", "setrange"):
    notifies(_t, STRING)
for _t in ("lpush", "rpush", "lpop", "rpop", "lset", "lrem", "ltrim", "linsert", "sortstore"):
    notifies(_t, LIST)
for _t in ("hset", "hdel", "hincrby", "hincrbyfloat"):
    notifies(_t, HASH)
for _t in ("sadd", "srem", "spop", "sinterstore", "sunionstore", "sdiffstore"):
    notifies(_t, SET)
for _t in ("zadd", "zincr", "zrem", "zremrangebyscore", "zremrangebyrank", "zremrangebylex", "zpopmin",
           "zpopmax", "zunionstore", "zinterstore", "zdiffstore", "zrangestore"):
    notifies(_t, ZSET)
for _t in ("xadd", "xdel", "xtrim", "xsetid", "xgroup-create", "xgroup-createconsumer", "xgroup-delconsumer",
           "xgroup-destroy", "xgroup-setid"):
    notifies(_t, STREAM)
# Whole-database events name no key, and Redis notifies nothing for them.
for _t in ("flushdb", "flushall", "swapdb"):
    EVENTS[_t] = ()

#: event types after which an emptied key is gone, which Redis notifies as ``del``
EMPTIES = frozenset(("lpop", "rpop", "lrem", "ltrim", "hdel", "srem", "spop", "zrem", "zremrangebyscore",
                     "zremrangebyrank", "zremrangebylex", "zpopmin", "zpopmax", "xdel", "xtrim"))

_SET = ((STRING, b"set"),)
_SET_EXPIRE = ((STRING, b"set"), (GENERIC, b"expire"))
_DEL = (GENERIC, b"del")


def notifications(event: Event, key_exists: bool) -> tuple[tuple[int, bytes], ...]:
    """(class, name) of each notification ``event`` makes, in Redis's order;
    ``key_exists``: whether its key was there right after it was applied."""
    t = event.type
    if t == "set":
        data = event.data
        return _SET_EXPIRE if data.get("expire_at") is not None and not data.get("keepttl") else _SET
    found = EVENTS.get(t)
    if found is None:  # a type nobody declared: a generic notification of its own name
        found = EVENTS[t] = ((GENERIC, t.encode()),)
    if t in EMPTIES and not key_exists:
        return found + (_DEL,)
    return found


# --------------------------------------------------------------- the notifier


class Notifier:
    """Turns the events of each staged record into published notifications."""

    def __init__(self, server: "Server"):
        self.server = server
        self.flags = 0
        #: since the last flush: (event, key exists after it), or a
        #: PUBLISH deferred until the writes before it are staged:
        #: (channel, message, shard)
        self.pending: list[tuple] = []
        self._observer = self._observe

    def configure(self, value: str) -> None:
        """Take a new ``notify-keyspace-events`` value (text or ``EventFlags``)."""
        self.flags = getattr(value, "mask", None)
        if self.flags is None:
            self.flags = parse_flags(value)
        on = bool(self.flags & (KEYSPACE | KEYEVENT)) and bool(self.flags & ~(KEYSPACE | KEYEVENT))
        observers = self.server.keyspace.observers
        if on and self._observer not in observers:
            observers.append(self._observer)
        elif not on and self._observer in observers:
            observers.remove(self._observer)
            self.pending = [item for item in self.pending if len(item) == 3]

    def _observe(self, event: Event) -> None:
        server = self.server
        if server.loading or event.key is None or not server.pubsub:
            return  # replay notifies nobody; nor does anything when nobody listens
        self.pending.append((event, event.key in server.keyspace.dbs[event.db].data))

    def defer(self, channel: bytes, message: bytes, shard: bool) -> None:
        """Publish ``message`` at the next flush, after what is pending."""
        self.pending.append((channel, message, shard))

    def flush(self) -> None:
        """Publish the notifications of everything applied since the last
        flush (called just after the record holding it was staged)."""
        pending, self.pending = self.pending, []
        try:
            self._publish(pending)
        except Exception:  # noqa: BLE001 - the write is staged: a bug here must not cost its reply
            log.exception("publishing keyspace notifications failed")

    def _publish(self, pending: list[tuple]) -> None:
        flags = self.flags
        pubsub = self.server.pubsub
        publish = pubsub.publish
        for item in pending:
            if len(item) == 3:  # a deferred PUBLISH
                channel, message, shard = item
                (pubsub.spublish if shard else publish)(channel, message)
                continue
            event, exists = item
            key, db = event.key, event.db
            for cls, name in notifications(event, exists):
                if not flags & cls:
                    continue
                if flags & KEYSPACE:
                    publish(b"__keyspace@%d__:%s" % (db, key), name)
                if flags & KEYEVENT:
                    publish(b"__keyevent@%d__:%s" % (db, name), key)
