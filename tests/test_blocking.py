"""Blocking pops: BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP BZPOPMIN BZPOPMAX BZMPOP,
CLIENT UNBLOCK and INFO's blocked_clients (store/blocking.py,
store/commands/blocking.py).

Functional tests over real sockets. Scenarios with several clients run the
same steps against Fjord and a real redis-server 7.0.15 and compare every
reply byte for byte (``both``); a step waits until the server reports the
clients blocked before anything pushes, so no test depends on sleeps.
"""

from __future__ import annotations

import socket
import time

import pytest
import redis

from conftest import RawClient


def _cmd(*args) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)


def send(c: RawClient, *args) -> None:
    c.send_raw(_cmd(*args))


def pending(c: RawClient, wait: float = 0.05) -> bytes | None:
    """The next reply if one comes within ``wait`` seconds, else None."""
    c.sock.settimeout(wait)
    try:
        return c.read_reply()
    except (socket.timeout, TimeoutError):
        return None
    finally:
        c.sock.settimeout(10)


def blocked_clients(c: RawClient) -> int:
    info = c.call("INFO", "clients")
    line = next(x for x in info.split(b"\r\n") if x.startswith(b"blocked_clients:"))
    return int(line.split(b":")[1])


def wait_blocked(c: RawClient, n: int, timeout: float = 5.0) -> None:
    """Return once the server counts ``n`` blocked clients."""
    deadline = time.monotonic() + timeout
    while blocked_clients(c) != n:
        assert time.monotonic() < deadline, f"never saw {n} blocked clients"
        time.sleep(0.002)


class Clients:
    """Raw clients on one server, closed (and seen unblocked) at the end."""

    def __init__(self, port: int):
        self.port = port
        self.opened: list[RawClient] = []
        self.ctl = self.new()

    def new(self) -> RawClient:
        c = RawClient(self.port)
        self.opened.append(c)
        return c

    def close(self) -> None:
        for c in self.opened[1:]:
            c.close()
        wait_blocked(self.ctl, 0)
        self.ctl.close()


@pytest.fixture
def fj(r, fjord):
    cs = Clients(fjord.port)
    yield cs
    cs.close()


@pytest.fixture
def both(r, rr, fjord, redis_srv):
    """Runs a scenario ``fn(clients)`` on Fjord and on redis-server; the
    transcripts (lists of reply bytes) must be equal."""
    opened = []

    def run(fn):
        transcripts = []
        for port in (fjord.port, redis_srv.port):
            cs = Clients(port)
            opened.append(cs)
            transcripts.append(fn(cs))
        assert transcripts[0] == transcripts[1]
        return transcripts[0]

    yield run
    for cs in opened:
        cs.close()


# ------------------------------------------------------------------ wake-up


def test_blpop_woken_by_lpush_from_another_client(fj):
    waiter = fj.new()
    send(waiter, "BLPOP", "q", "0")
    wait_blocked(fj.ctl, 1)
    assert pending(waiter) is None
    t0 = time.monotonic()
    assert fj.ctl.call("LPUSH", "q", "job") == b":1\r\n"
    assert waiter.read_reply() == b"*2\r\n$1\r\nq\r\n$3\r\njob\r\n"
    assert time.monotonic() - t0 < 0.5
    assert fj.ctl.call("EXISTS", "q") == b":0\r\n"
    assert blocked_clients(fj.ctl) == 0


def test_fairness_longest_waiting_first(both):
    def scenario(cs):
        waiters = [cs.new() for _ in range(3)]
        for i, w in enumerate(waiters):
            send(w, "BRPOP", "q", "0")
            wait_blocked(cs.ctl, i + 1)
        out = []
        for item, w in zip((b"a", b"b", b"c"), waiters):
            out.append(cs.ctl.call("RPUSH", "q", item))
            out.append(pending(w, 2))
        out.append(cs.ctl.call("EXISTS", "q"))
        return out

    out = both(scenario)
    assert out[1] == b"*2\r\n$1\r\nq\r\n$1\r\na\r\n"
    assert out[5] == b"*2\r\n$1\r\nq\r\n$1\r\nc\r\n"


