"""Keyspace notifications (``notify-keyspace-events``), against redis-server.

Functional, differential tests: with the same flags on Fjord and on
redis-server 7.0.15, a subscriber on each (``PSUBSCRIBE __key*@*__:*``)
watches the same commands run on both, and the notifications must arrive in
the same order with the same bytes. After each command a marker message is
published on a channel of its own; the subscriber reads up to it, so "no
notification" is checked without waiting for a timeout.

The durability tests use a private server and ``strace`` (as
tests/test_durability.py does) to hold the log's fsync: a notification is
information about a write and must not arrive before that write is durable.
"""

from __future__ import annotations

import time

import pytest
import redis

from conftest import RawClient
from test_durability import fsync_delayed, is_logged, reply_within, resp

PATTERN = "__key*@*__:*"
MARKER = "notifications-test-marker"


class Watch:
    """A subscriber and a writer on each server; notifications compared."""

    def __init__(self, fjord_port: int, redis_port: int, flags: str, resp3: bool = False):
        self.writers = (RawClient(fjord_port), RawClient(redis_port))
        self.subscribers = (RawClient(fjord_port), RawClient(redis_port))
        #: publish the markers (not the writers: they may be inside MULTI)
        self.markers = (RawClient(fjord_port), RawClient(redis_port))
        for w in self.writers:
            assert w.call("CONFIG", "SET", "notify-keyspace-events", flags) == b"+OK\r\n"
        for s in self.subscribers:
            if resp3:
                s.call("HELLO", "3")
            s.call("PSUBSCRIBE", PATTERN)
            s.call("SUBSCRIBE", MARKER)

    def run(self, *args, same_reply: bool = True) -> list[bytes]:
        """Run one command on both; return the notifications it caused
        (identical on both servers, as raw message bytes)."""
        got, want = (w.call(*args) for w in self.writers)
        if same_reply:
            assert got == want, f"{args!r}: fjord {got!r} != redis {want!r}"
        seen = [self._until_marker(m, s) for m, s in zip(self.markers, self.subscribers)]
        assert seen[0] == seen[1], f"{args!r}:\n fjord {seen[0]!r}\n redis {seen[1]!r}"
        return seen[0]

    def script(self, *commands) -> list[bytes]:
        out = []
        for cmd in commands:
            out += self.run(*cmd)
        return out

    @staticmethod
    def _until_marker(marker: RawClient, subscriber: RawClient) -> list[bytes]:
        marker.call("PUBLISH", MARKER, "end")
        out = []
        while True:
            msg = subscriber.read_reply()
            if MARKER.encode() in msg:
                return out
            out.append(msg)

    def close(self) -> None:
        for c in self.writers + self.subscribers + self.markers:
            c.close()


@pytest.fixture
def watch(fjord, redis_srv):
    """``watch(flags, resp3=False)``; flags go back to "" afterwards (the
    servers are shared with other test modules)."""
    made: list[Watch] = []
    for port in (fjord.port, redis_srv.port):
        redis.Redis(port=port).flushall()

    def make(flags: str = "KEA", resp3: bool = False) -> Watch:
        w = Watch(fjord.port, redis_srv.port, flags, resp3)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()
    for port in (fjord.port, redis_srv.port):
        c = redis.Redis(port=port)
        c.config_set("notify-keyspace-events", "")
        c.flushall()
        c.close()


def keyevents(messages: list[bytes]) -> list[tuple[bytes, bytes]]:
    """(event, key) of each ``__keyevent`` message (for readable asserts)."""
    out = []
    for m in messages:
        parts = m.split(b"\r\n")
        channel, payload = parts[6], parts[8]
        if channel.startswith(b"__keyevent@"):
            out.append((channel.split(b":", 1)[1], payload))
    return out


# ---------------------------------------------------------------- the setting


@pytest.mark.parametrize("flags", ["KEA", "Ex", "KEAmn", "mnKE", "g$lshzxetd", "A$", "AK", "KKgg", "Kn", "Ed",
                                   "ndtexzhsl$", "", "K", "KEq", "E ", "a", "KEA!"])
