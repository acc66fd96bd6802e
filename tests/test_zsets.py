"""Sorted set commands: functional tests against Fjord and redis-server 7.0.

Most tests are differential: ``diff(...)`` sends the same command to both
servers over raw sockets and asserts byte-identical replies (errors included).
Random replies (ZRANDMEMBER) are checked for shape and membership instead, and
the replay test checks that the log rebuilds every sorted set exactly.
"""

from __future__ import annotations

import random
import shlex

import pytest

from conftest import RawClient

WRONGTYPE = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"


def run(diff, script: str) -> None:
    """Run one command per line (``shlex`` quoting) through ``diff``."""
    for line in script.strip().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            diff(*shlex.split(line))


# ------------------------------------------------------------------ ZADD


def test_zadd_scores_and_formatting(diff):
    run(diff, """
        ZADD z 1.5 a 3 b 0.1 c 1e300 d inf e -inf f 0.30000000000000004 g
        ZADD z 1e-310 h -0 i 0x10 j .5 k 5. l +1 m infinity n -INF o
        ZRANGE z 0 -1 WITHSCORES
        ZSCORE z a
        ZSCORE z b
        ZSCORE z c
        ZSCORE z d
        ZSCORE z e
        ZSCORE z f
        ZSCORE z g
        ZSCORE z i
        ZSCORE z nope
        ZSCORE nokey a
        ZMSCORE z a nope e
        ZMSCORE nokey a b
        ZCARD z
        ZCARD nokey
    """)


def test_zadd_bad_scores(diff):
    run(diff, """
        ZADD z nan a
        ZADD z 1e400 a
        ZADD z 1e-400 a
        ZADD z " 1" a
        ZADD z "1 " a
        ZADD z "" a
        ZADD z 1_0 a
        ZADD z 1 a x b
        EXISTS z
        ZADD z 1
        ZADD z nx 1
        ZADD z 1 a 2
    """)


def test_zadd_flags(diff):
    run(diff, """
        ZADD z 1 a 2 a
        ZSCORE z a
        ZADD z CH 1 a 3 a 3 b
        ZADD z XX NX 1 a
        ZADD z GT LT 1 a
        ZADD z NX GT 1 a
        ZADD z NX LT 1 a
        ZADD z INCR 1 a 2 b
        ZADD z nx 5 a 5 c
        ZADD z xx 7 a 7 d
        ZADD z xx ch 7 a 8 a
        ZADD z gt ch 0 a 9 b 1 new
        ZADD z lt ch 100 a 0 b
        ZADD z gt gt 1 a
        ZRANGE z 0 -1 WITHSCORES
        ZADD z INCR 2.5 a
        ZADD z XX INCR 1 nope
        ZADD z NX INCR 1 a
        ZADD z GT INCR -1 a
        ZADD z LT INCR -1 a
        ZADD z INCR 0 a
        ZADD nokey XX 1 a
        ZADD nokey XX INCR 1 a
        EXISTS nokey
        ZADD z INCR inf inf
        ZADD z INCR -inf inf
        ZINCRBY z 1 a
        ZINCRBY z -1.5 fresh
        ZINCRBY z nan a
        ZINCRBY z x a
        ZINCRBY z nx a
        ZINCRBY z -inf e
        ZRANGE z 0 -1 WITHSCORES
    """)


def test_zincrby_float_drift(diff):
    run(diff, """
        ZINCRBY z 0.1 a
        ZINCRBY z 0.2 a
        ZSCORE z a
        ZINCRBY z 1e308 b
        ZINCRBY z 1e308 b
    """)


