"""List commands: LPUSH ... LMPOP, against a real redis-server.

Differential tests (``diff``) compare reply bytes with redis-server 7.0.15:
lists are ordered, so every reply compares byte for byte, errors included.
The log is checked by reading the segment files as an outside consumer would,
and a SIGKILL + replay must bring every list back identical.
"""

from __future__ import annotations


from logtools import logged_events

OK = b"+OK\r\n"
WRONGTYPE = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"




def fill(diff, key, *elements):
    diff("DEL", key)
    diff("RPUSH", key, *elements)




# ------------------------------------------------------------------ pushes and pops


def test_push_and_pop_both_ends(diff):
    assert diff("LPUSH", "l", "a", "b", "c") == b":3\r\n"
    assert diff("RPUSH", "l", "x", "y") == b":5\r\n"
    diff.run_all(("LRANGE", "l", "0", "-1"), ("LLEN", "l"), ("LPOP", "l"), ("RPOP", "l"),
            ("LRANGE", "l", "0", "-1"), ("LPUSHX", "l", "p", "q"), ("RPUSHX", "l", "r"),
            ("LPUSHX", "nokey", "a"), ("RPUSHX", "nokey", "a"), ("EXISTS", "nokey"),
            ("LRANGE", "l", "0", "-1"), ("LPOP", "nokey"), ("RPOP", "nokey"), ("LLEN", "nokey"),
            ("TYPE", "l"), ("OBJECT", "ENCODING", "l"))
    # binary-safe elements, including empty ones
    diff.run_all(("RPUSH", "b", b"\x00\xff", b"", b"\r\n"), ("LRANGE", "b", "0", "-1"))


def test_pop_with_count(diff):
    fill(diff, "l", "a", "b", "c", "d", "e")
    diff.run_all(("LPOP", "l", "0"), ("LPOP", "l", "2"), ("RPOP", "l", "2"), ("LRANGE", "l", "0", "-1"),
            ("LPOP", "l", "-1"), ("LPOP", "l", "x"), ("LPOP", "l", "01"), ("RPOP", "l", "1.5"),
            ("LPOP", "l", "99999999999999999999"),
            ("LPOP", "nokey", "2"), ("LPOP", "nokey", "0"), ("RPOP", "nokey", "-1"),
            ("LPOP", "l", "1", "2"), ("RPOP", "l", "1", "2"),
            ("LPOP", "l", "9223372036854775807"), ("EXISTS", "l"))
    fill(diff, "l", "a", "b", "c")
    diff.run_all(("RPOP", "l", "5"), ("EXISTS", "l"))
    assert diff("LPOP", "nokey", "3") == b"*-1\r\n"


# ------------------------------------------------------------------ reads


def test_lrange_and_lindex_index_grid(diff):
    fill(diff, "l", *"abcdefghij")
    points = ["0", "1", "4", "9", "10", "100", "-1", "-2", "-9", "-10", "-11", "-100",
              "9223372036854775807", "-9223372036854775808"]
    for start in points:
        for stop in points:
            diff("LRANGE", "l", start, stop)
        diff("LINDEX", "l", start)
    diff.run_all(("LRANGE", "l", "x", "1"), ("LRANGE", "l", "0", "1.0"), ("LRANGE", "nokey", "a", "b"),
            ("LRANGE", "nokey", "0", "-1"), ("LINDEX", "l", "x"), ("LINDEX", "nokey", "x"),
            ("LINDEX", "nokey", "0"), ("LINDEX", "l", "01"))


def test_lrange_of_a_long_list_from_both_ends(diff):
    diff("RPUSH", "l", *[str(i) for i in range(1000)])
    for start, stop in [("0", "99"), ("-100", "-1"), ("450", "549"), ("900", "2000"), ("-1000", "-900")]:
        diff("LRANGE", "l", start, stop)


