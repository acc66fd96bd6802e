"""Set commands: SADD ... SSCAN, against a real redis-server.

Differential tests (``diff``) compare reply bytes with redis-server 7.0.
Redis lists a small all-integer set (an intset) in numeric order and Fjord
does too, so those replies compare byte for byte; other sets come out in
hash order in both, and are compared as sorted lists. Random replies (SPOP,
SRANDMEMBER) are checked by their properties, the log by reading the segment
files, and a SIGKILL + replay must bring every set back.
"""

from __future__ import annotations

import random

import hiredis
import pytest

from logtools import logged_events

OK = b"+OK\r\n"
WRONGTYPE = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"








def parsed(reply: bytes):
    reader = hiredis.Reader()
    reader.feed(reply)
    return reader.gets()


def diff_unordered(diff, *cmd):
    """Both servers return the same members, in whatever order."""
    got, want = diff.both(*cmd)
    assert got[:1] == want[:1], (cmd, got, want)
    a, b = parsed(got), parsed(want)
    assert sorted(a) == sorted(b), (cmd, a, b)
    return a


# ------------------------------------------------------------------ SADD / SREM / basics


def test_sadd_srem_counts_and_membership(diff):
    assert diff("SADD", "s", "a", "b", "c", "a") == b":3\r\n"
    assert diff("SADD", "s", "a", "d") == b":1\r\n"
    assert diff("SADD", "s", "a") == b":0\r\n"
    assert diff("SREM", "s", "a", "a", "zz") == b":1\r\n"
    assert diff("SREM", "nokey", "a") == b":0\r\n"
    diff.run_all(("SCARD", "s"), ("SCARD", "nokey"), ("SISMEMBER", "s", "b"), ("SISMEMBER", "s", "a"),
            ("SISMEMBER", "nokey", "a"), ("SMISMEMBER", "s", "a", "b", "zz", "b"),
            ("SMISMEMBER", "nokey", "a", "b"), ("SMEMBERS", "nokey"), ("TYPE", "s"))
    diff_unordered(diff, "SMEMBERS", "s")


def test_integer_sets_list_in_numeric_order_like_an_intset(diff):
    diff("SADD", "i", "3", "1", "2", "10", "-5", "-9223372036854775808", "9223372036854775807", "0")
    diff.run_all(("SMEMBERS", "i"), ("SSCAN", "i", "0"), ("SSCAN", "i", "0", "MATCH", "1*"),
            ("SRANDMEMBER", "i", "100"), ("SUNION", "i"), ("SINTER", "i", "i"), ("SDIFF", "i"),
            ("OBJECT", "ENCODING", "i"))
    diff("SADD", "notint", "1", "01", "+2", "-0", "9223372036854775808")
    diff_unordered(diff, "SMEMBERS", "notint")
    diff("OBJECT", "ENCODING", "notint")
    assert diff("SPOP", "i", "100").startswith(b"*8\r\n$20\r\n-9223372036854775808")
    assert diff("EXISTS", "i") == b":0\r\n"


def test_binary_and_empty_members(diff):
    binary = bytes(range(256))
    diff("SADD", "s", binary, b"", b"\x00")
    diff.run_all(("SISMEMBER", "s", binary), ("SISMEMBER", "s", b""), ("SCARD", "s"), ("SREM", "s", b""),
            ("SMISMEMBER", "s", b"", b"\x00"))
    diff_unordered(diff, "SMEMBERS", "s")


def test_srem_deletes_an_emptied_set(diff, r):
    diff("SADD", "s", "a", "b")
    assert diff("SREM", "s", "a", "b") == b":2\r\n"
    assert diff("EXISTS", "s") == b":0\r\n"
    assert diff("TYPE", "s") == b"+none\r\n"
    r.sadd("t", "a")
    r.expire("t", 100)
    r.srem("t", "a")
    r.sadd("t", "b")
    assert r.ttl("t") == -1 and r.smembers("t") == {b"b"}