def test_one_push_serves_several_waiters_in_order(both):
    def scenario(cs):
        a, b, c, d = (cs.new() for _ in range(4))
        send(a, "BLMPOP", "0", "2", "other", "q", "RIGHT", "COUNT", "2")
        wait_blocked(cs.ctl, 1)
        send(b, "BZPOPMIN", "q", "0")  # wrong type for a list: stays blocked
        wait_blocked(cs.ctl, 2)
        send(c, "BLPOP", "q", "q", "0")
        wait_blocked(cs.ctl, 3)
        send(d, "BRPOP", "q", "0")
        wait_blocked(cs.ctl, 4)
        out = [cs.ctl.call("RPUSH", "q", "1", "2", "3", "4")]
        out += [pending(x, 2) for x in (a, c, d)]
        out += [pending(b), blocked_clients(cs.ctl), cs.ctl.call("LRANGE", "q", "0", "-1")]
        cs.ctl.call("DEL", "q")
        out.append(cs.ctl.call("ZADD", "q", "1", "m"))
        out.append(pending(b, 2))
        return out

    out = both(scenario)
    assert out[1] == b"*2\r\n$1\r\nq\r\n*2\r\n$1\r\n4\r\n$1\r\n3\r\n"
    assert out[4] is None and out[5] == 1


def test_multiple_keys_served_by_whichever_is_filled(both):
    def scenario(cs):
        a, b = cs.new(), cs.new()
        send(a, "BLPOP", "k1", "k2", "0")
        wait_blocked(cs.ctl, 1)
        send(b, "BLPOP", "k2", "k1", "0")
        wait_blocked(cs.ctl, 2)
        out = [cs.ctl.call("RPUSH", "k2", "x"), pending(a, 2)]
        # in one EXEC k1 is filled first: the key order of readiness rules
        for c in (("MULTI",), ("RPUSH", "k2", "y"), ("RPUSH", "k1", "z"), ("EXEC",)):
            out.append(cs.ctl.call(*c))
        out.append(pending(b, 2))
        out.append(cs.ctl.call("LRANGE", "k1", "0", "-1"))
        return out

    out = both(scenario)
    assert out[1] == b"*2\r\n$2\r\nk2\r\n$1\r\nx\r\n"
    assert out[6] == b"*2\r\n$2\r\nk2\r\n$1\r\ny\r\n"


def test_blmove_and_brpoplpush_move_the_element(both):
    def scenario(cs):
        a, b, c = cs.new(), cs.new(), cs.new()
        send(a, "BLMOVE", "src", "mid", "LEFT", "RIGHT", "0")
        wait_blocked(cs.ctl, 1)
        send(b, "BRPOPLPUSH", "mid", "dst", "0")  # served by a's push in turn
        wait_blocked(cs.ctl, 2)
        cs.ctl.call("SET", "str", "v")
        send(c, "BLMOVE", "src2", "str", "LEFT", "LEFT", "0")
        wait_blocked(cs.ctl, 3)
        out = [cs.ctl.call("RPUSH", "src", "e1", "e2"), pending(a, 2), pending(b, 2)]
        out += [cs.ctl.call("LRANGE", k, "0", "-1") for k in ("src", "mid", "dst")]
        # a destination of the wrong type: WRONGTYPE, and the element stays
        out += [cs.ctl.call("RPUSH", "src2", "kept"), pending(c, 2), cs.ctl.call("LRANGE", "src2", "0", "-1")]
        return out

    out = both(scenario)
    assert out[1] == out[2] == b"$2\r\ne1\r\n"
    assert out[5] == b"*1\r\n$2\r\ne1\r\n"
    assert out[7].startswith(b"-WRONGTYPE")


def test_sorted_set_pops_woken_by_zadd(both):
    def scenario(cs):
        a, b, c = cs.new(), cs.new(), cs.new()
        c.call("HELLO", "3")
        send(a, "BZPOPMIN", "z", "0")
        wait_blocked(cs.ctl, 1)
        send(b, "BZMPOP", "0", "1", "z", "MAX", "COUNT", "2")
        wait_blocked(cs.ctl, 2)
        send(c, "BZPOPMAX", "z", "0")
        wait_blocked(cs.ctl, 3)
        out = [cs.ctl.call("ZADD", "z", "1", "a", "2.5", "b", "3", "c", "4", "d")]
        out += [pending(x, 2) for x in (a, b, c)]
        out.append(cs.ctl.call("EXISTS", "z"))
        # ZINCRBY and ZUNIONSTORE create keys too
        send(a, "BZPOPMIN", "z", "0")
        wait_blocked(cs.ctl, 1)
        out += [cs.ctl.call("ZINCRBY", "z", "1.5", "m"), pending(a, 2)]
        cs.ctl.call("ZADD", "src", "7", "n")
        send(a, "BZMPOP", "0", "2", "y", "z", "MIN")
        wait_blocked(cs.ctl, 1)
        out += [cs.ctl.call("ZUNIONSTORE", "z", "1", "src"), pending(a, 2)]
        return out

    out = both(scenario)
    assert out[1] == b"*3\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\n1\r\n"
    assert out[3] == b"*3\r\n$1\r\nz\r\n$1\r\nb\r\n,2.5\r\n"  # RESP3 double


