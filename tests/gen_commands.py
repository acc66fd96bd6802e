"""A seeded generator of realistic Redis command streams for differential tests.

``CommandGenerator(seed, base_ms).steps(n)`` returns ``n`` ``Step``s: which of
three clients sends the command, its arguments, and how its reply is compared
(``check``, see below). The same seed always gives the same stream, so a
difference found by ``tests/test_differential.py`` is reproducible from
(seed, index) alone.

What the stream looks like, and why:

- A small key space (30 names, some odd: empty, binary, glob characters)
  used in 4 databases through SELECT, so types collide: each name has a
  "home" type that 90% of the commands choosing it use (RENAME/COPY/MOVE
  mostly stay within one home type); the rest hit it with another type's
  command and take the WRONGTYPE paths (about one reply in seven).
- Every data-type and generic-key command Fjord implements (and SWAPDB,
  FLUSHDB/FLUSHALL, the blocking pops), with its options (EX/PX/EXAT/PXAT/
  KEEPTTL/GET, NX/XX/GT/LT/CH/INCR, LIMIT, WITHSCORES, BYSCORE/BYLEX/REV,
  WEIGHTS/AGGREGATE, COUNT, MATCH, TYPE ...), plus a small share of wrong
  arity, bad or 64-bit-edge numbers and unknown options so the error paths
  are compared too.
- Values of every shape: integers and decimals in the forms clients send,
  byte strings that are not UTF-8, now and then big ones (5 kB, 200 kB), and
  bulk adds that take collections past Redis's listpack/intset limits.
- Expiry is never short: relative TTLs are 1000 s and more, absolute ones
  are far from the relative ones (``base_ms`` is the run's start time) or in
  the past (which deletes the key at once, deterministically). EXPIRE GT/LT
  with a relative time uses a value that grows with the step index, so the
  comparison with any earlier expiry never depends on which millisecond each
  server handled the command in.
- A SET with a past EXAT/PXAT is followed by EXISTS on the key from the same
  client: Redis keeps such a key (DBSIZE counts it) until it is touched or
  its active expiry runs, which would make DBSIZE depend on timing.
- Blocking pops time out after 10-20 ms when there is nothing to pop, which
  is deterministic: nothing can fill the key meanwhile.
- Zset members never include "-0" (see ``ZSET`` below).
"""

from __future__ import annotations

import random
from typing import NamedTuple

# ------------------------------------------------------------------ checks
#: how the runner compares the two replies (errors are always compared exactly)
EXACT = "exact"            # byte for byte
SORTED = "sorted"          # unordered multi-bulk (KEYS, SINTER...): compare elements sorted
HASH_ORDER = "hash_order"  # HGETALL/HKEYS/HVALS: exact while Redis keeps the hash as a listpack
                           # (insertion order); in hash order (sorted) once it is a hashtable
SET_ORDER = "set_order"    # SMEMBERS: exact while Redis keeps an intset (sorted); else sorted
ZSET = "zset"              # exact after mapping a "-0" score to "0" (Redis prints -0 for a
                           # skiplist-encoded set or a ZUNION/ZINTER result; Fjord stores 0.0,
                           # a documented difference)
TTL = "ttl"                # TTL/EXPIRETIME: -1/-2 exact, else within 2 s
PTTL = "pttl"              # PTTL/PEXPIRETIME: -1/-2 exact, else within 2000 ms
SCAN = "scan"              # SCAN family: iterate to cursor 0 on each side, compare the sets
RANDOM = "random"          # SRANDMEMBER/HRANDFIELD/ZRANDMEMBER: compared by property
SPOP = "spop"              # by property, then Redis is made identical to Fjord
RANDOMKEY = "randomkey"    # by property: nil on both, or a key that exists on each side
LEX = "lex"                # lex-range commands: Redis leaves the result unspecified when the
                           # members' scores differ, so the runner first reads the lowest and
                           # highest score on both sides and sends the command only if they are
                           # equal (compared as ZSET); otherwise the step is skipped on both

NUM_CLIENTS = 3
DBS = 4
RESP3_CLIENT = 2  # this client speaks RESP3 (HELLO 3) on both servers


class Step(NamedTuple):
    client: int
    args: tuple[bytes, ...]
    check: str = EXACT


def _b(x) -> bytes:
    return x if isinstance(x, bytes) else str(x).encode()


# ------------------------------------------------------------------ pools

KEYS = [b"k:%d" % i for i in range(22)] + [
    b"", b"\xff\x00bin", b"user:{42}", b"a b\r\nc", b"key*", b"k?", b"[x]", b"\xc3\xa9t\xc3\xa9",
]
TYPES = ("string", "hash", "set", "zset", "list")
HOME = {k: TYPES[i % len(TYPES)] for i, k in enumerate(KEYS)}
#: zsets that ZADD mostly fills with score 0, for the lex-range commands
LEX_KEYS = [k for k in KEYS if HOME[k] == "zset"][:2]
LONG = b"L" * 70  # longer than Redis's listpack/intset limits (64 bytes)
#: byte strings that are not UTF-8, or that strict and lenient decoders
#: disagree on (an encoded surrogate, past U+10FFFF, an overlong NUL)
ODD_BYTES = [b"\x00\xff", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\x80", b"\x80", b"caf\xc3",
             b'{"b64": "AAAA"}', b"\\u0000", b"\r\n$3\r\n"]

