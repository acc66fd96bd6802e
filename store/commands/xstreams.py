"""Stream commands (Redis's t_stream.c): XADD, XLEN, XRANGE, XREVRANGE,
XDEL, XTRIM, XSETID, XREAD (with BLOCK) and XINFO. The consumer-group
commands are in ``xgroups``; the value and its appliers in
``store/xstream.py``.

XADD resolves ``*`` and ``ms-*`` here, in the writer, and logs the final
id; its trimming is logged as a separate ``xtrim`` with the number of
entries removed, as Redis notifies ``xadd`` then ``xtrim``.
"""

from __future__ import annotations

import sys
from itertools import islice

from .. import errors
from ..blocking import NOT_READY, KeyWait
from ..resp import NULL_ARRAY, OK, Delayed, ReplyError, RespMap
from ..session import Session, now_ms
from ..xstream import MAX_ID, MIN_ID, U64, Stream, format_id
from ..xstream_groups import INVALID, lag
from .args import parse_int
from .misc import SIZERS
from .table import command, container, subcommand

INVALID_ID = "ERR Invalid stream ID specified as stream command argument"
ADD_TOO_SMALL = "ERR The ID specified in XADD is equal or smaller than the target stream top item"
ADD_ZERO = "ERR The ID specified in XADD must be greater than 0-0"
EXHAUSTED = "ERR The stream has exhausted the last possible ID, unable to add more items"
TIMEOUT_NOT_INT = "ERR timeout is not an integer or out of range"
#: Redis's default LIMIT for ``~`` trimming: 100 * stream-node-max-entries
APPROX_LIMIT = 10_000

_WS = b" \t\n\v\f\r"


# ------------------------------------------------------------------ ids


def _u64(b: bytes) -> int | None:
    """Redis's string2ull: a strict int64 spelling, else what strtoull takes
    (leading spaces, a sign, leading zeros); None if neither fits."""
    try:
        v = parse_int(b)
    except ReplyError:
        v = None
    if v is not None:
        return v if v >= 0 else None
    t = b.lstrip(_WS)
    neg = t[:1] == b"-"
    if t[:1] in (b"-", b"+"):
        t = t[1:]
    if not t.isdigit():
        return None
    v = int(t)
    if v > U64:
        return None
    return (-v) & U64 if neg else v


def parse_id(b: bytes, missing_seq: int = 0, strict: bool = False, allow_star_seq: bool = False):
    """A stream id: ``ms-seq``, ``ms`` (seq = ``missing_seq``), ``-``/``+``
    unless ``strict``; with ``allow_star_seq``, ``ms-*`` gives seq None."""
    if len(b) > 127:
        raise ReplyError(INVALID_ID)
    if not strict and len(b) == 1:
        if b == b"-":
            return MIN_ID
        if b == b"+":
            return MAX_ID
    ms_b, dash, seq_b = b.partition(b"-")
    ms = _u64(ms_b)
    if ms is None:
        raise ReplyError(INVALID_ID)
    if not dash:
        return ms, missing_seq
    if allow_star_seq and seq_b == b"*":
        return ms, None
    seq = _u64(seq_b)
    if seq is None:
        raise ReplyError(INVALID_ID)
    return ms, seq


def parse_range_id(b: bytes, missing_seq: int, start: bool):
    """XRANGE/XPENDING bound: an id, ``-``/``+``, or ``(id`` (exclusive)."""
    if b[:1] == b"(" and len(b) > 1:
        sid = parse_id(b[1:], missing_seq, strict=True)
        if start:
            nxt = incr_id(sid)
            if nxt is None:
                raise ReplyError("ERR invalid start ID for the interval")
            return nxt
        prv = decr_id(sid)
        if prv is None:
            raise ReplyError("ERR invalid end ID for the interval")
        return prv
    return parse_id(b, missing_seq)


def incr_id(sid):
    ms, seq = sid
    if seq < U64:
        return ms, seq + 1
    if ms < U64:
        return ms + 1, 0
    return None


