"""Functional tests of the generic key commands (store/commands/keys.py).

Most tests are differential: ``diff`` sends each command to Fjord and to a
real redis-server 7.0.15 and requires byte-identical replies, errors
included. Replies that depend on the clock (TTL and friends) are compared
with a tolerance, and replies whose order is unspecified (KEYS, SCAN) as
sorted sets. The last tests read the events back from the log and replay it
through a restart.
"""

from __future__ import annotations

import random
import time

import pytest
import redis

from store.cursors import CursorTable, parse_cursor
from store.resp import ReplyError
from logtools import logged_events

# ---------------------------------------------------------------- helpers




def integer(reply: bytes) -> int:
    assert reply[:1] == b":", reply
    return int(reply[1:-2])


def bulk_items(reply: bytes) -> list[bytes]:
    """Elements of a flat RESP2 array of bulk strings."""
    head, _, rest = reply.partition(b"\r\n")
    assert head[:1] == b"*", reply
    items, pos = [], 0
    for _ in range(int(head[1:])):
        nl = rest.index(b"\r\n", pos)
        start = nl + 2
        end = start + int(rest[pos + 1:nl])
        items.append(rest[start:end])
        pos = end + 2
    return items


def assert_same_set(diff, *args) -> list[bytes]:
    got, want = diff.both(*args)
    assert sorted(bulk_items(got)) == sorted(bulk_items(want)), args
    return bulk_items(got)


def select_db0(client) -> None:
    client.execute_command("SELECT", 0)


# ---------------------------------------------------------------- existence


def test_del_unlink_exists_touch_type(diff):
    for cmd in (("SET", "a", "1"), ("SET", "b", "2"), ("SET", "c", "3"),
                ("EXISTS", "a", "a", "nokey", "b"), ("TOUCH", "a", "a", "nokey"),
                ("TYPE", "a"), ("TYPE", "nokey"),
                ("DEL", "a", "a", "nokey"), ("EXISTS", "a"), ("TYPE", "a"),
                ("UNLINK", "b", "c", "nokey"), ("UNLINK", "b"), ("DEL", "nokey"),
                ("EXISTS", "b", "c")):
        diff(*cmd)


def test_arity_errors(diff):
    for cmd in (("DEL",), ("UNLINK",), ("EXISTS",), ("TOUCH",), ("TYPE",), ("TYPE", "a", "b"),
                ("KEYS",), ("KEYS", "a", "b"), ("SCAN",), ("RANDOMKEY", "x"), ("RENAME", "a"),
                ("RENAMENX", "a", "b", "c"), ("COPY", "a"), ("MOVE", "a"), ("MOVE", "a", "1", "2"),
                ("EXPIRE", "a"), ("PEXPIRE", "a"), ("EXPIREAT", "a"), ("PEXPIREAT", "a"),
                ("TTL",), ("PTTL", "a", "b"), ("EXPIRETIME",), ("PEXPIRETIME", "a", "b"),
                ("PERSIST",), ("PERSIST", "a", "b"), ("OBJECT",), ("OBJECT", "ENCODING"),
                ("OBJECT", "encoding", "a", "b"), ("OBJECT", "FREQ"), ("OBJECT", "IDLETIME"),
                ("OBJECT", "REFCOUNT", "a", "b"), ("OBJECT", "HELP", "x"), ("OBJECT", "nosuch")):
        diff(*cmd)


def test_expired_keys_are_invisible_and_not_deleted_twice(diff):
    diff("SET", "gone", "v", "PX", "1")
    diff("SET", "kept", "v")
    time.sleep(0.02)
    for cmd in (("EXISTS", "gone", "kept"), ("TYPE", "gone"), ("DEL", "gone"), ("TTL", "gone"),
                ("EXPIRE", "gone", "10"), ("PERSIST", "gone"), ("OBJECT", "ENCODING", "gone")):
        diff(*cmd)
    assert_same_set(diff, "KEYS", "*")


# ---------------------------------------------------------------- rename, copy, move