def test_wrongtype(diff):
    diff("SET", "s", "v")
    for cmd in (
        ("ZADD", "s", "1", "a"), ("ZINCRBY", "s", "1", "a"), ("ZREM", "s", "a"),
        ("ZSCORE", "s", "a"), ("ZMSCORE", "s", "a"), ("ZCARD", "s"), ("ZCOUNT", "s", "0", "1"),
        ("ZLEXCOUNT", "s", "-", "+"), ("ZRANGE", "s", "0", "1"), ("ZRANGEBYSCORE", "s", "0", "1"),
        ("ZREVRANGEBYSCORE", "s", "1", "0"), ("ZRANGEBYLEX", "s", "-", "+"),
        ("ZREVRANGEBYLEX", "s", "+", "-"), ("ZREVRANGE", "s", "0", "1"), ("ZRANK", "s", "a"),
        ("ZREVRANK", "s", "a"), ("ZRANGESTORE", "d", "s", "0", "1"), ("ZPOPMIN", "s"),
        ("ZPOPMAX", "s", "2"), ("ZMPOP", "1", "s", "MIN"), ("ZUNION", "1", "s"),
        ("ZINTER", "1", "s"), ("ZDIFF", "1", "s"), ("ZUNIONSTORE", "d", "1", "s"),
        ("ZINTERSTORE", "d", "1", "s"), ("ZDIFFSTORE", "d", "1", "s"), ("ZINTERCARD", "1", "s"),
        ("ZREMRANGEBYSCORE", "s", "0", "1"), ("ZREMRANGEBYRANK", "s", "0", "1"),
        ("ZREMRANGEBYLEX", "s", "-", "+"), ("ZRANDMEMBER", "s"), ("ZRANDMEMBER", "s", "2"),
        ("ZSCAN", "s", "0"),
    ):
        assert diff(*cmd) == WRONGTYPE, cmd
    # argument errors are reported before the type check, as Redis does
    run(diff, """
        ZADD s x a
        ZCOUNT s 0 x
        ZRANGE s 0 x
        ZPOPMIN s 0
        ZSCAN s x
        ZUNIONSTORE s 1 nokey
        TYPE s
    """)


def test_zrem(diff):
    run(diff, """
        ZADD z 1 a 2 b 3 c
        ZREM z a a nope
        ZREM z nope
        ZREM nokey a
        ZREM z b c
        EXISTS z
    """)


# ------------------------------------------------------------------ ranks and ranges


def test_ties_order_by_member_bytes(diff):
    run(diff, """
        ZADD z 1 b 1 a 1 ab 1 B 1 "" 1 "\xff" 1 "\x00" 0 z 2 A
        ZRANGE z 0 -1 WITHSCORES
        ZREVRANGE z 0 -1
        ZRANK z ab
        ZREVRANK z ab
        ZRANK z nope
        ZRANK nokey a
        ZRANK z a withscore
    """)


def test_rank_ranges_and_negative_indexes(diff):
    diff("ZADD", "z", *sum(([str(i), f"m{i}"] for i in range(10)), []))
    for start, stop in [(0, -1), (2, 5), (-3, -1), (-100, 2), (5, 2), (8, 100), (10, 20),
                        (-1, -1), (0, 0), (-20, -15), (3, -8)]:
        diff("ZRANGE", "z", start, stop)
        diff("ZRANGE", "z", start, stop, "WITHSCORES")
        diff("ZRANGE", "z", start, stop, "REV")
        diff("ZREVRANGE", "z", start, stop, "WITHSCORES")
    run(diff, """
        ZRANGE z 0 -1 LIMIT 0 -1
        ZRANGE z 0 -1 LIMIT 0 1
        ZREVRANGE z 0 1 LIMIT 0 1
        ZRANGE z a 1
        ZRANGE z 0 1.5
        ZRANGE z 0 1 REV REV
        ZREVRANGE z 0 1 REV
        ZRANGE z 0 1 WITHSCORES WITHSCORES
        ZRANGE z 0 1 BYSCORE BYLEX
        ZRANGE z 0 1 foo
        ZRANGE nokey 0 -1
    """)


