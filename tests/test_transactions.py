"""Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.

Functional tests. Most compare reply bytes with redis-server 7.0.15 (``diff``),
in RESP2 and RESP3, with a second pair of clients (``other``) for changes made
by someone else. The log tests read the segment files from outside the
server: one EXEC must be ONE record holding all its events, so a crash or a
torn write can never leave half a transaction.
"""

from __future__ import annotations

import os
import time

import pytest
import redis

from conftest import Differ, RawClient
from store import errors
from streams import segment
from streams.events import decode_record
from test_durability import strace

NULL2 = b"*-1\r\n"


@pytest.fixture
def other(diff, fjord, redis_srv):
    """A second client on each server (the ``diff`` fixture flushed both)."""
    d = Differ(fjord.port, redis_srv.port)
    yield d
    d.close()


def transaction(d: Differ, *commands) -> bytes:
    """MULTI, each command (asserting QUEUED on both), EXEC; EXEC's reply."""
    d("MULTI")
    for c in commands:
        assert d(*c) == b"+QUEUED\r\n"
    return d("EXEC")


def resp3(*clients: Differ) -> None:
    for d in clients:
        f, r = d.both("HELLO", "3")
        assert f[:1] == r[:1] == b"%"


# ---------------------------------------------------------------- errors and queueing


def test_errors_outside_and_nesting(diff):
    assert diff("EXEC") == b"-ERR EXEC without MULTI\r\n"
    assert diff("DISCARD") == b"-ERR DISCARD without MULTI\r\n"
    diff("UNWATCH")
    diff("MULTI")
    assert diff("MULTI") == b"-ERR MULTI calls can not be nested\r\n"
    assert diff("WATCH", "k") == b"-ERR WATCH inside MULTI is not allowed\r\n"
    diff("SET", "k", "v")
    assert diff("EXEC") == b"*1\r\n+OK\r\n"  # neither error failed the transaction
    diff("GET", "k")


@pytest.mark.parametrize("proto", [2, 3])
def test_exec_replies_every_command_errors_included(diff, proto):
    if proto == 3:
        resp3(diff)
    got = transaction(diff, ("SET", "k", "v"), ("LPUSH", "k", "x"), ("INCR", "k"), ("GET", "k"),
                      ("HSET", "h", "f", "v"), ("HGETALL", "h"), ("ZADD", "z", "1.5", "m"),
                      ("ZSCORE", "z", "m"), ("GET", "nokey"), ("SMEMBERS", "h"), ("PING",), ("ECHO", "hi"))
    assert got.startswith(b"*12\r\n+OK\r\n-WRONGTYPE")
    diff("GET", "k")  # runtime errors roll nothing back
    diff("HGETALL", "h")
    assert diff("MULTI") == b"+OK\r\n"
    assert diff("EXEC") == b"*0\r\n"


def test_commands_refused_before_queueing_abort_exec(diff):
    cases = [("NOSUCH", "x"), ("GET",), ("MULTI", "x"), ("WATCH",), ("DISCARD", "x"), ("SHUTDOWN",)]
    for bad in cases:
        diff("MULTI")
        diff("SET", "k", "v")
        assert diff(*bad).startswith(b"-ERR ")
        assert diff("EXEC") == b"-EXECABORT Transaction discarded because of previous errors.\r\n", bad
    assert diff("EXISTS", "k") == b":0\r\n"


def test_refused_exec_discards_with_the_reason(diff, other):
    diff("MULTI")
    diff("SET", "k", "v")
    assert diff("EXEC", "x") == (b"-EXECABORT Transaction discarded because of: wrong number of arguments "
                                 b"for 'exec' command\r\n")
    diff("EXEC")
    diff("EXEC", "x")  # outside MULTI too, and it unwatches
    diff("WATCH", "k")
    diff("EXEC", "x")
    other("SET", "k", "changed")
    transaction(diff, ("GET", "k"))


def test_exec_without_auth(diff, fjord, redis_srv):
    diff("CONFIG", "SET", "requirepass", "pw")
    try:
        fresh = Differ(fjord.port, redis_srv.port)
        assert fresh("EXEC") == b"-EXECABORT Transaction discarded because of: NOAUTH Authentication required.\r\n"
        fresh("MULTI")
        fresh("AUTH", "pw")
        fresh("MULTI")
        fresh("AUTH", "wrong")  # queued: AUTH runs inside EXEC
        fresh("EXEC")
        fresh.close()
    finally:
        diff("CONFIG", "SET", "requirepass", "")