def test_rename_and_renamenx(diff):
    for cmd in (("RENAME", "a", "b"), ("RENAMENX", "a", "b"), ("RENAME", "a", "a"),
                ("SET", "a", "1"), ("RENAME", "a", "a"), ("RENAMENX", "a", "a"),
                ("RENAME", "a", "b"), ("GET", "a"), ("GET", "b"),
                ("SET", "a", "2"), ("RENAMENX", "a", "b"), ("RENAMENX", "nokey", "b"),
                ("RENAMENX", "a", "c"), ("GET", "c"),
                # the TTL travels with the value; an overwritten target loses its own
                ("SET", "t", "x", "EX", "100"), ("SET", "u", "y", "EX", "500"), ("RENAME", "t", "u"),
                ("TTL", "u"), ("EXISTS", "t"), ("SET", "p", "z"), ("RENAME", "p", "u"), ("TTL", "u"),
                ("GET", "u")):
        diff(*cmd)


def test_copy(diff):
    for cmd in (("COPY", "b", "b"), ("COPY", "nokey", "nokey"), ("COPY", "nokey", "x"),
                ("SET", "b", "1"), ("SET", "c", "2"), ("COPY", "b", "c"), ("GET", "c"),
                ("COPY", "b", "c", "REPLACE"), ("GET", "c"), ("COPY", "b", "c", "replace", "REPLACE"),
                ("COPY", "b", "c", "db"), ("COPY", "b", "c", "DB", "16"), ("COPY", "b", "c", "DB", "-1"),
                ("COPY", "b", "c", "DB", "abc"), ("COPY", "b", "c", "DB", "9999999999"),
                ("COPY", "b", "c", "DB", "-2147483649"), ("COPY", "b", "c", "DB", "-2147483648"),
                ("COPY", "b", "c", "DB", "99999999999999999999"), ("COPY", "b", "c", "foo"),
                ("COPY", "b", "c", "foo", "DB", "16"), ("COPY", "b", "c", "DB", "16", "foo"),
                ("COPY", "b", "c", "DB", "abc", "REPLACE"), ("COPY", "b", "b", "DB", "0"),
                ("COPY", "b", "b", "DB", "1"), ("COPY", "b", "b", "db", "1"),
                ("COPY", "b", "b", "DB", "1", "REPLACE"), ("COPY", "b", "x", "DB", "2", "DB", "1"),
                ("COPY", "nokey", "b", "DB", "1"),
                ("SET", "t", "v", "EX", "100"), ("COPY", "t", "t2"), ("TTL", "t2"),
                ("COPY", "c", "t2", "REPLACE"), ("TTL", "t2"), ("GET", "t2")):
        diff(*cmd)


def test_move(diff):
    for cmd in (("MOVE", "nokey", "0"), ("MOVE", "nokey", "1"), ("SET", "b", "1"),
                ("MOVE", "b", "0"), ("MOVE", "b", "16"), ("MOVE", "b", "-1"), ("MOVE", "b", "abc"),
                ("MOVE", "b", "2147483648"), ("MOVE", "b", "-2147483649"), ("MOVE", "b", "4294967296"),
                ("MOVE", "b", "99999999999999999999"), ("MOVE", "b", "01"), ("MOVE", "b", "+1"),
                ("MOVE", "b", "-0"),
                ("MOVE", "b", "1"), ("EXISTS", "b"), ("MOVE", "b", "1"),
                ("SET", "b", "2"), ("MOVE", "b", "1"), ("GET", "b"),  # taken in db 1: nothing moves
                ("COPY", "b", "b", "DB", "1"), ("COPY", "b", "b", "DB", "1", "REPLACE")):
        diff(*cmd)


def test_move_and_copy_land_in_the_target_database(r):
    select_db0(r)
    r.set("k", "v", ex=100)
    assert r.move("k", 3) is True
    db3 = redis.Redis(port=r.connection_pool.connection_kwargs["port"], db=3)
    assert db3.get("k") == b"v" and 98 <= db3.ttl("k") <= 100
    assert db3.copy("k", "k2", destination_db=5) is True
    db5 = redis.Redis(port=r.connection_pool.connection_kwargs["port"], db=5)
    assert db5.get("k2") == b"v" and db5.ttl("k2") > 0
    assert r.exists("k") == 0