def test_config_set_and_get_spell_flags_as_redis(diff, flags):
    try:
        diff("CONFIG", "SET", "notify-keyspace-events", flags)
        diff("CONFIG", "GET", "notify-keyspace-events")
    finally:
        diff.both("CONFIG", "SET", "notify-keyspace-events", "")


def test_config_get_by_pattern_lists_the_setting(fjord):
    c = redis.Redis(port=fjord.port, decode_responses=True)
    try:
        c.config_set("notify-keyspace-events", "KEA")
        assert c.config_get("notify-*") == {"notify-keyspace-events": "AKE"}
    finally:
        c.config_set("notify-keyspace-events", "")


def test_flags_from_the_config_file(new_fjord, tmp_path):
    conf = tmp_path / "fjord.conf"
    conf.write_text('notify-keyspace-events "Elg"\n')
    server = new_fjord("--config", str(conf))
    c = server.client(decode_responses=True)
    assert c.config_get("notify-keyspace-events") == {"notify-keyspace-events": "glE"}
    sub = RawClient(server.port)
    sub.call("SUBSCRIBE", "__keyevent@0__:rpush")
    c.rpush("l", "a")
    assert sub.read_reply() == b"*3\r\n$7\r\nmessage\r\n$20\r\n__keyevent@0__:rpush\r\n$1\r\nl\r\n"


# ---------------------------------------------------------------- per command, compared with Redis

