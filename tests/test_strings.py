"""String commands: GET SET ... LCS, against a real redis-server.

Most tests are differential (``diff``): the same command goes to Fjord and to
redis-server 7.0 and the reply bytes must be identical, errors included.
redis-py (``r``) checks what bytes cannot (TTLs, which move with the clock);
the replay test SIGKILLs a private server and checks every value and TTL
came back from the log.
"""

from __future__ import annotations

import platform
import random
import time

import pytest

from logtools import logged_records as read_records

X86_64 = platform.machine() in ("x86_64", "AMD64")

OK = b"+OK\r\n"
NIL = b"$-1\r\n"




# ------------------------------------------------------------------ GET / SET


def test_get_set_roundtrip_binary_and_empty(diff):
    assert diff("GET", "missing") == NIL
    assert diff("SET", "k", "v") == OK
    assert diff("GET", "k") == b"$1\r\nv\r\n"
    diff("SET", "k", "")
    assert diff("GET", "k") == b"$0\r\n\r\n"
    binary = bytes(range(256)) * 4
    diff("SET", b"\x00\xff key", binary)
    assert diff("GET", b"\x00\xff key") == b"$1024\r\n" + binary + b"\r\n"


@pytest.mark.parametrize("opts", [
    ["NX", "XX"], ["XX", "NX"], ["EX", "0"], ["EX", "-1"], ["PX", "0"], ["EXAT", "0"], ["PXAT", "-5"],
    ["EX", "10", "PX", "10"], ["PX", "10", "EXAT", "10"], ["EX", "10", "KEEPTTL"], ["KEEPTTL", "PX", "5"],
    ["EX"], ["EX", "abc"], ["EX", "1.5"], ["EX", "abc", "NX", "XX"], ["EX", "abc", "EX", "100"],
    ["EX", "100", "EX", "200"], ["NX", "NX"], ["GET", "GET"], ["KEEPTTL", "KEEPTTL"], ["PERSIST"],
    ["FOO"], ["nx", "get"], ["xx", "get", "px", "100000"], ["EX", "9223372036854775"],
    ["EX", "9223372036854776"], ["PX", "9223372036854775807"], ["PXAT", "9223372036854775807"],
    ["EXAT", "9223372036854775"], ["EXAT", "9223372036854776"], ["EX", "99999999999999999999"],
])
def test_set_option_combinations_match_redis(diff, opts):
    diff("SET", "k", "old")
    diff("SET", "k", "v", *opts)
    diff("GET", "k")
    diff("SET", "fresh", "v", *opts)
    diff("GET", "fresh")


def test_set_nx_xx_get(diff):
    diff.run_all(("SET", "k", "1", "XX"), ("GET", "k"), ("SET", "k", "1", "NX"), ("SET", "k", "2", "NX"),
            ("GET", "k"), ("SET", "k", "3", "XX"), ("GET", "k"), ("SET", "k", "4", "GET"),
            ("SET", "k", "5", "NX", "GET"), ("SET", "new", "6", "NX", "GET"), ("SET", "other", "7", "XX", "GET"),
            ("GET", "k"), ("GET", "new"), ("EXISTS", "other"))


def test_set_expiry_options(r):
    now = time.time()
    r.set("ex", "v", ex=100)
    r.set("px", "v", px=100_000)
    r.execute_command("SET", "exat", "v", "EXAT", int(now) + 100)
    r.execute_command("SET", "pxat", "v", "PXAT", int(now * 1000) + 100_000)
    for key in ("ex", "px", "exat", "pxat"):
        assert 98_000 < r.pttl(key) <= 100_000, key
    r.set("ex", "v2")
    assert r.ttl("ex") == -1, "a plain SET clears the TTL"
    r.set("px", "v2", keepttl=True)
    assert r.pttl("px") > 98_000 and r.get("px") == b"v2"
    r.set("nottl", "v", keepttl=True)
    assert r.ttl("nottl") == -1
    r.execute_command("SET", "past", "v", "PXAT", 1)
    assert r.get("past") is None and r.exists("past") == 0


def test_set_short_ttl_expires(r):
    r.set("k", "v", px=30)
    assert r.get("k") == b"v"
    time.sleep(0.06)
    assert r.get("k") is None