# ---------------------------------------------------------------- expiry


def test_expire_option_errors(diff):
    diff("SET", "k", "v")
    for cmd in (("EXPIRE", "k", "10", "nx", "xx"), ("EXPIRE", "k", "10", "GT", "LT"),
                ("EXPIRE", "k", "10", "NX", "GT", "LT"), ("EXPIRE", "k", "10", "gt", "nx"),
                ("EXPIRE", "k", "10", "NX", "xx", "GT"), ("EXPIRE", "k", "10", "foo"),
                ("EXPIRE", "k", "abc", "foo"), ("EXPIRE", "k", "abc", "nx", "xx"), ("EXPIRE", "k", "abc"),
                ("EXPIRE", "k", ""), ("EXPIRE", "k", " 10"), ("EXPIRE", "k", "10.5"),
                ("EXPIRE", "k", "10", "NX", "foo"), ("PEXPIRE", "k", "10", "bar"),
                ("EXPIREAT", "k", "10", "lt", "gt"), ("PEXPIREAT", "k", "10", "xx", "nx"),
                ("EXPIRE", "k", "10", "x\r\ny")):
        diff(*cmd)


def test_expire_overflow_errors(diff):
    diff("SET", "k", "v")
    for cmd in (("EXPIRE", "k", "9223372036854775807"), ("EXPIRE", "k", "9223372036854775"),
                ("EXPIRE", "k", "9223372036854774"), ("EXPIRE", "k", "-9223372036854776"),
                ("EXPIRE", "k", "-9223372036854775808"), ("PEXPIRE", "k", "9223372036854775807"),
                ("PEXPIRE", "k", "9223372036854775000"), ("EXPIREAT", "k", "9223372036854776"),
                ("EXPIREAT", "k", "-9223372036854776"), ("EXPIRE", "k", "9223372036854775808"),
                ("EXPIRE", "nokey", "9223372036854775807"), ("TTL", "k"),
                ("PEXPIREAT", "k", "9223372036854775807"), ("PEXPIRETIME", "k"),
                ("EXPIREAT", "k", "9223372036854775"), ("EXPIRETIME", "k")):
        diff(*cmd)


def test_expire_conditions(diff):
    for cmd in (("EXPIRE", "nokey", "10"), ("EXPIRE", "nokey", "10", "NX"), ("SET", "k", "v"),
                ("EXPIRE", "k", "100", "XX"), ("EXPIRE", "k", "100", "GT"),  # no TTL = infinite
                ("EXPIRE", "k", "100", "NX"), ("EXPIRE", "k", "100", "nX"),
                ("EXPIRE", "k", "200", "LT"), ("EXPIRE", "k", "50", "LT"), ("EXPIRE", "k", "50", "LT"),
                ("EXPIRE", "k", "200", "GT"), ("EXPIRE", "k", "199", "GT"), ("EXPIRE", "k", "300", "XX", "GT"),
                ("EXPIRE", "k", "10", "XX", "GT"), ("EXPIRE", "k", "10", "XX", "LT"), ("PERSIST", "k"),
                ("EXPIRE", "k", "10", "LT"), ("PERSIST", "k"), ("PEXPIREAT", "k", "99999999999999", "GT", "GT"),
                ("EXPIRE", "k", "10", "nx", "nx")):
        diff(*cmd)


