"""Server commands clients and tools call that fit no data type: SWAPDB,
WAIT and MEMORY (Redis's db.c, replication.c and object.c).

- SWAPDB logs one keyless event, ``swapdb`` {db1, db2}. Its applier swaps
  the *contents* of the two ``Db`` objects (their ``data`` and ``expires``
  dicts), never the objects: every session holds its selected ``Db``, and a
  client that SELECTed 1 must see database 1's new contents, as in Redis.
- WAIT asks how many replicas acknowledged this client's writes. An
  embedded Fjord has no replicas, so the answer is always 0, after the wait
  Redis would make: at once when 0 replicas are asked for, else after the
  timeout (forever for 0). A handler must not sleep (every client shares the
  event loop), so it returns ``Delayed`` and the connection answers later,
  running the client's next requests only after that, as Redis runs nothing
  from a blocked client (see ``Connection._block`` in store/server.py).
- MEMORY answers from Python's view of the process: USAGE estimates the
  bytes of the Python objects behind a key (see ``key_usage``), STATS gives
  the process's RSS and a sampled dataset estimate, and the allocator
  subcommands say what pymalloc can and cannot tell.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections import deque
from itertools import islice

from streams.events import Event

from .. import errors, info
from ..keyspace import Db, Keyspace, applies, type_name
from ..resp import OK, Delayed, ReplyError, RespMap, Verbatim
from ..session import Session
from .args import parse_int
from .table import COMMANDS, command, container, subcommand

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

# ------------------------------------------------------------------ SWAPDB


def _swapdb_index(arg: bytes, message: str) -> int:
    """A database number as Redis reads it for SWAPDB: a 32-bit integer, or
    ``message``; the range is checked after both are read."""
    n = parse_int(arg, message)
    if not INT32_MIN <= n <= INT32_MAX:
        raise ReplyError(message)
    return n


@command("swapdb", 3, "write fast", group="server", since="4.0.0", acl="keyspace dangerous",
         summary="Swaps two Redis databases",
         complexity="O(N) where N is the count of clients watching or blocking on keys from both databases.")
def swapdb(s: Session, args: list[bytes]):
    a = _swapdb_index(args[1], "ERR invalid first DB index")
    b = _swapdb_index(args[2], "ERR invalid second DB index")
    count = len(s.keyspace.dbs)
    if not (0 <= a < count and 0 <= b < count):
        raise ReplyError(errors.DB_INDEX)
    if a != b:  # swapping a database with itself changes nothing: log nothing
        s.emit("swapdb", None, {"db1": a, "db2": b})
    return OK


@applies("swapdb")
def _apply_swapdb(ks: Keyspace, e: Event) -> None:
    """Swap contents, not ``Db`` objects: sessions keep theirs (see module doc)."""
    one, two = ks.dbs[e.data["db1"]], ks.dbs[e.data["db2"]]
    one.data, two.data = two.data, one.data
    one.expires, two.expires = two.expires, one.expires


# ------------------------------------------------------------------ WAIT

WAIT_ON_REPLICA = (
    "ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is "
    "configured to be writable (which is not the default) writes to replicas are just local and are not "
    "propagated."
)
#: a WAIT timeout beyond this many seconds (about 31 years) is waited for
#: as forever: the event loop's timers are not meant for such delays
FOREVER_S = 1e9


@command("wait", 3, "noscript", since="3.0.0", tips="request_policy:all_shards response_policy:agg_min",
         summary="Wait for the synchronous replication of all the write commands sent in the context of the "
                 "current connection", complexity="O(1)")
def wait(s: Session, args: list[bytes]):
    """How many replicas applied the client's writes, after Redis's wait:
    at once when ``numreplicas`` is reached (or is 0 or less), else after
    ``timeout`` ms (0: until enough replicas acknowledge or the client goes).

    Every reply Fjord sends already waits for the client's writes to be
    durable on the log; WAIT adds waiting for read replicas to have applied
    them (``REPLCONF ACK``, store/replication.py).
    """
    if s.server is not None and s.server.is_replica:
        raise ReplyError(WAIT_ON_REPLICA)
    numreplicas = parse_int(args[1])
    timeout_ms = parse_int(args[2], "ERR timeout is not an integer or out of range")
    if timeout_ms < 0:
        raise ReplyError("ERR timeout is negative")
    if s.server is not None:
        # replicas acknowledge offsets (REPLCONF ACK): store/replication.py
        conn = s.server.clients.get(s.id)
        seconds = timeout_ms / 1000
        return s.server.replication.wait(conn, numreplicas, 0 if seconds > FOREVER_S else timeout_ms, Delayed)
    acked = 0
    if acked >= numreplicas:
        return acked
    seconds = timeout_ms / 1000
    return Delayed(acked, None if timeout_ms == 0 or seconds > FOREVER_S else seconds)


# WAIT is in Redis's "generic" group, whose implied @keyspace category it
# does not have: its categories are Redis's own.
COMMANDS[b"wait"].acl_categories = ("@slow", "@connection")

# ------------------------------------------------------------------ MEMORY

#: MEMORY USAGE looks at this many elements of a collection by default
#: (Redis's OBJ_COMPUTE_SIZE_DEF_SAMPLES)
DEFAULT_SAMPLES = 5
#: MEMORY STATS estimates each database's dataset from this many keys
STATS_SAMPLE_KEYS = 1000
_getsizeof = sys.getsizeof
#: value type -> usage(value, samples) for types whose module knows their
#: inside better than ``value_usage`` (streams: store/commands/xstreams.py)
SIZERS: dict[type, "object"] = {}


def _entry_overhead(table: dict) -> int:
    """Bytes a dict spends per entry (its hash table divided by its size)."""
    return _getsizeof(table) // len(table) if table else 0


def _sampled(total: int, items, samples: int, size_of) -> int:
    """``size_of`` summed over the first ``samples`` items (all if 0),
    extrapolated to ``total`` items."""
    if total == 0:
        return 0
    if samples == 0 or samples >= total:
        return sum(size_of(x) for x in items)
    picked = [size_of(x) for x in islice(items, samples)]
    return sum(picked) * total // len(picked)


def _pair_size(pair) -> int:
    return _getsizeof(pair[0]) + _getsizeof(pair[1])


#: a zset member's share of its ``SortedList`` entry: a (score, member)
#: tuple and the pointer to it (the member and score are counted once, with
#: the member -> score dict)
_ZSET_ORDER_ENTRY = _getsizeof((0.0, b"")) + 8


def value_usage(value, samples: int = DEFAULT_SAMPLES) -> int:
    """Estimated bytes of the Python objects holding ``value``.

    The container's own table (``sys.getsizeof``, exact) plus its elements'
    sizes, averaged over the first ``samples`` elements (0: all) and scaled
    to the element count, as Redis samples nested values. A sorted set adds
    its ordered index. A type with an entry in ``SIZERS`` is measured by it;
    a type this function does not know counts its top object only.
    """
    if type(value) is bytes:
        return _getsizeof(value)
    sizer = SIZERS.get(type(value))
    if sizer is not None:
        return sizer(value, samples)
    name = type_name(value)
    if name == b"zset":
        scores = value.scores
        n = len(scores)
        lists = getattr(value.order, "_lists", ())
        index = _getsizeof(value.order) + sum(_getsizeof(chunk) for chunk in lists)
        return (_getsizeof(value) + _getsizeof(scores) + index + n * _ZSET_ORDER_ENTRY
                + _sampled(n, scores.items(), samples, _pair_size))
    if isinstance(value, dict):
        return _getsizeof(value) + _sampled(len(value), value.items(), samples, _pair_size)
    if isinstance(value, (set, frozenset, deque, list)):
        return _getsizeof(value) + _sampled(len(value), value, samples, _getsizeof)
    return _getsizeof(value)


def key_usage(db: Db, key: bytes, value, samples: int = DEFAULT_SAMPLES) -> int:
    """MEMORY USAGE: the key's bytes object, its value (``value_usage``) and
    its share of the database's dict, plus its expiry time and share of the
    expires dict if it has one. Python's own sizes, not Redis's: the same
    data reports more than redis-server would, big keys stand out alike."""
    usage = _getsizeof(key) + value_usage(value, samples) + _entry_overhead(db.data)
    at = db.expires.get(key)
    if at is not None:
        usage += _getsizeof(at) + _entry_overhead(db.expires)
    return usage


def dataset_estimate(db: Db, sample_keys: int = STATS_SAMPLE_KEYS) -> int:
    """A database's bytes: its two dicts' tables (exact) and the keys and
    values of its first ``sample_keys`` keys, scaled to its key count. A
    bounded cost, so MEMORY STATS never stalls the server on a big dataset."""
    n = len(db.data)
    if n == 0:
        return 0
    sizes = [_getsizeof(k) + value_usage(v) for k, v in islice(db.data.items(), sample_keys)]
    expiring = len(db.expires) * _getsizeof(2**40)
    return _getsizeof(db.data) + _getsizeof(db.expires) + expiring + sum(sizes) * n // len(sizes)


MEMORY = container("memory", group="server", since="4.0.0", summary="A container for memory diagnostics commands")

_STATS_TIPS = "nondeterministic_output request_policy:all_shards response_policy:special"


@subcommand(MEMORY, "usage", -3, "readonly", (2, 2, 1), since="4.0.0",
            summary="Estimate the memory usage of a key", complexity="O(N) where N is the number of samples.")
def memory_usage(s: Session, args: list[bytes]):
    """Bytes of a key and its value (``key_usage``), nil if there is none.
    A key past its time is expired first, so it reports nil."""
    samples = DEFAULT_SAMPLES
    i, n = 3, len(args)
    while i < n:
        if args[i].lower() == b"samples" and i + 1 < n:
            samples = parse_int(args[i + 1])
            if samples < 0:
                raise ReplyError(errors.SYNTAX)
            i += 2
        else:
            raise ReplyError(errors.SYNTAX)
    value = s.lookup(args[2])
    if value is None:
        return None
    return key_usage(s.db, args[2], value, samples)


@subcommand(MEMORY, "stats", 2, "", since="4.0.0", tips=_STATS_TIPS,
            summary="Show memory usage details", complexity="O(1)")
def memory_stats(s: Session, args: list[bytes]):
    """Redis's field names where Fjord has the figure: ``*.allocated`` are
    the process's RSS (Python's allocator exposes no allocated total),
    ``db.N`` the sizes of its two dicts' tables, ``dataset.bytes`` the
    sampled estimate of ``dataset_estimate``."""
    rss = info.rss_bytes()
    peak = max(info.peak_rss_bytes(), rss)
    fields: list = [(b"peak.allocated", peak), (b"total.allocated", rss)]
    keys = dataset = 0
    for db in s.keyspace.dbs:
        if not db.data:
            continue  # Redis lists only databases holding keys
        keys += len(db.data)
        dataset += dataset_estimate(db)
        fields.append((b"db.%d" % db.index, RespMap([
            (b"overhead.hashtable.main", _getsizeof(db.data)),
            (b"overhead.hashtable.expires", _getsizeof(db.expires)),
        ])))
    fields += [
        (b"keys.count", keys),
        (b"keys.bytes-per-key", dataset // keys if keys else 0),
        (b"dataset.bytes", dataset),
        (b"dataset.percentage", dataset * 100 / rss if rss else 0.0),
        (b"peak.percentage", rss * 100 / peak if peak else 0.0),
    ]
    return RespMap(fields)


@subcommand(MEMORY, "doctor", 2, "", since="4.0.0", tips=_STATS_TIPS,
            summary="Outputs memory problems report", complexity="O(1)")
def memory_doctor(s: Session, args: list[bytes]):
    rss = info.rss_bytes()
    keys = s.keyspace.key_count()
    return Verbatim(
        b"Fjord runs on Python's allocator and cannot diagnose its fragmentation. The process uses %s "
        b"of RAM (resident set) for %d keys; MEMORY STATS and INFO memory show more.\n"
        % (info.human_bytes(rss).encode(), keys))


_SLOW_ALLOCATOR = "Depends on how much memory is allocated, could be slow"


@subcommand(MEMORY, "malloc-stats", 2, "", since="4.0.0", tips=_STATS_TIPS,
            summary="Show allocator internal stats", complexity=_SLOW_ALLOCATOR)
def memory_malloc_stats(s: Session, args: list[bytes]):
    """Redis's answer for an allocator other than jemalloc."""
    return Verbatim(b"Stats not supported for the current allocator")


_libc = None


def _malloc_trim() -> None:
    """Hand free heap pages back to the OS (glibc's ``malloc_trim``), the
    nearest thing to Redis's jemalloc purge; a no-op elsewhere."""
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        try:
            _libc = ctypes.CDLL(name) if name else False
        except OSError:
            _libc = False
    trim = getattr(_libc, "malloc_trim", None) if _libc else None
    if trim is not None:
        trim(0)


@subcommand(MEMORY, "purge", 2, "", since="4.0.0",
            tips="request_policy:all_shards response_policy:all_succeeded",
            summary="Ask the allocator to release memory", complexity=_SLOW_ALLOCATOR)
def memory_purge(s: Session, args: list[bytes]):
    _malloc_trim()
    return OK


_MEMORY_HELP = [
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "STATS",
    "    Return information about the memory usage of the server.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    "HELP",
    "    Prints this help.",
]


@subcommand(MEMORY, "help", 2, "loading stale", since="4.0.0",
            summary="Show helpful text about the different subcommands", complexity="O(1)")
def memory_help(s: Session, args: list[bytes]):
    return list(_MEMORY_HELP)