def test_get_set_arity(diff):
    diff.run_all(("GET",), ("GET", "a", "b"), ("SET", "k"), ("SET",), ("get",), ("sEt", "k"))


# ------------------------------------------------------------------ SETNX SETEX PSETEX GETSET GETDEL


def test_setnx_setex_psetex(diff, r):
    diff.run_all(("SETNX", "k", "1"), ("SETNX", "k", "2"), ("GET", "k"), ("SETNX", "k"),
            ("SETEX", "k", "0", "v"), ("SETEX", "k", "-3", "v"), ("SETEX", "k", "abc", "v"),
            ("SETEX", "k", "9223372036854775807", "v"), ("PSETEX", "k", "0", "v"), ("PSETEX", "k", "x", "v"),
            ("PSETEX", "k", "9223372036854775807", "v"), ("SETEX", "k", "100", "v1"), ("GET", "k"),
            ("PSETEX", "p", "100000", "v2"), ("GET", "p"), ("SETEX", "k", "10"), ("PSETEX", "k"))
    assert 99 <= r.ttl("k") <= 100
    assert 98_000 < r.pttl("p") <= 100_000
    assert r.setnx("k", "x") is False and r.ttl("k") > 0, "SETNX on an existing key changes nothing"


def test_getset_getdel(diff, r):
    diff.run_all(("GETSET", "k", "1"), ("GETSET", "k", "2"), ("GET", "k"), ("GETSET", "k"),
            ("GETDEL", "k"), ("GETDEL", "k"), ("EXISTS", "k"), ("GETDEL",), ("GETDEL", "a", "b"))
    r.set("t", "v", ex=100)
    assert r.getset("t", "w") == b"v" and r.ttl("t") == -1, "GETSET clears the TTL"


# ------------------------------------------------------------------ GETEX


@pytest.mark.parametrize("opts", [
    [], ["EX", "0"], ["EX", "abc"], ["PX", "-1"], ["EXAT", "0"], ["PERSIST", "EX", "10"], ["EX", "10", "PERSIST"],
    ["NX"], ["XX"], ["GET"], ["KEEPTTL"], ["EX", "10", "PX", "10"], ["EX"], ["PERSIST", "PERSIST"],
    ["EX", "10", "EX", "20"], ["PX", "9223372036854775807"], ["FOO"],
])
def test_getex_options_match_redis(diff, opts):
    diff("GETEX", "missing", *opts)
    diff("SET", "k", "v")
    diff("GETEX", "k", *opts)
    diff("GET", "k")


def test_getex_sets_and_removes_ttl(r):
    r.set("k", "v")
    assert r.getex("k", ex=100) == b"v" and 99 <= r.ttl("k") <= 100
    assert r.getex("k", px=50_000) == b"v" and 48_000 < r.pttl("k") <= 50_000
    assert r.getex("k", exat=int(time.time()) + 200) == b"v" and 198 <= r.ttl("k") <= 200
    assert r.getex("k") == b"v" and r.ttl("k") > 0, "no option leaves the TTL alone"
    assert r.getex("k", persist=True) == b"v" and r.ttl("k") == -1
    assert r.getex("k", pxat=1) == b"v"
    assert r.exists("k") == 0, "an absolute time already past deletes the key"


# ------------------------------------------------------------------ MGET MSET MSETNX


def test_mget_mset_msetnx(diff):
    diff.run_all(("MSET", "a", "1", "b", "2", "a", "3"), ("MGET", "a", "b", "c"), ("MSET", "a"),
            ("MSET", "a", "1", "b"), ("MSET",), ("MGET",), ("MSETNX", "c", "1", "a", "9"), ("MGET", "a", "c"),
            ("MSETNX", "c", "1", "d", "2"), ("MGET", "c", "d"), ("MSETNX", "e", "1", "f"), ("MSETNX", "x"),
            ("MSETNX", "x", "1", "x", "2"), ("GET", "x"))


def test_mset_replaces_ttl(r):
    r.set("a", "v", ex=100)
    r.mset({"a": "1", "b": "2"})
    assert r.ttl("a") == -1


# ------------------------------------------------------------------ INCR family