def test_copy_rename_move_keep_sets_independent(diff):
    diff("SADD", "s", "1", "2")
    diff.run_all(("COPY", "s", "s2"), ("SADD", "s2", "3"), ("SMEMBERS", "s"), ("SMEMBERS", "s2"),
            ("RENAME", "s2", "s3"), ("SMEMBERS", "s3"), ("MOVE", "s3", "1"), ("EXISTS", "s3"),
            ("SELECT", "1"), ("SMEMBERS", "s3"), ("OBJECT", "ENCODING", "s3"), ("SELECT", "0"))


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("cmd", [
    ("SADD", "s"), ("SREM", "s"), ("SMEMBERS",), ("SMEMBERS", "s", "x"), ("SISMEMBER", "s"),
    ("SISMEMBER", "s", "a", "b"), ("SMISMEMBER", "s"), ("SCARD",), ("SPOP",), ("SRANDMEMBER",),
    ("SMOVE", "s", "d"), ("SMOVE", "s", "d", "a", "b"), ("SINTER",), ("SINTERCARD", "1"), ("SUNION",),
    ("SDIFF",), ("SINTERSTORE", "d"), ("SUNIONSTORE", "d"), ("SDIFFSTORE", "d"), ("SSCAN", "s"),
])
def test_wrong_arity_matches_redis(diff, cmd):
    diff("SADD", "s", "a")
    assert diff(*cmd).startswith(b"-ERR wrong number of arguments")


@pytest.mark.parametrize("cmd", [
    ("SADD", "str", "a"), ("SREM", "str", "a"), ("SMEMBERS", "str"), ("SISMEMBER", "str", "a"),
    ("SMISMEMBER", "str", "a"), ("SCARD", "str"), ("SPOP", "str"), ("SPOP", "str", "0"),
    ("SPOP", "str", "2"), ("SRANDMEMBER", "str"), ("SRANDMEMBER", "str", "0"), ("SRANDMEMBER", "str", "-2"),
    ("SMOVE", "str", "s", "a"), ("SMOVE", "s", "str", "a"), ("SMOVE", "s", "str", "zz"),
    ("SINTER", "s", "str"), ("SINTER", "nokey", "str"), ("SINTER", "str", "nokey"), ("SUNION", "s", "str"),
    ("SUNION", "nokey", "str"), ("SDIFF", "s", "str"), ("SDIFF", "nokey", "str"), ("SDIFF", "str", "s"),
    ("SINTERSTORE", "d", "s", "str"), ("SUNIONSTORE", "d", "str"), ("SDIFFSTORE", "d", "nokey", "str"),
    ("SINTERCARD", "2", "s", "str"), ("SINTERCARD", "2", "nokey", "str"), ("SINTERCARD", "1", "str", "LIMIT", "0"),
    ("SSCAN", "str", "0"), ("SSCAN", "str", "0", "COUNT", "0"),
])
def test_wrongtype_against_a_string(diff, cmd):
    diff("SET", "str", "v")
    diff("SADD", "s", "a", "b")
    assert diff(*cmd) == WRONGTYPE
    diff.run_all(("GET", "str"), ("EXISTS", "d"))


def test_string_and_hash_commands_refuse_a_set(diff):
    diff("SADD", "s", "a")
    assert diff("GET", "s") == WRONGTYPE
    assert diff("HSET", "s", "f", "v") == WRONGTYPE
    assert diff("TYPE", "s") == b"+set\r\n"


# ------------------------------------------------------------------ SPOP / SRANDMEMBER


