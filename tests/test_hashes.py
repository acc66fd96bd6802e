"""Hash commands: HSET ... HSCAN, against a real redis-server.

Most tests are differential (``diff``): the same command goes to Fjord and to
redis-server 7.0 and the reply bytes must be identical, errors included. A
small hash keeps insertion order in both (Redis's listpack), so whole-hash
replies compare byte for byte. Random replies (HRANDFIELD) and large hashes
are checked by their properties; the log is read from the segment files to
check the recorded effects, and a SIGKILL + replay must bring every hash back.
"""

from __future__ import annotations

import platform
import random

import pytest

from logtools import logged_events

X86_64 = platform.machine() in ("x86_64", "AMD64")
OK = b"+OK\r\n"
WRONGTYPE = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"








# ------------------------------------------------------------------ HSET family


def test_hset_counts_new_fields_and_keeps_insertion_order(diff):
    assert diff("HSET", "h", "a", "1", "b", "2") == b":2\r\n"
    assert diff("HSET", "h", "a", "3", "c", "4") == b":1\r\n"
    assert diff("HSET", "h", "d", "1", "d", "2") == b":1\r\n"  # a field twice counts once, last wins
    assert diff("HGETALL", "h") == (b"*8\r\n$1\r\na\r\n$1\r\n3\r\n$1\r\nb\r\n$1\r\n2\r\n"
                                    b"$1\r\nc\r\n$1\r\n4\r\n$1\r\nd\r\n$1\r\n2\r\n")
    diff.run_all(("HKEYS", "h"), ("HVALS", "h"), ("HLEN", "h"), ("HGET", "h", "a"), ("HGET", "h", "zz"),
            ("HGET", "nokey", "a"), ("HMGET", "h", "a", "zz", "d", "a"), ("HMGET", "nokey", "a", "b"),
            ("HEXISTS", "h", "a"), ("HEXISTS", "h", "zz"), ("HEXISTS", "nokey", "a"),
            ("HSTRLEN", "h", "a"), ("HSTRLEN", "h", "zz"), ("HSTRLEN", "nokey", "a"),
            ("HKEYS", "nokey"), ("HVALS", "nokey"), ("HGETALL", "nokey"), ("HLEN", "nokey"))


def test_hmset_and_hsetnx(diff):
    assert diff("HMSET", "h", "a", "1", "b", "2") == OK
    assert diff("HSETNX", "h", "a", "9") == b":0\r\n"
    assert diff("HSETNX", "h", "z", "9") == b":1\r\n"
    assert diff("HSETNX", "new", "f", "v") == b":1\r\n"
    diff.run_all(("HGETALL", "h"), ("HGETALL", "new"))


def test_binary_and_empty_fields_and_values(diff):
    binary = bytes(range(0, 256, 5))  # short enough to stay a listpack (ordered) in Redis
    diff("HSET", "h", binary, b"", b"", binary, b"\x00", b"\xff\xfe")
    diff.run_all(("HGETALL", "h"), ("HGET", "h", binary), ("HGET", "h", b""), ("HSTRLEN", "h", b""),
            ("HEXISTS", "h", b""), ("HDEL", "h", b""), ("HGETALL", "h"))


def test_hdel_counts_removed_fields_and_deletes_an_emptied_hash(diff):
    diff("HSET", "h", "a", "1", "b", "2", "c", "3")
    assert diff("HDEL", "h", "a", "a", "zz") == b":1\r\n"
    assert diff("HDEL", "nokey", "a") == b":0\r\n"
    diff.run_all(("HGETALL", "h"), ("EXISTS", "h"))
    assert diff("HDEL", "h", "b", "c") == b":2\r\n"
    assert diff("EXISTS", "h") == b":0\r\n"
    assert diff("TYPE", "h") == b"+none\r\n"
    assert diff("HSET", "h", "x", "1") == b":1\r\n"  # a fresh hash, no leftovers
    diff.run_all(("HGETALL", "h"), ("TYPE", "h"), ("OBJECT", "ENCODING", "h"))


def test_an_emptied_hash_loses_its_ttl(diff, r):
    r.hset("h", "a", "1")
    r.expire("h", 100)
    r.hdel("h", "a")
    r.hset("h", "b", "2")
    assert r.ttl("h") == -1