def test_score_ranges(diff):
    run(diff, """
        ZADD z -inf ninf 1 a 2 b 2 bb 3 c 4.5 d inf pinf
        ZRANGEBYSCORE z -inf +inf WITHSCORES
        ZRANGEBYSCORE z (1 3
        ZRANGEBYSCORE z 1 (3
        ZRANGEBYSCORE z (1 (3
        ZRANGEBYSCORE z 2 2
        ZRANGEBYSCORE z (2 2
        ZRANGEBYSCORE z 3 1
        ZRANGEBYSCORE z (-inf (inf
        ZRANGEBYSCORE z inf inf
        ZRANGEBYSCORE z (inf inf
        ZRANGEBYSCORE z -inf -inf
        ZRANGEBYSCORE z "" ""
        ZRANGEBYSCORE z ( 1e400
        ZRANGEBYSCORE z " 1" (4.5
        ZRANGEBYSCORE z 0x1 +inf
        ZRANGEBYSCORE z 1 x
        ZRANGEBYSCORE z nan 1
        ZRANGEBYSCORE z "1 " 2
        ZREVRANGEBYSCORE z +inf -inf WITHSCORES
        ZREVRANGEBYSCORE z (3 1
        ZREVRANGEBYSCORE z 1 3
        ZRANGE z (1 +inf BYSCORE WITHSCORES
        ZRANGE z +inf (1 BYSCORE REV
        ZRANGE z 1 3 BYSCORE LIMIT 1 2
        ZRANGEBYSCORE z -inf +inf BYSCORE
        ZREVRANGEBYSCORE z 1 0 REV
        ZCOUNT z -inf +inf
        ZCOUNT z (1 (3
        ZCOUNT z 3 1
        ZCOUNT nokey 0 1
        ZCOUNT z 0 x
    """)


def test_limit_offsets(diff):
    diff("ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e")
    for offset, count in [(0, 2), (1, 2), (3, 10), (4, 1), (5, 1), (10, 1), (-1, 2), (1, -1),
                          (1, -5), (1, 0), (0, 0)]:
        diff("ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", offset, count)
        diff("ZREVRANGEBYSCORE", "z", "+inf", "-inf", "WITHSCORES", "LIMIT", offset, count)
        diff("ZRANGE", "z", "(1", "4", "BYSCORE", "LIMIT", offset, count, "WITHSCORES")
        diff("ZRANGE", "z", "4", "(1", "BYSCORE", "REV", "LIMIT", offset, count)
    run(diff, """
        ZRANGEBYSCORE z 0 10 LIMIT 1
        ZRANGEBYSCORE z 0 10 LIMIT x 1
        ZRANGEBYSCORE z 0 10 LIMIT 1 x
        ZRANGEBYSCORE z 0 10 LIMIT 1 1 LIMIT 0 1
    """)


def test_lex_ranges(diff):
    diff("ZADD", "z", *sum((["0", m] for m in ["a", "b", "c", "d", "e", "ab", "abc", "B", "\xff"]), []))
    for lo, hi in [("-", "+"), ("[a", "[c"), ("(a", "(c"), ("[ab", "+"), ("-", "(b"), ("+", "-"),
                   ("[c", "[a"), ("(a", "[a"), ("[a", "[a"), ("[", "+"), ("(", "(b"), ("-", "-"),
                   ("+", "+"), ("[\xff", "+")]:
        diff("ZRANGEBYLEX", "z", lo, hi)
        diff("ZREVRANGEBYLEX", "z", hi, lo)
        diff("ZLEXCOUNT", "z", lo, hi)
        diff("ZRANGE", "z", lo, hi, "BYLEX", "LIMIT", "1", "2")
        diff("ZRANGE", "z", hi, lo, "BYLEX", "REV", "LIMIT", "1", "2")
    run(diff, """
        ZRANGEBYLEX z a b
        ZRANGEBYLEX z "" +
        ZRANGEBYLEX z -a +
        ZRANGEBYLEX z - ++
        ZRANGEBYLEX z - + WITHSCORES
        ZRANGE z - + BYLEX WITHSCORES
        ZRANGEBYLEX z - + LIMIT 1
        ZRANGEBYLEX z - + LIMIT 2 3
        ZRANGEBYLEX z - + LIMIT -1 3
        ZRANGEBYLEX z - + LIMIT 2 -1
        ZREVRANGEBYLEX z + - LIMIT 2 3
        ZLEXCOUNT z a b
        ZLEXCOUNT nokey - +
    """)