def test_expire_in_the_past_deletes_the_key(diff):
    for cmd in (("SET", "a", "v"), ("EXPIRE", "a", "0"), ("EXISTS", "a"),
                ("SET", "a", "v"), ("PEXPIRE", "a", "-5"), ("EXISTS", "a"),
                ("SET", "a", "v"), ("EXPIREAT", "a", "100"), ("EXISTS", "a"),
                ("SET", "a", "v"), ("PEXPIREAT", "a", "1"), ("EXISTS", "a"),
                ("SET", "a", "v", "EX", "100"), ("EXPIRE", "a", "0", "GT"), ("EXISTS", "a"),
                ("EXPIRE", "a", "0", "LT"), ("EXISTS", "a"),
                ("SET", "a", "v"), ("EXPIREAT", "a", "100", "XX", "GT"), ("PEXPIREAT", "a", "100", "LT"),
                ("EXISTS", "a"), ("SET", "a", "v"), ("PEXPIRE", "a", "-9223372036854775808"), ("EXISTS", "a"),
                ("PEXPIREAT", "a", "1")):
        diff(*cmd)


def test_ttl_family_within_tolerance(diff):
    for cmd in (("TTL", "nokey"), ("PTTL", "nokey"), ("EXPIRETIME", "nokey"), ("PEXPIRETIME", "nokey"),
                ("SET", "p", "v"), ("TTL", "p"), ("PTTL", "p"), ("EXPIRETIME", "p"), ("PEXPIRETIME", "p")):
        diff(*cmd)
    at = int(time.time()) + 1000
    diff("SET", "k", "v", "EX", "100")
    diff("SET", "at", "v")
    diff("EXPIREAT", "at", str(at))
    diff("PEXPIRE", "r", "1499")
    diff("SET", "r", "v", "PX", "1499")
    for cmd, tolerance in ((("TTL", "k"), 1), (("PTTL", "k"), 1500), (("EXPIRETIME", "k"), 2),
                           (("PEXPIRETIME", "k"), 1500), (("EXPIRETIME", "at"), 0), (("PEXPIRETIME", "at"), 0),
                           (("TTL", "r"), 1)):
        got, want = (integer(x) for x in diff.both(*cmd))
        assert abs(got - want) <= tolerance, (cmd, got, want)
    assert integer(diff.f.call("TTL", "k")) == 100  # rounded, not truncated
    assert integer(diff.f.call("EXPIRETIME", "at")) == at


def test_persist(diff):
    for cmd in (("PERSIST", "nokey"), ("SET", "k", "v"), ("PERSIST", "k"), ("EXPIRE", "k", "100"),
                ("PERSIST", "k"), ("TTL", "k"), ("PERSIST", "k")):
        diff(*cmd)


# ---------------------------------------------------------------- KEYS and glob patterns

TRICKY_KEYS = [b"", b"a", b"b", b"ab", b"abc", b"a*c", b"a?c", b"a[c", b"a]c", b"a\\c", b"a-c", b"a^c",
               b"a!c", b"]", b"[", b"-", b"^", b"\\", b"*", b"?", b"abc\n", b"\n", b"x\x00y", b"\xff", b"A",
               b"aBc", b"hello", b"hallo", b"hxllo", b"heeeello", b"a]", b"ac", b"a-", b"\x80"]
TRICKY_PATTERNS = [b"*", b"**", b"", b"?", b"a*", b"*c", b"a?c", b"a\\*c", b"a[bc]*", b"a[^b]c", b"a[!b]c",
                   b"a[a-c]c", b"a[c-a]c", b"[]", b"[]]", b"[]a]*", b"a[", b"a[c", b"a[\\]]c", b"a[-]c",
                   b"a[a-]c", b"[a-]", b"a[-c]c", b"\\", b"a\\", b"a\\\\c", b"[^]", b"[^a]", b"*[", b"[a-",
                   b"h?llo", b"h*llo", b"h[ae]llo", b"h[^e]llo", b"[A-z]", b"[z-A]", b"*\\*", b"[*]", b"[^^]",
                   b"a[]c", b"a[^]c", b"[\\a-\\c]c", b"[\x00-\xff]", b"[\x7f-\x81]", b"?\x00?", b"*\n", b"x*y"]


def test_keys_patterns_match_redis(diff):
    for key in TRICKY_KEYS:
        diff("SET", key, "1")
    for pattern in TRICKY_PATTERNS:
        assert_same_set(diff, "KEYS", pattern)