def test_copy_rename_move_keep_hashes_independent(diff):
    diff("HSET", "h", "a", "1", "b", "2")
    diff.run_all(("COPY", "h", "h2"), ("HSET", "h2", "c", "3"), ("HGETALL", "h"), ("HGETALL", "h2"),
            ("RENAME", "h2", "h3"), ("HGETALL", "h3"), ("MOVE", "h3", "1"), ("EXISTS", "h3"),
            ("SELECT", "1"), ("HGETALL", "h3"), ("OBJECT", "ENCODING", "h3"), ("SELECT", "0"))


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("cmd", [
    ("HSET", "h"), ("HSET", "h", "a"), ("HSET", "h", "a", "1", "b"), ("HMSET", "h", "a"),
    ("HMSET", "h", "a", "1", "b"), ("HSETNX", "h", "a"), ("HSETNX", "h", "a", "1", "2"), ("HGET", "h"),
    ("HGET", "h", "a", "b"), ("HMGET", "h"), ("HGETALL",), ("HGETALL", "h", "x"), ("HDEL", "h"),
    ("HEXISTS", "h"), ("HLEN",), ("HKEYS",), ("HVALS", "h", "x"), ("HSTRLEN", "h"), ("HINCRBY", "h", "a"),
    ("HINCRBY", "h", "a", "1", "2"), ("HINCRBYFLOAT", "h", "a"), ("HINCRBYFLOAT", "h", "a", "1", "x"),
    ("HRANDFIELD",), ("HSCAN", "h"),
])
def test_wrong_arity_matches_redis(diff, cmd):
    diff("HSET", "h", "a", "1")
    assert diff(*cmd).startswith(b"-ERR wrong number of arguments")


@pytest.mark.parametrize("cmd", [
    ("HSET", "s", "a", "1"), ("HMSET", "s", "a", "1"), ("HSETNX", "s", "a", "1"), ("HGET", "s", "a"),
    ("HMGET", "s", "a"), ("HGETALL", "s"), ("HDEL", "s", "a"), ("HEXISTS", "s", "a"), ("HLEN", "s"),
    ("HKEYS", "s"), ("HVALS", "s"), ("HSTRLEN", "s", "a"), ("HINCRBY", "s", "a", "1"),
    ("HINCRBYFLOAT", "s", "a", "1"), ("HRANDFIELD", "s"), ("HRANDFIELD", "s", "0"),
    ("HRANDFIELD", "s", "2", "WITHVALUES"), ("HSCAN", "s", "0"), ("HSCAN", "s", "0", "COUNT", "0"),
])
def test_wrongtype_against_a_string(diff, cmd):
    diff("SET", "s", "v")
    assert diff(*cmd) == WRONGTYPE
    assert diff("GET", "s") == b"$1\r\nv\r\n"


def test_string_commands_refuse_a_hash(diff):
    diff("HSET", "h", "a", "1")
    assert diff("GET", "h") == WRONGTYPE
    assert diff("APPEND", "h", "x") == WRONGTYPE
    assert diff("SADD", "h", "x") == WRONGTYPE
    assert diff("TYPE", "h") == b"+hash\r\n"


# ------------------------------------------------------------------ HINCRBY / HINCRBYFLOAT


def test_hincrby(diff):
    diff.run_all(("HINCRBY", "h", "n", "5"), ("HINCRBY", "h", "n", "-12"), ("HINCRBY", "h", "n", "0"),
            ("HINCRBY", "new", "n", "1"), ("HGETALL", "h"), ("HGETALL", "new"))


@pytest.mark.parametrize("value,incr", [
    ("1", "x"), ("1", "1.5"), ("1", ""), ("1", " 1"), ("1", "99999999999999999999"),
    ("9223372036854775807", "1"), ("-9223372036854775808", "-1"), ("1", "9223372036854775807"),
    ("foo", "1"), ("", "1"), (" 1", "1"), ("-0", "1"), ("007", "1"), ("1.0", "1"),
    ("9223372036854775808", "1"), ("-9223372036854775808", "0"), ("10", "-9223372036854775808"),
])
def test_hincrby_errors_and_limits_match_redis(diff, value, incr):
    diff("HSET", "h", "f", value)
    diff("HINCRBY", "h", "f", incr)
    diff("HGET", "h", "f")


