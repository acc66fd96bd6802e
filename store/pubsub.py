"""Pub/sub: which client listens to which channel or pattern, and delivery.

Three namespaces, as in Redis 7.0: channels (SUBSCRIBE/PUBLISH), patterns
(PSUBSCRIBE, Redis globs from ``store.glob`` matched against PUBLISH's
channel) and shard channels (SSUBSCRIBE/SPUBLISH; a standalone server has one
shard, so they are channels of their own that patterns never see).

A client's subscriptions live on its session (``Session.pubsub``, None while
it has none, so the command path tests one attribute); the server-wide
``PubSub`` maps each channel and pattern to its subscribers, in subscription
order. A message is encoded once per protocol and written to each subscriber
through ``Connection.push``: the client's normal output path, so it stays in
order with that client's replies and waits, like them, while records staged
before it are not yet durable (ARCHITECTURE.md invariant 3). Messages are not
data: they are never logged and leave no event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .glob import matcher
from .resp import Push, encode

if TYPE_CHECKING:
    from .server import Server
    from .session import Session

#: What a RESP2 client may run while subscribed (Redis's list; RESP3 clients
#: may run anything).
SUBSCRIBER_COMMANDS = frozenset(
    ("subscribe", "unsubscribe", "psubscribe", "punsubscribe", "ssubscribe", "sunsubscribe", "ping", "quit",
     "reset"))


#: a subscriber whose unsent output exceeds this is disconnected (Redis's
#: ``client-output-buffer-limit pubsub`` hard limit), so one that stopped
#: reading cannot make the server buffer messages until memory runs out
PUBSUB_OUTPUT_LIMIT = 32 * 1024 * 1024


def context_error(fullname: str) -> str:
    return (f"ERR Can't execute '{fullname}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
            f"are allowed in this context")


class Subscriptions:
    """One client's subscriptions (dicts used as ordered sets)."""

    __slots__ = ("channels", "patterns", "shard_channels")

    def __init__(self) -> None:
        self.channels: dict[bytes, None] = {}
        self.patterns: dict[bytes, None] = {}
        self.shard_channels: dict[bytes, None] = {}

    def count(self) -> int:
        """The figure SUBSCRIBE/PSUBSCRIBE and their inverses reply with."""
        return len(self.channels) + len(self.patterns)

    def empty(self) -> bool:
        return not (self.channels or self.patterns or self.shard_channels)


def _bulk(b: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(b), b)


def _message(kind: bytes, parts: tuple[bytes, ...]) -> tuple[bytes, bytes]:
    """A message as (RESP2 bytes, RESP3 bytes): the same frame but its header."""
    body = _bulk(kind) + b"".join(_bulk(p) for p in parts)
    n = len(parts) + 1
    return b"*%d\r\n" % n + body, b">%d\r\n" % n + body


