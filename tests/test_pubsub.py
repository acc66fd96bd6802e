"""Pub/sub: SUBSCRIBE, PSUBSCRIBE, PUBLISH, PUBSUB, the shard variants.

Functional tests over raw sockets. A ``Twin`` is one client on Fjord and the
same client on redis-server 7.0.15: every command goes to both and the reply
bytes must be identical, RESP2 and RESP3, including the messages a
subscriber receives. Where Redis's own order is a hash order (UNSUBSCRIBE
with no arguments, PUBSUB CHANNELS) the comparison is order-free.
"""

from __future__ import annotations

import socket
import time

import hiredis
import pytest
import redis

from conftest import RawClient
from logtools import logged_events

CONTEXT_ERROR = (b"-ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are "
                 b"allowed in this context\r\n")


class Twin:
    """The same client on Fjord (``f``) and on redis-server (``r``)."""

    def __init__(self, fjord_port: int, redis_port: int, resp3: bool = False):
        self.f = RawClient(fjord_port)
        self.r = RawClient(redis_port)
        if resp3:
            self.both("HELLO", "3")

    def both(self, *args) -> tuple[bytes, bytes]:
        return self.f.call(*args), self.r.call(*args)

    def __call__(self, *args, replies: int = 1) -> bytes:
        """Send one command; read ``replies`` replies from each; assert equal."""
        got, want = self.both(*args)
        for _ in range(replies - 1):
            got += self.f.read_reply()
            want += self.r.read_reply()
        assert got == want, f"{args!r}: fjord {got!r} != redis {want!r}"
        return got

    def read(self, n: int = 1) -> bytes:
        """The next ``n`` replies or messages, which must be the same."""
        got = b"".join(self.f.read_reply() for _ in range(n))
        want = b"".join(self.r.read_reply() for _ in range(n))
        assert got == want, f"fjord {got!r} != redis {want!r}"
        return got

    def quiet(self, seconds: float = 0.05) -> None:
        """Nothing more arrives on either connection."""
        for c in (self.f, self.r):
            assert not c.buf
            c.sock.settimeout(seconds)
            try:
                extra = c.sock.recv(65536)
            except OSError:
                extra = b""
            finally:
                c.sock.settimeout(10)
            assert extra == b"", f"unexpected {extra!r}"

    def close(self) -> None:
        self.f.close()
        self.r.close()


@pytest.fixture
def twins(fjord, redis_srv):
    """``twins(resp3=False)`` makes a new Twin; all are closed at the end."""
    made: list[Twin] = []
    redis.Redis(port=fjord.port).flushall()
    redis.Redis(port=redis_srv.port).flushall()

    def make(resp3: bool = False) -> Twin:
        t = Twin(fjord.port, redis_srv.port, resp3)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def parse(reply: bytes):
    reader = hiredis.Reader()
    reader.feed(reply)
    return reader.gets()


def push(*parts, resp3=False) -> bytes:
    out = [(b">%d\r\n" if resp3 else b"*%d\r\n") % len(parts)]
    for p in parts:
        if isinstance(p, int):
            out.append(b":%d\r\n" % p)
        elif p is None:
            out.append(b"_\r\n" if resp3 else b"$-1\r\n")
        else:
            out.append(b"$%d\r\n%s\r\n" % (len(p), p))
    return b"".join(out)


def wait_numsub(client: redis.Redis, channel: str, want: int) -> None:
    deadline = time.monotonic() + 5
    while client.pubsub_numsub(channel)[0][1] != want:
        assert time.monotonic() < deadline, f"NUMSUB {channel} never became {want}"
        time.sleep(0.01)