@pytest.mark.skipif(not X86_64, reason="Redis's long double is 80-bit only on x86-64")
@pytest.mark.parametrize("value,incr", [
    (None, "0.1"), ("0.1", "0.2"), ("10.5", "0.1"), ("3.0e3", "1"), ("1", "1e20"), ("0", "-1e30"),
    ("1", "abc"), ("1", "inf"), ("1", "-INFINITY"), ("1", "nan"), ("1", " 1"), ("1", "1 "), ("1", "0x10"),
    ("1", "0x1p-3"), ("1", "1e4000"), ("1", "1e5000"), ("1", "1e-5000"), ("1", "1_0"), ("1", ""),
    ("inf", "1"), ("-inf", "1"), ("nan", "1"), ("", "1"), (" 1", "1"), ("007", "1"), ("-0", "1"),
    ("foo", "1"), (None, "0.000003814697265625"), (None, "-0.00000000000000000001"), (None, "+5"),
    (None, "5."), (None, ".5"), ("1.18973149535723176502e+4932", "1e4932"),
])
def test_hincrbyfloat_matches_redis_long_double(diff, value, incr):
    if value is not None:
        diff("HSET", "h", "f", value)
    diff("HINCRBYFLOAT", "h", "f", incr)
    diff("HGET", "h", "f")


def test_hincr_events_record_results(new_fjord):
    server = new_fjord()
    c = server.client()
    c.hincrby("h", "n", 40)
    c.hincrby("h", "n", 2)
    c.hincrbyfloat("h", "f", "0.1")
    c.hincrbyfloat("h", "f", "0.2")
    c.hset("h", mapping={"a": "1", "b": "2"})
    c.hsetnx("h", "a", "x")  # no effect: nothing logged
    c.hdel("h", "a", "zz")
    c.hdel("nokey", "a")
    events = [(e.type, e.key, e.data) for e in logged_events(server.data_dir) if e.key == b"h"]
    assert events == [
        ("hincrby", b"h", {"field": b"n", "value": 40}),
        ("hincrby", b"h", {"field": b"n", "value": 42}),
        ("hincrbyfloat", b"h", {"field": b"f", "value": b"0.1"}),
        ("hincrbyfloat", b"h", {"field": b"f", "value": b"0.3"}),
        ("hset", b"h", {"fields": [[b"a", b"1"], [b"b", b"2"]]}),
        ("hdel", b"h", {"fields": [b"a"]}),
    ]
    c.close()


# ------------------------------------------------------------------ HRANDFIELD


@pytest.mark.parametrize("args", [
    ("nokey",), ("nokey", "5"), ("nokey", "-5", "WITHVALUES"), ("nokey", "0"), ("h", "0"),
    ("h", "0", "WITHVALUES"), ("h", "1", "withvalue"), ("h", "1", "WITHVALUES", "x"), ("h", "x"),
    ("nokey", "x"), ("nokey", "1", "WITHVALUES", "x"), ("h", "-9223372036854775808"),
    ("h", "9223372036854775808"), ("h", "-9223372036854775807", "WITHVALUES"),
    ("h", "-4611686018427387904", "WITHVALUES"), ("h", "4611686018427387904", "WITHVALUES"),
    ("nokey", "-4611686018427387904", "WITHVALUES"), ("h", "3"), ("h", "100", "withvalues"),
    ("h", "9223372036854775807"),
])
def test_hrandfield_errors_and_deterministic_cases_match_redis(diff, args):
    diff("HSET", "h", "a", "1", "b", "2", "c", "3")
    diff("HRANDFIELD", *args)