def test_lex_ranges_with_mixed_scores(diff):
    # Unspecified by Redis, but deterministic for small sets: walk in order.
    run(diff, """
        ZADD z 0.1 c 1 a 2 b 3 d 0 x 5 y
        ZRANGEBYLEX z [a (b
        ZRANGEBYLEX z [b +
        ZRANGEBYLEX z - [c
        ZRANGEBYLEX z [a + LIMIT 1 2
        ZREVRANGEBYLEX z + [b
        ZREVRANGEBYLEX z [d - LIMIT 1 1
        ZLEXCOUNT z [a [z
        ZREMRANGEBYLEX z [b [c
        ZRANGE z 0 -1 WITHSCORES
    """)


def test_zrangestore(diff):
    run(diff, """
        ZADD src 1 a 2 b 3 c 4 d
        SET dst v
        EXPIRE dst 100
        ZRANGESTORE dst src 1 2
        TTL dst
        TYPE dst
        ZRANGE dst 0 -1 WITHSCORES
        ZRANGESTORE dst src (1 +inf BYSCORE LIMIT 1 5
        ZRANGE dst 0 -1 WITHSCORES
        ZRANGESTORE dst src [b [c BYLEX REV
        ZRANGE dst 0 -1 WITHSCORES
        ZRANGESTORE dst src 0 -1 REV
        ZRANGE dst 0 -1 WITHSCORES
        ZRANGESTORE dst src 0 -1 WITHSCORES
        ZRANGESTORE dst src 0 -1 LIMIT 0 1
        ZRANGESTORE dst src 5 10
        EXISTS dst
        ZRANGESTORE dst nokey 0 -1
        EXISTS dst
        ZRANGESTORE src src 0 1
        ZRANGE src 0 -1
    """)


# ------------------------------------------------------------------ removal and pops


def test_zremrange(diff):
    run(diff, """
        ZADD z 1 a 2 b 3 c 4 d 5 e 6 f
        ZREMRANGEBYRANK z 0 0
        ZREMRANGEBYRANK z -2 -1
        ZREMRANGEBYRANK z 5 1
        ZREMRANGEBYRANK z x 1
        ZRANGE z 0 -1 WITHSCORES
        ZREMRANGEBYSCORE z (2 3
        ZREMRANGEBYSCORE z a 1
        ZREMRANGEBYSCORE z 10 1
        ZRANGE z 0 -1
        ZADD l 0 a 0 b 0 c 0 d
        ZREMRANGEBYLEX l (a [c
        ZREMRANGEBYLEX l a b
        ZRANGE l 0 -1
        ZREMRANGEBYLEX l - +
        EXISTS l
        ZREMRANGEBYSCORE z -inf +inf
        EXISTS z
        ZREMRANGEBYRANK nokey 0 -1
        ZREMRANGEBYSCORE nokey 0 1
        ZREMRANGEBYLEX nokey - +
    """)


def test_pops(diff):
    run(diff, """
        ZADD z 1 a 2 b 0.1 c inf d -inf e
        ZPOPMIN z
        ZPOPMAX z
        ZPOPMIN z 2
        ZPOPMIN z 0
        ZPOPMIN z -1
        ZPOPMIN z x
        ZPOPMIN z 1 2
        ZPOPMIN nokey
        ZPOPMIN nokey 3
        ZPOPMAX z 10
        EXISTS z
        ZADD z 1 a 2 b 3 c
        ZMPOP 2 nokey z MIN
        ZMPOP 2 nokey z MAX COUNT 5
        EXISTS z
        ZMPOP 1 nokey MIN
        ZMPOP 0 z MIN
        ZMPOP -1 z MIN
        ZMPOP x z MIN
        ZMPOP 2 z MIN
        ZMPOP 1 z foo
        ZMPOP 1 z MIN COUNT 0
        ZMPOP 1 z MIN COUNT -1
        ZMPOP 1 z MIN COUNT x
        ZMPOP 1 z MIN COUNT 1 COUNT 1
        ZMPOP 1 z MIN COUNT
    """)


def test_zmpop_type_checks_stop_at_first_found(diff):
    run(diff, """
        SET s v
        ZADD z 1 a
        ZMPOP 2 z s MIN
        ZADD z 1 a
        ZMPOP 2 s z MIN
    """)


# ------------------------------------------------------------------ set algebra