def test_rename_move_and_swapdb_make_keys_ready(both):
    def scenario(cs):
        a = cs.new()
        out = []
        send(a, "BLPOP", "dst", "0")
        wait_blocked(cs.ctl, 1)
        cs.ctl.call("RPUSH", "src", "renamed")
        out += [cs.ctl.call("RENAME", "src", "dst"), pending(a, 2)]
        send(a, "BLPOP", "k", "0")
        wait_blocked(cs.ctl, 1)
        cs.ctl.call("SELECT", "1")
        cs.ctl.call("RPUSH", "k", "moved")
        out += [cs.ctl.call("MOVE", "k", "0"), pending(a, 2)]
        cs.ctl.call("RPUSH", "k", "swapped")
        send(a, "BLPOP", "k", "0")  # db 0
        wait_blocked(cs.ctl, 1)
        out += [cs.ctl.call("SWAPDB", "0", "1"), pending(a, 2), cs.ctl.call("DBSIZE")]
        cs.ctl.call("SELECT", "0")
        return out

    out = both(scenario)
    assert out[1] == b"*2\r\n$3\r\ndst\r\n$7\r\nrenamed\r\n"


def test_push_that_dirties_a_watch_still_serves_the_waiter(both):
    """Two keyspace observers (WATCH, blocked clients): the first one
    unregistering itself must not hide the event from the second."""
    def scenario(cs):
        watcher, waiter = cs.new(), cs.new()
        out = [watcher.call("WATCH", "q")]
        send(waiter, "BLPOP", "q", "0")
        wait_blocked(cs.ctl, 1)
        out += [cs.ctl.call("LPUSH", "q", "x"), pending(waiter, 2)]
        out += [watcher.call("MULTI"), watcher.call("PING"), watcher.call("EXEC")]
        return out

    out = both(scenario)
    assert out[2] == b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n" and out[5] == b"*-1\r\n"


def test_key_emptied_again_keeps_waiters_blocked(both):
    def scenario(cs):
        a = cs.new()
        send(a, "BLPOP", "q", "0")
        wait_blocked(cs.ctl, 1)
        out = [cs.ctl.call(*c) for c in (("MULTI",), ("RPUSH", "q", "x"), ("LPOP", "q"), ("EXEC",))]
        out += [pending(a), blocked_clients(cs.ctl), cs.ctl.call("RPUSH", "q", "y"), pending(a, 2)]
        return out

    out = both(scenario)
    assert out[4] is None and out[5] == 1


# ------------------------------------------------------------------ timeouts


@pytest.mark.parametrize("proto,null", [("2", b"*-1\r\n"), ("3", b"_\r\n")])
def test_timeout_answers_null_on_time(fj, proto, null):
    c = fj.new()
    c.call("HELLO", proto)
    t0 = time.monotonic()
    assert c.call("BLPOP", "nothing", "0.1") == null
    elapsed = time.monotonic() - t0
    assert 0.09 <= elapsed < 0.6, elapsed
    assert blocked_clients(fj.ctl) == 0


def test_timeout_replies_match_redis(both):
    commands = [
        ("BLPOP", "n1", "n2", "0.01"), ("BRPOP", "n", "0.01"), ("BLMOVE", "n", "d", "LEFT", "RIGHT", "0.01"),
        ("BRPOPLPUSH", "n", "d", "0.01"), ("BLMPOP", "0.01", "1", "n", "LEFT"), ("BZPOPMIN", "n", "0.01"),
        ("BZPOPMAX", "n", "0.01"), ("BZMPOP", "0.01", "1", "n", "MIN", "COUNT", "3"),
        ("BLPOP", "n", "0.0001"),  # rounds up to 1 ms, not to 0 (forever)
    ]

    def scenario(cs):
        c = cs.new()
        out = [c.call(*cmd) for cmd in commands]
        c.call("HELLO", "3")
        return out + [c.call(*cmd) for cmd in commands]

    both(scenario)