def test_hrandfield_counts(r):
    fields = {f"f{i}".encode(): f"v{i}".encode() for i in range(50)}
    r.hset("h", mapping=fields)
    assert r.hrandfield("h") in fields
    picked = r.hrandfield("h", 20)
    assert len(picked) == 20 and len(set(picked)) == 20 and set(picked) <= set(fields)
    repeated = r.hrandfield("h", -200)
    assert len(repeated) == 200 and set(repeated) <= set(fields)
    assert len(set(repeated)) > 1
    flat = r.hrandfield("h", -30, withvalues=True)
    assert len(flat) == 60
    for f, v in zip(flat[::2], flat[1::2]):
        assert fields[f] == v
    flat = r.hrandfield("h", 10, withvalues=True)
    assert len(set(flat[::2])) == 10
    assert r.hrandfield("h", 1000) == list(fields)  # the whole hash, in its order


def test_hrandfield_refuses_absurd_repeat_counts(r):
    r.hset("h", "a", "1")
    with pytest.raises(Exception, match="out of range"):
        r.hrandfield("h", -(1 << 40))


# ------------------------------------------------------------------ HSCAN


@pytest.mark.parametrize("args", [
    ("0",), ("0", "MATCH", "a*"), ("0", "match", "*"), ("0", "MATCH", "a*", "COUNT", "1", "MATCH", "b*"),
    ("0", "COUNT", "1"), ("x",), ("0", "COUNT", "0"), ("0", "COUNT", "-1"), ("0", "COUNT", "x"),
    ("0", "MATCH"), ("0", "TYPE", "string"), ("0", "NOVALUES"), ("-1",), ("",), ("+1",), (" 1",),
    ("18446744073709551615",), ("18446744073709551616",), ("-18446744073709551616",), ("007",),
])
def test_hscan_of_a_small_hash_matches_redis(diff, args):
    diff("HSET", "h", "a1", "1", "b", "2", "a2", "3", "", "empty")
    diff("HSCAN", "h", *args)
    diff("HSCAN", "nokey", *args)


def test_hscan_of_a_large_hash_visits_every_field(r):
    fields = {f"field:{i}".encode(): str(i).encode() for i in range(1000)}
    r.hset("h", mapping=fields)
    assert dict(r.hscan_iter("h")) == fields
    seen = dict(r.hscan_iter("h", match="field:1*", count=7))
    assert seen == {f: v for f, v in fields.items() if f.startswith(b"field:1")}
    cursor, page = r.hscan("h", 0, count=10)
    assert cursor != 0 and 0 < len(page) <= 20


def test_hscan_returns_fields_present_throughout_despite_changes(r):
    fields = {f"f{i}".encode(): b"v" for i in range(600)}
    r.hset("h", mapping=fields)
    removed = {f"f{i}".encode() for i in range(0, 600, 3)}
    seen = {}
    cursor, calls = 0, 0
    while True:
        cursor, page = r.hscan("h", cursor, count=25)
        seen.update(page)
        calls += 1
        if calls == 3:  # change the hash mid-iteration
            r.hdel("h", *removed)
            r.hset("h", mapping={f"new{i}": "x" for i in range(200)})
        if cursor == 0:
            break
    assert calls > 3
    stable = set(fields) - removed
    assert stable <= set(seen)
    assert not (set(seen) - set(fields) - {f"new{i}".encode() for i in range(200)})


# ------------------------------------------------------------------ RESP3


def test_resp3_reply_shapes_match_redis(diff):
    diff.resp3()
    diff("HSET", "h", "a", "1", "b", "2")
    assert diff("HGETALL", "h") == b"%2\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n"
    assert diff("HGETALL", "nokey") == b"%0\r\n"
    assert diff("HRANDFIELD", "h", "5", "WITHVALUES") == (
        b"*2\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n")
    diff.run_all(("HKEYS", "h"), ("HVALS", "h"), ("HMGET", "h", "a", "x"), ("HRANDFIELD", "nokey"),
            ("HRANDFIELD", "h", "0", "WITHVALUES"), ("HRANDFIELD", "nokey", "2", "WITHVALUES"),
            ("HRANDFIELD", "h", "5"), ("HSCAN", "h", "0"), ("HINCRBYFLOAT", "h", "f", "1.5"),
            ("HEXISTS", "h", "a"))
    diff("HDEL", "h", "b", "f")
    got, want = diff.both("HRANDFIELD", "h", "-2", "WITHVALUES")
    assert got == want == b"*2\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n"


# ------------------------------------------------------------------ durability