def test_union_inter_diff(diff):
    run(diff, """
        ZADD a 1 x 2 y 3 z inf w
        ZADD b 10 y 20 z 30 v -inf w
        ZADD c 0.1 z 0.2 y 0.3 x
        ZUNION 2 a b WITHSCORES
        ZUNION 3 a b c
        ZUNION 2 a b WEIGHTS 2 0.5 WITHSCORES
        ZUNION 2 a b AGGREGATE MIN WITHSCORES
        ZUNION 2 a b AGGREGATE max WITHSCORES
        ZUNION 2 a b WEIGHTS 0 1 WITHSCORES
        ZUNION 3 a b nokey WITHSCORES
        ZINTER 2 a b WITHSCORES
        ZINTER 3 a b c WITHSCORES
        ZINTER 3 c b a WEIGHTS 1 2 3 AGGREGATE MAX WITHSCORES
        ZINTER 2 a nokey WITHSCORES
        ZINTER 2 a a WITHSCORES
        ZDIFF 2 a b WITHSCORES
        ZDIFF 3 a nokey c
        ZDIFF 1 a WITHSCORES
        ZDIFF 2 nokey a
        ZINTERCARD 2 a b
        ZINTERCARD 3 a b c LIMIT 1
        ZINTERCARD 2 a b LIMIT 0
        ZINTERCARD 2 a nokey
        ZUNION 3 c b a WITHSCORES
        ZUNION 2 a b WEIGHTS inf -inf WITHSCORES
    """)


def test_setop_errors(diff):
    run(diff, """
        ZADD z 1 a
        ZUNIONSTORE d 0 z
        ZUNION 0 z
        ZDIFF 0 z
        ZINTERCARD 0 z
        ZINTERCARD -1 z
        ZUNION x z
        ZUNION 2 z
        ZUNION 1 z WEIGHTS 1 2
        ZUNION 1 z WEIGHTS x
        ZUNION 1 z WEIGHTS nan
        ZUNION 1 z AGGREGATE foo
        ZUNION 1 z AGGREGATE
        ZDIFF 1 z WEIGHTS 1
        ZDIFF 1 z AGGREGATE SUM
        ZUNIONSTORE d 1 z WITHSCORES
        ZINTERCARD 1 z LIMIT -1
        ZINTERCARD 1 z LIMIT x
        ZINTERCARD 1 z WEIGHTS 1
        ZINTERCARD 1 z WITHSCORES
        ZINTERCARD 2 z
        ZUNION 1 z foo
    """)


def test_store_forms(diff):
    run(diff, """
        ZADD a 1 x 2 y 3 z
        ZADD b 10 y 20 z 30 v
        SET d v
        EXPIRE d 100
        ZUNIONSTORE d 2 a b WEIGHTS 1 2 AGGREGATE SUM
        TTL d
        ZRANGE d 0 -1 WITHSCORES
        ZINTERSTORE d 2 a b AGGREGATE MIN
        ZRANGE d 0 -1 WITHSCORES
        ZDIFFSTORE d 2 a b
        ZRANGE d 0 -1 WITHSCORES
        ZINTERSTORE d 2 a nokey
        EXISTS d
        ZDIFFSTORE d 2 a a
        ZUNIONSTORE a 2 a b
        ZRANGE a 0 -1 WITHSCORES
    """)


def test_sets_as_inputs(diff):
    diff("SADD", "probe", "x")
    run(diff, """
        SADD s x y q
        ZADD z 5 x 7 y 9 w
        ZUNION 2 s z WITHSCORES
        ZINTER 2 z s WEIGHTS 2 3 WITHSCORES
        ZDIFF 2 s z WITHSCORES
        ZDIFF 2 z s WITHSCORES
        ZINTERCARD 2 s z
        ZUNIONSTORE d 1 s
        ZRANGE d 0 -1 WITHSCORES
    """)


# ------------------------------------------------------------------ random and scan