# ---------------------------------------------------------------- subscribing


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_subscribe_and_unsubscribe_confirmations(twins, resp3):
    s = twins(resp3)
    assert s("SUBSCRIBE", "a", "b", "a", replies=3) == (
        push(b"subscribe", b"a", 1, resp3=resp3) + push(b"subscribe", b"b", 2, resp3=resp3)
        + push(b"subscribe", b"a", 2, resp3=resp3))
    s("PSUBSCRIBE", "p*", "q?", "p*", replies=3)
    s("UNSUBSCRIBE", "x")  # not subscribed: still confirmed, with the count
    s("UNSUBSCRIBE", "b", "a", "b", replies=3)
    s("PUNSUBSCRIBE", "q?")
    s("UNSUBSCRIBE")  # no channels left: a nil name and the patterns' count
    s("PUNSUBSCRIBE")  # the one pattern left
    s("PUNSUBSCRIBE")
    s("SSUBSCRIBE", "s1", "s2", replies=2)
    s("SUBSCRIBE", "c")  # shard channels count apart
    s("SUNSUBSCRIBE", "s1")
    s("SUNSUBSCRIBE", "zz")
    s("SUNSUBSCRIBE")
    s("UNSUBSCRIBE")
    s.quiet()


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_unsubscribe_everything_with_no_subscriptions(twins, resp3):
    s = twins(resp3)
    for cmd in ("UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"):
        assert s(cmd) == push(cmd.lower().encode(), None, 0, resp3=resp3)
    s("SUBSCRIBE", "a")
    s("UNSUBSCRIBE", "a")
    s("UNSUBSCRIBE")
    s.quiet()


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_unsubscribe_all_leaves_every_channel(twins, resp3):
    """Redis leaves them in its hash order: compare names as a set, counts in order."""
    s = twins(resp3)
    s("SUBSCRIBE", "c1", "c2", "c3", replies=3)
    s("PSUBSCRIBE", "p1", "p2", replies=2)
    for cmd, names, left in (("UNSUBSCRIBE", {b"c1", b"c2", b"c3"}, 2), ("PUNSUBSCRIBE", {b"p1", b"p2"}, 0)):
        got, want = s.both(cmd)
        got, want = [parse(got)], [parse(want)]
        for _ in range(len(names) - 1):
            got.append(parse(s.f.read_reply()))
            want.append(parse(s.r.read_reply()))
        assert {m[1] for m in got} == {m[1] for m in want} == names
        assert [m[2] for m in got] == [m[2] for m in want] == list(range(len(names) - 1 + left, left - 1, -1))
    s("PING")
    s.quiet()