@pytest.mark.parametrize("cmd", [
    ("SPOP", "nokey"), ("SPOP", "nokey", "3"), ("SPOP", "nokey", "0"), ("SPOP", "s", "0"), ("SPOP", "s", "-1"),
    ("SPOP", "s", "x"), ("SPOP", "s", "1", "2"), ("SPOP", "s", "x", "2"), ("SPOP", "nokey", "-1"),
    ("SPOP", "str", "-1"), ("SPOP", "s", "9223372036854775808"), ("SRANDMEMBER", "nokey"),
    ("SRANDMEMBER", "nokey", "3"), ("SRANDMEMBER", "nokey", "-3"), ("SRANDMEMBER", "s", "x"),
    ("SRANDMEMBER", "str", "x"), ("SRANDMEMBER", "s", "1", "2"), ("SRANDMEMBER", "s", "x", "2"),
    ("SRANDMEMBER", "s", "-9223372036854775808"), ("SRANDMEMBER", "s", "0"), ("SRANDMEMBER", "one", "-3"),
    ("SRANDMEMBER", "one"), ("SRANDMEMBER", "one", "5"), ("SPOP", "one", "9223372036854775807"),
    ("EXISTS", "one"), ("SPOP", "s", "2"),
])
def test_spop_srandmember_errors_and_deterministic_cases_match_redis(diff, cmd):
    diff("SET", "str", "v")
    diff("SADD", "s", "1", "2", "3")
    diff("SADD", "one", "only")
    if cmd[:3] == ("SPOP", "s", "2"):
        assert diff.both(*cmd)[0].startswith(b"*2\r\n")
        diff("SCARD", "s")
    else:
        diff(*cmd)


def test_spop_and_srandmember_counts(r):
    members = {f"m{i}".encode() for i in range(50)}
    r.sadd("s", *members)
    assert r.srandmember("s") in members
    picked = r.srandmember("s", 20)
    assert len(picked) == 20 and len(set(picked)) == 20 and set(picked) <= members
    repeated = r.srandmember("s", -200)
    assert len(repeated) == 200 and set(repeated) <= members and len(set(repeated)) > 1
    assert set(r.srandmember("s", 1000)) == members
    popped = r.spop("s")
    assert popped in members and not r.sismember("s", popped)
    more = r.spop("s", 10)
    assert len(set(more)) == 10 and set(more) <= members - {popped}
    assert r.scard("s") == 39
    assert set(r.smembers("s")) == members - {popped} - set(more)
    rest = r.spop("s", 100)
    assert len(rest) == 39 and r.exists("s") == 0


def test_srandmember_refuses_absurd_repeat_counts(r):
    r.sadd("s", "a")
    with pytest.raises(Exception, match="out of range"):
        r.srandmember("s", -(1 << 40))


def test_spop_logs_the_members_it_chose(new_fjord):
    server = new_fjord()
    c = server.client()
    c.sadd("s", *[f"m{i}" for i in range(20)])
    one = c.spop("s")
    some = c.spop("s", 5)
    c.spop("s", 0)
    rest = c.spop("s", 100)
    events = [(e.type, e.data) for e in logged_events(server.data_dir) if e.key == b"s"]
    assert [t for t, _ in events] == ["sadd", "spop", "spop", "spop"]
    assert events[1][1] == {"members": [one]}
    assert events[2][1] == {"members": some}
    assert sorted(events[3][1]["members"]) == sorted(rest)
    c.close()


# ------------------------------------------------------------------ SMOVE


def test_smove(diff):
    diff("SADD", "s", "a", "b", "c")
    diff("SADD", "d", "c")
    diff.run_all(("SMOVE", "s", "d", "a"), ("SMOVE", "s", "d", "a"), ("SMOVE", "s", "d", "c"),
            ("SMOVE", "s", "s", "b"), ("SMOVE", "s", "s", "zz"), ("SMOVE", "nokey", "d", "b"),
            ("SMOVE", "s", "new", "b"), ("EXISTS", "s"), ("SMEMBERS", "new"), ("SCARD", "d"),
            ("SMOVE", "nokey", "str", "a"))
    diff_unordered(diff, "SMEMBERS", "d")