SCENARIOS = {
    "strings": [
        ("SET", "s", "1"), ("SET", "s", "2", "EX", "100"), ("SETEX", "s2", "100", "x"), ("PSETEX", "s3", "100000", "x"),
        ("SET", "s", "3", "KEEPTTL"), ("SET", "plain", "1"), ("SET", "plain", "2", "KEEPTTL"), ("SET", "s", "4", "GET"),
        ("SET", "s", "5", "NX"), ("SET", "nx", "5", "NX"), ("SET", "none", "5", "XX"), ("SETNX", "s", "x"),
        ("SETNX", "new", "x"), ("MSET", "m1", "1", "m2", "2"), ("MSETNX", "m3", "1", "m4", "2"),
        ("MSETNX", "m3", "1", "m5", "2"), ("GETSET", "m1", "9"), ("GETEX", "s", "PERSIST"), ("GETEX", "s", "EX", "50"),
        ("GETEX", "s"), ("GETEX", "s", "PXAT", "1"), ("GETDEL", "m1"), ("GETDEL", "m1"), ("INCR", "n"),
        ("DECRBY", "n", "3"), ("INCRBY", "n", "10"), ("DECR", "n"), ("INCRBYFLOAT", "n", "1.5"), ("APPEND", "a", "x"),
        ("APPEND", "a", "y"), ("SETRANGE", "a", "5", "z"), ("SETRANGE", "r", "0", ""), ("INCR", "a"),
    ],
    "keys": [
        ("SET", "k1", "v"), ("SET", "k2", "v"), ("SET", "k3", "v"), ("DEL", "k1", "k2", "nokey"), ("UNLINK", "k3"),
        ("SET", "e", "v"), ("EXPIRE", "e", "100"), ("PEXPIRE", "e", "100000"), ("EXPIREAT", "e", "99999999999"),
        ("PEXPIREAT", "e", "99999999999000"), ("EXPIRE", "e", "100", "NX"), ("EXPIRE", "e", "200", "GT"),
        ("PERSIST", "e"), ("PERSIST", "e"), ("EXPIRE", "nokey", "10"), ("EXPIRE", "e", "-1"), ("SET", "p", "v"),
        ("PEXPIREAT", "p", "1"), ("SET", "a", "1"), ("RENAME", "a", "b"), ("RENAMENX", "b", "c"), ("SET", "d", "1"),
        ("RENAME", "c", "d"), ("RENAME", "d", "d"), ("RENAMENX", "d", "d"), ("SET", "x", "1"), ("RENAMENX", "x", "d"),
        ("MOVE", "d", "1"), ("MOVE", "x", "1"), ("COPY", "x", "y"), ("COPY", "x", "y"), ("COPY", "x", "y", "REPLACE"),
        ("COPY", "x", "y", "DB", "2"), ("SELECT", "2"), ("SET", "in2", "v"), ("DEL", "y"), ("SELECT", "0"),
        ("SWAPDB", "0", "1"), ("FLUSHDB",), ("FLUSHALL",),
    ],
    "lists": [
        ("RPUSH", "l", "a", "b", "c"), ("LPUSH", "l", "z"), ("LPUSHX", "l", "y"), ("RPUSHX", "l", "x"),
        ("RPUSHX", "nol", "y"), ("LPOP", "l"), ("RPOP", "l", "2"), ("LSET", "l", "0", "q"),
        ("LINSERT", "l", "BEFORE", "q", "w"), ("LINSERT", "l", "AFTER", "nope", "w"), ("LREM", "l", "0", "q"),
        ("LREM", "l", "0", "nope"), ("LTRIM", "l", "0", "0"), ("LPOP", "l"),
        ("LPOP", "l"), ("RPUSH", "l", "a", "b", "c"), ("LMOVE", "l", "l2", "LEFT", "RIGHT"),
        ("LMOVE", "l", "l", "LEFT", "RIGHT"), ("RPOPLPUSH", "l", "l2"),
        ("LMPOP", "2", "l", "l2", "LEFT", "COUNT", "10"),
        ("RPUSH", "l", "a"), ("LMOVE", "l", "l", "LEFT", "LEFT"), ("LMOVE", "l", "l3", "LEFT", "LEFT"),
        ("RPUSH", "t", "a", "b"), ("LTRIM", "t", "5", "10"), ("RPUSH", "r", "a", "b", "a"), ("LREM", "r", "1", "a"),
        ("LREM", "r", "0", "a"), ("LREM", "r", "0", "b"), ("RPUSH", "p", "1", "2"), ("RPOP", "p", "5"),
        ("LMPOP", "1", "l2", "RIGHT"),
    ],
    "hashes": [
        ("HSET", "h", "a", "1", "b", "2"), ("HSET", "h", "a", "1"), ("HSETNX", "h", "c", "3"),
        ("HSETNX", "h", "c", "4"),
        ("HMSET", "h", "d", "4"), ("HINCRBY", "h", "a", "1"), ("HINCRBYFLOAT", "h", "a", "1.5"),
        ("HINCRBY", "h2", "n", "5"), ("HDEL", "h", "a", "b", "c", "nope"), ("HDEL", "h", "nope"), ("HDEL", "h", "d"),
        ("HDEL", "h2", "n"),
    ],
    "sets": [
        ("SADD", "s", "a", "b", "c"), ("SADD", "s", "a"), ("SREM", "s", "a", "nope"), ("SREM", "s", "nope"),
        ("SADD", "one", "x"), ("SPOP", "one"), ("SADD", "one", "x"), ("SPOP", "one", "5"), ("SPOP", "one"),
        ("SADD", "two", "x", "y"), ("SPOP", "two", "0"),
        ("SADD", "m", "a", "b"), ("SMOVE", "m", "t", "a"), ("SMOVE", "m", "t", "nope"), ("SMOVE", "m", "t", "b"),
        ("SADD", "s1", "a", "b"), ("SADD", "s2", "b", "c"), ("SINTERSTORE", "d", "s1", "s2"),
        ("SUNIONSTORE", "d", "s1", "s2"), ("SDIFFSTORE", "d", "s1", "s2"), ("SINTERSTORE", "d", "s1", "nokey"),
        ("SINTERSTORE", "d", "s1", "nokey"), ("SREM", "s", "b", "c"),
    ],
    "zsets": [
        ("ZADD", "z", "1", "a", "2", "b", "3", "c"), ("ZADD", "z", "1", "a"), ("ZADD", "z", "XX", "5", "a"),
        ("ZADD", "z", "NX", "5", "a"), ("ZADD", "z", "INCR", "1", "a"), ("ZADD", "z", "GT", "0", "a"),
        ("ZADD", "z", "CH", "9", "a"), ("ZINCRBY", "z", "1", "a"), ("ZREM", "z", "a", "nope"), ("ZREM", "z", "nope"),
        ("ZADD", "z", "1", "a", "4", "d", "5", "e", "6", "f"), ("ZREMRANGEBYSCORE", "z", "0", "1"),
        ("ZREMRANGEBYSCORE", "z", "100", "200"), ("ZREMRANGEBYRANK", "z", "0", "0"),
        ("ZREMRANGEBYLEX", "z", "[x", "[y"),
        ("ZPOPMIN", "z"), ("ZPOPMAX", "z", "10"), ("ZADD", "z", "1", "a", "2", "b"), ("ZADD", "y", "2", "b", "3", "c"),
        ("ZUNIONSTORE", "d", "2", "z", "y"), ("ZINTERSTORE", "d", "2", "z", "y"), ("ZDIFFSTORE", "d", "2", "z", "y"),
        ("ZRANGESTORE", "d", "z", "0", "-1"), ("ZRANGESTORE", "d", "z", "5", "10"),
        ("ZRANGESTORE", "d", "z", "5", "10"),
        ("ZMPOP", "1", "z", "MIN", "COUNT", "1"), ("ZMPOP", "1", "z", "MIN", "COUNT", "5"),
        ("ZADD", "lex", "0", "a", "0", "b"), ("ZREMRANGEBYLEX", "lex", "-", "+"),
    ],
}