def test_glob_fuzz_against_redis_keys(r, rr):
    """Random patterns over an alphabet of glob metacharacters (seeded)."""
    rnd = random.Random(7)
    alphabet = b"ab-^![]\\*?\xff\x00"
    keys = {bytes(rnd.choice(alphabet) for _ in range(rnd.randint(0, 4))) for _ in range(400)}
    for client in (r, rr):
        client.mset({k: 1 for k in keys})
    for _ in range(800):
        pattern = bytes(rnd.choice(alphabet) for _ in range(rnd.randint(1, 7)))
        assert sorted(r.keys(pattern)) == sorted(rr.keys(pattern)), pattern


# ---------------------------------------------------------------- SCAN


def test_scan_arguments(diff):
    diff("SET", "a", "1")
    for cmd in (("SCAN", "0"), ("SCAN", ""), ("SCAN", "+0"), ("SCAN", "00"), ("SCAN", " 0"), ("SCAN", "0x"),
                ("SCAN", "abc"), ("SCAN", "-"), ("SCAN", "18446744073709551616"), ("SCAN", "-18446744073709551616"),
                ("SCAN", "0 "), ("SCAN", "0", "COUNT", "0"), ("SCAN", "0", "count", "-1"), ("SCAN", "0", "COUNT", "abc"),
                ("SCAN", "0", "COUNT"), ("SCAN", "0", "MATCH"), ("SCAN", "0", "TYPE"), ("SCAN", "0", "foo"),
                ("SCAN", "abc", "foo"), ("SCAN", "0", "TYPE", "foo"), ("SCAN", "0", "type", "STRING"),
                ("SCAN", "0", "TYPE", "string", "TYPE", "hash"), ("SCAN", "0", "MATCH", "a*", "MATCH", "b*"),
                ("SCAN", "0", "COUNT", "1", "COUNT", "0"), ("SCAN", "0", "COUNT", "9223372036854775807"),
                ("SCAN", "0", "MATCH", "*", "COUNT", "5", "TYPE", "string")):
        diff(*cmd)


def full_scan(client, **kw) -> list[bytes]:
    cursor, found = 0, []
    for _ in range(10_000):
        cursor, keys = client.scan(cursor, **kw)
        found.extend(keys)
        if cursor == 0:
            return found
    raise AssertionError("scan did not end")


def test_scan_walks_everything_once(r, rr):
    keys = {f"key:{i}".encode(): i for i in range(1000)}
    keys[b""] = 0
    for client in (r, rr):
        client.mset(keys)
    found = full_scan(r, count=7)
    assert len(found) == len(set(found)) == len(keys)  # exactly once: Fjord never repeats
    assert set(found) == set(full_scan(rr, count=7))
    for kw in ({"match": "key:1*"}, {"match": "*"}, {"match": "", "count": 50}, {"_type": "string"},
               {"_type": "hash"}, {"match": "key:?", "_type": "STRING", "count": 1000}):
        assert sorted(full_scan(r, **kw)) == sorted(set(full_scan(rr, **kw))), kw


def test_scan_guarantees_under_concurrent_changes(r):
    r.mset({f"k{i}": i for i in range(500)})
    cursor, keys = r.scan(0, count=100)
    found = list(keys)
    deleted = {f"k{i}".encode() for i in range(0, 500, 2)} - set(found)
    r.delete(*deleted)
    r.mset({f"new{i}": i for i in range(100)})
    while cursor:
        cursor, keys = r.scan(cursor, count=100)
        found.extend(keys)
    assert not deleted & set(found)  # gone before the walk reached them
    survivors = {f"k{i}".encode() for i in range(1, 500, 2)}
    assert [k for k in found if k in survivors] and survivors <= set(found)
    assert len(found) == len(set(found))


