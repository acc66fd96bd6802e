"""Pub/sub commands (Redis's pubsub.c): SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE,
PUNSUBSCRIBE, PUBLISH, the shard variants (SSUBSCRIBE, SUNSUBSCRIBE,
SPUBLISH) and PUBSUB CHANNELS/NUMSUB/NUMPAT/SHARDCHANNELS/SHARDNUMSUB/HELP.

Messages are not data: these commands emit no events and nothing reaches the
log. The registry and delivery are in ``store.pubsub``; keyspace
notifications (published by the server from the log's events) in
``store.notify``.

Each (un)subscribe confirmation is a reply of its own, ``[kind, name,
count]``: a push in RESP3, an array in RESP2, so one command may answer with
several replies, as in Redis. A RESP2 client with a subscription may run only
the commands in ``store.pubsub.SUBSCRIBER_COMMANDS`` (the connection checks).
"""

from __future__ import annotations

from ..pubsub import PubSub, confirmation
from ..resp import Raw, ReplyError
from ..session import Session
from .table import command, container, subcommand

_LOCAL = PubSub()  # for sessions without a server (handlers exercised directly)


def _registry(s: Session) -> PubSub:
    return s.server.pubsub if s.server is not None else _LOCAL


def _replies(parts: list[bytes]) -> Raw:
    return Raw(b"".join(parts))


# ------------------------------------------------------------------ subscribing


@command("subscribe", -2, "pubsub noscript loading stale", group="pubsub", since="2.0.0",
         summary="Listen for messages published to the given channels",
         complexity="O(N) where N is the number of channels to subscribe to.")
def subscribe(s: Session, args: list[bytes]):
    ps = _registry(s)
    return _replies([confirmation(b"subscribe", ch, ps.subscribe(s, ch), s.resp3) for ch in args[1:]])


@command("unsubscribe", -1, "pubsub noscript loading stale", group="pubsub", since="2.0.0",
         summary="Stop listening for messages posted to the given channels",
         complexity="O(N) where N is the number of clients already subscribed to a channel.")
def unsubscribe(s: Session, args: list[bytes]):
    return _unsubscribe(s, args, b"unsubscribe", shard=False)


@command("ssubscribe", -2, "pubsub noscript loading stale", (1, -1, 1), group="pubsub", since="7.0.0",
         summary="Listen for messages published to the given shard channels",
         complexity="O(N) where N is the number of shard channels to subscribe to.")
def ssubscribe(s: Session, args: list[bytes]):
    ps = _registry(s)
    return _replies([confirmation(b"ssubscribe", ch, ps.subscribe(s, ch, shard=True), s.resp3)
                     for ch in args[1:]])


@command("sunsubscribe", -1, "pubsub noscript loading stale", (1, -1, 1), group="pubsub", since="7.0.0",
         summary="Stop listening for messages posted to the given shard channels",
         complexity="O(N) where N is the number of clients already subscribed to a shard channel.")
def sunsubscribe(s: Session, args: list[bytes]):
    return _unsubscribe(s, args, b"sunsubscribe", shard=True)


def _unsubscribe(s: Session, args: list[bytes], kind: bytes, shard: bool) -> Raw:
    """From the channels named, or from every channel when none is; with
    none to leave, one confirmation with a nil name."""
    ps = _registry(s)
    channels = args[1:]
    if not channels and s.pubsub is not None:
        channels = list(s.pubsub.shard_channels if shard else s.pubsub.channels)
    if not channels:
        count = 0 if s.pubsub is None else (len(s.pubsub.shard_channels) if shard else s.pubsub.count())
        return Raw(confirmation(kind, None, count, s.resp3))
    return _replies([confirmation(kind, ch, ps.unsubscribe(s, ch, shard), s.resp3) for ch in channels])


@command("psubscribe", -2, "pubsub noscript loading stale", group="pubsub", since="2.0.0",
         summary="Listen for messages published to channels matching the given patterns",
         complexity="O(N) where N is the number of patterns the client is already subscribed to.")
def psubscribe(s: Session, args: list[bytes]):
    ps = _registry(s)
    return _replies([confirmation(b"psubscribe", p, ps.psubscribe(s, p), s.resp3) for p in args[1:]])


@command("punsubscribe", -1, "pubsub noscript loading stale", group="pubsub", since="2.0.0",
         summary="Stop listening for messages posted to channels matching the given patterns",
         complexity="O(N+M) where N is the number of patterns the client is already subscribed and M is the "
                    "number of total patterns subscribed in the system (by any client).")