class PubSub:
    """Every subscription on the server, and PUBLISH's delivery."""

    def __init__(self, server: "Server | None" = None):
        self.server = server
        self.channels: dict[bytes, dict["Session", None]] = {}
        self.shard_channels: dict[bytes, dict["Session", None]] = {}
        #: pattern -> (compiled matcher, subscribers)
        self.patterns: dict[bytes, tuple[Callable[[bytes], bool], dict["Session", None]]] = {}

    # ---------------------------------------------------------- subscribing

    def _subs(self, s: "Session") -> Subscriptions:
        subs = s.pubsub
        if subs is None:
            subs = s.pubsub = Subscriptions()
            s.flags = "P" if s.flags == "N" else s.flags + "P"
        return subs

    def _maybe_leave(self, s: "Session") -> None:
        """Leave subscriber mode once nothing is left."""
        if s.pubsub is not None and s.pubsub.empty():
            s.pubsub = None
            s.flags = s.flags.replace("P", "") or "N"

    def subscribe(self, s: "Session", channel: bytes, shard: bool = False) -> int:
        subs = self._subs(s)
        mine = subs.shard_channels if shard else subs.channels
        if channel not in mine:
            mine[channel] = None
            (self.shard_channels if shard else self.channels).setdefault(channel, {})[s] = None
        return len(mine) if shard else subs.count()

    def unsubscribe(self, s: "Session", channel: bytes, shard: bool = False) -> int:
        subs = s.pubsub
        if subs is None:
            return 0
        mine = subs.shard_channels if shard else subs.channels
        if channel in mine:
            del mine[channel]
            table = self.shard_channels if shard else self.channels
            listeners = table[channel]
            del listeners[s]
            if not listeners:
                del table[channel]
        count = len(mine) if shard else subs.count()
        self._maybe_leave(s)
        return count

    def psubscribe(self, s: "Session", pattern: bytes) -> int:
        subs = self._subs(s)
        if pattern not in subs.patterns:
            subs.patterns[pattern] = None
            entry = self.patterns.get(pattern)
            if entry is None:
                entry = self.patterns[pattern] = (matcher(pattern), {})
            entry[1][s] = None
        return subs.count()

    def punsubscribe(self, s: "Session", pattern: bytes) -> int:
        subs = s.pubsub
        if subs is None:
            return 0
        if pattern in subs.patterns:
            del subs.patterns[pattern]
            listeners = self.patterns[pattern][1]
            del listeners[s]
            if not listeners:
                del self.patterns[pattern]
        count = subs.count()
        self._maybe_leave(s)
        return count

    def drop(self, s: "Session") -> None:
        """Forget every subscription of ``s`` (RESET, disconnect)."""
        subs = s.pubsub
        if subs is None:
            return
        for channel in list(subs.channels):
            self.unsubscribe(s, channel)
        for channel in list(subs.shard_channels):
            self.unsubscribe(s, channel, shard=True)
        for pattern in list(subs.patterns):
            self.punsubscribe(s, pattern)  # the last one leaves subscriber mode

    # ---------------------------------------------------------- publishing

    def __bool__(self) -> bool:
        """Whether anyone listens to anything (notifications skip work if not)."""
        return bool(self.channels or self.patterns)

    def receivers(self, channel: bytes, shard: bool = False) -> int:
        """How many deliveries ``publish`` would make now."""
        if shard:
            return len(self.shard_channels.get(channel, ()))
        n = len(self.channels.get(channel, ()))
        for match, listeners in self.patterns.values():
            if match(channel):
                n += len(listeners)
        return n

    def publish(self, channel: bytes, message: bytes) -> int:
        """Deliver to the channel's subscribers, then to each matching
        pattern's; returns how many deliveries were made (PUBLISH's reply)."""
        n = 0
        listeners = self.channels.get(channel)
        if listeners:
            frames = _message(b"message", (channel, message))
            for s in listeners:
                self._deliver(s, frames)
            n = len(listeners)
        if self.patterns:
            for pattern, (match, listeners) in self.patterns.items():
                if match(channel):
                    frames = _message(b"pmessage", (pattern, channel, message))
                    for s in listeners:
                        self._deliver(s, frames)
                    n += len(listeners)
        return n

    def spublish(self, channel: bytes, message: bytes) -> int:
        listeners = self.shard_channels.get(channel)
        if not listeners:
            return 0
        frames = _message(b"smessage", (channel, message))
        for s in listeners:
            self._deliver(s, frames)
        return len(listeners)

    def _deliver(self, s: "Session", frames: tuple[bytes, bytes]) -> None:
        if self.server is None:
            return
        conn = self.server.clients.get(s.id)
        if conn is not None:
            conn.push(frames[1] if s.resp3 else frames[0])

    # ---------------------------------------------------------- PUBSUB

    def active_channels(self, pattern: bytes | None, shard: bool = False) -> list[bytes]:
        table = self.shard_channels if shard else self.channels
        if pattern is None:
            return list(table)
        match = matcher(pattern)
        return [c for c in table if match(c)]

    def numsub(self, channel: bytes, shard: bool = False) -> int:
        return len((self.shard_channels if shard else self.channels).get(channel, ()))


def confirmation(kind: bytes, name: bytes | None, count: int, resp3: bool) -> bytes:
    """One (un)subscribe confirmation: ``[kind, name, count]`` as a push."""
    return encode(Push([kind, name, count]), resp3)