def test_hashes_replay_after_sigkill(new_fjord):
    server = new_fjord()
    c = server.client()
    c.hset("small", mapping={"a": "1", "b": "2", "c": "3"})
    c.hset("small", "a", "updated")
    c.hdel("small", "b")
    c.hset("small", "b", "back at the end")
    c.hset(b"bin\x00\xff", mapping={bytes(range(256)): b"\xff\x00", b"": b""})
    c.execute_command("HMSET", "hm", "x", "1")
    c.hsetnx("hm", "y", "2")
    c.hincrby("counters", "n", 7)
    c.hincrby("counters", "n", -9)
    c.hincrbyfloat("counters", "f", "10.5")
    c.hincrbyfloat("counters", "f", "0.1")
    c.hincrbyfloat("counters", "big", "1e400")
    c.hset("gone", "a", "1")
    c.hdel("gone", "a")
    c.hset("ttl", "a", "1")
    c.expire("ttl", 1000)
    c.hset("large", mapping={f"f{i}": "x" * (i % 70) for i in range(300)})
    c.hdel("large", *[f"f{i}" for i in range(0, 300, 5)])
    keys = sorted(c.keys("*"))
    before = {k: list(c.hgetall(k).items()) for k in keys}
    assert b"gone" not in before
    counters = dict(before[b"counters"])
    assert counters[b"n"] == b"-2" and counters[b"f"] == b"10.6" and len(counters[b"big"]) == 401
    server.restart()
    c = server.client()
    assert sorted(c.keys("*")) == keys
    for k, items in before.items():
        assert list(c.hgetall(k).items()) == items, k  # same fields, same order
        assert c.type(k) == b"hash"
    assert 900 < c.ttl("ttl") <= 1000
    c.close()


# ------------------------------------------------------------------ fuzz


def test_random_hash_commands_match_redis(diff):
    """A seeded random walk over a few small hashes (and a string key): every
    reply, error or not, must be byte-identical to redis-server's."""
    rng = random.Random(7)
    keys = ["h1", "h2", "h3", "str"]
    fields = ["a", "b", "c", "1", "10", "", "x"]
    values = ["1", "-2", "1.5", "abc", "", "9223372036854775807", "0.1", "1e3", "inf", "5"]

    def some_fields():
        return [rng.choice(fields) for _ in range(rng.randint(1, 3))]

    makers = [
        lambda k: ["HSET", k] + [x for f in some_fields() for x in (f, rng.choice(values))],
        lambda k: ["HSETNX", k, rng.choice(fields), rng.choice(values)],
        lambda k: ["HGET", k, rng.choice(fields)], lambda k: ["HMGET", k] + some_fields(),
        lambda k: ["HDEL", k] + some_fields(), lambda k: ["HGETALL", k], lambda k: ["HKEYS", k],
        lambda k: ["HVALS", k], lambda k: ["HLEN", k], lambda k: ["HSTRLEN", k, rng.choice(fields)],
        lambda k: ["HEXISTS", k, rng.choice(fields)], lambda k: ["HINCRBY", k, rng.choice(fields), rng.choice(values)],
        lambda k: ["HINCRBYFLOAT", k, rng.choice(fields), rng.choice(values)],
        lambda k: ["HSCAN", k, "0"] + rng.choice([[], ["MATCH", "[ab]*"], ["COUNT", "1"]]),
        lambda k: ["HRANDFIELD", k, "100", "WITHVALUES"], lambda k: ["TYPE", k], lambda k: ["EXISTS", k],
    ]
    diff("SET", "str", "v")
    for _ in range(1500):
        diff(*rng.choice(makers)(rng.choice(keys)))


def test_hrandfield_of_a_large_hash(r):
    fields = {f"f{i}".encode(): f"v{i}".encode() for i in range(3000)}
    r.hset("h", mapping=fields)
    for _ in range(50):
        assert r.hrandfield("h") in fields
    picked = r.hrandfield("h", 100, withvalues=True)
    assert len(set(picked[::2])) == 100
    assert all(fields[f] == v for f, v in zip(picked[::2], picked[1::2]))
    assert set(r.hrandfield("h", -300)) <= set(fields)