VALUES = [b"", b"0", b"1", b"-1", b"7", b"42", b"100", b"-100", b"3.5", b"0.1", b"1e3", b"abc",
          b"hello", b"hello world", b"9223372036854775807", b"-9223372036854775808", b"\x00\xff",
          b"007", b" 5", b"10", b"foo", b"bar"]
FIELDS = [b"f1", b"f2", b"f3", b"f4", b"f5", b"name", b"age", b"", b"count", b"x y", b"\xfe"]
SET_MEMBERS = [b"1", b"2", b"3", b"5", b"8", b"10", b"-7", b"42", b"100", b"9223372036854775807",
               b"a", b"b", b"c", b"d", b"hello", b"", b"007", b"-0", b"1.5"]
INT_MEMBERS = SET_MEMBERS[:10]
ZMEMBERS = [b"a", b"b", b"c", b"d", b"e", b"f", b"g", b"m1", b"m2", b"m3", b"", b"\xff", b"0", b"10"]
SCORES = [b"0", b"1", b"2", b"2.5", b"-1", b"-3.5", b"10", b"100", b"1e3", b"0.1", b"inf", b"-inf",
          b"+inf", b"-0", b"1e-300", b"0x1p3", b"5", b"3", b"7"]
BAD_SCORES = [b"nan", b"abc", b"1e400", b"", b" 1", b"1.5.5"]
INCRS = [b"1", b"-1", b"0.5", b"2", b"10", b"-2.5", b"inf", b"-inf", b"0"]
ELEMENTS = [b"a", b"b", b"c", b"x", b"1", b"2", b"", b"hello", b"a", b"b"]
SCORE_BOUNDS = [b"-inf", b"+inf", b"0", b"(0", b"1", b"(1", b"2.5", b"(5", b"10", b"(100", b"inf",
                b"-1", b"(-inf", b"(+inf", b"-0", b"(-0", b"nan", b"(", b"1e400", b"0x10", b"(2.5000000000000001"]
LEX_BOUNDS = [b"-", b"+", b"[a", b"(a", b"[c", b"(e", b"[m", b"[m1", b"(g", b"[", b"(\xff"]
PATTERNS = [b"*", b"k:1*", b"k:?", b"k:[1-5]", b"*:*", b"user:*", b"*\\**", b"[^k]*", b"*b*",
            b"k:2?", b"\\k*", b"[x]"]
EXTREME_NUMBERS = [b"9223372036854775807", b"-9223372036854775808", b"2147483648", b"-2147483649",
                   b"4294967296", b"-9223372036854775807"]
BAD_NUMBERS = [b"abc", b"1.5", b"", b"99999999999999999999", b"-", b" 1", b"0x10"]