def test_subscribe_arity_errors(twins):
    s = twins()
    for cmd in ("SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "PUBLISH", "SPUBLISH"):
        s(cmd)
    s("PUBLISH", "a")
    s("PUBLISH", "a", "b", "c")


# ---------------------------------------------------------------- subscriber mode


def test_resp2_subscriber_mode_allows_only_pubsub_commands(twins):
    s = twins()
    s("SUBSCRIBE", "a")
    for cmd in (("GET", "x"), ("SET", "x", "1"), ("CLIENT", "LIST"), ("CONFIG", "GET", "port"), ("MULTI",),
                ("HELLO", "2"), ("PUBLISH", "a", "b"), ("PUBSUB", "NUMPAT"), ("SELECT", "1")):
        got = s(*cmd)
        assert got.startswith(b"-ERR Can't execute")
    assert s("GET", "x") == CONTEXT_ERROR % b"get"
    assert s("CLIENT", "LIST") == CONTEXT_ERROR % b"client|list"
    s("NOSUCHCOMMAND")  # unknown commands and wrong arity come first
    s("GET")
    assert s("PING") == b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
    assert s("PING", "hi") == b"*2\r\n$4\r\npong\r\n$2\r\nhi\r\n"
    s("PING", "a", "b")
    s("PSUBSCRIBE", "x*")
    s("UNSUBSCRIBE", "a")
    s("GET", "x")  # still a subscriber: a pattern is left
    s("PUNSUBSCRIBE")
    s("GET", "x")  # out of subscriber mode
    s("PING")
    s("SSUBSCRIBE", "sh")
    s("GET", "x")
    s("SUNSUBSCRIBE")
    s("GET", "x")


def test_resp3_subscriber_runs_any_command(twins):
    s = twins(resp3=True)
    s("SUBSCRIBE", "a")
    s("SET", "x", "1")
    s("GET", "x")
    s("PING")
    s("PING", "hi")
    s("PUBSUB", "NUMSUB", "a")
    s.both("HELLO", "2")  # now a RESP2 subscriber: restricted (the reply holds the client id)
    s("GET", "x")
    s("PING")
    s("UNSUBSCRIBE")
    s("GET", "x")


def test_quit_and_reset_in_subscriber_mode(twins, fjord):
    s = twins()
    s("SUBSCRIBE", "resetme")
    s("PSUBSCRIBE", "resetme*")
    assert s("RESET") == b"+RESET\r\n"
    s("GET", "x")  # a normal client again
    probe = redis.Redis(port=fjord.port)
    assert probe.pubsub_numsub("resetme") == [(b"resetme", 0)]
    s("SUBSCRIBE", "quitme")
    s("QUIT")
    wait_numsub(probe, "quitme", 0)


def test_disconnect_drops_subscriptions(fjord, redis_srv):
    for port in (fjord.port, redis_srv.port):
        c = redis.Redis(port=port)
        sub = RawClient(port)
        sub.call("SUBSCRIBE", "gone")
        sub.call("PSUBSCRIBE", "gone-pattern-*")
        assert c.pubsub_numsub("gone") == [(b"gone", 1)]
        numpat = c.pubsub_numpat()
        sub.close()
        wait_numsub(c, "gone", 0)
        deadline = time.monotonic() + 5
        while c.pubsub_numpat() != numpat - 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert c.publish("gone", "x") == 0


def test_client_list_shows_subscriptions(twins):
    s = twins(resp3=True)
    s("SUBSCRIBE", "a", "b", replies=2)
    s("PSUBSCRIBE", "p*")
    s("SSUBSCRIBE", "s")
    got, want = s.both("CLIENT", "INFO")

    def fields(reply: bytes) -> dict:
        line = parse(reply).decode()
        return dict(kv.split("=", 1) for kv in line.split())

    for name in ("flags", "sub", "psub", "ssub"):
        assert fields(got)[name] == fields(want)[name], name
    assert fields(got)["flags"] == "P" and fields(got)["sub"] == "2"


# ---------------------------------------------------------------- messages


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_publish_delivers_messages(twins, resp3):
    sub, pub = twins(resp3), twins()
    sub("SUBSCRIBE", "news", "")
    sub.read()
    for message in (b"hello", b"", b"\x00\r\n\xff binary", b"x" * 100_000):
        assert pub("PUBLISH", "news", message) == b":1\r\n"
        assert sub.read() == push(b"message", b"news", message, resp3=resp3)
    assert pub("PUBLISH", "", "to the empty channel") == b":1\r\n"
    sub.read()
    assert pub("PUBLISH", "nobody", "x") == b":0\r\n"
    sub.quiet()


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_pattern_messages(twins, resp3):
    sub, pub = twins(resp3), twins()
    sub("PSUBSCRIBE", "news.*")
    assert pub("PUBLISH", "news.tech", "m1") == b":1\r\n"
    assert sub.read() == push(b"pmessage", b"news.*", b"news.tech", b"m1", resp3=resp3)
    pub("PUBLISH", "sports", "m2")
    sub("SUBSCRIBE", "news.art")
    assert pub("PUBLISH", "news.art", "m3") == b":2\r\n"  # the channel, then the pattern
    sub.read(2)
    sub("PUNSUBSCRIBE", "news.*")
    for pattern, channels in ((r"h?llo", ["hello", "hllo", "heello"]), ("h[ae]llo", ["hallo", "hillo"]),
                              ("h[^e]llo", ["hallo", "hello"]), ("h[a-b]llo", ["hbllo", "hcllo"]),
                              (r"a\*b", ["a*b", "axb"]), ("*", ["anything"])):
        sub("PSUBSCRIBE", pattern)
        delivered = 0
        for channel in channels:
            delivered += int(pub("PUBLISH", channel, "m")[1:-2])
        sub.read(delivered)
        sub("PUNSUBSCRIBE", pattern)
    sub.quiet()


def test_two_subscribers_and_self_publish_in_resp3(twins):
    a, b, pub = twins(resp3=True), twins(), twins()
    a("SUBSCRIBE", "chat")
    b("SUBSCRIBE", "chat")
    assert pub("PUBLISH", "chat", "hi") == b":2\r\n"
    a.read()
    b.read()
    # A RESP3 subscriber publishing to itself gets the message before the reply.
    assert a("PUBLISH", "chat", "me", replies=2) == push(b"message", b"chat", b"me", resp3=True) + b":2\r\n"
    b.read()


def test_messages_keep_their_place_among_pipelined_replies(twins):
    s = twins(resp3=True)
    s("SUBSCRIBE", "c")
    pipeline = b"".join(
        b"*%d\r\n" % len(cmd) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in cmd)
        for cmd in ((b"GET", b"x"), (b"PUBLISH", b"c", b"one"), (b"SET", b"x", b"1"), (b"PUBLISH", b"c", b"two"),
                    (b"GET", b"x")))
    s.f.send_raw(pipeline)
    s.r.send_raw(pipeline)
    s.read(7)
    s.quiet()


def test_message_to_100_subscribers(fjord, redis_srv):
    for port in (fjord.port, redis_srv.port):
        subs = [RawClient(port) for _ in range(100)]
        try:
            for c in subs:
                c.call("SUBSCRIBE", "crowd")
            pub = RawClient(port)
            assert pub.call("PUBLISH", "crowd", "all of you") == b":100\r\n"
            for c in subs:
                assert c.read_reply() == push(b"message", b"crowd", b"all of you")
            pub.close()
        finally:
            for c in subs:
                c.close()


# ---------------------------------------------------------------- shard channels


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_shard_channels(twins, resp3):
    sub, pub = twins(resp3), twins()
    sub("SSUBSCRIBE", "sc")
    sub("SUBSCRIBE", "sc")
    pub("PUBSUB", "SHARDCHANNELS")
    pub("PUBSUB", "SHARDCHANNELS", "s*")
    pub("PUBSUB", "SHARDNUMSUB", "sc", "other")
    assert pub("SPUBLISH", "sc", "sharded") == b":1\r\n"
    assert sub.read() == push(b"smessage", b"sc", b"sharded", resp3=resp3)
    assert pub("PUBLISH", "sc", "plain") == b":1\r\n"
    sub.read()
    sub("SUNSUBSCRIBE", "sc")
    pub("SPUBLISH", "sc", "x")
    sub.quiet()