def test_zrandmember(diff, r):
    run(diff, """
        ZADD z 1 a 2 b 0.1 c inf d
        ZRANDMEMBER z 10 WITHSCORES
        ZRANDMEMBER z 4
        ZRANDMEMBER z 0
        ZRANDMEMBER z 0 WITHSCORES
        ZRANDMEMBER nokey
        ZRANDMEMBER nokey 5
        ZRANDMEMBER z -9223372036854775808
        ZRANDMEMBER z 4611686018427387904 WITHSCORES
        ZRANDMEMBER z -4611686018427387904 WITHSCORES
        ZRANDMEMBER z 1 foo
        ZRANDMEMBER z 1 WITHSCORES x
        ZRANDMEMBER z x
    """)
    members = {b"a", b"b", b"c", b"d"}
    assert r.zrandmember("z") in members
    two = r.zrandmember("z", 2)
    assert len(two) == 2 == len(set(two)) and set(two) <= members
    many = r.zrandmember("z", -20)
    assert len(many) == 20 and set(many) <= members
    flat = r.zrandmember("z", -3, withscores=True)
    assert len(flat) == 6 and all(r.zscore("z", m) == float(s) for m, s in zip(flat[::2], flat[1::2]))


def test_zscan_small_sets_match_redis(diff):
    run(diff, """
        ZADD z 1 a 2 b 0.1 c inf d 3 ab
        ZSCAN z 0
        ZSCAN z 0 MATCH a*
        ZSCAN z 0 COUNT 1
        ZSCAN z 0 MATCH * COUNT 100
        ZSCAN z 12345
        ZSCAN z -1
        ZSCAN z ""
        ZSCAN z x
        ZSCAN z 18446744073709551616
        ZSCAN z " 1"
        ZSCAN z 0 COUNT 0
        ZSCAN z 0 COUNT x
        ZSCAN z 0 TYPE zset
        ZSCAN z 0 MATCH
        ZSCAN nokey 0
        ZSCAN nokey 0 COUNT 0
    """)


def test_zscan_large_set_returns_every_member_once(r):
    r.zadd("big", {f"m{i}": i for i in range(1000)})
    seen: list[bytes] = []
    cursor, calls = 0, 0
    while True:
        cursor, page = r.zscan("big", cursor, count=50)
        seen += [m for m, _ in page]
        if calls == 3:  # delete members already returned and some not yet seen
            r.zrem("big", *seen[:20], "m999", "m0")
        calls += 1
        if cursor == 0:
            break
    assert calls > 10
    expected = {f"m{i}".encode() for i in range(1000)} - {b"m999", b"m0"}
    assert expected <= set(seen) and len(seen) == len(set(seen))
    scores = dict(r.zscan_iter("big", match="m1?", count=20))
    assert scores == {f"m1{i}".encode(): float(10 + i) for i in range(10)}


# ------------------------------------------------------------------ generic commands


def test_generic_commands_see_zsets(diff):
    run(diff, """
        ZADD z 1 a 2 b
        TYPE z
        OBJECT ENCODING z
        EXPIRE z 100
        ZADD z 3 c
        TTL z
        COPY z z2
        ZADD z2 9 a
        ZRANGE z 0 -1 WITHSCORES
        ZRANGE z2 0 -1 WITHSCORES
        RENAME z z3
        ZRANGE z3 0 -1 WITHSCORES
        ZADD long 1 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
        OBJECT ENCODING long
    """)
    diff("ZADD", "big", *sum(([str(i), f"m{i}"] for i in range(200)), []))
    diff("OBJECT", "ENCODING", "big")