def test_lpos(diff):
    fill(diff, "l", "a", "b", "c", "a", "b", "c", "a")
    diff.run_all(("LPOS", "l", "a"), ("LPOS", "l", "c"), ("LPOS", "l", "zz"), ("LPOS", "nokey", "a"),
            ("LPOS", "nokey", "a", "COUNT", "2"), ("LPOS", "l", "zz", "COUNT", "0"))
    for rank in ["1", "2", "3", "4", "-1", "-2", "-3", "-4", "9223372036854775807", "-9223372036854775808"]:
        diff("LPOS", "l", "a", "RANK", rank)
        for count in ["0", "1", "2"]:
            diff("LPOS", "l", "a", "RANK", rank, "COUNT", count)
            for maxlen in ["0", "1", "4", "7", "100"]:
                diff("LPOS", "l", "a", "rank", rank, "count", count, "maxlen", maxlen)
    diff.run_all(("LPOS", "l", "a", "MAXLEN", "3"), ("LPOS", "l", "a", "COUNT", "1", "COUNT", "2"),
            ("LPOS", "l", "a", "RANK", "1", "RANK", "-1"))


def test_lpos_errors(diff):
    fill(diff, "l", "a", "b")
    diff("SET", "str", "v")
    for key in ("l", "nokey", "str"):
        diff.run_all(("LPOS", key, "a", "RANK", "0"), ("LPOS", key, "a", "RANK", "x"),
                ("LPOS", key, "a", "COUNT", "-1"), ("LPOS", key, "a", "COUNT", "x"),
                ("LPOS", key, "a", "MAXLEN", "-1"), ("LPOS", key, "a", "MAXLEN", "99999999999999999999"),
                ("LPOS", key, "a", "FOO"), ("LPOS", key, "a", "FOO", "1"), ("LPOS", key, "a", "COUNT"),
                ("LPOS", key, "a", "RANK", "1", "RANK", "0"), ("LPOS", key, "a", "RANK", "0", "COUNT"),
                ("LPOS", key, "a", "COUNT", "1", "foo"))
    assert diff("LPOS", "str", "a") == WRONGTYPE


# ------------------------------------------------------------------ edits


def test_lset(diff):
    fill(diff, "l", "a", "b", "c")
    diff("SET", "str", "v")
    diff.run_all(("LSET", "l", "0", "A"), ("LSET", "l", "-1", "C"), ("LSET", "l", "3", "x"),
            ("LSET", "l", "-4", "x"), ("LSET", "l", "x", "v"), ("LSET", "nokey", "0", "v"),
            ("LSET", "nokey", "x", "v"), ("LSET", "str", "x", "v"), ("LRANGE", "l", "0", "-1"))


def test_lrem(diff):
    for count in ["0", "1", "2", "-1", "-2", "100", "-100"]:
        fill(diff, "l", "a", "b", "a", "c", "a", "b")
        diff.run_all(("LREM", "l", count, "a"), ("LRANGE", "l", "0", "-1"))
    fill(diff, "l", "a", "a")
    diff.run_all(("LREM", "l", "0", "zz"), ("LREM", "l", "x", "a"), ("LREM", "nokey", "0", "a"),
            ("LREM", "l", "0", "a"), ("EXISTS", "l"))


def test_ltrim_grid(diff):
    points = ["0", "1", "3", "5", "6", "100", "-1", "-2", "-5", "-6", "-7", "-100"]
    for start in points:
        for stop in points:
            fill(diff, "l", "a", "b", "c", "d", "e", "f")
            diff.run_all(("LTRIM", "l", start, stop), ("LRANGE", "l", "0", "-1"), ("EXISTS", "l"))
    diff.run_all(("LTRIM", "nokey", "0", "1"), ("LTRIM", "l", "x", "1"), ("LTRIM", "nokey", "0", "x"))