class CommandGenerator:
    """Seeded stream of ``Step``s (see the module docstring)."""

    def __init__(self, seed: int, base_ms: int):
        self.rng = random.Random(seed)
        self.base_ms = base_ms
        self.index = 0
        self.db = [0] * NUM_CLIENTS
        gens = [
            # strings
            (self.g_set, 8), (self.g_get, 6), (self.g_setnx_ex, 2), (self.g_getset_del_ex, 3),
            (self.g_mget_mset, 3), (self.g_incr, 5), (self.g_incrbyfloat, 2), (self.g_append, 2),
            (self.g_strlen_range, 3), (self.g_setrange, 1), (self.g_lcs, 1),
            # generic keys
            (self.g_del_exists, 4), (self.g_type, 3), (self.g_keys_scan, 2), (self.g_rename, 2),
            (self.g_copy_move, 3), (self.g_expire, 5), (self.g_ttl, 4), (self.g_persist, 1),
            (self.g_select, 3), (self.g_dbsize_random, 2), (self.g_flush, 0.04), (self.g_swapdb, 0.2),
            # hashes
            (self.g_hset, 7), (self.g_hget, 6), (self.g_hdel, 2), (self.g_hincr, 3), (self.g_hwhole, 3),
            (self.g_hrandfield, 1), (self.g_hscan, 1),
            # sets
            (self.g_sadd, 7), (self.g_srem_smove, 3), (self.g_sread, 6), (self.g_salgebra, 4),
            (self.g_spop, 1.5), (self.g_srandmember, 1), (self.g_sscan, 1),
            # sorted sets
            (self.g_zadd, 8), (self.g_zincrby, 2), (self.g_zrem, 3), (self.g_zread, 6), (self.g_zrange, 6),
            (self.g_zpop, 2), (self.g_zalgebra, 4), (self.g_zrangestore, 1), (self.g_zrandmember, 1),
            (self.g_zscan, 1),
            # lists
            (self.g_push, 8), (self.g_pop, 4), (self.g_lread, 6), (self.g_lwrite, 4), (self.g_lmove, 2),
            # blocking pops: they return at once when there is something to
            # pop, else time out after 10 ms (nothing can fill the key
            # meanwhile: each step waits for its replies)
            (self.g_blocking, 1.5),
            # collections big enough for Redis to change their encoding
            (self.g_bulk, 1),
        ]
        self.gens = [g for g, _ in gens]
        self.weights = [w for _, w in gens]

    # ---------------------------------------------------------------- helpers

    def steps(self, n: int) -> list[Step]:
        out = []
        for _ in range(n):
            client = self.rng.randrange(NUM_CLIENTS)
            gen = self.rng.choices(self.gens, self.weights)[0]
            args, check = gen(client)
            args = tuple(_b(a) for a in args)
            if self.rng.random() < 0.015:  # wrong arity: one word short or one too many
                args = args[:-1] if len(args) > 1 and self.rng.random() < 0.5 else args + (b"extra",)
            if args and args[0].upper() == b"SELECT":
                self._track_select(client, args)
            out.append(Step(client, args, check))
            self.index += 1
            if args[0] == b"SET" and self._past_expiry(args):
                # Redis keeps a key SET with a past EXAT/PXAT until it is next
                # touched or its active expiry cycle runs (DBSIZE counts it
                # meanwhile: timing noise); touch it at once, as a client would
                out.append(Step(client, (b"EXISTS", args[1])))
        return out[:n]

    @staticmethod
    def _past_expiry(args: tuple[bytes, ...]) -> bool:
        upper = [a.upper() for a in args]
        return any(upper[i] in (b"EXAT", b"PXAT") and args[i + 1] in (b"1", b"1000")
                   for i in range(3, len(args) - 1))

    def _track_select(self, client: int, args: tuple[bytes, ...]) -> None:
        if len(args) == 2 and args[1].isdigit() and int(args[1]) < 16 and args[1] == b"%d" % int(args[1]):
            self.db[client] = int(args[1])

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, seq):
        return self.rng.choice(seq)

    def key(self, home: str | None = None) -> bytes:
        """A key, 90% of the time one whose home type is ``home``."""
        if home is not None and self.chance(0.9):
            return self.pick([k for k in KEYS if HOME[k] == home])
        return self.pick(KEYS)

    def keys(self, home: str | None, lo: int, hi: int) -> list[bytes]:
        return [self.key(home) for _ in range(self.rng.randint(lo, hi))]

    def num(self, lo: int, hi: int, bad: float = 0.03, wild: bool = True):
        """An integer argument, sometimes not a valid one, sometimes (``wild``)
        at the edge of 32 or 64 bits."""
        if self.chance(bad):
            return self.pick(BAD_NUMBERS)
        if wild and self.chance(0.04):
            return self.pick(EXTREME_NUMBERS)
        return self.rng.randint(lo, hi)

    def value(self) -> bytes:
        if self.chance(0.03):
            return LONG
        if self.chance(0.03):
            return self.pick(ODD_BYTES)
        if self.chance(0.02):  # random bytes, now and then big (many socket reads, a big log record)
            size = self.pick([1, 10, 300, 5000]) if self.chance(0.95) else 200_000
            return self.rng.randbytes(size)
        if self.chance(0.1):
            return b"%d" % self.rng.randint(-1000, 1000)
        return self.pick(VALUES)

    def decimal(self) -> bytes:
        """A random decimal in one of the forms clients send: "%.2f", repr
        of a double, an exponent, a long string of digits."""
        x = self.rng.uniform(-1000, 1000)
        form = self.rng.randrange(5)
        if form == 0:
            return b"%.2f" % x
        if form == 1:
            return repr(x).encode()
        if form == 2:
            return b"%.3e" % x
        if form == 3:
            return b"%.25f" % (x / 1000)
        return b"%d.%d" % (self.rng.randint(-99, 99), self.rng.randint(0, 10**12))

    def score(self) -> bytes:
        if self.chance(0.03):
            return self.pick(BAD_SCORES)
        if self.chance(0.3):
            return b"%d" % self.rng.randint(-20, 20)
        if self.chance(0.15):
            return self.decimal()
        return self.pick(SCORES)

    def lex_key(self) -> bytes:
        return self.pick(LEX_KEYS) if self.chance(0.7) else self.key("zset")

    def zmember(self) -> bytes:
        if self.chance(0.02):
            return self.pick(ODD_BYTES)
        return LONG if self.chance(0.01) else self.pick(ZMEMBERS)

    def smember(self) -> bytes:
        if self.chance(0.01):
            return LONG
        if self.chance(0.02):
            return self.pick(ODD_BYTES)
        return self.pick(INT_MEMBERS) if self.chance(0.6) else self.pick(SET_MEMBERS)

    def expiry_option(self, allow_keepttl: bool = True) -> list:
        """EX/PX/EXAT/PXAT with a long or past time (never one that can lapse mid-test)."""
        r = self.rng.random()
        if r < 0.25:
            return [b"EX", self.pick([1000, 5000, 86400, self.num(1000, 9000)])]
        if r < 0.45:
            return [b"PX", self.pick([1_000_000, 5_000_000, 86_400_000])]
        if r < 0.6:
            return [b"EXAT", self.abs_s()]
        if r < 0.75:
            return [b"PXAT", self.abs_ms()]
        if r < 0.85 and allow_keepttl:
            return [b"KEEPTTL"]
        if r < 0.9:
            return [self.pick([b"EX", b"PX"]), self.pick([0, -5, b"abc", b"9223372036854775807"])]
        return [self.pick([b"EXAT", b"PXAT"]), self.pick([1, 1000])]  # in the past

    def abs_ms(self) -> int:
        """An absolute time far from any relative one used in the stream."""
        return self.base_ms + self.pick([20_000_000, 50_000_000, 200_000_000, 300_000_000, 3_000_000_000])

    def abs_s(self) -> int:
        return self.abs_ms() // 1000

    # ---------------------------------------------------------------- strings

    def g_set(self, c):
        args = [b"SET", self.key("string"), self.value()]
        if self.chance(0.3):
            args.append(self.pick([b"NX", b"XX"]))
        if self.chance(0.15):
            args.append(b"GET")
        if self.chance(0.3):
            args += self.expiry_option()
        if self.chance(0.03):
            args.append(self.pick([b"EX", b"BOGUS", b"NX"]))  # syntax errors, NX+XX...
        return args, EXACT

    def g_get(self, c):
        return [self.pick([b"GET", b"GET", b"GETDEL" if self.chance(0.2) else b"GET"]), self.key("string")], EXACT

    def g_setnx_ex(self, c):
        k, v = self.key("string"), self.value()
        r = self.rng.random()
        if r < 0.4:
            return [b"SETNX", k, v], EXACT
        if r < 0.7:
            return [b"SETEX", k, self.pick([1000, 86400, 0, -1, self.num(1000, 5000)]), v], EXACT
        return [b"PSETEX", k, self.pick([1_000_000, 86_400_000, 0, self.num(1_000_000, 2_000_000)]), v], EXACT

    def g_getset_del_ex(self, c):
        k = self.key("string")
        r = self.rng.random()
        if r < 0.3:
            return [b"GETSET", k, self.value()], EXACT
        if r < 0.5:
            return [b"GETDEL", k], EXACT
        args = [b"GETEX", k]
        if self.chance(0.7):
            args += [b"PERSIST"] if self.chance(0.2) else self.expiry_option(allow_keepttl=False)
        return args, EXACT

    def g_mget_mset(self, c):
        r = self.rng.random()
        if r < 0.5:
            return [b"MGET", *self.keys("string", 1, 5)], EXACT
        args = [self.pick([b"MSET", b"MSETNX"])]
        for k in self.keys("string", 1, 4):
            args += [k, self.value()]
        return args, EXACT

    def g_incr(self, c):
        k = self.key("string")
        r = self.rng.random()
        if r < 0.35:
            return [self.pick([b"INCR", b"DECR"]), k], EXACT
        if self.chance(0.05):
            amount = self.pick([b"9223372036854775807", b"-9223372036854775808", b"1.5"])
        else:
            amount = self.num(-100, 100)
        return [self.pick([b"INCRBY", b"DECRBY"]), k, amount], EXACT

    def g_incrbyfloat(self, c):
        amount = self.pick([b"0.1", b"-0.2", b"1.5", b"3", b"-1e3", b"1e308", b"inf", b"abc", b"5.0e3", b"0x10",
                            b"-0", b"1e-20", b"17.000000000000001", b"   1"])
        if self.chance(0.4):
            amount = self.decimal()
        return [b"INCRBYFLOAT", self.key("string"), amount], EXACT

    def g_append(self, c):
        return [b"APPEND", self.key("string"), self.value()], EXACT

    def g_strlen_range(self, c):
        k = self.key("string")
        if self.chance(0.4):
            return [b"STRLEN", k], EXACT
        return [self.pick([b"GETRANGE", b"SUBSTR"]), k, self.num(-20, 20), self.num(-20, 20)], EXACT

    def g_setrange(self, c):
        if self.chance(0.05):  # past Redis's 512 MB limit: an error (or nothing, for "")
            offset = self.pick([536870911, 536870912, 2**40])
            value = b"" if offset == 536870911 else self.pick([b"", b"x"])  # never allocate 512 MB
            return [b"SETRANGE", self.key("string"), offset, value], EXACT
        return [b"SETRANGE", self.key("string"), self.pick([0, 1, 3, 10, 100, -1, self.num(0, 30, wild=False)]),
                self.value()], EXACT

    def g_lcs(self, c):
        args = [b"LCS", self.key("string"), self.key("string")]
        opts = self.rng.random()
        if opts < 0.3:
            args.append(b"LEN")
        elif opts < 0.7:
            args.append(b"IDX")
            if self.chance(0.5):
                args += [b"MINMATCHLEN", self.num(0, 3)]
            if self.chance(0.5):
                args.append(b"WITHMATCHLEN")
        return args, EXACT

    # ---------------------------------------------------------------- generic keys

    def g_del_exists(self, c):
        cmd = self.pick([b"DEL", b"UNLINK", b"EXISTS", b"EXISTS", b"TOUCH"])
        return [cmd, *self.keys(None, 1, 4)], EXACT

    def g_type(self, c):
        return [b"TYPE", self.key()], EXACT

    def g_keys_scan(self, c):
        if self.chance(0.5):
            return [b"KEYS", self.pick(PATTERNS)], SORTED
        args = [b"SCAN", 0]
        if self.chance(0.5):
            args += [b"MATCH", self.pick(PATTERNS)]
        if self.chance(0.5):
            args += [b"COUNT", self.pick([1, 3, 10, 100])]
        if self.chance(0.3):
            args += [b"TYPE", self.pick([*TYPES, b"stream", b"nosuchtype", b"STRING"])]
        return args, SCAN

    def key_pair(self) -> tuple[bytes, bytes]:
        """Two keys, mostly of the same home type (renaming a hash over a
        list is legal but would soon leave every key a string)."""
        home = self.pick(TYPES)
        return self.key(home), self.key(home)

    def g_rename(self, c):
        return [self.pick([b"RENAME", b"RENAMENX"]), *self.key_pair()], EXACT

    def g_copy_move(self, c):
        if self.chance(0.35):
            return [b"MOVE", self.key(self.pick(TYPES)), self.pick([0, 1, 2, 3, 16, -1, b"x"]) if self.chance(0.1)
                    else self.rng.randrange(DBS)], EXACT
        args = [b"COPY", *self.key_pair()]
        if self.chance(0.4):
            args += [b"DB", self.rng.randrange(DBS) if self.chance(0.9) else self.pick([16, b"x"])]
        if self.chance(0.4):
            args.append(b"REPLACE")
        return args, EXACT

    def g_expire(self, c):
        k = self.key()
        r = self.rng.random()
        flag = []
        if r < 0.3:  # relative, long; NX/XX only (GT/LT below)
            if self.chance(0.3):
                flag = [self.pick([b"NX", b"XX"])]
            if self.chance(0.5):
                return [b"EXPIRE", k, self.pick([1000, 5000, 86400]), *flag], EXACT
            return [b"PEXPIRE", k, self.pick([1_000_000, 86_400_000]), *flag], EXACT
        if r < 0.45:  # relative GT/LT: growing with the index, never tied with an earlier expiry
            secs = 100_000 + 10 * self.index
            if self.chance(0.5):
                return [b"EXPIRE", k, secs, self.pick([b"GT", b"LT"])], EXACT
            return [b"PEXPIRE", k, secs * 1000, self.pick([b"GT", b"LT"])], EXACT
        if r < 0.8:  # absolute, any flag
            if self.chance(0.5):
                flag = [self.pick([b"NX", b"XX", b"GT", b"LT"])]
            if self.chance(0.5):
                return [b"EXPIREAT", k, self.abs_s(), *flag], EXACT
            return [b"PEXPIREAT", k, self.abs_ms(), *flag], EXACT
        if r < 0.92:  # in the past or not positive: deletes the key at once
            cmd = self.pick([b"EXPIRE", b"PEXPIRE", b"EXPIREAT", b"PEXPIREAT"])
            return [cmd, k, self.pick([0, -1, -100, 1, 5])
                    if cmd.endswith(b"AT") else self.pick([0, -1, -100])], EXACT
        bad = self.pick([[b"abc"], [b"1.5"], [b"9223372036854775807"], [b"-9223372036854775808"],
                         [1000, b"NX", b"XX"], [1000, b"GT", b"LT"], [1000, b"BOGUS"], [1000, b"NX", b"GT"]])
        return [self.pick([b"EXPIRE", b"PEXPIRE", b"EXPIREAT", b"PEXPIREAT"]), k, *bad], EXACT

    def g_ttl(self, c):
        cmd = self.pick([b"TTL", b"PTTL", b"EXPIRETIME", b"PEXPIRETIME"])
        return [cmd, self.key()], TTL if cmd in (b"TTL", b"EXPIRETIME") else PTTL

    def g_persist(self, c):
        return [b"PERSIST", self.key()], EXACT

    def g_select(self, c):
        if self.chance(0.05):
            return [b"SELECT", self.pick([16, -1, b"abc", b"", b"01"])], EXACT
        return [b"SELECT", self.rng.randrange(DBS)], EXACT

    def g_dbsize_random(self, c):
        if self.chance(0.6):
            return [b"DBSIZE"], EXACT
        return [b"RANDOMKEY"], RANDOMKEY

    def g_swapdb(self, c):
        if self.chance(0.1):
            return [b"SWAPDB", self.pick([0, 16, -1, b"x"]), self.pick([1, b"", 99])], EXACT
        return [b"SWAPDB", self.rng.randrange(DBS), self.rng.randrange(DBS)], EXACT

    def g_flush(self, c):
        if self.chance(0.8):
            return [b"FLUSHDB", *self.pick([[], [b"SYNC"], [b"ASYNC"]])], EXACT
        return [b"FLUSHALL"], EXACT

    # ---------------------------------------------------------------- hashes

    def field(self) -> bytes:
        return self.pick(ODD_BYTES) if self.chance(0.02) else self.pick(FIELDS)

    def g_hset(self, c):
        k = self.key("hash")
        r = self.rng.random()
        if r < 0.2:
            return [b"HSETNX", k, self.field(), self.value()], EXACT
        args = [self.pick([b"HSET", b"HSET", b"HMSET"]), k]
        for _ in range(self.rng.randint(1, 4)):
            args += [self.field(), self.value()]
        return args, EXACT

    def g_hget(self, c):
        k = self.key("hash")
        r = self.rng.random()
        if r < 0.4:
            return [b"HGET", k, self.field()], EXACT
        if r < 0.6:
            return [b"HMGET", k, *[self.field() for _ in range(self.rng.randint(1, 4))]], EXACT
        return [self.pick([b"HLEN", b"HEXISTS", b"HSTRLEN"]), k] + ([] if r < 0.7 else [self.field()]), EXACT

    def g_hdel(self, c):
        return [b"HDEL", self.key("hash"), *[self.field() for _ in range(self.rng.randint(1, 3))]], EXACT

    def g_hincr(self, c):
        k, f = self.key("hash"), self.field()
        if self.chance(0.6):
            return [b"HINCRBY", k, f, self.num(-50, 50) if self.chance(0.95)
                    else self.pick([b"9223372036854775807", b"-9223372036854775808"])], EXACT
        amount = (self.decimal() if self.chance(0.4)
                  else self.pick([b"0.1", b"-1.5", b"2", b"1e3", b"inf", b"x", b"-0.2"]))
        return [b"HINCRBYFLOAT", k, f, amount], EXACT

    def g_hwhole(self, c):
        return [self.pick([b"HGETALL", b"HKEYS", b"HVALS"]), self.key("hash")], HASH_ORDER

    def g_hrandfield(self, c):
        args = [b"HRANDFIELD", self.key("hash")]
        if self.chance(0.7):
            args.append(self.pick([1, 2, 5, 100, -1, -3, -10, 0]))
            if self.chance(0.5):
                args.append(b"WITHVALUES")
        return args, RANDOM

    def g_hscan(self, c):
        return self._scan_args(b"HSCAN", self.key("hash"), [b"f*", b"*", b"?", b"name", b"*a*"]), SCAN

    def _scan_args(self, cmd, key, patterns):
        args = [cmd, key, 0]
        if self.chance(0.4):
            args += [b"MATCH", self.pick(patterns)]
        if self.chance(0.4):
            args += [b"COUNT", self.pick([1, 2, 10, 1000])]
        return args

    # ---------------------------------------------------------------- sets

    def g_sadd(self, c):
        return [b"SADD", self.key("set"), *[self.smember() for _ in range(self.rng.randint(1, 5))]], EXACT

    def g_srem_smove(self, c):
        if self.chance(0.7):
            return [b"SREM", self.key("set"), *[self.smember() for _ in range(self.rng.randint(1, 3))]], EXACT
        return [b"SMOVE", self.key("set"), self.key("set"), self.smember()], EXACT

    def g_sread(self, c):
        k = self.key("set")
        r = self.rng.random()
        if r < 0.3:
            return [b"SMEMBERS", k], SET_ORDER
        if r < 0.55:
            return [b"SISMEMBER", k, self.smember()], EXACT
        if r < 0.75:
            return [b"SMISMEMBER", k, *[self.smember() for _ in range(self.rng.randint(1, 4))]], EXACT
        return [b"SCARD", k], EXACT

    def g_salgebra(self, c):
        r = self.rng.random()
        keys = self.keys("set", 1, 3)
        if r < 0.4:
            return [self.pick([b"SINTER", b"SUNION", b"SDIFF"]), *keys], SORTED
        if r < 0.8:
            return [self.pick([b"SINTERSTORE", b"SUNIONSTORE", b"SDIFFSTORE"]), self.key("set"), *keys], EXACT
        args = [b"SINTERCARD", len(keys) if self.chance(0.9) else self.pick([0, 5, b"x"]), *keys]
        if self.chance(0.5):
            args += [b"LIMIT", self.pick([0, 1, 2, 5, -1])]
        return args, EXACT

    def g_spop(self, c):
        args = [b"SPOP", self.key("set")]
        if self.chance(0.6):
            args.append(self.pick([1, 2, 3, 100, 0, -1]))
        return args, SPOP

    def g_srandmember(self, c):
        args = [b"SRANDMEMBER", self.key("set")]
        if self.chance(0.7):
            args.append(self.pick([1, 3, 100, -1, -5, 0]))
        return args, RANDOM

    def g_sscan(self, c):
        return self._scan_args(b"SSCAN", self.key("set"), [b"1*", b"*", b"?", b"a", b"*e*"]), SCAN

    # ---------------------------------------------------------------- sorted sets

    def g_zadd(self, c):
        args = [b"ZADD", self.key("zset")]
        if self.chance(0.3):
            opts = [b"NX", b"XX", b"GT", b"LT", b"CH", b"INCR"]
            args += self.rng.sample(opts, self.rng.randint(1, 2))
        n = 1 if b"INCR" in args and self.chance(0.95) else self.rng.randint(1, 4)
        same_score = args[1] in LEX_KEYS and self.chance(0.9)
        for _ in range(n):
            args += [b"0" if same_score else self.score(), self.zmember()]
        return args, ZSET

    def g_zincrby(self, c):
        amount = self.decimal() if self.chance(0.3) else self.pick(INCRS) if self.chance(0.95) else b"nan"
        return [b"ZINCRBY", self.key("zset"), amount, self.zmember()], ZSET

    def g_zrem(self, c):
        k = self.key("zset")
        r = self.rng.random()
        if r < 0.5:
            return [b"ZREM", k, *[self.zmember() for _ in range(self.rng.randint(1, 3))]], EXACT
        if r < 0.7:
            return [b"ZREMRANGEBYSCORE", k, self.pick(SCORE_BOUNDS), self.pick(SCORE_BOUNDS)], EXACT
        if r < 0.85:
            return [b"ZREMRANGEBYRANK", k, self.num(-5, 5), self.num(-5, 5)], EXACT
        return [b"ZREMRANGEBYLEX", self.lex_key(), self.pick(LEX_BOUNDS), self.pick(LEX_BOUNDS)], LEX

    def g_zread(self, c):
        k = self.key("zset")
        r = self.rng.random()
        if r < 0.2:
            return [b"ZSCORE", k, self.zmember()], ZSET
        if r < 0.35:
            return [b"ZMSCORE", k, *[self.zmember() for _ in range(self.rng.randint(1, 3))]], ZSET
        if r < 0.5:
            return [b"ZCARD", k], EXACT
        if r < 0.65:
            args = [self.pick([b"ZRANK", b"ZREVRANK"]), k, self.zmember()]
            return args, EXACT
        if r < 0.8:
            return [b"ZCOUNT", k, self.pick(SCORE_BOUNDS), self.pick(SCORE_BOUNDS)], EXACT
        return [b"ZLEXCOUNT", self.lex_key(), self.pick(LEX_BOUNDS), self.pick(LEX_BOUNDS)], LEX

    def limit(self) -> list:
        if not self.chance(0.3):
            return []
        return [b"LIMIT", self.num(-1, 3), self.pick([-1, 0, 1, 2, 5, 100, b"9223372036854775807", b"-5"])]

    def g_zrange(self, c):
        k = self.key("zset")
        r = self.rng.random()
        ws = [b"WITHSCORES"] if self.chance(0.5) else []
        if r < 0.35:
            args, check = [b"ZRANGE", k], ZSET
            mode = self.rng.random()
            if mode < 0.4:
                args += [self.num(-6, 6), self.num(-6, 6)]
            elif mode < 0.7:
                args += [self.pick(SCORE_BOUNDS), self.pick(SCORE_BOUNDS), b"BYSCORE"]
            else:
                args = [b"ZRANGE", self.lex_key(), self.pick(LEX_BOUNDS), self.pick(LEX_BOUNDS), b"BYLEX"]
                ws = [] if self.chance(0.9) else ws  # BYLEX + WITHSCORES is an error
                check = LEX
            if self.chance(0.3):
                args.append(b"REV")
            if mode >= 0.4 or self.chance(0.1):
                args += self.limit()
            return args + ws, check
        if r < 0.5:
            return [self.pick([b"ZRANGE", b"ZREVRANGE"]), k, self.num(-6, 6), self.num(-6, 6), *ws], ZSET
        if r < 0.75:
            return [self.pick([b"ZRANGEBYSCORE", b"ZREVRANGEBYSCORE"]), k, self.pick(SCORE_BOUNDS),
                    self.pick(SCORE_BOUNDS), *ws, *self.limit()], ZSET
        return [self.pick([b"ZRANGEBYLEX", b"ZREVRANGEBYLEX"]), self.lex_key(), self.pick(LEX_BOUNDS),
                self.pick(LEX_BOUNDS), *self.limit()], LEX

    def g_zpop(self, c):
        if self.chance(0.7):
            args = [self.pick([b"ZPOPMIN", b"ZPOPMAX"]), self.key("zset")]
            if self.chance(0.5):
                args.append(self.pick([1, 2, 5, 0, -1, 100]))
            return args, ZSET
        keys = self.keys("zset", 1, 3)
        args = [b"ZMPOP", len(keys) if self.chance(0.95) else self.pick([0, 9]), *keys, self.pick([b"MIN", b"MAX"])]
        if self.chance(0.5):
            args += [b"COUNT", self.pick([1, 2, 10, 0, -1])]
        return args, ZSET

    def _weights_aggregate(self, n: int) -> list:
        out = []
        if self.chance(0.3):
            out += [b"WEIGHTS", *[self.pick([1, 2, 0, -1, 0.5, b"inf", b"-inf", self.decimal(), b"x"])
                                  for _ in range(n)]]
        if self.chance(0.3):
            out += [b"AGGREGATE", self.pick([b"SUM", b"MIN", b"MAX", b"sum", b"AVG"])]
        return out

    def g_zalgebra(self, c):
        keys = self.keys("zset", 1, 3)
        numkeys = len(keys) if self.chance(0.95) else self.pick([0, len(keys) + 1, b"x"])
        r = self.rng.random()
        if r < 0.35:
            cmd = self.pick([b"ZUNION", b"ZINTER", b"ZDIFF"])
            extra = [] if cmd == b"ZDIFF" else self._weights_aggregate(len(keys))
            ws = [b"WITHSCORES"] if self.chance(0.5) else []
            return [cmd, numkeys, *keys, *extra, *ws], ZSET
        if r < 0.8:
            cmd = self.pick([b"ZUNIONSTORE", b"ZINTERSTORE", b"ZDIFFSTORE"])
            extra = [] if cmd == b"ZDIFFSTORE" else self._weights_aggregate(len(keys))
            return [cmd, self.key("zset"), numkeys, *keys, *extra], EXACT
        args = [b"ZINTERCARD", numkeys, *keys]
        if self.chance(0.5):
            args += [b"LIMIT", self.pick([0, 1, 3, -1])]
        return args, EXACT

    def g_zrangestore(self, c):
        args, check = [b"ZRANGESTORE", self.key("zset"), self.key("zset")], EXACT
        mode = self.rng.random()
        if mode < 0.4:
            args += [self.num(-6, 6), self.num(-6, 6)]
        elif mode < 0.7:
            args += [self.pick(SCORE_BOUNDS), self.pick(SCORE_BOUNDS), b"BYSCORE"]
        else:
            args[2] = self.lex_key()
            args += [self.pick(LEX_BOUNDS), self.pick(LEX_BOUNDS), b"BYLEX"]
            check = LEX
        if self.chance(0.3):
            args.append(b"REV")
        if mode >= 0.4:
            args += self.limit()
        return args, check

    def g_zrandmember(self, c):
        args = [b"ZRANDMEMBER", self.key("zset")]
        if self.chance(0.7):
            args.append(self.pick([1, 2, 5, 100, -1, -4, 0]))
            if self.chance(0.5):
                args.append(b"WITHSCORES")
        return args, RANDOM

    def g_zscan(self, c):
        return self._scan_args(b"ZSCAN", self.key("zset"), [b"m*", b"*", b"?", b"a"]), SCAN

    def timeout(self) -> bytes:
        if self.chance(0.05):
            return self.pick([b"abc", b"-1", b"-0.5", b"1e400", b""])
        return self.pick([b"0.01", b"0.01", b"0.02", b".01"])

    def g_blocking(self, c):
        r = self.rng.random()
        if r < 0.3:
            return [self.pick([b"BLPOP", b"BRPOP"]), *self.keys("list", 1, 3), self.timeout()], EXACT
        if r < 0.45:
            return [b"BLMOVE", self.key("list"), self.key("list"), self.pick([b"LEFT", b"RIGHT"]),
                    self.pick([b"LEFT", b"RIGHT"]), self.timeout()], EXACT
        if r < 0.5:
            return [b"BRPOPLPUSH", self.key("list"), self.key("list"), self.timeout()], EXACT
        if r < 0.65:
            keys = self.keys("list", 1, 3)
            args = [b"BLMPOP", self.timeout(), len(keys), *keys, self.pick([b"LEFT", b"RIGHT"])]
            if self.chance(0.5):
                args += [b"COUNT", self.pick([1, 3, 0])]
            return args, EXACT
        if r < 0.85:
            return [self.pick([b"BZPOPMIN", b"BZPOPMAX"]), *self.keys("zset", 1, 3), self.timeout()], ZSET
        keys = self.keys("zset", 1, 3)
        args = [b"BZMPOP", self.timeout(), len(keys), *keys, self.pick([b"MIN", b"MAX"])]
        if self.chance(0.5):
            args += [b"COUNT", self.pick([1, 3, 0])]
        return args, ZSET

    # ---------------------------------------------------------------- big collections

    def g_bulk(self, c):
        """Many items at once: hashes past 128 fields, sets past 512 integers,
        zsets past 128 members (Redis's listpack/intset limits)."""
        home = self.pick(TYPES[1:])
        k = self.key(home)
        n = self.rng.randint(20, 80)
        if home == "hash":
            args = [b"HSET", k]
            for i in self.rng.sample(range(400), n):
                args += [b"f%d" % i, self.value()]
        elif home == "set":
            args = [b"SADD", k, *(b"%d" % i for i in self.rng.sample(range(-200, 1000), n))]
        elif home == "zset":
            args = [b"ZADD", k]
            for i in self.rng.sample(range(400), n):
                args += [self.score() if self.chance(0.2) else b"%d" % self.rng.randint(-50, 50), b"z%d" % i]
        else:
            args = [self.pick([b"RPUSH", b"LPUSH"]), k, *(self.element() for _ in range(n))]
        return args, ZSET if home == "zset" else EXACT

    # ---------------------------------------------------------------- lists

    def element(self) -> bytes:
        if self.chance(0.02):
            return self.pick(ODD_BYTES)
        return LONG if self.chance(0.01) else self.pick(ELEMENTS)

    def g_push(self, c):
        cmd = self.pick([b"LPUSH", b"RPUSH", b"LPUSH", b"RPUSH", b"LPUSHX", b"RPUSHX"])
        return [cmd, self.key("list"), *[self.element() for _ in range(self.rng.randint(1, 4))]], EXACT

    def g_pop(self, c):
        if self.chance(0.75):
            args = [self.pick([b"LPOP", b"RPOP"]), self.key("list")]
            if self.chance(0.4):
                args.append(self.pick([1, 2, 5, 0, -1]))
            return args, EXACT
        keys = self.keys("list", 1, 3)
        args = [b"LMPOP", len(keys) if self.chance(0.95) else self.pick([0, 9]), *keys,
                self.pick([b"LEFT", b"RIGHT", b"left", b"UP"])]
        if self.chance(0.5):
            args += [b"COUNT", self.pick([1, 2, 10, 0, -1])]
        return args, EXACT

    def g_lread(self, c):
        k = self.key("list")
        r = self.rng.random()
        if r < 0.35:
            return [b"LRANGE", k, self.num(-8, 8), self.num(-8, 8)], EXACT
        if r < 0.5:
            return [b"LLEN", k], EXACT
        if r < 0.7:
            return [b"LINDEX", k, self.num(-8, 8)], EXACT
        args = [b"LPOS", k, self.element()]
        if self.chance(0.4):
            args += [b"RANK", self.pick([1, 2, -1, -2, 0])]
        if self.chance(0.4):
            args += [b"COUNT", self.pick([0, 1, 2, -1])]
        if self.chance(0.2):
            args += [b"MAXLEN", self.pick([0, 1, 3, -1])]
        return args, EXACT

    def g_lwrite(self, c):
        k = self.key("list")
        r = self.rng.random()
        if r < 0.25:
            return [b"LSET", k, self.num(-5, 5), self.element()], EXACT
        if r < 0.5:
            return [b"LREM", k, self.num(-2, 2), self.element()], EXACT
        if r < 0.75:
            return [b"LTRIM", k, self.num(-6, 3), self.num(-3, 10)], EXACT
        return [b"LINSERT", k, self.pick([b"BEFORE", b"AFTER", b"before", b"MIDDLE"]), self.element(),
                self.element()], EXACT

    def g_lmove(self, c):
        if self.chance(0.3):
            return [b"RPOPLPUSH", self.key("list"), self.key("list")], EXACT
        return [b"LMOVE", self.key("list"), self.key("list"), self.pick([b"LEFT", b"RIGHT"]),
                self.pick([b"LEFT", b"RIGHT", b"MID"] if self.chance(0.05) else [b"LEFT", b"RIGHT"])], EXACT