def test_scan_skips_and_expires_keys_past_their_time(r):
    r.mset({f"live{i}": 1 for i in range(30)})
    for i in range(30):
        r.set(f"dead{i}", 1, px=1)
    time.sleep(0.02)
    assert sorted(full_scan(r, count=4)) == sorted(f"live{i}".encode() for i in range(30))
    assert r.dbsize() == 30  # the scan removed what it found expired


def test_scan_unknown_cursor_restarts_the_walk(r):
    r.mset({f"k{i}": i for i in range(50)})
    cursor, first = r.scan(0, count=10)
    assert cursor != 0 and len(first) == 10
    found = []
    cursor = (12345 << 32) | 20  # names no snapshot: starts over, misses nothing
    while True:
        cursor, keys = r.scan(cursor, count=10)
        found.extend(keys)
        if cursor == 0:
            break
    assert sorted(found) == sorted(f"k{i}".encode() for i in range(50))


def test_scan_cursor_is_bound_to_its_database(r):
    select_db0(r)
    r.mset({f"k{i}": i for i in range(30)})
    cursor, _ = r.scan(0, count=5)
    other = redis.Redis(port=r.connection_pool.connection_kwargs["port"], db=1)
    other.set("only-in-db1", 1)
    assert other.scan(cursor, count=100) == (0, [b"only-in-db1"])


@pytest.mark.parametrize("arg,value", [(b"0", 0), (b"", 0), (b"+7", 7), (b"007", 7), (b"-0", 0),
                                       (b"-1", 2**64 - 1), (b"18446744073709551615", 2**64 - 1),
                                       (b"-18446744073709551615", 1), (b"5\x00junk", 5)])
def test_parse_cursor_reads_like_strtoul(arg, value):
    assert parse_cursor(arg) == value


@pytest.mark.parametrize("arg", [b" 1", b"1 ", b"\t1", b"-", b"+", b"0x1", b"1.0", b"18446744073709551616",
                                 "\u0663".encode()])
def test_parse_cursor_rejects_what_redis_rejects(arg):
    with pytest.raises(ReplyError, match="invalid cursor"):
        parse_cursor(arg)


def test_cursor_table_bounds_without_breaking_scans_in_progress():
    table = CursorTable(max_snapshots=3, max_items=10, min_idle_s=60)
    a, first = table.page(0, "a", lambda: list(range(8)), 2)
    b, _ = table.page(0, "b", lambda: list(range(8)), 2)
    assert first == [0, 1] and len(table) == 2  # over the entry budget, but "a" is in use
    a, batch = table.page(a, "a", lambda: ["fresh"], 2)
    assert batch == [2, 3]
    assert table.page(b, "other-owner", lambda: ["fresh"], 2) == (0, ["fresh"])  # not its snapshot
    table.min_idle_s = 0
    table.page(0, "c", lambda: list(range(8)), 2)
    assert len(table) == 1  # idle ones go once over budget
    assert table.page(a, "a", lambda: ["restarted"], 2) == (0, ["restarted"])
    table = CursorTable(max_snapshots=2, max_items=10**9)
    cursors = [table.page(0, i, lambda: list(range(5)), 1)[0] for i in range(3)]
    assert len(table) == 2 and table.page(cursors[0], 0, lambda: ["again"], 1) == (0, ["again"])
    assert table.page(cursors[2], 2, list, 100) == (0, [1, 2, 3, 4])  # the walk ends: dropped
    assert len(table) == 1


# ---------------------------------------------------------------- RANDOMKEY


def test_randomkey(diff, r):
    diff("RANDOMKEY")
    diff("SET", "only", "1")
    diff("RANDOMKEY")
    r.mset({f"k{i}": i for i in range(20)})
    seen = {r.randomkey() for _ in range(600)}
    assert seen == {b"only"} | {f"k{i}".encode() for i in range(20)}
    r.delete("only", *[f"k{i}" for i in range(10)])
    assert {r.randomkey() for _ in range(200)} == {f"k{i}".encode() for i in range(10, 20)}