def test_linsert(diff):
    fill(diff, "l", "a", "b", "a")
    diff.run_all(("LINSERT", "l", "BEFORE", "a", "X"), ("LINSERT", "l", "after", "a", "Y"),
            ("LINSERT", "l", "After", "b", "Z"), ("LINSERT", "l", "before", "zz", "Q"),
            ("LINSERT", "l", "middle", "a", "Q"), ("LINSERT", "nokey", "before", "a", "Q"),
            ("LINSERT", "nokey", "middle", "a", "Q"), ("EXISTS", "nokey"), ("LRANGE", "l", "0", "-1"))


# ------------------------------------------------------------------ moves


def test_lmove_every_direction(diff):
    for wherefrom in ("LEFT", "RIGHT"):
        for whereto in ("LEFT", "right"):
            fill(diff, "src", "a", "b", "c")
            fill(diff, "dst", "x")
            diff.run_all(("LMOVE", "src", "dst", wherefrom, whereto), ("LRANGE", "src", "0", "-1"),
                    ("LRANGE", "dst", "0", "-1"), ("LMOVE", "src", "src", wherefrom, whereto),
                    ("LRANGE", "src", "0", "-1"), ("LMOVE", "src", "new", wherefrom, whereto),
                    ("LRANGE", "new", "0", "-1"), ("DEL", "new"))
    fill(diff, "src", "a", "b")
    diff.run_all(("RPOPLPUSH", "src", "dst"), ("RPOPLPUSH", "src", "dst"), ("EXISTS", "src"),
            ("LRANGE", "dst", "0", "-1"), ("RPOPLPUSH", "src", "dst"), ("LMOVE", "src", "dst", "LEFT", "LEFT"))


def test_lmove_errors_and_same_key_keeps_ttl(diff):
    diff("SET", "str", "v")
    fill(diff, "l", "a")
    diff.run_all(("LMOVE", "l", "l", "up", "down"), ("LMOVE", "l", "l", "LEFT", "down"),
            ("LMOVE", "str", "l", "x", "LEFT"), ("LMOVE", "nokey", "str", "LEFT", "LEFT"),
            ("RPOPLPUSH", "nokey", "str"), ("LMOVE", "str", "l", "LEFT", "LEFT"),
            ("LMOVE", "l", "str", "LEFT", "LEFT"), ("RPOPLPUSH", "l", "str"), ("LRANGE", "l", "0", "-1"))
    diff("EXPIRE", "l", "100")
    diff.run_all(("LMOVE", "l", "l", "LEFT", "RIGHT"), ("RPOPLPUSH", "l", "l"), ("TTL", "l"),
            ("LRANGE", "l", "0", "-1"))


def test_lmpop(diff):
    fill(diff, "l", "a", "b", "c", "d")
    diff("SET", "str", "v")
    diff.run_all(("LMPOP", "1", "l", "LEFT"), ("LMPOP", "2", "nokey", "l", "right", "COUNT", "2"),
            ("LMPOP", "1", "l", "left", "count", "10"), ("EXISTS", "l"), ("LMPOP", "1", "nokey", "LEFT"),
            ("LMPOP", "2", "nokey", "str", "LEFT"))
    fill(diff, "l", "a")
    for bad in (["0", "l", "LEFT"], ["-1", "l", "LEFT"], ["x", "l", "LEFT"], ["1", "l", "MIDDLE"],
                ["2", "l", "LEFT"], ["99", "l", "LEFT"], ["1", "l", "LEFT", "COUNT", "0"],
                ["1", "l", "LEFT", "COUNT", "-1"], ["1", "l", "LEFT", "COUNT", "x"],
                ["1", "l", "LEFT", "COUNT", "1", "COUNT", "2"], ["1", "l", "LEFT", "FOO"],
                ["1", "l", "LEFT", "COUNT"], ["1", "str", "MIDDLE"], ["1", "str", "LEFT"]):
        diff("LMPOP", *bad)
    assert diff("LMPOP", "1", "l", "LEFT") == b"*2\r\n$1\r\nl\r\n*1\r\n$1\r\na\r\n"


# ------------------------------------------------------------------ errors for every command