def _fuzz_command(rnd: random.Random) -> list[str]:
    """A random sorted set command over three keys and a few members, so
    sets collide, empty out and get recreated. No random replies."""
    key = lambda: rnd.choice(("k1", "k2", "k3"))  # noqa: E731
    member = lambda: rnd.choice(("a", "b", "c", "ab", "B", "", "zz", "\xff"))  # noqa: E731
    score = lambda: rnd.choice(("0", "1", "-1", "1.5", "0.1", "inf", "-inf", "2", "1e300", "0.2"))  # noqa: E731
    bound = lambda: rnd.choice(("0", "1", "(1", "-inf", "+inf", "(0", "2", "(3", "1.5", "x", "(inf"))  # noqa: E731
    lex = lambda: rnd.choice(("-", "+", "[a", "(a", "[b", "(ab", "[B", "[", "(", "[zz", "a"))  # noqa: E731
    idx = lambda: str(rnd.randint(-6, 6))  # noqa: E731
    limit = lambda: ["LIMIT", str(rnd.randint(-1, 3)), str(rnd.randint(-1, 3))] if rnd.random() < 0.4 else []  # noqa: E731
    op = rnd.randrange(14)
    if op < 4:
        flags = [f for f in ("NX", "XX", "GT", "LT", "CH", "INCR") if rnd.random() < 0.15]
        pairs = sum(([score(), member()] for _ in range(rnd.randint(1, 3))), [])
        return ["ZADD", key(), *flags, *(pairs[:2] if "INCR" in flags and rnd.random() < 0.9 else pairs)]
    if op == 4:
        return ["ZINCRBY", key(), score(), member()]
    if op == 5:
        return ["ZREM", key(), member(), member()]
    if op == 6:
        by = rnd.choice((None, "BYSCORE", "BYLEX"))
        rng = {None: [idx(), idx()], "BYSCORE": [bound(), bound(), "BYSCORE"], "BYLEX": [lex(), lex(), "BYLEX"]}[by]
        store = rnd.random() < 0.3
        cmd = ["ZRANGESTORE", key(), key()] if store else ["ZRANGE", key()]
        cmd += rng + (["REV"] if rnd.random() < 0.4 else []) + (limit() if by else [])
        return cmd + (["WITHSCORES"] if not store and by != "BYLEX" and rnd.random() < 0.5 else [])
    if op == 7:
        return [rnd.choice(("ZCOUNT", "ZREMRANGEBYSCORE")), key(), bound(), bound()]
    if op == 8:
        return [rnd.choice(("ZLEXCOUNT", "ZREMRANGEBYLEX", "ZRANGEBYLEX", "ZREVRANGEBYLEX")), key(), lex(), lex()]
    if op == 9:
        return [rnd.choice(("ZRANGEBYSCORE", "ZREVRANGEBYSCORE")), key(), bound(), bound(), *limit()]
    if op == 10:
        return [rnd.choice(("ZREMRANGEBYRANK", "ZREVRANGE")), key(), idx(), idx()]
    if op == 11:
        count = [str(rnd.randint(0, 3))] if rnd.random() < 0.5 else []
        if rnd.random() < 0.3:
            return ["ZMPOP", "2", key(), key(), rnd.choice(("MIN", "MAX")), *(["COUNT", "2"] if count else [])]
        return [rnd.choice(("ZPOPMIN", "ZPOPMAX")), key(), *count]
    if op == 12:
        keys = rnd.sample(["k1", "k2", "k3"], rnd.randint(1, 3))
        cmd = rnd.choice(("ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE", "ZUNION", "ZINTER", "ZDIFF", "ZINTERCARD"))
        out = [cmd, *([key()] if cmd.endswith("STORE") else []), str(len(keys)), *keys]
        if cmd.startswith(("ZUNION", "ZINTERS")) or cmd == "ZINTER":
            if rnd.random() < 0.5:
                out += ["WEIGHTS", *(rnd.choice(("1", "2", "0", "0.5", "inf")) for _ in keys)]
            if rnd.random() < 0.5:
                out += ["AGGREGATE", rnd.choice(("SUM", "MIN", "MAX"))]
        if cmd in ("ZUNION", "ZINTER", "ZDIFF") and rnd.random() < 0.5:
            out.append("WITHSCORES")
        return out
    return [rnd.choice(("ZRANK", "ZREVRANK", "ZSCORE", "ZMSCORE")), key(), member()]


@pytest.mark.parametrize("seed", [1, 2])
def test_differential_fuzz(diff, seed):
    rnd = random.Random(seed)
    for _ in range(1500):
        diff(*_fuzz_command(rnd))
    for key in ("k1", "k2", "k3"):
        diff("ZRANGE", key, "0", "-1", "WITHSCORES")


# ------------------------------------------------------------------ RESP3