def test_incr_decr_family(diff):
    diff.run_all(("INCR", "n"), ("INCR", "n"), ("DECR", "n"), ("INCRBY", "n", "10"), ("DECRBY", "n", "-5"),
            ("INCRBY", "n", "-100"), ("GET", "n"), ("DECR", "fresh"), ("INCRBY", "n", "abc"),
            ("INCRBY", "n", "1.5"), ("INCRBY", "n", " 1"), ("INCRBY", "n", "+1"), ("INCRBY", "n", "01"),
            ("INCRBY", "n", "9223372036854775808"), ("DECRBY", "n", "-9223372036854775808"),
            ("SET", "max", "9223372036854775807"), ("INCR", "max"), ("INCRBY", "max", "0"),
            ("SET", "min", "-9223372036854775808"), ("DECR", "min"), ("INCRBY", "min", "-1"),
            ("DECRBY", "min", "9223372036854775807"), ("GET", "min"), ("INCR", "min"),
            ("SET", "s", "abc"), ("INCR", "s"), ("SET", "s", " 1"), ("INCR", "s"), ("SET", "s", "1 "),
            ("DECR", "s"), ("SET", "s", "007"), ("INCR", "s"), ("SET", "s", "-0"), ("INCR", "s"),
            ("SET", "s", ""), ("INCR", "s"), ("SET", "s", "99999999999999999999"), ("INCR", "s"),
            ("SET", "s", "12"), ("INCRBY", "s", "-12"), ("GET", "s"),
            ("INCR",), ("INCR", "a", "b"), ("INCRBY", "a"), ("DECRBY", "a", "1", "2"), ("DECR",))


def test_incr_keeps_ttl(r):
    r.set("n", "5", ex=100)
    assert r.incr("n") == 6 and r.decrby("n", 3) == 3
    assert r.ttl("n") > 90
    r.set("f", "1.5", ex=100)
    assert r.incrbyfloat("f", "1") == 2.5 and r.ttl("f") > 90


INCRBYFLOAT_PAIRS = [
    (None, "0.1"), ("10.5", "0.1"), ("10.50", "0.1"), (None, "3.0e3"), ("3", "3.0e3"), ("1.5", "-1.5"),
    ("5", "-0.0"), (None, "-0.0"), (None, "1e-30"), (None, "-1e-30"), ("0", "1e-17"), ("0", "-5e-18"),
    (None, "0x10"), (None, "0x1p-3"), (None, "0X1.8P1"), (None, "1."), (None, ".5"), (None, "+.5"),
    (None, "1e400"), ("1e4932", "1e4932"), (None, "1.18e4932"), (None, "1e-4940"), (None, "1e-5000"),
    (None, "inf"), (None, "-inf"), (None, "Infinity"), ("inf", "1"), (None, "nan"), (None, "NaN"),
    (None, ""), (None, " 1"), (None, "1 "), (None, "1_0"), (None, "."), (None, "1e"), (None, "0x"),
    (None, "abc"), ("abc", "1"), ("", "1"), ("1.5", "abc"), (None, "0.000003814697265625"),
    ("1.1", "2.2"), ("-7.25", "7.25"), ("123456789012345678", "0.5"), (None, "9223372036854775808"),
    ("0.1", "0.2"), (None, "1e17"), (None, "1.5e-7"), ("1" * 5200, "1"), (None, "1" * 5119),
]


@pytest.mark.parametrize("start,incr", INCRBYFLOAT_PAIRS, ids=lambda v: str(v)[:20])
def test_incrbyfloat_matches_redis_bytes(diff, start, incr):
    if start is not None:
        diff("SET", "f", start)
    diff("INCRBYFLOAT", "f", incr)
    diff("GET", "f")


def test_incrbyfloat_random_sums_match_redis(diff):
    if not X86_64:
        pytest.skip("Fjord rounds like x86-64 Redis; this redis-server uses another long double")
    rnd = random.Random(7)
    diff("SET", "f", "0")
    for _ in range(150):
        incr = rnd.choice([
            "%.*f" % (rnd.randint(0, 20), rnd.uniform(-1e6, 1e6)),
            "%de%d" % (rnd.randint(-999, 999), rnd.randint(-30, 30)),
            repr(rnd.uniform(-1, 1)),
        ])
        diff("INCRBYFLOAT", "f", incr)
    diff("GET", "f")


def test_incrbyfloat_arity(diff):
    diff.run_all(("INCRBYFLOAT", "f"), ("INCRBYFLOAT", "f", "1", "2"))