def decr_id(sid):
    ms, seq = sid
    if seq > 0:
        return ms, seq - 1
    if ms > 0:
        return ms - 1, U64
    return None


# ------------------------------------------------------------------ helpers


def lookup_stream(s: Session, key: bytes) -> Stream | None:
    """The stream at ``key``, None if absent; WRONGTYPE for any other type."""
    v = s.lookup(key)
    if v is not None and type(v) is not Stream:
        raise ReplyError(errors.WRONGTYPE)
    return v


def entry_reply(sid, fields) -> list:
    return [format_id(sid), fields]


def range_reply(st: Stream, start, end, count: int, rev: bool = False) -> list:
    """Entries with start <= id <= end, at most ``count`` (0: all)."""
    if start > end:
        return []
    out = []
    entries = st.entries
    for sid in entries.irange(start, end, reverse=rev):
        out.append([format_id(sid), entries[sid]])
        if len(out) == count:
            break
    return out


def _next_id(st: Stream | None, given, seq_given: bool):
    """The id XADD stores: ``given`` (ms, seq|None), or None for ``*``."""
    last = st.last_id if st is not None else MIN_ID
    if given is None:
        ms = max(now_ms(), last[0])
        if ms == last[0]:
            return incr_id(last)
        return ms, 0
    ms, seq = given
    if seq is None:  # ms-*
        if ms == last[0]:
            if last[1] == U64:
                raise ReplyError(ADD_TOO_SMALL)
            return ms, last[1] + 1
        if ms < last[0]:
            raise ReplyError(ADD_TOO_SMALL)
        return ms, 0
    if (ms, seq) <= last:
        raise ReplyError(ADD_TOO_SMALL)
    return ms, seq


class _Trim:
    __slots__ = ("maxlen", "minid", "approx", "limit", "given_limit")

    def __init__(self):
        self.maxlen = None
        self.minid = None
        self.approx = False
        self.limit = 0
        self.given_limit = False

    @property
    def strategy(self) -> bool:
        return self.maxlen is not None or self.minid is not None


def _parse_trim_opt(args: list[bytes], i: int, trim: _Trim) -> int | None:
    """One MAXLEN/MINID/LIMIT option at ``args[i]``; returns the next index,
    or None if ``args[i]`` is none of them."""
    opt = args[i].upper()
    more = len(args) - 1 - i
    if opt in (b"MAXLEN", b"MINID") and more:
        if trim.strategy:
            raise ReplyError("ERR syntax error, MAXLEN and MINID options at the same time are not compatible")
        nxt = args[i + 1]
        if more >= 2 and nxt == b"~":
            trim.approx = True
            i += 1
        elif more >= 2 and nxt == b"=":
            i += 1
        if opt == b"MAXLEN":
            v = parse_int(args[i + 1])
            if v < 0:
                raise ReplyError("ERR The MAXLEN argument must be >= 0.")
            trim.maxlen = v
        else:
            trim.minid = parse_id(args[i + 1])
        return i + 2
    if opt == b"LIMIT" and more:
        v = parse_int(args[i + 1])
        if v < 0:
            raise ReplyError("ERR The LIMIT argument must be >= 0.")
        trim.limit = v
        trim.given_limit = True
        return i + 2
    return None


def _finish_trim(trim: _Trim) -> None:
    if trim.given_limit:
        if not trim.strategy:
            raise ReplyError("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy")
        if not trim.approx:
            raise ReplyError("ERR syntax error, LIMIT cannot be used without the special ~ option")
    elif trim.approx:
        trim.limit = APPROX_LIMIT
    else:
        trim.limit = 0


def _trim(s: Session, key: bytes, st: Stream, trim: _Trim) -> int:
    n = st.trim_count(trim.maxlen, trim.minid, trim.approx, trim.limit)
    if n:
        s.emit("xtrim", key, {"count": n})
    return n


