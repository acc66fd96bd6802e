"""Randomized differential test: Fjord against a real redis-server 7.0.

A seeded generator (``tests/gen_commands.py``) makes thousands of realistic
commands over every data type, the generic key commands, SWAPDB/FLUSHDB and
the blocking pops, from three clients (the third speaks RESP3) in four
databases. Each command goes to redis-server and to a private Fjord server,
in the same order, from the same client, and the replies are compared one
by one; a run of one client's steps is sent as a pipeline. Twice during the
stream and once after it Fjord is killed (SIGKILL) and restarted (it replays
its log), and every key of every database is compared on both sides.

Replies are compared byte for byte, errors always, except where Redis leaves
the order or the choice unspecified, or where Fjord documents a difference.
Every such normalisation is listed here (``check`` of a step):

- ``sorted``: KEYS, SINTER/SUNION/SDIFF: elements compared as sorted lists.
- ``hash_order``: HGETALL/HKEYS/HVALS are exact while Redis keeps the hash as
  a listpack (insertion order, as Fjord); once Redis has converted it to a
  hashtable (a value over 64 bytes, and it never converts back) the
  field/value pairs are compared sorted.
- ``set_order``: SMEMBERS is exact while Redis keeps an intset (numeric
  order, as Fjord); once Redis has a hashtable (a non-integer member was
  added, even if removed since: a documented Fjord difference) sorted.
- ``zset``: a score "-0" is read as "0". Redis keeps -0.0 in a skiplist
  (a zset with a member over 64 bytes) and in ZUNION/ZINTER results; Fjord
  stores 0.0, as Redis's listpack does (documented in store/zset.py). No
  zset member in the stream is named "-0", so only scores are affected.
- ``ttl`` / ``pttl``: TTL, PTTL, EXPIRETIME, PEXPIRETIME: -1 and -2 exact,
  other values within 2 s (relative expiries start at each server's clock).
- ``scan``: SCAN/HSCAN/SSCAN/ZSCAN are iterated to cursor 0 on each side and
  the sets of keys (members, field->value / member->score maps) compared.
- ``random``: SRANDMEMBER/HRANDFIELD/ZRANDMEMBER are checked by property on
  each side (reply type, count, distinctness for a positive count, every
  element taken from that side's collection, with its value or score).
- ``spop``: SPOP is checked by property, then Redis is made identical to
  Fjord: the members only Redis popped are added back on Redis and the ones
  only Fjord popped are removed from Redis (SADD/SREM replies confirm that
  each side popped members that existed).
- ``randomkey``: nil on both, or on each side a key that EXISTS there.
- ``lex``: ZRANGEBYLEX & co. Redis leaves the result unspecified when the
  members' scores differ (it depends on its encoding), so the lowest and
  highest scores are read on both sides first (they must agree) and the
  step is sent only when they are equal (then compared as ``zset``); else
  it is skipped on both. The generator keeps two zsets mostly at score 0
  so that most lex steps do run.

Full-keyspace reads use the same normalisations: GET, HGETALL (pairs
sorted), SMEMBERS (sorted), ZRANGE 0 -1 WITHSCORES (-0 as 0), LRANGE 0 -1,
and PEXPIRETIME (-1 on both, or within 2 s).

On a difference the test prints the seed, the index, the client, the command
and both replies, then shrinks the stream to a minimal reproduction
(``minimise``: the steps sharing a key with the failing one, then delta
debugging) and prints that too. A Fjord bug that cannot be fixed at once is
not hidden by shrinking the generator: steer the generator around exactly
that sub-case and add a ``pytest.mark.xfail(strict=True)`` test replaying
the minimal reproduction, so that it is visible and fails once fixed.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import redis

from conftest import RawClient, RedisProcess
from gen_commands import (DBS, EXACT, LEX, NUM_CLIENTS, PTTL, RANDOM, RESP3_CLIENT, SCAN, SORTED, SPOP, TTL, ZSET,
                          CommandGenerator, Step)

SEEDS = [1, 2, 3, 4]
STEPS = 5000
#: Fjord is killed (SIGKILL) and restarted before these steps, and after the stream
CRASH_AT = (STEPS // 3, 2 * STEPS // 3)
#: every database is compared after the stream, not only the ones used
ALL_DBS = 16

# ------------------------------------------------------------------ RESP helpers


def _skip(buf: bytes, pos: int) -> int:
    """End of the reply that starts at ``pos`` in a complete buffer."""
    nl = buf.index(b"\r\n", pos)
    t, rest = buf[pos:pos + 1], buf[pos + 1:nl]
    pos = nl + 2
    if t in b"+-:_,#(":
        return pos
    if t in b"$=!":
        n = int(rest)
        return pos if n < 0 else pos + n + 2
    if t in b"*~>":
        n = int(rest)
        for _ in range(max(n, 0)):
            pos = _skip(buf, pos)
        return pos
    if t in b"%|":
        for _ in range(2 * int(rest)):
            pos = _skip(buf, pos)
        return pos
    raise ValueError(f"bad reply {buf!r}")


def split(reply: bytes) -> tuple[bytes, list[bytes]]:
    """An aggregate reply's header line and the raw bytes of its elements
    (a map's keys and values alternate)."""
    nl = reply.index(b"\r\n")
    head, pos, items = reply[:nl], nl + 2, []
    n = int(head[1:])
    if head[:1] == b"%":
        n *= 2
    for _ in range(max(n, 0)):
        end = _skip(reply, pos)
        items.append(reply[pos:end])
        pos = end
    return head, items


def parse(reply: bytes):
    """A reply as Python values: bulk/simple/double -> bytes, integer -> int,
    null -> None, error -> Error, array/set/map -> list (a map flattened)."""
    t = reply[:1]
    nl = reply.index(b"\r\n")
    if t in b"+,(":
        return reply[1:nl]
    if t == b"-":
        return Error(reply[1:nl])
    if t == b":":
        return int(reply[1:nl])
    if t == b"_":
        return None
    if t == b"$":
        n = int(reply[1:nl])
        return None if n < 0 else reply[nl + 2:nl + 2 + n]
    if t in b"*~%":
        if int(reply[1:nl]) < 0:
            return None
        return [parse(item) for item in split(reply)[1]]
    raise ValueError(f"cannot parse {reply!r}")


class Error(bytes):
    """An error reply's text."""


def is_error(reply: bytes) -> bool:
    return reply[:1] == b"-"


def zero_scores(reply: bytes) -> bytes:
    """Read a score of -0 as 0 (the documented skiplist/-0 difference)."""
    return reply.replace(b"$2\r\n-0\r\n", b"$1\r\n0\r\n").replace(b",-0\r\n", b",0\r\n")


def pairs(items: list) -> list[tuple]:
    """[[a, b], ...] (RESP3 nesting) or [a, b, ...] (flat) as [(a, b), ...]."""
    if items and isinstance(items[0], list):
        return [tuple(p) for p in items]
    return list(zip(items[0::2], items[1::2]))


def sorted_reply(reply: bytes, group: int = 1) -> tuple:
    """An aggregate with its elements (or groups of ``group``) sorted."""
    head, items = split(reply)
    if head[:1] == b"%":
        group = 2
    grouped = [b"".join(items[i:i + group]) for i in range(0, len(items), group)]
    return head, sorted(grouped)


def encode(args) -> bytes:
    """A command as a RESP multi-bulk."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def fmt(args) -> str:
    return " ".join(repr(a)[1:] if isinstance(a, bytes) else str(a) for a in args)


# ------------------------------------------------------------------ the two sides


class Side:
    """One server's three clients (the RESP3 one has said HELLO 3)."""

    def __init__(self, port: int):
        self.port = port
        self.clients = [RawClient(port) for _ in range(NUM_CLIENTS)]
        self.clients[RESP3_CLIENT].call("HELLO", "3")

    def close(self) -> None:
        for c in self.clients:
            c.close()


class Mismatch(Exception):
    """Two replies that differ after the step's normalisation."""

    def __init__(self, what: str, fjord, redis_):
        super().__init__(what)
        self.what, self.fjord, self.redis = what, fjord, redis_
        self.index = 0  # within a pipeline


class Runner:
    """Plays steps on both sides and compares each pair of replies."""

    def __init__(self, fjord_port: int, redis_port: int, dbs=(0,) * NUM_CLIENTS):
        self.fjord_port, self.redis_port = fjord_port, redis_port
        self.f = Side(fjord_port)
        self.r = Side(redis_port)
        #: steps not sent because their result is unspecified (``lex``)
        self.skipped = 0
        #: how many replies needed each normalisation (differed byte-wise)
        self.normalised: Counter[str] = Counter()
        #: each client's database, to select it again after a restart
        self.dbs = list(dbs)
        for i, db in enumerate(self.dbs):
            if db:
                for side in (self.f, self.r):
                    assert side.clients[i].call("SELECT", db) == b"+OK\r\n"

    def close(self) -> None:
        self.f.close()
        self.r.close()

    def play(self, step: Step) -> None:
        """Run one step on both sides; raise Mismatch on a difference."""
        fc, rc = self.f.clients[step.client], self.r.clients[step.client]
        if step.check == SCAN:
            return self._scan(step, fc, rc)
        if step.check == LEX and not self._same_scores(step, fc, rc):
            self.skipped += 1
            return
        self.compare(step, fc.call(*step.args), rc.call(*step.args))

    def play_pipeline(self, steps: list[Step]) -> None:
        """Send steps of one client back to back, then read all the replies
        (as a pipelining client does). Only for checks that need no extra
        read after the reply (PIPELINABLE). Raises Mismatch(index=...)."""
        client = steps[0].client
        fc, rc = self.f.clients[client], self.r.clients[client]
        for raw in (fc, rc):
            raw.send_raw(b"".join(encode(step.args) for step in steps))
        replies = [(fc.read_reply(), rc.read_reply()) for _ in steps]
        for i, (step, (got, want)) in enumerate(zip(steps, replies)):
            try:
                self.compare(step, got, want)
            except Mismatch as m:
                m.index = i
                raise

    def compare(self, step: Step, got: bytes, want: bytes) -> None:
        """Compare the two replies to ``step`` (module docstring)."""
        fc, rc = self.f.clients[step.client], self.r.clients[step.client]
        if step.args[0].upper() == b"SELECT" and got == want == b"+OK\r\n":
            self.dbs[step.client] = int(step.args[1])
        if got == want:
            if step.check == SPOP or step.check == RANDOM:
                self._random_property(step, fc, rc, got, want)
            return
        if is_error(got) or is_error(want) or step.check == EXACT:
            raise Mismatch("replies differ", got, want)
        check = getattr(self, "_check_" + step.check)
        check(step, fc, rc, got, want)
        self.normalised[step.check] += 1

    # ---- normalisations (see the module docstring)

    def _check_sorted(self, step, fc, rc, got, want):
        if sorted_reply(got) != sorted_reply(want):
            raise Mismatch("replies differ as unordered collections", got, want)

    def _same_scores(self, step, fc, rc) -> bool:
        """Whether the lex step's zset has one score (or is not a zset)."""
        at = 2 if step.args[0].upper() == b"ZRANGESTORE" else 1
        if len(step.args) <= at:
            return True
        ends = []
        for client in (fc, rc):
            low = client.call("ZRANGE", step.args[at], 0, 0, "WITHSCORES")
            high = client.call("ZRANGE", step.args[at], -1, -1, "WITHSCORES")
            ends.append((zero_scores(low), zero_scores(high)))
        if ends[0] != ends[1]:
            raise Mismatch("lowest/highest members differ", ends[0], ends[1])
        low, high = (parse(x) for x in ends[0])
        if not isinstance(low, list) or not low:
            return True
        return pairs(low)[0][1] == pairs(high)[0][1]

    def _check_zset(self, step, fc, rc, got, want):
        if zero_scores(got) != zero_scores(want):
            raise Mismatch("replies differ (-0 read as 0)", got, want)

    _check_lex = _check_zset

    def _check_hash_order(self, step, fc, rc, got, want):
        encoding = rc.call("OBJECT", "ENCODING", step.args[1])
        if encoding != b"$9\r\nhashtable\r\n":
            raise Mismatch(f"replies differ (Redis keeps the hash as {encoding!r}: ordered)", got, want)
        group = 2 if step.args[0].upper() == b"HGETALL" else 1
        if sorted_reply(got, group) != sorted_reply(want, group):
            raise Mismatch("replies differ as unordered hashes", got, want)

    def _check_set_order(self, step, fc, rc, got, want):
        encoding = rc.call("OBJECT", "ENCODING", step.args[1])
        if encoding != b"$9\r\nhashtable\r\n":
            raise Mismatch(f"replies differ (Redis keeps the set as {encoding!r}: ordered)", got, want)
        self._check_sorted(step, fc, rc, got, want)

    def _check_ttl(self, step, fc, rc, got, want, tolerance=2):
        a, b = parse(got), parse(want)
        if not (isinstance(a, int) and isinstance(b, int) and a >= 0 and b >= 0 and abs(a - b) <= tolerance):
            raise Mismatch(f"times differ by more than {tolerance}", got, want)

    def _check_pttl(self, step, fc, rc, got, want):
        self._check_ttl(step, fc, rc, got, want, tolerance=2000)

    def _check_randomkey(self, step, fc, rc, got, want):
        a, b = parse(got), parse(want)
        if a is None or b is None:
            raise Mismatch("RANDOMKEY: nil on one side only", got, want)
        if fc.call("EXISTS", a) != b":1\r\n" or rc.call("EXISTS", b) != b":1\r\n":
            raise Mismatch("RANDOMKEY returned a key that does not exist", got, want)

    def _check_random(self, step, fc, rc, got, want):
        self._random_property(step, fc, rc, got, want)

    def _check_spop(self, step, fc, rc, got, want):
        self._random_property(step, fc, rc, got, want)

    def _random_property(self, step, fc, rc, got, want):
        """SRANDMEMBER/HRANDFIELD/ZRANDMEMBER/SPOP: check each side's reply
        against its own collection; after SPOP make Redis equal to Fjord."""
        if is_error(got) or is_error(want):
            if got != want:
                raise Mismatch("replies differ", got, want)
            return
        if parse(got) in (None, []) or parse(want) in (None, []):  # no such key, or count 0
            if got != want:
                raise Mismatch("replies differ", got, want)
            return
        cmd, key = step.args[0].upper(), step.args[1]
        has_count = len(step.args) >= 3
        with_values = len(step.args) >= 4
        count = int(step.args[2]) if has_count else None
        if got[:1] != want[:1] or (got[:1] in b"*~" and split(got)[0] != split(want)[0]):
            raise Mismatch("reply types or lengths differ", got, want)
        if cmd == b"SPOP":
            return self._reconcile_spop(key, got, want, rc)
        for side, client, reply in (("fjord", fc, got), ("redis", rc, want)):
            contents = self._contents(cmd, key, client)
            items = parse(reply)
            if not has_count:
                items = [items]
            if with_values:
                picked = pairs(items)
                bad = [p for p in picked if contents.get(p[0]) != (zero_scores_text(p[1]))]
                members = [p[0] for p in picked]
            else:
                members = items
                bad = [m for m in members if m not in contents]
            if bad:
                raise Mismatch(f"{side} picked {bad!r}, not in {contents!r}", got, want)
            if count is not None:
                expected = min(count, len(contents)) if count >= 0 else -count if contents else 0
                if len(members) != expected or (count >= 0 and len(set(members)) != len(members)):
                    raise Mismatch(f"{side}: wrong number of distinct picks", got, want)

    @staticmethod
    def _contents(cmd: bytes, key: bytes, client: RawClient) -> dict:
        """The collection at ``key`` as member -> value/score (None for sets)."""
        if cmd == b"SRANDMEMBER":
            return dict.fromkeys(parse(client.call("SMEMBERS", key)))
        if cmd == b"HRANDFIELD":
            return dict(pairs(parse(client.call("HGETALL", key))))
        return {m: zero_scores_text(s) for m, s in pairs(parse(client.call("ZRANGE", key, 0, -1, "WITHSCORES")))}

    @staticmethod
    def _reconcile_spop(key, got, want, rc):
        popped_f, popped_r = parse(got), parse(want)
        if not isinstance(popped_f, list):
            popped_f, popped_r = [popped_f], [popped_r]
        if len(set(popped_f)) != len(popped_f) or len(set(popped_r)) != len(popped_r):
            raise Mismatch("SPOP popped a member twice", got, want)
        only_r = set(popped_r) - set(popped_f)
        only_f = set(popped_f) - set(popped_r)
        if only_r and rc.call("SADD", key, *only_r) != b":%d\r\n" % len(only_r):
            raise Mismatch("SPOP: Redis's popped members were still there", got, want)
        if only_f and rc.call("SREM", key, *only_f) != b":%d\r\n" % len(only_f):
            raise Mismatch("SPOP: Fjord popped members that did not exist", got, want)

    def _scan(self, step, fc, rc):
        """Iterate the SCAN-family command to cursor 0 on each side; compare
        what was found as a set (or a field -> value map)."""
        cursor_at = 1 if step.args[0].upper() == b"SCAN" else 2
        results = []
        for client in (fc, rc):
            args = list(step.args)
            first = client.call(*args)
            found, reply = [], first
            for _ in range(10_000):
                if is_error(reply):
                    break
                cursor, items = parse(reply)
                found += items
                if cursor == b"0":
                    break
                args[cursor_at] = cursor
                reply = client.call(*args)
            else:
                raise Mismatch("SCAN never returned cursor 0", first, b"")
            results.append((first if is_error(first) else None, found))
        (ferr, ffound), (rerr, rfound) = results
        if ferr or rerr:
            if ferr != rerr:
                raise Mismatch("replies differ", ferr, rerr)
            return
        cmd = step.args[0].upper()
        if cmd in (b"HSCAN", b"ZSCAN"):
            norm = zero_scores_text if cmd == b"ZSCAN" else (lambda v: v)
            fset = {(k, norm(v)) for k, v in pairs(ffound)}
            rset = {(k, norm(v)) for k, v in pairs(rfound)}
        else:
            fset, rset = set(ffound), set(rfound)
        if fset != rset:
            raise Mismatch("full iterations found different elements", sorted(fset), sorted(rset))


def zero_scores_text(score):
    return b"0" if score == b"-0" else score


# ------------------------------------------------------------------ whole-keyspace comparison

READS = {
    b"string": lambda c, k: c.call("GET", k),
    b"hash": lambda c, k: sorted_reply(c.call("HGETALL", k), 2),
    b"set": lambda c, k: sorted_reply(c.call("SMEMBERS", k)),
    b"zset": lambda c, k: zero_scores(c.call("ZRANGE", k, 0, -1, "WITHSCORES")),
    b"list": lambda c, k: c.call("LRANGE", k, 0, -1),
}


def compare_keyspaces(fjord_port: int, redis_port: int) -> list[str]:
    """Every key of every database on both sides: names, TYPE, full contents
    and expiry. Returns the differences found."""
    f, r = RawClient(fjord_port), RawClient(redis_port)
    out = []
    try:
        for db in range(ALL_DBS):
            f.call("SELECT", db), r.call("SELECT", db)
            fkeys, rkeys = set(parse(f.call("KEYS", "*"))), set(parse(r.call("KEYS", "*")))
            for k in sorted(fkeys ^ rkeys):
                out.append(f"db {db} key {k!r}: only in {'fjord' if k in fkeys else 'redis'}")
            for k in sorted(fkeys & rkeys):
                ft, rt = f.call("TYPE", k), r.call("TYPE", k)
                if ft != rt:
                    out.append(f"db {db} key {k!r}: TYPE fjord {ft!r} redis {rt!r}")
                    continue
                read = READS[parse(rt)]
                fv, rv = read(f, k), read(r, k)
                if fv != rv:
                    out.append(f"db {db} key {k!r}: contents fjord {fv!r} redis {rv!r}")
                fx, rx = parse(f.call("PEXPIRETIME", k)), parse(r.call("PEXPIRETIME", k))
                if (fx < 0 or rx < 0) and fx != rx or abs(fx - rx) > 2000:
                    out.append(f"db {db} key {k!r}: PEXPIRETIME fjord {fx} redis {rx}")
    finally:
        f.close()
        r.close()
    return out


# ------------------------------------------------------------------ running and shrinking


def flush_both(fjord_port: int, redis_port: int) -> None:
    for port in (fjord_port, redis_port):
        c = redis.Redis(port=port)
        c.flushall()
        c.close()


#: checks whose comparison needs no further command: such steps of one
#: client in a row are sent as one pipeline
PIPELINABLE = {EXACT, ZSET, SORTED, TTL, PTTL}
MAX_PIPELINE = 16


def batches(steps: list[Step], start: int = 0):
    """(index, [steps]) groups: a run of one client's pipelinable steps, or
    a single step."""
    i = start
    while i < len(steps):
        j = i + 1
        if steps[i].check in PIPELINABLE:
            while (j < len(steps) and j - i < MAX_PIPELINE and steps[j].client == steps[i].client
                   and steps[j].check in PIPELINABLE):
                j += 1
        yield i, steps[i:j]
        i = j


def drive(runner: Runner, steps: list[Step], start: int = 0, stop: int | None = None):
    """Play ``steps[start:stop]``: None, or (index, Mismatch) of the first difference."""
    stop = len(steps) if stop is None else stop
    for i, group in batches(steps[:stop], start):
        try:
            if len(group) == 1:
                runner.play(group[0])
            else:
                runner.play_pipeline(group)
        except Mismatch as m:
            return i + m.index, m
    return None


def replay(fjord_port: int, redis_port: int, steps: list[Step]) -> tuple[int, Mismatch] | None:
    """Flush both servers and play ``steps`` from fresh clients: the index of
    the first step whose replies differ and the Mismatch, or None."""
    flush_both(fjord_port, redis_port)
    runner = Runner(fjord_port, redis_port)
    try:
        return drive(runner, steps)
    finally:
        runner.close()


def keys_of(step: Step) -> set[bytes]:
    return set(step.args[1:])


def relevant(steps: list[Step], target: Step) -> list[Step]:
    """The steps that share an argument (transitively) with ``target``, plus
    every SELECT/FLUSH (they have no key but change what a key means)."""
    wanted = keys_of(target)
    keep = [False] * len(steps)
    changed = True
    while changed:
        changed = False
        for i, s in enumerate(steps):
            if keep[i]:
                continue
            name = s.args[0].upper()
            if name in (b"SELECT", b"SWAPDB", b"FLUSHDB", b"FLUSHALL") or keys_of(s) & wanted:
                keep[i] = True
                if not keys_of(s) <= wanted:
                    wanted |= keys_of(s)
                    changed = True
    keep[-1] = True
    return [s for s, k in zip(steps, keep) if k]


def ddmin(items: list, fails, budget_s: float) -> list:
    """Zeller's delta debugging: a 1-minimal sublist of ``items`` for which
    ``fails`` holds (the last item is always kept), within ``budget_s``."""
    deadline = time.time() + budget_s
    head, last = items[:-1], items[-1:]
    n = 2
    while len(head) >= 1 and time.time() < deadline:
        chunk = max(1, len(head) // n)
        reduced = False
        for start in range(0, len(head), chunk):
            candidate = head[:start] + head[start + chunk:]
            if fails(candidate + last):
                head, n, reduced = candidate, max(n - 1, 2), True
                break
            if time.time() > deadline:
                break
        if not reduced:
            if chunk == 1:
                break
            n = min(len(head), n * 2)
    return head + last


def minimise(fjord_port: int, redis_port: int, steps: list[Step], budget_s: float = 60) -> list[Step]:
    """A short stream whose last step still gets different replies."""
    def fails(candidate):
        res = replay(fjord_port, redis_port, candidate)
        return res is not None and res[0] == len(candidate) - 1

    candidate = relevant(steps, steps[-1])
    if not fails(candidate):
        candidate = steps
    return ddmin(candidate, fails, budget_s)


def describe(steps: list[Step]) -> str:
    return "\n".join(f"  [c{s.client}] {fmt(s.args)}" for s in steps)


def run_stream(fjord, redis_port: int, steps: list[Step], seed, crash_at=()) -> None:
    """Play the stream, killing Fjord (SIGKILL) and restarting it before each
    index in ``crash_at`` (the whole keyspace must survive each crash); on
    the first difference print it, shrink it and fail."""
    fjord_port = fjord.port
    runner = Runner(fjord_port, redis_port)
    try:
        start = 0
        for stop in [*crash_at, len(steps)]:
            res = drive(runner, steps, start, stop)
            if res is not None:
                break
            if stop < len(steps):
                runner.close()
                fjord.restart()
                differences = compare_keyspaces(fjord_port, redis_port)
                assert not differences, (f"seed {seed}: keyspaces differ after SIGKILL + restart at step {stop}:\n"
                                         + "\n".join(differences))
                runner = Runner(fjord_port, redis_port, runner.dbs)
            start = stop
        else:
            return
    finally:
        runner.close()
    i, failure = res
    step = steps[i]
    report = (f"seed {seed} step {i} [client {step.client}] {fmt(step.args)} ({step.check}): {failure.what}\n"
              f"  fjord: {failure.fjord!r}\n  redis: {failure.redis!r}")
    print(report, flush=True)
    small = minimise(fjord_port, redis_port, steps[:i + 1])
    res = replay(fjord_port, redis_port, small)
    report += f"\nminimal reproduction ({len(small)} steps):\n{describe(small)}"
    if res is not None:
        report += f"\n  fjord: {res[1].fjord!r}\n  redis: {res[1].redis!r}"
    pytest.fail(report)


# ------------------------------------------------------------------ tests


@pytest.fixture(scope="module")
def reference():
    """A private redis-server for this module (FLUSHALL between seeds)."""
    server = RedisProcess()
    yield server
    server.stop()


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_stream_matches_redis_and_survives_crashes(seed, new_fjord, reference):
    fjord = new_fjord()
    flush_both(fjord.port, reference.port)
    steps = CommandGenerator(seed, now_ms()).steps(STEPS)
    run_stream(fjord, reference.port, steps, seed, crash_at=CRASH_AT)

    differences = compare_keyspaces(fjord.port, reference.port)
    assert not differences, f"seed {seed}: keyspaces differ after the stream:\n" + "\n".join(differences)

    fjord.restart()  # SIGKILL, then replay of the log
    differences = compare_keyspaces(fjord.port, reference.port)
    assert not differences, f"seed {seed}: keyspaces differ after SIGKILL + restart:\n" + "\n".join(differences)


def test_generator_is_deterministic_and_covers_every_type():
    a = CommandGenerator(7, 1_000_000).steps(STEPS)
    b = CommandGenerator(7, 1_000_000).steps(STEPS)
    assert a == b
    names = {s.args[0].upper() for s in a}
    for cmd in (b"SET", b"HSET", b"SADD", b"ZADD", b"LPUSH", b"RENAME", b"COPY", b"MOVE", b"EXPIRE", b"SELECT",
                b"SPOP", b"ZUNIONSTORE", b"LMOVE", b"SCAN", b"GETEX", b"LCS"):
        assert cmd in names
    assert {s.client for s in a} == set(range(NUM_CLIENTS))
    assert {int(s.args[1]) for s in a if s.args[0] == b"SELECT" and s.args[1].isdigit()} >= set(range(DBS))