def test_discard_and_reset(diff):
    diff("MULTI")
    diff("SET", "k", "v")
    assert diff("DISCARD") == b"+OK\r\n"
    diff("EXISTS", "k")
    diff("MULTI")
    diff("SET", "k", "v")
    assert diff("RESET") == b"+RESET\r\n"
    diff("EXEC")
    diff("EXISTS", "k")


def test_hello_inside_multi_changes_the_protocol_of_later_replies(diff):
    diff("HSET", "h", "f", "v")
    for proto in ("3", "2"):
        diff("MULTI")
        diff.both("HELLO", proto)
        diff("HGETALL", "h")
        diff("GET", "nokey")
        f, r = diff.both("EXEC")
        # HELLO's own reply holds each server's client id: compare the rest
        assert f[:4] == r[:4] == b"*3\r\n"
        tail = b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n_\r\n" if proto == "3" else b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n$-1\r\n"
        assert f.endswith(tail) and r.endswith(tail)


def test_quit_inside_multi_closes(diff, fjord, redis_srv):
    c = Differ(fjord.port, redis_srv.port)
    c("MULTI")
    c("SET", "k", "v")
    assert c("QUIT") == b"+OK\r\n"
    for raw in (c.f, c.r):
        assert raw.sock.recv(10) == b""
    c.close()
    diff("EXISTS", "k")


# ---------------------------------------------------------------- commands that would block


def test_wait_inside_multi_answers_at_once(diff):
    t0 = time.monotonic()
    assert transaction(diff, ("SET", "k", "v"), ("WAIT", "1", "2000"), ("WAIT", "0", "0")) == \
        b"*3\r\n+OK\r\n:0\r\n:0\r\n"
    assert time.monotonic() - t0 < 1.5


def test_blocking_pop_inside_multi_times_out_at_once(diff):
    t0 = time.monotonic()
    transaction(diff, ("BLPOP", "nolist", "0"), ("RPUSH", "l", "a"), ("BLPOP", "l", "0"))
    assert time.monotonic() - t0 < 1.5


# ---------------------------------------------------------------- WATCH


def check_watch(d: Differ, succeeds: bool, null: bytes = NULL2) -> None:
    """MULTI PING EXEC: PONG if no watched key changed, else the null array."""
    got = transaction(d, ("PING",))
    assert got == (b"*1\r\n+PONG\r\n" if succeeds else null), got


@pytest.fixture
def watcher(diff, other):
    """The client pair that watches (``diff``); ``other`` changes keys."""
    return diff


@pytest.mark.parametrize("proto", [2, 3])
def test_watch_sees_another_clients_write(watcher, other, proto):
    null = NULL2
    if proto == 3:
        resp3(watcher)
        null = b"_\r\n"
    other("SET", "k", "1")
    watcher("WATCH", "k")
    other("GET", "k")  # reads change nothing
    check_watch(watcher, True)
    for change in [("SET", "k", "2"), ("EXPIRE", "k", "100"), ("DEL", "k"), ("LPUSH", "k", "x")]:
        watcher("WATCH", "k", "other")
        other(*change)
        check_watch(watcher, False, null)
    watcher("WATCH", "never")
    other("DEL", "never")  # deleting nothing changes nothing
    check_watch(watcher, True)


def test_watch_sees_own_writes_but_not_its_transactions(watcher):
    watcher("WATCH", "k")
    watcher("SET", "k", "mine")
    check_watch(watcher, False)
    watcher("WATCH", "k")
    transaction(watcher, ("SET", "k", "in-exec"))
    watcher("MULTI")
    watcher("GET", "k")
    assert watcher("EXEC") == b"*1\r\n$7\r\nin-exec\r\n"


def test_watch_is_per_database(watcher, other):
    watcher("SELECT", "1")
    watcher("WATCH", "k")
    other("SET", "k", "db0")
    check_watch(watcher, True)
    watcher("WATCH", "k")
    other("SELECT", "1")
    other("SET", "k", "db1")
    check_watch(watcher, False)


def test_watch_sees_keys_moved_in(watcher, other):
    other("SET", "src", "1")
    watcher("WATCH", "dst")
    other("RENAME", "src", "dst")
    check_watch(watcher, False)
    other("SET", "c", "1")
    watcher("WATCH", "copy")
    other("COPY", "c", "copy")
    check_watch(watcher, False)
    other("SET", "mv", "1")
    watcher("SELECT", "1")
    watcher("WATCH", "mv")
    other("MOVE", "mv", "1")
    check_watch(watcher, False)