def test_randomkey_never_returns_an_expired_key(r):
    for i in range(300):
        r.set(f"short{i}", 1, px=1)
    r.set("long", 1)
    time.sleep(0.02)
    assert all(r.randomkey() == b"long" for _ in range(50))
    r.delete("long")
    for i in range(20):
        r.set(f"short{i}", 1, px=1)
    time.sleep(0.02)
    assert r.randomkey() is None


# ---------------------------------------------------------------- OBJECT


def test_object(diff):
    values = ["1", "123", "-1", "9999", "10000", "01", "-0", " 1", "9223372036854775807",
              "-9223372036854775808", "9223372036854775808", "12345678901234567890", "", "hello",
              "x" * 44, "x" * 45, "1" * 45]
    for v in values:
        diff("SET", "k", v)
        diff("OBJECT", "ENCODING", "k")
        diff("OBJECT", "refcount", "k")
    for cmd in (("OBJECT", "ENCODING", "nokey"), ("OBJECT", "REFCOUNT", "nokey"), ("OBJECT", "FREQ", "nokey"),
                ("OBJECT", "IDLETIME", "nokey"), ("OBJECT", "FREQ", "k"), ("OBJECT", "IDLETIME", "k"),
                ("OBJECT", "Encoding", "k"), ("OBJECT", "HELP"), ("object", "help"), ("OBJECT", "foo", "k")):
        diff(*cmd)


# ---------------------------------------------------------------- events and replay


def test_events_on_the_log(new_fjord):
    srv = new_fjord()
    c = srv.client()
    c.set("a", "1")
    c.set("b", "2", ex=100)
    c.expire("a", 1000)
    at = c.pexpiretime("a")
    c.persist("a")
    c.rename("a", "a2")
    c.move("a2", 2)
    c.copy("b", "b2", destination_db=1)
    c.copy("b", "b", destination_db=1, replace=True)
    c.expire("b", 0)  # in the past: deleted
    c.delete("nokey", "b")
    c.set("gone", "x", px=1)
    time.sleep(0.01)
    assert c.exists("gone") == 0
    events = [(e.type, e.db, e.key, e.data) for e in logged_events(srv.data_dir) if e.type != "set"]
    assert events == [
        ("expire", 0, b"a", {"at": at}),
        ("persist", 0, b"a", {}),
        ("rename_from", 0, b"a", {"to": b"a2"}),
        ("rename_to", 0, b"a2", {"from": b"a"}),
        ("move_from", 0, b"a2", {"to_db": 2}),
        ("move_to", 2, b"a2", {"from_db": 0}),
        ("copy_to", 1, b"b2", {"from": b"b", "from_db": 0}),
        ("copy_to", 1, b"b", {"from": b"b", "from_db": 0}),
        ("del", 0, b"b", {}),
        ("expired", 0, b"gone", {}),
    ]


def test_replay_rebuilds_the_same_keyspace(new_fjord):
    srv = new_fjord()
    c = srv.client()
    select_db0(c)
    c.mset({"a": 1, "b": 2, "c": 3, "d": 4})
    c.expire("a", 1000)
    c.pexpireat("b", int(time.time() * 1000) + 500_000)
    c.rename("c", "c2")
    c.renamenx("d", "d2")
    c.move("d2", 3)
    c.copy("a", "a-copy", destination_db=4)
    c.expire("b", 10, gt=True)  # refused: not greater
    c.persist("a")
    c.set("old", "x", px=100)  # expires while the server is down
    c.set("e", "5", ex=100)
    c.expire("e", -1)  # deleted

    def state() -> dict:
        out = {}
        for db in range(5):
            d = redis.Redis(port=srv.port, db=db)
            for key in sorted(d.keys("*")):
                out[(db, key)] = (d.get(key), d.pexpiretime(key))
        return out

    before = state()
    assert (0, b"old") in before
    time.sleep(0.15)
    srv.restart()
    after = state()
    del before[(0, b"old")]
    assert after == before
    assert (4, b"a-copy") in after and after[(0, b"a")][1] == -1 and (3, b"d2") in after