ALL_CALLS = [
    ("LPUSH", "k", "v"), ("RPUSH", "k", "v"), ("LPUSHX", "k", "v"), ("RPUSHX", "k", "v"),
    ("LPOP", "k"), ("RPOP", "k"), ("LPOP", "k", "1"), ("LRANGE", "k", "0", "-1"), ("LLEN", "k"),
    ("LINDEX", "k", "0"), ("LSET", "k", "0", "v"), ("LREM", "k", "0", "v"), ("LTRIM", "k", "0", "1"),
    ("LINSERT", "k", "BEFORE", "p", "v"), ("LPOS", "k", "v"), ("LMOVE", "k", "d", "LEFT", "LEFT"),
    ("RPOPLPUSH", "k", "d"), ("LMPOP", "1", "k", "LEFT"),
]


def test_wrongtype_against_a_string_key(diff):
    diff("SET", "k", "v")
    for call in ALL_CALLS:
        assert diff(*call) == WRONGTYPE, call
    diff("RPUSH", "l", "a")
    assert diff("LMOVE", "l", "k", "LEFT", "LEFT") == WRONGTYPE
    assert diff("RPOPLPUSH", "l", "k") == WRONGTYPE
    diff.run_all(("LRANGE", "l", "0", "-1"), ("GET", "k"))


def test_wrong_arity(diff):
    for call in ALL_CALLS:
        diff(*call[:1])
        diff(*call[:2])
        diff(*call, "extra", "more")
    diff.run_all(("LPOP", "k", "1", "2"), ("LSET", "k", "0"), ("LMPOP", "1", "k"), ("LPOS", "k"))


def test_resp3_shapes(diff):
    got, want = diff.both("HELLO", "3")
    assert got.startswith(b"%") and want.startswith(b"%")
    diff("RPUSH", "l", "a", "x", "a", "b")
    diff.run_all(("LPOP", "nokey"), ("LPOP", "nokey", "2"), ("LPOP", "l", "0"), ("LPOS", "l", "zz"),
            ("LPOS", "l", "a", "COUNT", "0"), ("LINDEX", "l", "9"), ("LMPOP", "1", "nokey", "LEFT"),
            ("LMPOP", "1", "l", "RIGHT", "COUNT", "1"), ("LRANGE", "nokey", "0", "-1"),
            ("LMOVE", "nokey", "l", "LEFT", "LEFT"), ("LPOP", "l", "2"), ("RPOP", "l"), ("EXISTS", "l"))


def test_copy_is_independent(diff):
    fill(diff, "l", "a", "b")
    diff.run_all(("COPY", "l", "c"), ("RPUSH", "c", "z"), ("LRANGE", "l", "0", "-1"),
            ("LRANGE", "c", "0", "-1"), ("TYPE", "c"))


# ------------------------------------------------------------------ the log


def test_events_record_effects(new_fjord):
    server = new_fjord()
    c = server.client()
    c.rpush("l", "a", "b", "c", "d", "e", "a")
    c.lpush("l", "x", "y")
    assert c.lpop("l", 2) == [b"y", b"x"]
    assert c.rpop("l") == b"a"
    c.lset("l", -1, "E")
    c.linsert("l", "AFTER", "b", "B")
    c.lrem("l", -5, "B")
    c.ltrim("l", 1, -2)
    c.ltrim("l", 0, -1)  # keeps everything: no event
    c.rpush("other", "o")
    c.lmove("l", "other", "LEFT", "RIGHT")
    c.lmove("other", "other", "LEFT", "LEFT")
    events = [(e.type, e.key, e.data) for e in logged_events(server.data_dir)]
    assert events == [
        ("rpush", b"l", {"elements": [b"a", b"b", b"c", b"d", b"e", b"a"]}),
        ("lpush", b"l", {"elements": [b"x", b"y"]}),
        ("lpop", b"l", {"count": 2, "elements": [b"y", b"x"]}),
        ("rpop", b"l", {"count": 1, "elements": [b"a"]}),
        ("lset", b"l", {"index": 4, "element": b"E"}),
        ("linsert", b"l", {"where": b"after", "pivot": b"b", "element": b"B"}),
        ("lrem", b"l", {"count": -5, "element": b"B", "removed": 1}),
        ("ltrim", b"l", {"start": 1, "stop": 3}),
        ("rpush", b"other", {"elements": [b"o"]}),
        # the push goes first, as Redis notifies (and, for the same key, so
        # the list is never empty in between)
        ("rpush", b"other", {"elements": [b"b"]}),
        ("lpop", b"l", {"count": 1, "elements": [b"b"]}),
        ("lpush", b"other", {"elements": [b"o"]}),
        ("lpop", b"other", {"count": 1, "elements": [b"o"]}),
    ]
    assert c.lrange("l", 0, -1) == [b"c", b"d"]
    assert c.lrange("other", 0, -1) == [b"o", b"b"]