# ------------------------------------------------------------------ APPEND STRLEN GETRANGE SETRANGE


def test_append_strlen(diff):
    diff.run_all(("APPEND", "k", "Hello"), ("APPEND", "k", " World"), ("GET", "k"), ("STRLEN", "k"),
            ("APPEND", "k", ""), ("APPEND", "e", ""), ("EXISTS", "e"), ("STRLEN", "e"), ("STRLEN", "missing"),
            ("SET", "n", "12"), ("APPEND", "n", "3"), ("INCR", "n"), ("STRLEN", "n"),
            ("APPEND", "k"), ("STRLEN",), ("STRLEN", "a", "b"))


def test_append_keeps_ttl(r):
    r.set("k", "a", ex=100)
    r.append("k", "b")
    assert r.get("k") == b"ab" and r.ttl("k") > 90


def test_getrange_substr_every_index_pair(diff):
    diff("SET", "k", "This is a string")
    diff("SET", "e", "")
    big = "9223372036854775807"
    small = "-9223372036854775808"
    points = ["0", "1", "3", "-1", "-3", "15", "16", "100", "-16", "-17", "-100", big, small]
    for start in points:
        for end in points:
            diff("GETRANGE", "k", start, end)
    diff.run_all(("SUBSTR", "k", "0", "3"), ("SUBSTR", "k", "-3", "-1"), ("GETRANGE", "e", "0", "-1"),
            ("GETRANGE", "missing", "0", "-1"), ("GETRANGE", "k", "a", "1"), ("GETRANGE", "k", "0", "1.5"),
            ("GETRANGE", "missing", "x", "0"), ("GETRANGE", "k", "0"), ("SUBSTR", "k", "0", "1", "2"))


def test_setrange(diff):
    diff.run_all(("SETRANGE", "k", "0", "Hello World"), ("SETRANGE", "k", "6", "Redis"), ("GET", "k"),
            ("SETRANGE", "pad", "5", "x"), ("GET", "pad"), ("SETRANGE", "pad", "2", ""), ("GET", "pad"),
            ("SETRANGE", "none", "10", ""), ("EXISTS", "none"), ("SETRANGE", "k", "-1", "x"),
            ("SETRANGE", "k", "abc", "x"), ("SETRANGE", "k", "1", "ab"), ("GET", "k"),
            ("SETRANGE", "k", "20", "tail"), ("GET", "k"), ("STRLEN", "k"),
            ("SETRANGE", "huge", "536870912", "x"), ("SETRANGE", "huge", "536870912", ""),
            ("SETRANGE", "huge", "9223372036854775807", "x"), ("SETRANGE", "k", "0"))


def test_setrange_keeps_ttl(r):
    r.set("k", "abc", ex=100)
    assert r.setrange("k", 1, "X") == 3
    assert r.get("k") == b"aXc" and r.ttl("k") > 90


def _both_config(diff, name, value):
    assert diff("CONFIG", "SET", name, value) == OK


def test_values_over_proto_max_bulk_len_refused(diff):
    limit = 1024 * 1024
    _both_config(diff, "proto-max-bulk-len", str(limit))
    try:
        diff.run_all(("SETRANGE", "k", str(limit), "x"), ("SETRANGE", "k", str(limit - 1), "x"), ("STRLEN", "k"),
                ("APPEND", "k", "y"), ("STRLEN", "k"), ("SETRANGE", "k", str(limit - 1), "xy"),
                ("SET", "a", "x" * (limit // 2)), ("APPEND", "a", "y" * (limit // 2)),
                ("APPEND", "a", "z"), ("STRLEN", "a"), ("EXISTS", "b"))
    finally:
        _both_config(diff, "proto-max-bulk-len", str(512 * 1024 * 1024))


# ------------------------------------------------------------------ LCS


def test_lcs_documented_examples(diff):
    diff("MSET", "key1", "ohmytext", "key2", "mynewtext")
    diff.run_all(("LCS", "key1", "key2"), ("LCS", "key1", "key2", "LEN"), ("LCS", "key1", "key2", "IDX"),
            ("LCS", "key1", "key2", "IDX", "MINMATCHLEN", "4"),
            ("LCS", "key1", "key2", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"),
            ("LCS", "key1", "key2", "IDX", "WITHMATCHLEN", "MINMATCHLEN", "-5"),
            ("LCS", "key1", "key2", "len", "LEN"), ("LCS", "key1", "missing"), ("LCS", "missing", "key1", "IDX"),
            ("LCS", "key1", "key2", "LEN", "IDX"), ("LCS", "key1", "key2", "MINMATCHLEN"),
            ("LCS", "key1", "key2", "MINMATCHLEN", "x"), ("LCS", "key1", "key2", "FOO"),
            ("LCS", "key1", "key2", "WITHMATCHLEN"), ("LCS", "key1", "key2", "MINMATCHLEN", "3"),
            ("LCS", "key1"), ("LCS", "key1", "key1", "IDX", "WITHMATCHLEN"))


def test_lcs_random_strings_match_redis(diff):
    rnd = random.Random(11)
    for n in range(120):
        alphabet = "ab" if n % 3 == 0 else "ACGT" if n % 3 == 1 else "abcdefgh"
        a = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 40)))
        b = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 40)))
        diff("MSET", "a", a, "b", b)
        diff("LCS", "a", "b")
        diff("LCS", "a", "b", "IDX", "WITHMATCHLEN", "MINMATCHLEN", str(n % 3))
        diff("LCS", "b", "a", "LEN")