def test_pipelined_commands_wait_behind_the_blocked_one(both):
    def scenario(cs):
        a = cs.new()
        a.send_raw(_cmd("BLPOP", "q", "0") + _cmd("PING") + _cmd("RPUSH", "q", "mine"))
        wait_blocked(cs.ctl, 1)
        out = [pending(a)]
        # the pusher's whole pipeline runs before the woken client's queue
        cs.ctl.send_raw(_cmd("RPUSH", "q", "x") + _cmd("LPOP", "q") + _cmd("LLEN", "q"))
        out += [cs.ctl.read_reply() for _ in range(3)]
        out += [pending(a, 2) for _ in range(3)]
        out.append(cs.ctl.call("LRANGE", "q", "0", "-1"))
        return out

    out = both(scenario)
    assert out[0] is None
    assert out[4:7] == [b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n", b"+PONG\r\n", b":1\r\n"]


# ------------------------------------------------------------------ leaving


def test_disconnect_while_blocked_loses_nothing(fj):
    a = fj.new()
    send(a, "BLPOP", "q", "0")
    wait_blocked(fj.ctl, 1)
    a.close()
    wait_blocked(fj.ctl, 0)
    assert fj.ctl.call("RPUSH", "q", "kept") == b":1\r\n"
    assert fj.ctl.call("LRANGE", "q", "0", "-1") == b"*1\r\n$4\r\nkept\r\n"


def test_client_kill_then_push_in_one_pipeline(both):
    def scenario(cs):
        a = cs.new()
        cid = a.call("CLIENT", "ID")[1:-2]
        send(a, "BLPOP", "q", "0")
        wait_blocked(cs.ctl, 1)
        cs.ctl.send_raw(_cmd("CLIENT", "KILL", "ID", cid) + _cmd("RPUSH", "q", "kept"))
        out = [cs.ctl.read_reply(), cs.ctl.read_reply()]
        wait_blocked(cs.ctl, 0)
        return out + [cs.ctl.call("LRANGE", "q", "0", "-1")]

    assert both(scenario)[2] == b"*1\r\n$4\r\nkept\r\n"


def test_client_unblock(both):
    def scenario(cs):
        a = cs.new()
        cid = a.call("CLIENT", "ID")[1:-2]
        out = [cs.ctl.call("CLIENT", "UNBLOCK", cid)]  # not blocked
        send(a, "BLMOVE", "q", "d", "LEFT", "LEFT", "0")
        wait_blocked(cs.ctl, 1)
        flags = [f for f in cs.ctl.call("CLIENT", "LIST", "ID", cid).split() if f.startswith(b"flags=")]
        out += [flags, cs.ctl.call("CLIENT", "UNBLOCK", cid, "TIMEOUT"), pending(a, 2), blocked_clients(cs.ctl)]
        send(a, "BZPOPMAX", "z", "0")
        wait_blocked(cs.ctl, 1)
        out += [cs.ctl.call("CLIENT", "UNBLOCK", cid, "error"), pending(a, 2)]
        send(a, "WAIT", "1", "0")
        wait_blocked(cs.ctl, 1)
        out += [cs.ctl.call("CLIENT", "UNBLOCK", cid), pending(a, 2)]
        for bad in ((cid, "later"), ("x",), ("x", "nope"), ("-1",), ("99999",), (cid, "error", "x"), ()):
            out.append(cs.ctl.call("CLIENT", "UNBLOCK", *bad))
        return out

    out = both(scenario)
    assert out[1] == [b"flags=b"]
    assert out[3] == b"*-1\r\n" and out[6] == b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"


def test_inside_exec_nothing_blocks(diff):
    diff("RPUSH", "l", "a")
    diff("MULTI")
    for cmd in (("BLPOP", "none", "0"), ("BRPOPLPUSH", "none", "d", "0"), ("BLMOVE", "none", "d", "LEFT", "LEFT", "0"),
                ("BLMPOP", "0", "1", "none", "LEFT"), ("BZPOPMIN", "none", "0"), ("BZMPOP", "0", "1", "none", "MAX"),
                ("BRPOP", "l", "0")):
        diff(*cmd)
    diff("EXEC")
    diff.both("HELLO", "3")
    diff("MULTI")
    diff("BLMOVE", "none", "d", "LEFT", "LEFT", "0")
    diff("BZPOPMAX", "none", "0")
    diff("EXEC")


# ------------------------------------------------------------------ immediate answers and errors


def test_immediate_answers_match_redis(diff):
    diff("RPUSH", "l", "a", "b", "c", "d", "e", "f", "g", "h")
    diff("ZADD", "z", "1", "x", "2", "y", "3.5", "w", "-inf", "low")
    for cmd in (("BLPOP", "none", "l", "0"), ("BRPOP", "l", "none", "0"),
                ("BLMPOP", "0", "2", "none", "l", "RIGHT", "COUNT", "2"), ("BLMOVE", "l", "m", "LEFT", "RIGHT", "0"),
                ("BRPOPLPUSH", "m", "m", "0"), ("BLMOVE", "l", "l", "RIGHT", "LEFT", "1"), ("LRANGE", "l", "0", "-1"),
                ("BZPOPMIN", "none", "z", "0"), ("BZPOPMAX", "z", "0"), ("BZMPOP", "0", "1", "z", "MIN", "COUNT", "9"),
                ("EXISTS", "z")):
        diff(*cmd)
    diff.both("HELLO", "3")
    diff("ZADD", "z", "1.25", "x", "2", "y")
    diff("BZPOPMAX", "z", "0")
    diff("BZMPOP", "0", "1", "z", "MAX")
    diff("BLMPOP", "0", "1", "l", "LEFT", "COUNT", "100")


@pytest.mark.parametrize("cmd", [
    ("BLPOP", "k"), ("BLPOP", "k", "x"), ("BLPOP", "k", "-1"), ("BLPOP", "k", "nan"), ("BLPOP", "k", "inf"),
    ("BLPOP", "k", "1e300"), ("BLPOP", "k", "1e16"), ("BLPOP", "k", ""), ("BLPOP", "k", " 1"),
    ("BRPOP", "k", "-0.5"), ("BLMOVE", "a", "b", "UP", "LEFT", "x"), ("BLMOVE", "a", "b", "LEFT", "RIGHT", "x"),
    ("BLMOVE", "a", "b", "LEFT", "RIGHT"), ("BRPOPLPUSH", "a", "b", "-2"), ("BLMPOP", "x", "1", "k", "LEFT"),
    ("BLMPOP", "-1", "0", "k", "LEFT"), ("BLMPOP", "0", "1", "k", "MIDDLE"), ("BLMPOP", "0", "2", "k", "LEFT"),
    ("BLMPOP", "0", "1", "k", "LEFT", "COUNT", "0"), ("BLMPOP", "0", "1", "k", "LEFT", "COUNT"),
    ("BLMPOP", "0", "1", "k", "LEFT", "COUNT", "1", "COUNT", "2"), ("BLMPOP", "0", "1"),
    ("BLMPOP", "0", "9223372036854775807", "k", "LEFT"), ("BZPOPMIN", "k", "-2"), ("BZPOPMAX", "k"),
    ("BZMPOP", "0", "0", "k", "MIN"), ("BZMPOP", "0", "1", "k", "UP"), ("BZMPOP", "-1", "1", "k", "MIN"),
    ("BZMPOP", "0", "1", "k", "MIN", "COUNT", "-1"), ("BZMPOP", "x", "1", "k", "MAX"),
    ("BLPOP", "none", "str", "0"), ("BLMOVE", "str", "d", "LEFT", "LEFT", "0"), ("BLMOVE", "l", "str", "LEFT", "LEFT", "0"),
    ("BZPOPMIN", "str", "0"), ("BZMPOP", "0", "2", "none", "str", "MIN"), ("BLMPOP", "0", "1", "str", "LEFT"),
    ("BZPOPMIN", "l", "0"),
])
def test_errors_match_redis(diff, cmd):
    diff("SET", "str", "v")
    diff("RPUSH", "l", "a")
    diff(*cmd)
    diff("LRANGE", "l", "0", "-1")


def test_command_info_matches_redis(diff):
    for name in ("blpop", "brpop", "blmove", "brpoplpush", "blmpop", "bzpopmin", "bzpopmax", "bzmpop",
                 "client|unblock"):
        got, want = diff.both("COMMAND", "INFO", name)
        # the first six fields and the ACL categories (key specs are derived, see introspection.py)
        assert got.split(b"*0\r\n")[0] == want.split(b"*0\r\n")[0], name


# ------------------------------------------------------------------ the log


def test_pops_served_to_blocked_clients_are_on_the_log(new_fjord):
    srv = new_fjord()
    ctl = RawClient(srv.port)
    a, b = RawClient(srv.port), RawClient(srv.port)
    send(a, "BLPOP", "q", "0")
    wait_blocked(ctl, 1)
    send(b, "BLMOVE", "src", "dst", "LEFT", "RIGHT", "0")
    wait_blocked(ctl, 2)
    assert ctl.call("RPUSH", "q", "one", "two") == b":2\r\n"
    assert a.read_reply() == b"*2\r\n$1\r\nq\r\n$3\r\none\r\n"
    assert ctl.call("RPUSH", "src", "moved") == b":1\r\n"
    assert b.read_reply() == b"$5\r\nmoved\r\n"
    for c in (ctl, a, b):
        c.close()
    srv.restart()
    r = redis.Redis(port=srv.port)
    assert r.lrange("q", 0, -1) == [b"two"]
    assert r.exists("src") == 0
    assert r.lrange("dst", 0, -1) == [b"moved"]
    r.close()