def test_resp3_shapes(diff):
    f = diff.f
    diff.resp3()
    run(diff, """
        ZADD z 1 a 2 b 0.1 c inf d -inf e
        ZSCORE z c
        ZSCORE z d
        ZSCORE z nope
        ZMSCORE z a nope e
        ZINCRBY z 1 a
        ZADD z INCR 0.5 a
        ZADD z XX INCR 1 nope
        ZRANGE z 0 -1 WITHSCORES
        ZRANGE z 0 -1
        ZRANGEBYSCORE z -inf +inf WITHSCORES LIMIT 1 2
        ZREVRANGE z 0 1 WITHSCORES
        ZUNION 2 z nokey WITHSCORES
        ZINTER 1 z WITHSCORES
        ZDIFF 1 z WITHSCORES
        ZRANDMEMBER z 10 WITHSCORES
        ZRANDMEMBER nokey
        ZSCAN z 0
        ZRANK z nope
        ZPOPMIN z
        ZPOPMIN z 1
        ZPOPMAX z 2
        ZPOPMIN nokey
        ZMPOP 1 z MIN
        ZMPOP 1 nokey MIN
    """)
    diff("ZADD", "z", "1", "a", "2", "b")
    got = f.call("ZRANDMEMBER", "z", "-2", "WITHSCORES")
    assert got.startswith(b"*2\r\n*2\r\n$1\r\n")


# ------------------------------------------------------------------ durability


def test_replay_rebuilds_every_zset(new_fjord):
    server = new_fjord()
    c = server.client()
    c.zadd("plain", {"a": 1, "b": 2.5, "c": float("inf"), "d": float("-inf"), "e": 0.1})
    c.zadd("ties", {"b": 1, "a": 1, "\xff": 1, "": 1})
    c.zadd("bytes", {b"\x80\xfe": 3, b"ok": 1e300, b"tiny": 1e-310})
    c.zadd("ties", {"a": 0}, gt=True)
    c.zadd("ties", {"b": 5}, lt=True)
    c.zadd("ties", {"z": 9, "a": 7}, ch=True, xx=True)
    c.zincrby("inc", 0.1, "m")
    c.zincrby("inc", 0.2, "m")
    c.zadd("inc", {"n": float("inf")}, incr=True)
    c.zadd("neg", {"zero": -0.0, "x": 1})
    c.zadd("rm", {f"m{i}": i for i in range(20)})
    c.zrem("rm", "m0", "m1", "nope")
    c.zremrangebyscore("rm", "(5", 7)
    c.zremrangebyrank("rm", -2, -1)
    c.zadd("lex", {"a": 0, "b": 0, "c": 0, "d": 0})
    c.zremrangebylex("lex", "(a", "[b")
    c.zpopmin("rm")
    c.zpopmax("rm", 2)
    c.execute_command("ZMPOP", "1", "rm", "MIN", "COUNT", "2")
    c.zadd("gone", {"x": 1})
    c.zpopmin("gone")
    c.zunionstore("u", {"plain": 2, "ties": 1}, aggregate="MAX")
    c.zinterstore("i", ["plain", "ties"])
    c.execute_command("ZDIFFSTORE", "df", "2", "plain", "ties")
    c.execute_command("ZRANGESTORE", "rs", "rm", "0", "1", "REV")
    c.set("strkey", "v")
    c.execute_command("ZUNIONSTORE", "strkey", "1", "plain")
    c.execute_command("ZINTERSTORE", "i2", "2", "plain", "nokey")
    c.copy("plain", "copied")
    c.zadd("copied", {"extra": 42})
    c.zadd("big", {f"m{i}": i % 7 for i in range(300)})
    c.zadd("big", {f"m{i}": -i for i in range(0, 300, 3)})
    c.zremrangebyrank("big", 10, 20)
    keys = ["plain", "ties", "bytes", "inc", "neg", "rm", "lex", "gone", "u", "i", "df", "rs",
            "strkey", "i2", "copied", "big"]

    def snapshot():
        return {k: RawClient(server.port).call("ZRANGE", k, "0", "-1", "WITHSCORES") for k in keys}

    before = snapshot()
    assert before["gone"] == b"*0\r\n" and before["i"] != b"*0\r\n"
    server.restart()
    assert snapshot() == before