def test_smove_logs_srem_then_sadd(new_fjord):
    server = new_fjord()
    c = server.client()
    c.sadd("src", "a", "b")
    c.sadd("dst", "b")
    assert c.smove("src", "dst", "a")
    assert c.smove("src", "dst", "b")  # already in dst: only the srem is an effect
    events = [(e.type, e.key, e.data) for e in logged_events(server.data_dir)]
    assert events[-3:] == [("srem", b"src", {"members": [b"a"]}), ("sadd", b"dst", {"members": [b"a"]}),
                           ("srem", b"src", {"members": [b"b"]})]
    assert c.exists("src") == 0 and c.smembers("dst") == {b"a", b"b"}
    c.close()


# ------------------------------------------------------------------ algebra


def test_sinter_sunion_sdiff(diff):
    diff("SADD", "s", "a", "b", "c")
    diff("SADD", "t", "b", "c", "d")
    diff("SADD", "u", "c", "x")
    for cmd in (("SINTER", "s", "t"), ("SINTER", "s", "t", "u"), ("SUNION", "s", "t", "u"),
                ("SUNION", "s", "nokey"), ("SDIFF", "s", "t"), ("SDIFF", "t", "s", "u"), ("SDIFF", "s", "nokey"),
                ("SINTER", "s", "s")):
        diff_unordered(diff, *cmd)
    diff.run_all(("SINTER", "s", "nokey"), ("SINTER", "nokey", "s"), ("SDIFF", "nokey", "s"),
            ("SUNION", "nokey"), ("SDIFF", "s", "s"))


def test_store_commands_replace_the_destination(diff):
    diff("SADD", "s", "a", "b", "c")
    diff("SADD", "t", "b", "c", "d")
    diff("SET", "str", "v")
    diff.run_all(("SINTERSTORE", "d", "s", "t"), ("SCARD", "d"), ("SUNIONSTORE", "d", "s", "t"),
            ("SCARD", "d"), ("SDIFFSTORE", "d", "s", "t"), ("SMEMBERS", "d"), ("SINTERSTORE", "str", "s", "t"),
            ("TYPE", "str"), ("SUNIONSTORE", "s", "s", "t"), ("SCARD", "s"),
            ("SDIFFSTORE", "d", "s", "s"), ("EXISTS", "d"), ("SINTERSTORE", "d", "s", "nokey"),
            ("SUNIONSTORE", "d", "nokey", "nokey2"), ("EXISTS", "d"))
    diff_unordered(diff, "SMEMBERS", "str")


def test_store_drops_the_destinations_ttl(r):
    r.sadd("s", "a")
    r.sadd("d", "x")
    r.expire("d", 100)
    assert r.sunionstore("d", "s") == 1
    assert r.ttl("d") == -1 and r.smembers("d") == {b"a"}


def test_store_events(new_fjord):
    server = new_fjord()
    c = server.client()
    c.sadd("s", "a", "b")
    c.sadd("t", "b")
    c.sinterstore("d", "s", "t")
    c.sunionstore("d", "s", "t")
    c.sdiffstore("d", "s", "s")  # empty: the destination is deleted
    c.sdiffstore("d", "s", "s")  # nothing to delete: nothing logged
    events = [(e.type, e.data) for e in logged_events(server.data_dir) if e.key == b"d"]
    assert [t for t, _ in events] == ["sinterstore", "sunionstore", "del"]
    assert events[0][1] == {"members": [b"b"]}
    assert sorted(events[1][1]["members"]) == [b"a", b"b"]
    c.close()


@pytest.mark.parametrize("args", [
    ("1", "s"), ("2", "s", "t"), ("0", "s"), ("-1", "s"), ("x", "s"), ("3", "s", "t"), ("2", "s", "t", "LIMIT", "1"),
    ("2", "s", "t", "limit", "0"), ("2", "s", "t", "LIMIT", "-1"), ("2", "s", "t", "LIMIT", "x"),
    ("2", "s", "t", "LIMIT"), ("2", "s", "t", "FOO", "1"), ("2", "s", "t", "LIMIT", "1", "LIMIT", "5"),
    ("2", "s", "str", "LIMIT", "x"), ("2", "nokey", "t", "LIMIT", "x"), ("2", "s", "nokey"),
    ("9223372036854775807", "s"), ("2147483648", "s"), ("1", "s", "LIMIT", "9223372036854775808"),
    ("2", "s", "t", "LIMIT", "1", "foo"), ("1", "s", "LIMIT", "2"),
])
def test_sintercard_matches_redis(diff, args):
    diff("SET", "str", "v")
    diff("SADD", "s", "a", "b", "c", "d")
    diff("SADD", "t", "b", "c", "d", "e")
    diff("SINTERCARD", *args)