# ------------------------------------------------------------------ writes


@command("xadd", -5, "write denyoom fast", (1, 1, 1), group="stream", since="5.0.0",
         tips="nondeterministic_output", summary="Appends a new entry to a stream",
         complexity="O(1) when adding a new entry, O(N) when trimming where N being the number of "
                    "entries evicted.")
def xadd(s: Session, args: list[bytes]):
    trim = _Trim()
    nomkstream = False
    given = None
    seq_given = True
    i = 2
    n = len(args)
    while i < n:
        a = args[i]
        if a == b"*":
            break
        j = _parse_trim_opt(args, i, trim)
        if j is not None:
            i = j
            continue
        if a.upper() == b"NOMKSTREAM":
            nomkstream = True
            i += 1
            continue
        given = parse_id(a, 0, strict=True, allow_star_seq=True)
        seq_given = given[1] is not None
        break
    _finish_trim(trim)
    field_pos = i + 1
    if n - field_pos < 2 or (n - field_pos) % 2 == 1:
        raise ReplyError(errors.wrong_arity("xadd"))
    if given is not None and seq_given and given == MIN_ID:
        raise ReplyError(ADD_ZERO)
    key = args[1]
    st = lookup_stream(s, key)
    if st is None and nomkstream:
        return None
    if st is not None and st.last_id == MAX_ID:
        raise ReplyError(EXHAUSTED)
    sid = _next_id(st, given, seq_given)
    idb = format_id(sid)
    s.emit("xadd", key, {"id": idb, "fields": args[field_pos:]})
    if trim.strategy:
        _trim(s, key, s.db.data[key], trim)
    return idb


@command("xtrim", -4, "write", (1, 1, 1), group="stream", since="5.0.0",
         tips="nondeterministic_output", summary="Deletes messages from the beginning of a stream.",
         complexity="O(N), with N being the number of evicted entries. Constant times are very small "
                    "however, since entries are organized in macro nodes containing multiple entries "
                    "that can be released with a single deallocation.")
def xtrim(s: Session, args: list[bytes]):
    key = args[1]
    st = lookup_stream(s, key)
    if st is None:
        return 0
    trim = _Trim()
    i = 2
    while i < len(args):
        j = _parse_trim_opt(args, i, trim)
        if j is None:
            raise ReplyError(errors.SYNTAX)
        i = j
    _finish_trim(trim)
    if not trim.strategy:
        raise ReplyError(errors.SYNTAX)
    return _trim(s, key, st, trim)



def distinct_present(ids, container) -> list[bytes]:
    """The ids found in ``container``, formatted, each once, in argument
    order (XDEL and XACK count an id named twice once)."""
    out, seen = [], set()
    for sid in ids:
        if sid in container and sid not in seen:
            seen.add(sid)
            out.append(format_id(sid))
    return out


@command("xdel", -3, "write fast", (1, 1, 1), group="stream", since="5.0.0",
         summary="Removes the specified entries from the stream. Returns the number of items actually "
                 "deleted, that may be different from the number of IDs passed in case certain IDs do "
                 "not exist.",
         complexity="O(1) for each single item to delete in the stream, regardless of the stream size.")
def xdel(s: Session, args: list[bytes]):
    ids = [parse_id(a, strict=True) for a in args[2:]]
    key = args[1]
    st = lookup_stream(s, key)
    if st is None:
        return 0
    gone = distinct_present(ids, st.entries)
    if gone:
        s.emit("xdel", key, {"ids": gone})
    return len(gone)


@command("xsetid", -3, "write denyoom fast", (1, 1, 1), group="stream", since="5.0.0",
         summary="An internal command for replicating stream values", complexity="O(1)")