# ---------------------------------------------------------------- PUBSUB


def test_pubsub_introspection(twins):
    a, b, c = twins(), twins(resp3=True), twins()
    a("SUBSCRIBE", "intro.1", "intro.2", replies=2)
    b("SUBSCRIBE", "intro.1")
    a("PSUBSCRIBE", "intro.*")
    b("PSUBSCRIBE", "intro.*", "other.*", replies=2)
    for client in (c, b):
        client("PUBSUB", "NUMSUB")
        client("PUBSUB", "NUMSUB", "intro.1", "intro.2", "intro.3", "intro.*")
        client("PUBSUB", "NUMPAT")
        client("PUBSUB", "CHANNELS", "intro.1")
        for args in (("PUBSUB", "CHANNELS", "intro.*"), ("PUBSUB", "CHANNELS")):
            got, want = client.both(*args)
            assert sorted(parse(got)) == sorted(parse(want))
    assert sorted(parse(c.f.call("PUBSUB", "CHANNELS", "intro.*"))) == [b"intro.1", b"intro.2"]


@pytest.mark.parametrize("args", [
    ("PUBSUB",), ("PUBSUB", "HELP"), ("PUBSUB", "help", "x"), ("PUBSUB", "NOPE"), ("PUBSUB", "NUMPAT", "x"),
    ("PUBSUB", "CHANNELS", "a", "b"), ("PUBSUB", "channels", "a", "b"), ("PUBSUB", "SHARDCHANNELS", "a", "b"),
    ("PUBSUB", "NUMSUB"), ("PUBSUB", "SHARDNUMSUB"),
])
def test_pubsub_subcommand_replies(diff, args):
    diff(*args)
    diff.both("HELLO", "3")
    diff(*args)


@pytest.mark.parametrize("name", ["subscribe", "unsubscribe", "psubscribe", "punsubscribe", "publish",
                                  "pubsub|channels", "pubsub|numsub", "pubsub|numpat", "pubsub|help",
                                  "pubsub|shardchannels", "pubsub|shardnumsub"])
def test_command_info_matches_redis(diff, name):
    diff("COMMAND", "INFO", name)


# ---------------------------------------------------------------- clients and the log


def test_redis_py_pubsub(fjord):
    r = redis.Redis(port=fjord.port)
    p = r.pubsub()
    p.subscribe("rp")
    p.psubscribe("rp.*")
    assert p.get_message(timeout=1)["type"] == "subscribe"
    assert p.get_message(timeout=1)["type"] == "psubscribe"
    assert r.publish("rp", "one") == 1
    assert r.publish("rp.x", "two") == 1
    m1, m2 = p.get_message(timeout=1), p.get_message(timeout=1)
    assert (m1["type"], m1["channel"], m1["data"]) == ("message", b"rp", b"one")
    assert (m2["type"], m2["pattern"], m2["channel"], m2["data"]) == ("pmessage", b"rp.*", b"rp.x", b"two")
    p.close()
    r3 = redis.Redis(port=fjord.port, protocol=3)
    p3 = r3.pubsub()
    p3.subscribe("rp3")
    assert p3.get_message(timeout=1)["type"] == "subscribe"
    assert r.publish("rp3", "three") == 1
    assert p3.get_message(timeout=1)["data"] == b"three"
    p3.close()




def test_published_messages_are_not_logged(new_fjord):
    server = new_fjord()
    sub, pub = RawClient(server.port), RawClient(server.port)
    sub.call("SUBSCRIBE", "c")
    sub.call("PSUBSCRIBE", "*")
    for i in range(20):
        assert pub.call("PUBLISH", "c", b"m%d" % i) == b":2\r\n"
    assert pub.call("SET", "k", "v") == b"+OK\r\n"
    assert [(e.type, e.key) for e in logged_events(server.data_dir)] == [("set", b"k")]
    server.restart()
    c = RawClient(server.port)
    assert c.call("PUBSUB", "NUMPAT") == b":0\r\n"  # subscriptions are not state either
    assert c.call("GET", "k") == b"$1\r\nv\r\n"


def test_subscriber_that_stops_reading_is_disconnected(new_fjord):
    """Past 32 MB of unsent messages (Redis's pubsub output limit) the
    subscriber is closed rather than buffered for without end."""
    server = new_fjord()
    sub = RawClient(server.port)
    sub.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sub.call("SUBSCRIBE", "firehose")
    pub = redis.Redis(port=server.port)
    message = b"x" * (1024 * 1024)
    for _ in range(48):
        pub.publish("firehose", message)
    wait_numsub(pub, "firehose", 0)
    assert pub.publish("firehose", "x") == 0