# ------------------------------------------------------------------ SSCAN


@pytest.mark.parametrize("args", [
    ("0",), ("0", "MATCH", "1*"), ("0", "MATCH", "*", "COUNT", "1"), ("0", "COUNT", "0"), ("x",), ("-1",),
    ("",), ("0", "MATCH"), ("0", "TYPE", "set"), ("18446744073709551616",), ("0", "COUNT", "x"),
])
def test_sscan_of_a_small_intset_matches_redis(diff, args):
    diff("SADD", "i", "5", "100", "-3", "12", "1")
    diff("SSCAN", "i", *args)
    diff("SSCAN", "nokey", *args)


def test_sscan_of_a_large_set_visits_every_member(r):
    members = {f"member:{i}".encode() for i in range(2000)}
    r.sadd("s", *members)
    assert set(r.sscan_iter("s")) == members
    assert set(r.sscan_iter("s", match="member:1*", count=50)) == {m for m in members if m.startswith(b"member:1")}
    cursor, page = r.sscan("s", 0, count=10)
    assert cursor != 0 and 0 < len(page) <= 10
    removed = set(list(members)[:500])
    seen, cursor, calls = set(), 0, 0
    while True:
        cursor, page = r.sscan("s", cursor, count=100)
        seen.update(page)
        calls += 1
        if calls == 2:
            r.srem("s", *removed)
        if cursor == 0:
            break
    assert members - removed <= seen


# ------------------------------------------------------------------ RESP3


def test_resp3_reply_shapes_match_redis(diff):
    diff.resp3()
    diff("SADD", "s", "1", "2", "3")
    diff("SADD", "t", "2")
    assert diff("SMEMBERS", "s") == b"~3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n"
    diff.run_all(("SMEMBERS", "nokey"), ("SINTER", "s", "t"), ("SINTER", "s", "nokey"), ("SUNION", "s", "t"),
            ("SDIFF", "s", "t"), ("SDIFF", "nokey", "t"), ("SPOP", "nokey", "2"), ("SPOP", "t", "0"),
            ("SPOP", "nokey"), ("SRANDMEMBER", "s", "5"), ("SRANDMEMBER", "nokey", "2"), ("SRANDMEMBER", "nokey"),
            ("SSCAN", "s", "0"), ("SMISMEMBER", "s", "1", "x"), ("SISMEMBER", "s", "1"),
            ("SINTERSTORE", "x", "s", "t"), ("SUNION", "nokey"), ("SRANDMEMBER", "t", "-2"))
    assert diff("SPOP", "s", "5") == b"~3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n"


# ------------------------------------------------------------------ durability


def test_sets_replay_after_sigkill(new_fjord):
    server = new_fjord()
    c = server.client()
    c.sadd("small", "a", "b", "c")
    c.srem("small", "b")
    c.sadd("ints", *range(100))
    c.sadd(b"bin\x00\xff", bytes(range(256)), b"")
    c.sadd("big", *[f"m{i}" for i in range(1000)])
    c.spop("big")
    c.spop("big", 17)
    c.sadd("src", "x", "y")
    c.smove("src", "dst", "x")
    c.smove("src", "dst", "y")
    c.sinterstore("inter", "small", "big", "ints")
    c.sadd("u1", "1", "2")
    c.sunionstore("union", "u1", "small")
    c.sdiffstore("diffd", "small", "u1")
    c.sadd("ttl", "a")
    c.expire("ttl", 1000)
    c.sadd("gone", "a")
    c.srem("gone", "a")
    c.sadd("popped", "a")
    c.spop("popped")
    keys = sorted(c.keys("*"))
    before = {k: c.smembers(k) for k in keys}
    for k in (b"gone", b"popped", b"src", b"inter"):
        assert k not in before
    assert len(before[b"big"]) == 982
    server.restart()
    c = server.client()
    assert sorted(c.keys("*")) == keys
    for k, members in before.items():
        assert c.smembers(k) == members, k
        assert c.type(k) == b"set"
    assert 900 < c.ttl("ttl") <= 1000
    c.close()