def xsetid(s: Session, args: list[bytes]):
    sid = parse_id(args[2], strict=True)
    entries_added = -1
    maxdel = MIN_ID
    i = 3
    n = len(args)
    while i < n:
        opt = args[i].upper()
        more = n - 1 - i
        if opt == b"ENTRIESADDED" and more:
            entries_added = parse_int(args[i + 1])
            if entries_added < 0:
                raise ReplyError("ERR entries_added must be positive")
        elif opt == b"MAXDELETEDID" and more:
            maxdel = parse_id(args[i + 1], strict=True)
            if sid < maxdel:
                raise ReplyError("ERR The ID specified in XSETID is smaller than the provided "
                                 "max_deleted_entry_id")
        else:
            raise ReplyError(errors.SYNTAX)
        i += 2
    key = args[1]
    st = lookup_stream(s, key)
    if st is None:
        raise ReplyError(errors.NO_SUCH_KEY)
    if sid < st.max_deleted_id:
        raise ReplyError("ERR The ID specified in XSETID is smaller than current max_deleted_entry_id")
    if st.entries:
        if sid < st.entries.peekitem(-1)[0]:
            raise ReplyError("ERR The ID specified in XSETID is smaller than the target stream top item")
        if entries_added != -1 and len(st.entries) > entries_added:
            raise ReplyError("ERR The entries_added specified in XSETID is smaller than the target "
                             "stream length")
    data = {"last_id": format_id(sid)}
    if entries_added != -1:
        data["entries_added"] = entries_added
    if maxdel != MIN_ID:
        data["max_deleted_id"] = format_id(maxdel)
    s.emit("xsetid", key, data)
    return OK


# ------------------------------------------------------------------ reads


@command("xlen", 2, "readonly fast", (1, 1, 1), group="stream", since="5.0.0",
         summary="Return the number of entries in a stream", complexity="O(1)")
def xlen(s: Session, args: list[bytes]):
    st = lookup_stream(s, args[1])
    return 0 if st is None else len(st.entries)


def _xrange(s: Session, args: list[bytes], rev: bool):
    a, b = (args[3], args[2]) if rev else (args[2], args[3])
    start = parse_range_id(a, 0, True)
    end = parse_range_id(b, U64, False)
    count = -1
    i = 4
    n = len(args)
    while i < n:
        if args[i].upper() == b"COUNT" and n - 1 - i >= 1:
            count = max(parse_int(args[i + 1]), 0)
            i += 2
        else:
            raise ReplyError(errors.SYNTAX)
    if count == 0:
        return NULL_ARRAY
    st = lookup_stream(s, args[1])
    if st is None:
        return []
    return range_reply(st, start, end, max(count, 0), rev)


@command("xrange", -4, "readonly", (1, 1, 1), group="stream", since="5.0.0",
         summary="Return a range of elements in a stream, with IDs matching the specified IDs interval",
         complexity="O(N) with N being the number of elements being returned. If N is constant (e.g. "
                    "always asking for the first 10 elements with COUNT), you can consider it O(1).")
def xrange(s: Session, args: list[bytes]):
    return _xrange(s, args, False)


@command("xrevrange", -4, "readonly", (1, 1, 1), group="stream", since="5.0.0",
         summary="Return a range of elements in a stream, with IDs matching the specified IDs interval, "
                 "in reverse order (from greater to smaller IDs) compared to XRANGE",
         complexity="O(N) with N being the number of elements returned. If N is constant (e.g. always "
                    "asking for the first 10 elements with COUNT), you can consider it O(1).")
def xrevrange(s: Session, args: list[bytes]):
    return _xrange(s, args, True)


def parse_block(b: bytes) -> float | None:
    """BLOCK milliseconds -> seconds to wait (None: forever)."""
    ms = parse_int(b, TIMEOUT_NOT_INT)
    if ms < 0:
        raise ReplyError(errors.TIMEOUT_NEGATIVE)
    return None if ms == 0 else ms / 1000