def test_emptied_lists_are_deleted_without_a_del_event(new_fjord):
    server = new_fjord()
    c = server.client()
    for k in ("p", "r", "t", "m", "x"):
        c.rpush(k, "a")
    c.lpop("p")
    c.lrem("r", 0, "a")
    c.ltrim("t", 1, 0)
    c.lmpop(1, "m", direction="LEFT", count=5)
    c.rpoplpush("x", "y")
    assert c.keys("*") == [b"y"]
    events = [(e.type, e.key, e.data) for e in logged_events(server.data_dir)][5:]
    assert events == [
        ("lpop", b"p", {"count": 1, "elements": [b"a"]}),
        ("lrem", b"r", {"count": 0, "element": b"a", "removed": 1}),
        ("ltrim", b"t", {"start": 1, "stop": 0}),
        ("lpop", b"m", {"count": 1, "elements": [b"a"]}),
        ("lpush", b"y", {"elements": [b"a"]}),
        ("rpop", b"x", {"count": 1, "elements": [b"a"]}),
    ]


def test_lists_replay_after_sigkill(new_fjord):
    server = new_fjord()
    c = server.client()
    c.rpush("plain", *[f"e{i}" for i in range(50)])
    c.lpush("plain", "h1", "h2")
    c.lpop("plain", 3)
    c.rpop("plain")
    c.lset("plain", 10, "set")
    c.lset("plain", -2, "set2")
    c.linsert("plain", "BEFORE", "e20", "ins")
    c.linsert("plain", "AFTER", "e30", "ins2")
    c.rpush("dups", *("a", "b") * 10)
    c.lrem("dups", 3, "a")
    c.lrem("dups", -2, "b")
    c.rpush("trim", *range(100))
    c.ltrim("trim", 7, -9)
    c.ltrim("trim", -50, 1000)
    c.rpush("bin", b"\x00\xff", b"", "\u00e9")
    c.rpush("ring", "a", "b", "c")
    c.lmove("ring", "ring", "LEFT", "RIGHT")
    c.rpoplpush("ring", "moved")
    c.lmpop(2, "nokey", "dups", direction="RIGHT", count=2)
    c.rpush("ttl", "a")
    c.pexpire("ttl", 100_000)
    c.lmove("ttl", "ttl", "LEFT", "LEFT")
    c.rpush("gone", "a", "b")
    c.lpop("gone", 2)
    server.client(db=3).rpush("db3", "x")
    before = {k: c.lrange(k, 0, -1) for k in c.keys("*")}
    assert c.exists("gone") == 0 and sorted(before) == [b"bin", b"dups", b"moved", b"plain", b"ring",
                                                         b"trim", b"ttl"]
    server.restart()
    c = server.client()
    assert {k: c.lrange(k, 0, -1) for k in c.keys("*")} == before
    assert 0 < c.pttl("ttl") <= 100_000
    assert server.client(db=3).lrange("db3", 0, -1) == [b"x"]