def test_lcs_long_strings(diff):
    rnd = random.Random(5)
    a = "".join(rnd.choice("ACGT") for _ in range(3000))
    b = "".join(rnd.choice("ACGT") for _ in range(2000))
    diff("MSET", "a", a, "b", b)
    diff.run_all(("LCS", "a", "b", "LEN"), ("LCS", "b", "a"), ("LCS", "a", "b", "IDX", "MINMATCHLEN", "6"))
    # Redis refuses a table over proto-max-bulk-len (4 bytes a cell): 11586**2 * 4 > 512MB
    diff("MSET", "a", "x" * 11585, "b", "y" * 11585)
    diff("LCS", "a", "b", "LEN")


# ------------------------------------------------------------------ RESP3


def test_resp3_replies_match_redis(diff):
    got, want = diff.both("HELLO", "3")
    assert got.startswith(b"%") and want.startswith(b"%")
    diff.run_all(("GET", "missing"), ("MSET", "key1", "ohmytext", "key2", "mynewtext"), ("MGET", "key1", "missing"),
            ("SET", "key1", "v", "NX"), ("SET", "key1", "ohmytext", "GET"), ("GETEX", "missing"),
            ("GETDEL", "missing"), ("INCRBYFLOAT", "f", "1.5"), ("INCR", "n"), ("LCS", "key1", "key2"),
            ("LCS", "key1", "key2", "IDX", "WITHMATCHLEN"), ("LCS", "key1", "key2", "LEN"),
            ("GETRANGE", "missing", "0", "-1"), ("SET", "k", "v", "EX", "0"))


# ------------------------------------------------------------------ wrong types


def _make_other_type(diff) -> None:
    """Put a list at "other" on both servers."""
    assert diff("RPUSH", "other", "x") == b":1\r\n"


def test_wrongtype_errors_match_redis(diff):
    _make_other_type(diff)
    diff("SET", "s", "abc")
    diff.run_all(("GET", "other"), ("SET", "other", "v", "GET"), ("SET", "other", "v", "GET", "EX", "0"),
            ("GETSET", "other", "v"), ("GETDEL", "other"), ("GETEX", "other", "EX", "0"), ("GETEX", "other", "FOO"),
            ("MGET", "s", "other", "nope"), ("SETNX", "other", "v"), ("MSETNX", "other", "v", "n", "v"),
            ("INCR", "other"), ("INCRBY", "other", "abc"), ("DECRBY", "other", "1"),
            ("INCRBYFLOAT", "other", "abc"), ("APPEND", "other", "x"), ("STRLEN", "other"),
            ("GETRANGE", "other", "a", "b"), ("GETRANGE", "other", "0", "1"), ("SUBSTR", "other", "0", "1"),
            ("SETRANGE", "other", "-1", "x"), ("SETRANGE", "other", "0", ""), ("SETRANGE", "other", "0", "x"),
            ("LCS", "s", "other"), ("LCS", "other", "s", "FOO"), ("SET", "other", "v", "NX"),
            ("SET", "other", "plain"), ("GET", "other"))


# ------------------------------------------------------------------ durability