def test_unwatch_discard_exec_and_reset_forget_the_keys(watcher, other):
    for forget in [("UNWATCH",), ("RESET",)]:
        watcher("WATCH", "k")
        other("SET", "k", "x")
        watcher(*forget)
        check_watch(watcher, True)
    watcher("WATCH", "k")
    watcher("MULTI")
    watcher("DISCARD")
    other("SET", "k", "y")
    check_watch(watcher, True)
    watcher("WATCH", "k")
    check_watch(watcher, True)
    other("SET", "k", "z")
    check_watch(watcher, True)  # the EXEC before unwatched


def test_watch_expiry(watcher, other):
    # live when watched, expired at EXEC: fails, deleted yet or not
    watcher("SET", "e", "1", "PX", "50")
    watcher("WATCH", "e")
    time.sleep(0.1)
    check_watch(watcher, False)
    # already expired when watched: its deletion changes nothing...
    watcher("SET", "e", "1", "PX", "10")
    time.sleep(0.05)
    watcher("WATCH", "e")
    other("GET", "e")
    check_watch(watcher, True)
    # ... but writing it does
    watcher("SET", "e", "1", "PX", "10")
    time.sleep(0.05)
    watcher("WATCH", "e")
    other("SET", "e", "2")
    check_watch(watcher, False)
    # a TTL far away changes nothing by itself
    watcher("SET", "far", "1", "EX", "100")
    watcher("WATCH", "far")
    check_watch(watcher, True)


def test_flushes_touch_only_keys_that_existed(watcher, other):
    """Redis 7.0 dirties the watchers of the keys FLUSHDB/FLUSHALL/SWAPDB
    actually removed or replaced, not of every watched key."""
    watcher("WATCH", "absent")
    other("FLUSHALL")
    check_watch(watcher, True)
    other("SET", "k", "1")
    watcher("WATCH", "k")
    other("FLUSHALL")
    check_watch(watcher, False)
    other("SET", "k", "1")
    watcher("WATCH", "k")
    other("FLUSHDB")
    check_watch(watcher, False)
    other("SET", "k", "1")
    watcher("WATCH", "k")
    other("SELECT", "1")
    other("FLUSHDB")  # another database
    check_watch(watcher, True)
    # SWAPDB: neither database has the key / the other one has it
    watcher("WATCH", "zz")
    other("SWAPDB", "0", "1")
    check_watch(watcher, True)
    other("SET", "only-in-1", "x")  # other is on db 1
    watcher("WATCH", "only-in-1")
    other("SWAPDB", "0", "1")
    check_watch(watcher, False)
    # an expired key, then FLUSHALL: nothing logical changed
    watcher("SET", "e", "1", "PX", "10")
    time.sleep(0.05)
    watcher("WATCH", "e")
    other("FLUSHALL")
    check_watch(watcher, True)


def test_watch_with_redis_py(r, fjord):
    """The optimistic-locking loop clients write, over a real client."""
    r.set("counter", 1)
    other = fjord.client()
    with r.pipeline() as pipe:
        pipe.watch("counter")
        value = int(pipe.get("counter"))
        other.incr("counter")
        pipe.multi()
        pipe.set("counter", value + 10)
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert r.get("counter") == b"2"
    with r.pipeline() as pipe:
        pipe.watch("counter")
        value = int(pipe.get("counter"))
        pipe.multi()
        pipe.set("counter", value + 10)
        pipe.incr("counter")
        assert pipe.execute() == [True, 13]
    other.close()


def test_a_watching_client_that_leaves_is_forgotten(fjord, r):
    gone = RawClient(fjord.port)
    assert gone.call("WATCH", "k") == b"+OK\r\n"
    gone.close()
    time.sleep(0.05)
    r.set("k", "v")  # nothing to tell anyone any more
    stays = RawClient(fjord.port)
    stays.call("WATCH", "k")
    r.set("k", "w")
    stays.call("MULTI")
    stays.call("PING")
    assert stays.call("EXEC") == NULL2
    stays.close()


# ---------------------------------------------------------------- CLIENT LIST


def fields(reply: bytes) -> dict[str, str]:
    line = reply.split(b"\r\n", 1)[1].split(b"\n", 1)[0].decode()
    return dict(kv.split("=", 1) for kv in line.split(" "))


def test_client_info_shows_multi_and_dirty(diff, other):
    f, r = diff.both("CLIENT", "INFO")
    assert (fields(f)["flags"], fields(f)["multi"]) == (fields(r)["flags"], fields(r)["multi"]) == ("N", "-1")
    diff("MULTI")
    diff("SET", "a", "b")
    diff("CLIENT", "INFO")
    f, r = diff.both("EXEC")
    body_f, body_r = f.split(b"\r\n", 2)[2], r.split(b"\r\n", 2)[2]
    want = ("x", "2")
    assert (fields(body_f)["flags"], fields(body_f)["multi"]) == want
    assert (fields(body_r)["flags"], fields(body_r)["multi"]) == want
    diff("WATCH", "a")
    other("SET", "a", "c")
    f, r = diff.both("CLIENT", "INFO")
    assert fields(f)["flags"] == fields(r)["flags"] == "d"