def punsubscribe(s: Session, args: list[bytes]):
    ps = _registry(s)
    patterns = args[1:]
    if not patterns and s.pubsub is not None:
        patterns = list(s.pubsub.patterns)
    if not patterns:
        return Raw(confirmation(b"punsubscribe", None, 0 if s.pubsub is None else s.pubsub.count(), s.resp3))
    return _replies([confirmation(b"punsubscribe", p, ps.punsubscribe(s, p), s.resp3) for p in patterns])


# ------------------------------------------------------------------ publishing


@command("publish", 3, "pubsub loading stale fast", group="pubsub", since="2.0.0",
         summary="Post a message to a channel",
         complexity="O(N+M) where N is the number of clients subscribed to the receiving channel and M is the "
                    "total number of subscribed patterns (by any client).")
def publish(s: Session, args: list[bytes]):
    if s.events and s.server is not None:
        return _publish_after_commit(s, args, shard=False)
    return _registry(s).publish(args[1], args[2])


@command("spublish", 3, "pubsub loading stale fast", (1, 1, 1), group="pubsub", since="7.0.0",
         summary="Post a message to a shard channel",
         complexity="O(N) where N is the number of clients subscribed to the receiving shard channel.")
def spublish(s: Session, args: list[bytes]):
    if s.events and s.server is not None:
        return _publish_after_commit(s, args, shard=True)
    return _registry(s).spublish(args[1], args[2])


def _publish_after_commit(s: Session, args: list[bytes], shard: bool) -> int:
    """PUBLISH after writes of the same EXEC that are not staged yet: the
    message goes out with those writes' notifications, in order, once the
    record is staged (so, like them, only once it is durable)."""
    s.server.notifier.defer(args[1], args[2], shard)
    return _registry(s).receivers(args[1], shard)


# ------------------------------------------------------------------ PUBSUB

pubsub = container("pubsub", group="pubsub", since="2.8.0", summary="A container for Pub/Sub commands")


def _pattern_arg(args: list[bytes]) -> bytes | None:
    if len(args) > 3:
        raise ReplyError(f"ERR unknown subcommand or wrong number of arguments for "
                         f"'{args[1].decode('utf-8', 'surrogateescape')}'. Try PUBSUB HELP.")
    return args[2] if len(args) == 3 else None


@subcommand(pubsub, "channels", -2, "pubsub loading stale", since="2.8.0", summary="List active channels",
            complexity="O(N) where N is the number of active channels, and assuming constant time pattern "
                       "matching (relatively short channels and patterns)")
def pubsub_channels(s: Session, args: list[bytes]):
    return _registry(s).active_channels(_pattern_arg(args))


@subcommand(pubsub, "numsub", -2, "pubsub loading stale", since="2.8.0",
            summary="Get the count of subscribers for channels",
            complexity="O(N) for the NUMSUB subcommand, where N is the number of requested channels")
def pubsub_numsub(s: Session, args: list[bytes]):
    ps = _registry(s)
    out: list = []
    for ch in args[2:]:
        out += [ch, ps.numsub(ch)]
    return out  # a flat array in RESP3 too, as Redis replies


@subcommand(pubsub, "numpat", 2, "pubsub loading stale", since="2.8.0",
            summary="Get the count of unique patterns pattern subscriptions", complexity="O(1)")
def pubsub_numpat(s: Session, args: list[bytes]):
    return len(_registry(s).patterns)


@subcommand(pubsub, "shardchannels", -2, "pubsub loading stale", since="7.0.0",
            summary="List active shard channels",
            complexity="O(N) where N is the number of active shard channels, and assuming constant time pattern "
                       "matching (relatively short shard channels).")
def pubsub_shardchannels(s: Session, args: list[bytes]):
    return _registry(s).active_channels(_pattern_arg(args), shard=True)


@subcommand(pubsub, "shardnumsub", -2, "pubsub loading stale", since="7.0.0",
            summary="Get the count of subscribers for shard channels",
            complexity="O(N) for the SHARDNUMSUB subcommand, where N is the number of requested shard channels")
def pubsub_shardnumsub(s: Session, args: list[bytes]):
    ps = _registry(s)
    out: list = []
    for ch in args[2:]:
        out += [ch, ps.numsub(ch, shard=True)]
    return out


_HELP = [
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
]


@subcommand(pubsub, "help", 2, "loading stale", since="6.2.0", complexity="O(1)",
            summary="Show helpful text about the different subcommands")
def pubsub_help(s: Session, args: list[bytes]):
    return list(_HELP)