def test_string_writes_replay_after_sigkill(new_fjord):
    server = new_fjord()
    c = server.client()
    c.set("plain", "v")
    c.set(b"bin\x00\xff", bytes(range(256)))
    c.set("ex", "v", ex=1000)
    c.set("px", "v", px=500_000)
    c.execute_command("SET", "exat", "v", "EXAT", int(time.time()) + 3000)
    c.execute_command("SETEX", "setex", 2000, "v")
    c.psetex("psetex", 700_000, "v")
    c.mset({"m1": "1", "m2": "2"})
    c.msetnx({"m3": "3", "m4": "4"})
    c.setnx("nx", "first")
    c.incr("counter")
    c.incrby("counter", 41)
    c.decr("counter")
    c.set("ttlcounter", "10", ex=900)
    c.incrby("ttlcounter", 5)
    c.incrbyfloat("float", "10.5")
    c.incrbyfloat("float", "0.1")
    c.incrbyfloat("bigfloat", "1e400")
    c.append("app", "Hello")
    c.append("app", " World")
    c.setrange("range", 5, "x")
    c.set("range2", "Hello World")
    c.setrange("range2", 6, "Redis")
    c.set("gs", "old", ex=100)
    c.getset("gs", "new")
    c.set("gd", "v")
    c.getdel("gd")
    c.set("gx", "v")
    c.getex("gx", ex=800)
    c.set("gp", "v", ex=800)
    c.getex("gp", persist=True)
    c.set("keep", "v", ex=600)
    c.set("keep", "v2", keepttl=True)
    c.set("short", "v", px=1)
    time.sleep(0.01)
    assert c.get("short") is None  # lazily expired: an explicit `expired` event
    keys = sorted(k for k in c.keys("*"))
    before = {k: (c.get(k), c.pttl(k)) for k in keys}
    assert b"gd" not in before and b"short" not in before
    assert before[b"float"][0] == b"10.6" and before[b"counter"][0] == b"41"

    t0 = time.time()
    server.restart()
    elapsed_ms = (time.time() - t0) * 1000
    c = server.client()
    assert sorted(c.keys("*")) == keys
    for k, (value, pttl) in before.items():
        assert c.get(k) == value, k
        after = c.pttl(k)
        if pttl < 0:
            assert after == pttl, k
        else:
            assert pttl - elapsed_ms - 1000 <= after <= pttl, k
    c.close()



def logged_records(data_dir: str) -> list[list]:
    """Every record's events, in log order."""
    return [r.events for r in read_records(data_dir)]


def test_log_holds_effects_not_commands(new_fjord):
    server = new_fjord()
    c = server.client()
    t0 = int(time.time() * 1000)
    c.set("ex", "v", ex=100)
    c.mset({"a": "1", "b": "2"})
    c.incrbyfloat("f", "10.5")
    c.incrbyfloat("f", "0.1")
    c.incr("n")
    c.append("s", "ab")
    c.setrange("s", 5, "x")
    c.getex("s", ex=50)
    c.getex("s", persist=True)
    c.getdel("s")
    c.set("n", "5", nx=True)          # refused: logs nothing
    c.getex("ex", persist=False)      # no option: logs nothing
    c.close()
    server.stop()
    t1 = int(time.time() * 1000)
    got = [[(e.type, e.key, e.data) for e in events] for events in logged_records(server.data_dir)]
    at_ex = got[0][0][2]["expire_at"]
    at_getex = got[7][0][2]["at"]
    assert t0 + 100_000 <= at_ex <= t1 + 100_000 and t0 + 50_000 <= at_getex <= t1 + 50_000
    assert got == [
        [("set", b"ex", {"value": b"v", "expire_at": at_ex})],
        [("set", b"a", {"value": b"1", "expire_at": None}), ("set", b"b", {"value": b"2", "expire_at": None})],
        [("incrbyfloat", b"f", {"value": b"10.5"})],
        [("incrbyfloat", b"f", {"value": b"10.6"})],
        [("incrby", b"n", {"value": b"1"})],
        [("append", b"s", {"value": b"ab"})],
        [("setrange", b"s", {"offset": 5, "value": b"x"})],
        [("expire", b"s", {"at": at_getex})],
        [("persist", b"s", {})],
        [("del", b"s", {})],
    ]