class ReadArgs:
    """XREAD/XREADGROUP options, parsed in Redis's order."""

    __slots__ = ("count", "block", "keys", "ids", "group", "consumer", "noack")

    def __init__(self, args: list[bytes], xreadgroup: bool):
        self.count = 0
        self.block = -1  # -1: no BLOCK
        self.group = self.consumer = None
        self.noack = False
        name = "xreadgroup" if xreadgroup else "xread"
        n = len(args)
        streams_at = 0
        i = 1
        while i < n:
            o = args[i].upper()
            more = n - i - 1
            if o == b"BLOCK" and more:
                i += 1
                self.block = parse_block(args[i])
            elif o == b"COUNT" and more:
                i += 1
                self.count = max(parse_int(args[i]), 0)
            elif o == b"STREAMS" and more:
                streams_at = i + 1
                if (n - streams_at) % 2:
                    raise ReplyError(
                        f"ERR Unbalanced '{name}' list of streams: for each stream key an ID or "
                        f"'{'>' if xreadgroup else '$'}' must be specified.")
                break
            elif o == b"GROUP" and more >= 2:
                if not xreadgroup:
                    raise ReplyError("ERR The GROUP option is only supported by XREADGROUP. You called "
                                     "XREAD instead.")
                self.group, self.consumer = args[i + 1], args[i + 2]
                i += 2
            elif o == b"NOACK":
                if not xreadgroup:
                    raise ReplyError("ERR The NOACK option is only supported by XREADGROUP. You called "
                                     "XREAD instead.")
                self.noack = True
            else:
                raise ReplyError(errors.SYNTAX)
            i += 1
        if not streams_at:
            raise ReplyError(errors.SYNTAX)
        if xreadgroup and self.group is None:
            raise ReplyError("ERR Missing GROUP option for XREADGROUP")
        half = (n - streams_at) // 2
        self.keys = args[streams_at:streams_at + half]
        self.ids = args[streams_at + half:]


def read_reply(s: Session, results: list) -> object:
    """[(key, entries)] as XREAD replies: a map in RESP3, else pairs."""
    if s.resp3:
        return RespMap(results)
    return [[k, v] for k, v in results]


@command("xread", -4, "readonly blocking movablekeys", (0, 0, 0), group="stream", since="5.0.0",
         keyword=("STREAMS", 1, 2),
         summary="Return never seen elements in multiple streams, with IDs greater than the ones reported "
                 "by the caller for each stream. Can block.",
         complexity="For each stream mentioned: O(N) with N being the number of elements being returned, "
                    "it means that XREAD-ing with a fixed COUNT is O(1). Note that when the BLOCK option "
                    "is used, XADD will pay O(M) time in order to serve the M clients blocked on the "
                    "stream getting new data.")
def xread(s: Session, args: list[bytes]):
    ra = ReadArgs(args, False)
    after = []
    for key, idb in zip(ra.keys, ra.ids):
        st = lookup_stream(s, key)
        if idb == b"$":
            after.append(st.last_id if st is not None else MIN_ID)
        elif idb == b">":
            raise ReplyError("ERR The > ID can be specified only when calling XREADGROUP using the GROUP "
                             "<group> <consumer> option.")
        else:
            after.append(parse_id(idb, strict=True))
    results = []
    for key, gt in zip(ra.keys, after):
        st = lookup_stream(s, key)
        if st is not None and st.entries and st.entries.peekitem(-1)[0] > gt:
            results.append((key, range_reply(st, incr_id(gt), MAX_ID, ra.count)))
    if results:
        return read_reply(s, results)
    if ra.block == -1 or s.in_exec:
        return NULL_ARRAY
    waits = dict(zip(ra.keys, after))
    count = ra.count

    def serve(s: Session, key: bytes):
        st = s.lookup(key)
        gt = waits[key]
        if type(st) is not Stream or not st.entries or st.entries.peekitem(-1)[0] <= gt:
            return NOT_READY
        return read_reply(s, [(key, range_reply(st, incr_id(gt), MAX_ID, count))])

    return Delayed(NULL_ARRAY, ra.block, KeyWait(s.db_index, list(ra.keys), serve))