@pytest.mark.parametrize("group", sorted(SCENARIOS))
def test_notifications_match_redis(watch, group):
    w = watch("KEA")
    seen = w.script(*SCENARIOS[group])
    assert seen, "the scenario made no notifications at all"


def test_notifications_match_redis_in_resp3(watch):
    w = watch("KEA", resp3=True)
    seen = w.script(("SET", "k", "v", "EX", "100"), ("RPUSH", "l", "a"), ("LPOP", "l"), ("HSET", "h", "f", "v"))
    assert seen[0].startswith(b">4\r\n$8\r\npmessage\r\n")


def test_notification_channels_and_payloads(watch):
    w = watch("KEA")
    seen = w.run("SET", "k\x00ey", "v", "EX", "100")
    assert keyevents(seen) == [(b"set", b"k\x00ey"), (b"expire", b"k\x00ey")]
    assert b"$19\r\n__keyspace@0__:k\x00ey\r\n$3\r\nset\r\n" in seen[0]
    w.run("SELECT", "5")
    assert keyevents(w.run("LPUSH", "l", "a")) == [(b"lpush", b"l")]
    w.run("SELECT", "0")


def test_lmove_to_another_key_notifies_the_push_first(watch):
    w = watch("E")  # no class: nothing at all
    assert w.script(("RPUSH", "src", "a"), ("LMOVE", "src", "dst", "LEFT", "RIGHT")) == []
    w = watch("El")
    assert keyevents(w.run("RPUSH", "src2", "a", "b")) == [(b"rpush", b"src2")]
    assert keyevents(w.run("LMOVE", "src2", "dst", "LEFT", "RIGHT")) == [(b"rpush", b"dst"), (b"lpop", b"src2")]


@pytest.mark.parametrize("flags", ["Kx", "E$", "Kl", "Eg", "KEgx", "AK", "E", "A", "K", "Elshz", "KEA", "", "KE$lm"])
def test_flag_subsets_filter_like_redis(watch, flags):
    w = watch(flags)
    w.script(("SET", "s", "1", "EX", "100"), ("INCR", "n"), ("RPUSH", "l", "a"), ("LPOP", "l"), ("SADD", "st", "a"),
             ("HSET", "h", "f", "v"), ("ZADD", "z", "1", "m"), ("DEL", "s", "n"), ("SET", "p", "v"),
             ("PEXPIREAT", "p", "1"), ("RENAME", "h", "h2"), ("EXPIRE", "z", "100"), ("PERSIST", "z"))


def test_notifications_off_reach_nobody(watch):
    w = watch("")
    assert w.script(("SET", "a", "1"), ("DEL", "a"), ("RPUSH", "l", "x")) == []


def test_transaction_notifies_each_effect(watch, fjord):
    w = watch("KEA")
    w.run("MULTI")
    for cmd in (("RPUSH", "l", "a"), ("LPOP", "l"), ("RPUSH", "l", "b"), ("SET", "k", "v", "EX", "10"),
                ("PUBLISH", "__keyspace@0__:announce", "done"), ("DEL", "k")):
        w.run(*cmd)
    seen = w.run("EXEC")
    assert keyevents(seen) == [(b"rpush", b"l"), (b"lpop", b"l"), (b"del", b"l"), (b"rpush", b"l"), (b"set", b"k"),
                               (b"expire", b"k"), (b"del", b"k")]
    # the message published in the transaction comes between the writes it followed and preceded
    assert b"announce" in seen[-3] and b"done" in seen[-3]