# ------------------------------------------------------------------ fuzz


def test_random_set_commands_match_redis(diff):
    """A seeded random walk over a few small sets (and a string key). Replies
    listing a non-intset set compare as sorted lists; all others, errors
    included, byte for byte."""
    rng = random.Random(11)
    keys = ["s1", "s2", "s3", "str"]
    members = ["a", "b", "1", "2", "10", "-3", ""]

    def some():
        return [rng.choice(members) for _ in range(rng.randint(1, 3))]

    def several():
        return [rng.choice(keys) for _ in range(rng.randint(1, 3))]

    makers = [
        lambda: ["SADD", rng.choice(keys)] + some(), lambda: ["SREM", rng.choice(keys)] + some(),
        lambda: ["SMEMBERS", rng.choice(keys)], lambda: ["SISMEMBER", rng.choice(keys), rng.choice(members)],
        lambda: ["SMISMEMBER", rng.choice(keys)] + some(), lambda: ["SCARD", rng.choice(keys)],
        lambda: ["SMOVE", rng.choice(keys), rng.choice(keys), rng.choice(members)],
        lambda: [rng.choice(["SINTER", "SUNION", "SDIFF"])] + several(),
        lambda: [rng.choice(["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]), rng.choice(keys)] + several(),
        lambda: ["SINTERCARD", "2", rng.choice(keys), rng.choice(keys)] + rng.choice([[], ["LIMIT", "1"]]),
        lambda: ["SPOP", rng.choice(keys), rng.choice(["0", "100"])], lambda: ["SRANDMEMBER", rng.choice(keys), "100"],
        lambda: ["SSCAN", rng.choice(keys), "0"], lambda: ["TYPE", rng.choice(keys)],
        lambda: ["EXISTS", rng.choice(keys)], lambda: ["SET", "str", "v"],
    ]
    listing = {"SMEMBERS", "SINTER", "SUNION", "SDIFF", "SPOP", "SRANDMEMBER", "SSCAN"}
    for _ in range(1500):
        cmd = rng.choice(makers)()
        if cmd[0] in listing:
            got, want = diff.both(*cmd)
            if got != want:
                a, b = parsed(got), parsed(want)
                if cmd[0] == "SSCAN":
                    a, b = a[1], b[1]
                assert got[:1] == want[:1] and sorted(a) == sorted(b), (cmd, got, want)
        else:
            diff(*cmd)


def test_random_picks_from_a_large_set(r):
    """Above 1024 members picks come from a sampled snapshot: still only live
    members, distinct when asked, and SPOP can drain the set."""
    members = {f"m{i}".encode() for i in range(3000)}
    r.sadd("s", *members)
    picked = r.srandmember("s", 100)
    assert len(picked) == 100 and len(set(picked)) == 100 and set(picked) <= members
    repeated = r.srandmember("s", -500)
    assert len(repeated) == 500 and set(repeated) <= members and len(set(repeated)) > 100
    popped = set()
    pipe = r.pipeline(transaction=False)
    for _ in range(2000):
        pipe.spop("s")
    for m in pipe.execute():
        assert m in members and m not in popped
        popped.add(m)
    some = r.spop("s", 50)
    assert len(set(some)) == 50 and not set(some) & popped
    rest = set(r.smembers("s"))
    assert rest == members - popped - set(some) and len(rest) == 950
    assert r.srandmember("s") in rest