# ------------------------------------------------------------------ XINFO


XINFO = container("xinfo", group="stream", since="5.0.0",
                  summary="A container for stream introspection commands")


def _group_or_error(st: Stream, name: bytes, key: bytes):
    g = st.groups.get(name)
    if g is None:
        raise ReplyError("NOGROUP No such consumer group '%s' for key name '%s'" % (
            name.decode("utf-8", "surrogateescape"), key.decode("utf-8", "surrogateescape")))
    return g


def _stream_or_nokey(s: Session, key: bytes) -> Stream:
    st = lookup_stream(s, key)
    if st is None:
        raise ReplyError(errors.NO_SUCH_KEY)
    return st


def _entries_read(g) -> object:
    return None if g.entries_read == INVALID else g.entries_read


def _radix_nodes(st: Stream) -> int:
    # Redis's rax node count has no meaning here; keys + 1 matches it for small streams
    return len(st.nodes) + 1


@subcommand(XINFO, "stream", -3, "readonly", (2, 2, 1), since="5.0.0",
            summary="Get information about a stream",
            complexity="O(1)")
def xinfo_stream(s: Session, args: list[bytes]):
    full = False
    count = 10
    n = len(args)
    if n > 3:
        bad = ReplyError(f"ERR unknown subcommand or wrong number of arguments for "
                         f"'{args[1].decode('utf-8', 'surrogateescape')}'. Try XINFO HELP.")
        if args[3].upper() != b"FULL" or n not in (4, 6):
            raise bad
        full = True
        if n == 6:
            if args[4].upper() != b"COUNT":
                raise bad
            count = max(parse_int(args[5]), 0)
    st = _stream_or_nokey(s, args[2])
    head = [
        (b"length", len(st.entries)),
        (b"radix-tree-keys", len(st.nodes)),
        (b"radix-tree-nodes", _radix_nodes(st)),
        (b"last-generated-id", format_id(st.last_id)),
        (b"max-deleted-entry-id", format_id(st.max_deleted_id)),
        (b"entries-added", st.entries_added),
        (b"recorded-first-entry-id", format_id(st.first_id())),
    ]
    if not full:
        first = last = None
        if st.entries:
            k, v = st.entries.peekitem(0)
            first = [format_id(k), v]
            k, v = st.entries.peekitem(-1)
            last = [format_id(k), v]
        return RespMap(head + [(b"groups", len(st.groups)), (b"first-entry", first), (b"last-entry", last)])
    entries = range_reply(st, MIN_ID, MAX_ID, count)
    groups = []
    for name in sorted(st.groups):
        g = st.groups[name]
        pel = []
        for sid, nack in g.pel.items():
            if count and len(pel) == count:
                break
            pel.append([format_id(sid), nack.consumer, nack.delivery_time, nack.delivery_count])
        consumers = []
        for cname in sorted(g.consumers):
            c = g.consumers[cname]
            cpel = []
            for sid in c.sorted_ids():
                nack = c.pel[sid]
                if count and len(cpel) == count:
                    break
                cpel.append([format_id(sid), nack.delivery_time, nack.delivery_count])
            consumers.append(RespMap([(b"name", cname), (b"seen-time", c.seen_time),
                                      (b"pel-count", len(c.pel)), (b"pending", cpel)]))
        groups.append(RespMap([
            (b"name", name), (b"last-delivered-id", format_id(g.last_id)),
            (b"entries-read", _entries_read(g)), (b"lag", lag(st, g)),
            (b"pel-count", len(g.pel)), (b"pending", pel), (b"consumers", consumers)]))
    return RespMap(head + [(b"entries", entries), (b"groups", groups)])


@subcommand(XINFO, "groups", 3, "readonly", (2, 2, 1), since="5.0.0",
            summary="List the consumer groups of a stream", complexity="O(1)")