def test_resp3_client_gets_its_own_notification_before_the_reply(fjord, redis_srv):
    replies = []
    for port in (fjord.port, redis_srv.port):
        c = RawClient(port)
        c.call("HELLO", "3")
        c.call("CONFIG", "SET", "notify-keyspace-events", "E$")
        try:
            c.call("SUBSCRIBE", "__keyevent@0__:set")
            c.send_raw(resp("GET", "x") + resp("SET", "self", "v") + resp("SET", "self", "w"))
            replies.append(b"".join(c.read_reply() for _ in range(5)))
        finally:
            c.call("CONFIG", "SET", "notify-keyspace-events", "")
            c.call("DEL", "self")
            c.close()
    assert replies[0] == replies[1]
    assert replies[0].index(b">3\r\n$7\r\nmessage") < replies[0].index(b"+OK")


# ---------------------------------------------------------------- expiry


def _read_until_expired(c: RawClient, timeout: float = 5.0) -> list[bytes]:
    out = []
    deadline = time.monotonic() + timeout
    c.sock.settimeout(timeout)
    while b"__keyevent@0__:expired" not in (out[-1] if out else b""):
        assert time.monotonic() < deadline, f"no expired notification: {out!r}"
        out.append(c.read_reply())
    c.sock.settimeout(10)
    return out


def test_active_expiry_notifies_expired(watch):
    w = watch("KEA")
    w.run("SET", "short", "v", "PX", "100")
    seen = [_read_until_expired(s) for s in w.subscribers]
    assert seen[0] == seen[1]
    assert keyevents(seen[0]) == [(b"expired", b"short")]
    assert w.run("EXISTS", "short") == []


def test_lazy_expiry_notifies_expired(watch):
    w = watch("Ex")
    w.run("DEBUG", "SET-ACTIVE-EXPIRE", "0", same_reply=False)
    try:
        w.run("SET", "lazy", "v", "PX", "30")
        time.sleep(0.1)
        # Fjord's active expiry may have got there first: one "expired" either way.
        assert keyevents(w.run("GET", "lazy")) == [(b"expired", b"lazy")]
    finally:
        w.run("DEBUG", "SET-ACTIVE-EXPIRE", "1", same_reply=False)


# ---------------------------------------------------------------- durability


def test_notification_arrives_only_once_its_write_is_logged(new_fjord):
    server = new_fjord()
    writer, sub = RawClient(server.port), RawClient(server.port)
    writer.call("CONFIG", "SET", "notify-keyspace-events", "E$")
    sub.call("SUBSCRIBE", "__keyevent@0__:set")
    for i in range(50):
        key, value = b"k:%d" % i, b"v:%d" % i
        writer.send_raw(resp("SET", key, value))
        assert sub.read_reply().endswith(b"$%d\r\n%s\r\n" % (len(key), key))
        assert is_logged(server.data_dir, key, value), "a notification came before its record was on the log"
        assert writer.read_reply() == b"+OK\r\n"


def test_notification_waits_for_the_fsync(new_fjord):
    """Deterministic: the fsync of the write is held for half a second."""
    server = new_fjord()
    writer, sub = RawClient(server.port), RawClient(server.port)
    writer.call("CONFIG", "SET", "notify-keyspace-events", "KEA")
    sub.call("PSUBSCRIBE", PATTERN)
    with fsync_delayed(server.proc.pid):
        writer.send_raw(resp("SET", "held", "future"))
        deadline = time.monotonic() + 5
        while not is_logged(server.data_dir, b"held", b"future"):
            assert time.monotonic() < deadline
            time.sleep(0.005)
        # The record is written but not yet durable: nothing may arrive yet.
        assert not reply_within(sub, 0.2), "a notification arrived before its write was durable"
        assert b"__keyspace@0__:held" in sub.read_reply()
        assert writer.read_reply() == b"+OK\r\n"