# ---------------------------------------------------------------- the log


def log_records(data_dir: str) -> list[list]:
    """Every record's events, read from the segment files as an outside
    consumer would."""
    log_dir = os.path.join(data_dir, "log")
    out = []
    for name in sorted(n for n in os.listdir(log_dir) if n.endswith(".log")):
        data = open(os.path.join(log_dir, name), "rb").read()
        pos = 0
        while pos < len(data):
            offset, payload, pos = segment.parse(data, pos)
            out.append(decode_record(offset, payload).events)
    return out


def test_one_exec_is_one_record(new_fjord):
    srv = new_fjord()
    c = srv.client()
    c.set("before", "1")
    with c.pipeline() as p:
        p.set("a", "1").incrby("n", 5).lpush("l", "x", "y").delete("before").hset("h", "f", "v")
        p.lpush("a", "wrongtype").sadd("s", "m")
        with pytest.raises(redis.ResponseError):  # redis-py raises the first error...
            p.execute()
    assert c.get("a") == b"1" and c.smembers("s") == {b"m"}  # ... though everything else ran
    records = log_records(srv.data_dir)
    assert [(e.type, e.key) for e in records[-1]] == [
        ("set", b"a"), ("incrby", b"n"), ("lpush", b"l"), ("del", b"before"), ("hset", b"h"), ("sadd", b"s")]
    assert [(e.type, e.key) for e in records[-2]] == [("set", b"before")]
    count = len(records)
    c.execute_command("MULTI")
    c.execute_command("GET", "a")
    c.execute_command("EXEC")  # reads only: nothing to log
    with c.pipeline() as p:
        p.watch("a")
        c.set("a", "2")
        p.multi()
        p.set("never", "1")
        with pytest.raises(redis.WatchError):
            p.execute()
    assert len(log_records(srv.data_dir)) == count + 1  # the SET alone
    srv.restart()  # replay
    c = srv.client()
    assert c.get("a") == b"2" and c.get("n") == b"5" and c.lrange("l", 0, -1) == [b"y", b"x"]
    assert c.get("before") is None and c.get("never") is None


def test_a_torn_exec_record_is_dropped_whole(new_fjord):
    srv = new_fjord()
    c = srv.client()
    c.set("before", "1")
    with c.pipeline() as p:
        for i in range(50):
            p.set(f"tx:{i}", "x" * 100)
        p.execute()
    srv.kill()
    log_dir = os.path.join(srv.data_dir, "log")
    path = os.path.join(log_dir, sorted(n for n in os.listdir(log_dir) if n.endswith(".log"))[-1])
    data = open(path, "rb").read()
    start = pos = 0
    while pos < len(data):
        start = pos
        _, _, pos = segment.parse(data, pos)
    assert pos - start > 5000  # the last record is the EXEC's, all 50 SETs
    with open(path, "r+b") as f:
        f.truncate(start + (pos - start) // 2)  # a write torn by the crash
    srv.start()
    c = srv.client()
    assert c.get("before") == b"1"
    assert c.keys("tx:*") == []


def test_exec_refused_while_the_log_fails(new_fjord):
    """After a failed append, an EXEC that would write is refused whole with
    EXECABORT and the reason, as Redis refuses it under MISCONF; one that
    only reads runs."""
    srv = new_fjord()
    a, b = RawClient(srv.port), RawClient(srv.port)
    a.call("SET", "k", "old")
    a.call("MULTI")
    assert a.call("SET", "k", "new") == b"+QUEUED\r\n"
    a.call("GET", "k")
    with strace(srv.proc.pid, "-e", "trace=fdatasync", "-e", "inject=fdatasync:error=EIO"):
        assert b.call("SET", "x", "y").startswith(b"-MISCONF")
        reply = a.call("EXEC")
    why = (errors.misconf_log("Input/output error"), errors.LOADING)
    assert reply in [b"-" + (errors.EXECABORT_BECAUSE + w).encode() + b"\r\n" for w in why], reply
    assert a.call("EXEC") == b"-ERR EXEC without MULTI\r\n"  # discarded
    deadline = time.monotonic() + 10
    while (reply := a.call("GET", "k")) != b"$3\r\nold\r\n":
        assert reply.startswith(b"-LOADING") and time.monotonic() < deadline, reply
        time.sleep(0.05)
    a.call("MULTI")
    a.call("GET", "k")
    assert a.call("EXEC") == b"*1\r\n$3\r\nold\r\n"