def xinfo_groups(s: Session, args: list[bytes]):
    st = _stream_or_nokey(s, args[2])
    out = []
    for name in sorted(st.groups):
        g = st.groups[name]
        out.append(RespMap([
            (b"name", name), (b"consumers", len(g.consumers)), (b"pending", len(g.pel)),
            (b"last-delivered-id", format_id(g.last_id)), (b"entries-read", _entries_read(g)),
            (b"lag", lag(st, g))]))
    return out


@subcommand(XINFO, "consumers", 4, "readonly", (2, 2, 1), since="5.0.0",
            summary="List the consumers in a consumer group", complexity="O(1)",
            tips="nondeterministic_output")
def xinfo_consumers(s: Session, args: list[bytes]):
    st = _stream_or_nokey(s, args[2])
    g = _group_or_error(st, args[3], args[2])
    now = now_ms()
    out = []
    for name in sorted(g.consumers):
        c = g.consumers[name]
        out.append(RespMap([(b"name", name), (b"pending", len(c.pel)), (b"idle", max(now - c.seen_time, 0))]))
    return out


@subcommand(XINFO, "help", 2, "loading stale", since="5.0.0", summary="Show helpful text about the different "
            "subcommands", complexity="O(1)")
def xinfo_help(s: Session, args: list[bytes]):
    return [
        "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CONSUMERS <key> <groupname>",
        "    Show consumers of <groupname>.",
        "GROUPS <key>",
        "    Show the stream consumer groups.",
        "STREAM <key> [FULL [COUNT <count>]",
        "    Show information about the stream.",
        "HELP",
        "    Prints this help.",
    ]


# ------------------------------------------------------------------ MEMORY USAGE

_size = sys.getsizeof


def _sorted_dict_size(d) -> int:
    """A SortedDict's own tables: its dict and its sorted key index (the
    keys themselves are counted with the items)."""
    lst = d._list
    return (_size(d) + _size(lst) + _size(lst._maxes) + _size(lst._index)
            + sum(_size(chunk) for chunk in lst._lists))


def _sampled(total: int, items, samples: int, size_of) -> int:
    """``size_of`` over the first ``samples`` items (0: all), scaled to ``total``."""
    if total == 0:
        return 0
    picked = [size_of(x) for x in (items if samples == 0 or samples >= total else islice(items, samples))]
    return sum(picked) * total // len(picked)


def _id_size(sid) -> int:
    return _size(sid) + _size(sid[0]) + _size(sid[1])


def _entry_size(item) -> int:
    sid, fields = item
    return _id_size(sid) + _size(fields) + sum(_size(f) for f in fields)


def _node_size(item) -> int:
    first, node = item
    return _id_size(first) + _size(node) + _id_size(node[1])


def _nack_size(item) -> int:
    # the Nack, its id key, and its slot in the owner's PEL dict (~3 words)
    return _id_size(item[0]) + _size(item[1]) + 24


def stream_usage(st: Stream, samples: int) -> int:
    """MEMORY USAGE of a stream: its entries (sampled like Redis samples a
    stream's nodes, scaled to the count), the node index, and each group's
    PEL (sampled) and consumers. Python's bytes, not Redis's listpacks."""
    n = len(st.entries)
    usage = (_size(st) + _sorted_dict_size(st.entries) + _sampled(n, st.entries.items(), samples, _entry_size)
             + _sorted_dict_size(st.nodes) + _sampled(len(st.nodes), st.nodes.items(), samples, _node_size)
             + _size(st.groups))
    for name, g in st.groups.items():
        usage += (_size(name) + _size(g) + _sorted_dict_size(g.pel)
                  + _sampled(len(g.pel), g.pel.items(), samples, _nack_size) + _size(g.consumers))
        for cname, c in g.consumers.items():
            usage += _size(cname) + _size(c) + _size(c.pel)
    return usage


SIZERS[Stream] = stream_usage


from . import xgroups  # noqa: E402,F401 - the consumer-group commands
