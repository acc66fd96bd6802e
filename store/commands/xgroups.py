"""Consumer-group commands: XGROUP, XREADGROUP (with BLOCK), XACK,
XPENDING, XCLAIM, XAUTOCLAIM.

Every change of group state is an event, though Redis notifies only the
XGROUP ones: ``xreadgroup`` carries the ids delivered, to whom, at what time
and the group's new last id and read counter; ``xclaim`` carries each
claimed id with its new delivery time and count (and ids dropped from the
PEL because their entries are gone); ``xack`` the ids acknowledged. A
consumer created on the fly (XREADGROUP, XCLAIM, XAUTOCLAIM) gets its own
``xgroup-createconsumer`` first, which Redis does notify.

Not logged: a consumer's seen time when a read or claim changes nothing (a
restart may then report a larger XINFO CONSUMERS idle than Redis would).
"""

from __future__ import annotations

from itertools import islice

from .. import errors
from ..blocking import NOT_READY, KeyWait
from ..resp import NULL_ARRAY, OK, Delayed, ReplyError
from ..session import Session, now_ms
from ..xstream import MAX_ID, MIN_ID, Stream, format_id
from ..xstream_groups import INVALID, advance_read
from .args import parse_int
from .table import container, command, subcommand
from .xstreams import (ReadArgs, distinct_present, incr_id, lookup_stream, parse_id, parse_range_id,
                       read_reply)

U64 = MAX_ID[0]


def _s(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _nogroup(key: bytes, group: bytes, suffix: str = "") -> ReplyError:
    return ReplyError(f"NOGROUP No such key '{_s(key)}' or consumer group '{_s(group)}'{suffix}")


def _stream_and_group(s: Session, key: bytes, group: bytes):
    """The stream at ``key`` and its consumer group ``group``, or NOGROUP."""
    st = lookup_stream(s, key)
    g = st.groups.get(group) if st is not None else None
    if g is None:
        raise _nogroup(key, group)
    return st, g


def _ensure_consumer(s: Session, key: bytes, st: Stream, group: bytes, name: bytes, now: int) -> None:
    g = st.groups[group]
    if name not in g.consumers:
        s.emit("xgroup-createconsumer", key, {"group": group, "consumer": name, "time": now})


# ------------------------------------------------------------------ XGROUP


XGROUP = container("xgroup", group="stream", since="5.0.0",
                   summary="A container for consumer groups commands")


def _subcommand_syntax(sub: bytes) -> ReplyError:
    return ReplyError(f"ERR unknown subcommand or wrong number of arguments for '{_s(sub)}'. Try XGROUP HELP.")


def _parse_entries_read(b: bytes) -> int:
    v = parse_int(b)
    if v < 0 and v != INVALID:
        raise ReplyError("ERR value for ENTRIESREAD must be positive or -1")
    return v


def _group_target(s: Session, args: list[bytes], mkstream: bool = False, need_group: bool = True):
    """Common checks of XGROUP subcommands: the key (a stream) and group."""
    key, group = args[2], args[3]
    st = lookup_stream(s, key)
    if st is None and not mkstream:
        raise ReplyError("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may "
                         "want to use the MKSTREAM option to create an empty stream automatically.")
    if need_group and (st is None or group not in st.groups):
        raise ReplyError(f"NOGROUP No such consumer group '{_s(group)}' for key name '{_s(key)}'")
    return key, group, st


@subcommand(XGROUP, "create", -5, "write denyoom", (2, 2, 1), since="5.0.0",
            summary="Create a consumer group.", complexity="O(1)")
def xgroup_create(s: Session, args: list[bytes]):
    mkstream = False
    entries_read = INVALID
    i = 5
    n = len(args)
    while i < n:
        a = args[i].upper()
        if a == b"MKSTREAM":
            mkstream = True
            i += 1
        elif a == b"ENTRIESREAD" and i + 1 < n:
            entries_read = _parse_entries_read(args[i + 1])
            i += 2
        else:
            raise _subcommand_syntax(args[1])
    key, group, st = _group_target(s, args, mkstream, need_group=False)
    if args[4] == b"$":
        sid = st.last_id if st is not None else (0, 0)
    else:
        sid = parse_id(args[4], strict=True)
    if st is not None and group in st.groups:
        raise ReplyError("BUSYGROUP Consumer Group name already exists")
    s.emit("xgroup-create", key, {"group": group, "id": format_id(sid), "entries_read": entries_read})
    return OK


@subcommand(XGROUP, "setid", -5, "write", (2, 2, 1), since="5.0.0",
            summary="Set a consumer group to an arbitrary last delivered ID value.", complexity="O(1)")
def xgroup_setid(s: Session, args: list[bytes]):
    key, group, st = _group_target(s, args)
    sid = st.last_id if args[4] == b"$" else parse_id(args[4])
    entries_read = INVALID
    if len(args) == 7:
        if args[5].upper() != b"ENTRIESREAD":
            raise _subcommand_syntax(args[1])
        entries_read = _parse_entries_read(args[6])
    elif len(args) != 5:
        raise _subcommand_syntax(args[1])
    s.emit("xgroup-setid", key, {"group": group, "id": format_id(sid), "entries_read": entries_read})
    return OK


@subcommand(XGROUP, "destroy", 4, "write", (2, 2, 1), since="5.0.0",
            summary="Destroy a consumer group.",
            complexity="O(N) where N is the number of entries in the group's pending entries list (PEL).")
def xgroup_destroy(s: Session, args: list[bytes]):
    key, group, st = _group_target(s, args, need_group=False)
    if group not in st.groups:
        return 0
    s.emit("xgroup-destroy", key, {"group": group})
    return 1


@subcommand(XGROUP, "createconsumer", 5, "write denyoom", (2, 2, 1), since="6.2.0",
            summary="Create a consumer in a consumer group.", complexity="O(1)")
def xgroup_createconsumer(s: Session, args: list[bytes]):
    key, group, st = _group_target(s, args)
    if args[4] in st.groups[group].consumers:
        return 0
    s.emit("xgroup-createconsumer", key, {"group": group, "consumer": args[4], "time": now_ms()})
    return 1


@subcommand(XGROUP, "delconsumer", 5, "write", (2, 2, 1), since="5.0.0",
            summary="Delete a consumer from a consumer group.", complexity="O(1)")
def xgroup_delconsumer(s: Session, args: list[bytes]):
    key, group, st = _group_target(s, args)
    c = st.groups[group].consumers.get(args[4])
    if c is None:
        return 0
    pending = len(c.pel)
    s.emit("xgroup-delconsumer", key, {"group": group, "consumer": args[4]})
    return pending


@subcommand(XGROUP, "help", 2, "loading stale", since="5.0.0",
            summary="Show helpful text about the different subcommands", complexity="O(1)")
def xgroup_help(s: Session, args: list[bytes]):
    return [
        "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CREATE <key> <groupname> <id|$> [option]",
        "    Create a new consumer group. Options are:",
        "    * MKSTREAM",
        "      Create the empty stream if it does not exist.",
        "    * ENTRIESREAD entries_read",
        "      Set the group's entries_read counter (internal use).",
        "CREATECONSUMER <key> <groupname> <consumer>",
        "    Create a new consumer in the specified group.",
        "DELCONSUMER <key> <groupname> <consumer>",
        "    Remove the specified consumer.",
        "DESTROY <key> <groupname>",
        "    Remove the specified group.",
        "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
        "    Set the current group ID and entries_read counter.",
        "HELP",
        "    Prints this help.",
    ]


# ------------------------------------------------------------------ XREADGROUP


def deliver_new(s: Session, key: bytes, st: Stream, group: bytes, consumer: bytes, sids: list,
                noack: bool, now: int) -> list:
    """The entries ``sids`` (from ``Stream.ids_after``) delivered to ``consumer``: one event."""
    g = st.groups[group]
    entries = st.entries
    ids = [format_id(sid) for sid in sids]
    out = [[idb, entries[sid]] for idb, sid in zip(ids, sids)]
    entries_read = g.entries_read
    if entries_read != INVALID and st.max_deleted_id == MIN_ID:
        entries_read += len(sids)  # no deletion anywhere: the counter just counts (advance_read's rule)
    else:
        for sid in sids:
            entries_read = advance_read(st, entries_read, sid)
    data = {"group": group, "consumer": consumer, "time": now, "ids": ids, "last_id": ids[-1],
            "entries_read": entries_read}
    if noack:
        data["noack"] = True
    s.emit("xreadgroup", key, data)
    return out


def deliver_history(s: Session, key: bytes, st: Stream, group: bytes, consumer: bytes, gt, count: int,
                    now: int) -> list:
    """The consumer's own pending entries after ``gt`` (re-delivered)."""
    c = st.groups[group].consumers[consumer]
    start = incr_id(gt)
    if start is None:
        return []
    out = []
    redelivered = []
    for sid in c.sorted_ids(start):
        fields = st.entries.get(sid)
        idb = format_id(sid)
        if fields is None:
            out.append([idb, NULL_ARRAY])
        else:
            out.append([idb, fields])
            redelivered.append(idb)
        if len(out) == count:
            break
    if redelivered:
        s.emit("xreadgroup", key, {"group": group, "consumer": consumer, "time": now,
                                   "ids": redelivered, "history": True})
    return out


@command("xreadgroup", -7, "write blocking movablekeys", (0, 0, 0), group="stream", since="5.0.0",
         keyword=("STREAMS", 4, 2), key_flags="RO access",
         summary="Return new entries from a stream using a consumer group, or access the history of the "
                 "pending entries for a given consumer. Can block.",
         complexity="For each stream mentioned: O(M) with M being the number of elements returned. If M is "
                    "constant (e.g. always asking for the first 10 elements with COUNT), you can consider "
                    "it O(1). On the other side when XREADGROUP blocks, XADD will pay the O(N) time in "
                    "order to serve the N clients blocked on the stream getting new data.")
def xreadgroup(s: Session, args: list[bytes]):
    ra = ReadArgs(args, True)
    group, consumer = ra.group, ra.consumer
    targets = []
    for key, idb in zip(ra.keys, ra.ids):
        st = lookup_stream(s, key)
        if st is None or group not in st.groups:
            raise _nogroup(key, group, " in XREADGROUP with GROUP option")
        if idb == b"$":
            raise ReplyError("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the "
                             "history of this consumer by specifying a proper ID, or use the > ID to get new "
                             "messages. The $ ID would just return an empty result set.")
        targets.append((key, st, None if idb == b">" else parse_id(idb, strict=True)))
    now = now_ms()
    results = []
    for key, st, gt in targets:
        # the consumer comes to be only when it is served (Redis's order)
        if gt is not None:
            _ensure_consumer(s, key, st, group, consumer, now)
            results.append((key, deliver_history(s, key, st, group, consumer, gt, ra.count, now)))
        else:
            sids = st.ids_after(st.groups[group].last_id, ra.count)
            if sids:
                _ensure_consumer(s, key, st, group, consumer, now)
                results.append((key, deliver_new(s, key, st, group, consumer, sids, ra.noack, now)))
    if results:
        return read_reply(s, results)
    if ra.block == -1 or s.in_exec:
        return NULL_ARRAY
    count, noack = ra.count, ra.noack

    # Called when a key is written or deleted (on_delete): Redis judges the
    # key as it is now, so a stream deleted and re-created with the group in
    # one EXEC keeps its reader blocked, and one re-created without it NOGROUP.
    def serve(s: Session, key: bytes):
        st = s.lookup(key)
        if type(st) is not Stream:
            return ReplyError("UNBLOCKED the stream key no longer exists")
        g = st.groups.get(group)
        if g is None:
            return ReplyError("NOGROUP the consumer group this client was blocked on no longer exists")
        sids = st.ids_after(g.last_id, count)
        if not sids:
            return NOT_READY
        now = now_ms()
        _ensure_consumer(s, key, st, group, consumer, now)
        return read_reply(s, [(key, deliver_new(s, key, st, group, consumer, sids, noack, now))])

    return Delayed(NULL_ARRAY, ra.block, KeyWait(s.db_index, list(ra.keys), serve, on_delete=True))


# ------------------------------------------------------------------ XACK / XPENDING


@command("xack", -4, "write fast", (1, 1, 1), group="stream", since="5.0.0",
         summary="Marks a pending message as correctly processed, effectively removing it from the pending "
                 "entries list of the consumer group. Return value of the command is the number of "
                 "messages successfully acknowledged, that is, the IDs we were actually able to resolve "
                 "in the PEL.",
         complexity="O(1) for each message ID processed.")
def xack(s: Session, args: list[bytes]):
    key, group = args[1], args[2]
    st = lookup_stream(s, key)
    ids = [parse_id(a, strict=True) for a in args[3:]]
    g = st.groups.get(group) if st is not None else None
    if g is None:
        return 0
    acked = distinct_present(ids, g.pel)
    if acked:
        s.emit("xack", key, {"group": group, "ids": acked})
    return len(acked)


@command("xpending", -3, "readonly", (1, 1, 1), group="stream", since="5.0.0",
         tips="nondeterministic_output",
         summary="Return information and entries from a stream consumer group pending entries list, that "
                 "are messages fetched but never acknowledged.",
         complexity="O(N) with N being the number of elements returned, so asking for a small fixed number "
                    "of entries per call is O(1). O(M), where M is the total number of entries scanned when "
                    "used with the IDLE filter. When the command returns just the summary and the list of "
                    "consumers is small, it runs in O(1) time; otherwise, an additional O(N) time for "
                    "iterating every consumer.")
def xpending(s: Session, args: list[bytes]):
    n = len(args)
    key, group = args[1], args[2]
    if n != 3 and (n < 6 or n > 9):
        raise ReplyError(errors.SYNTAX)
    minidle = 0
    consumer = None
    if n >= 6:
        at = 3
        if args[3].upper() == b"IDLE":
            minidle = parse_int(args[4])
            if n < 8:
                raise ReplyError(errors.SYNTAX)
            at = 5
        count = max(parse_int(args[at + 2]), 0)
        start = parse_range_id(args[at], 0, True)
        end = parse_range_id(args[at + 1], U64, False)
        if at + 3 < n:
            consumer = args[at + 3]
    st, g = _stream_and_group(s, key, group)
    if n == 3:
        if not g.pel:
            return [0, None, None, NULL_ARRAY]
        per = [[name, b"%d" % len(c.pel)] for name, c in sorted(g.consumers.items()) if c.pel]
        return [len(g.pel), format_id(g.pel.peekitem(0)[0]), format_id(g.pel.peekitem(-1)[0]), per]
    if consumer is not None:
        c = g.consumers.get(consumer)
        if c is None:
            return []
        ids = [sid for sid in c.sorted_ids(start) if sid <= end]
    else:
        ids = g.pel.irange(start, end) if start <= end else ()
    out = []
    if count == 0 or start > end:
        return out
    now = now_ms()
    pel = g.pel
    for sid in ids:
        nack = pel[sid]
        idle = now - nack.delivery_time
        if minidle and idle < minidle:
            continue
        out.append([format_id(sid), nack.consumer, max(idle, 0), nack.delivery_count])
        if len(out) == count:
            break
    return out


# ------------------------------------------------------------------ XCLAIM / XAUTOCLAIM


def _claim_reply(st: Stream, sid, justid: bool):
    if justid:
        return format_id(sid)
    return [format_id(sid), st.entries[sid]]


@command("xclaim", -6, "write fast", (1, 1, 1), group="stream", since="5.0.0",
         tips="nondeterministic_output",
         summary="Changes (or acquires) ownership of a message in a consumer group, as if the message was "
                 "delivered to the specified consumer.",
         complexity="O(log N) with N being the number of messages in the PEL of the consumer group.")
def xclaim(s: Session, args: list[bytes]):
    key, group, name = args[1], args[2], args[3]
    st, g = _stream_and_group(s, key, group)
    minidle = max(parse_int(args[4], "ERR Invalid min-idle-time argument for XCLAIM"), 0)
    ids = []
    j = 5
    n = len(args)
    while j < n:
        try:
            ids.append(parse_id(args[j], strict=True))
        except ReplyError:
            break
        j += 1
    now = now_ms()
    force = justid = False
    deliverytime = -1
    retrycount = -1
    last_id = (0, 0)
    while j < n:
        opt = args[j].upper()
        more = n - 1 - j
        if opt == b"FORCE":
            force = True
        elif opt == b"JUSTID":
            justid = True
        elif opt == b"IDLE" and more:
            j += 1
            deliverytime = now - parse_int(args[j], "ERR Invalid IDLE option argument for XCLAIM")
        elif opt == b"TIME" and more:
            j += 1
            deliverytime = parse_int(args[j], "ERR Invalid TIME option argument for XCLAIM")
        elif opt == b"RETRYCOUNT" and more:
            j += 1
            retrycount = parse_int(args[j], "ERR Invalid RETRYCOUNT option argument for XCLAIM")
        elif opt == b"LASTID" and more:
            j += 1
            last_id = parse_id(args[j], strict=True)
        else:
            raise ReplyError(f"ERR Unrecognized XCLAIM option '{_s(args[j])}'")
        j += 1
    new_last = last_id if last_id > g.last_id else None
    if deliverytime == -1 or deliverytime < 0 or deliverytime > now:
        deliverytime = now
    claims = []
    dropped = []
    out = []
    claimed_counts: dict = {}
    for sid in ids:
        nack = g.pel.get(sid)
        idb = format_id(sid)
        if sid not in st.entries:
            if nack is not None and idb not in dropped:
                dropped.append(idb)
            continue
        if nack is None:
            if not force:
                continue
            count = claimed_counts.get(sid, 1)  # a fresh NACK counts one delivery
        else:
            if minidle and sid not in claimed_counts and now - nack.delivery_time < minidle:
                continue
            if minidle and sid in claimed_counts and now - deliverytime < minidle:
                continue
            count = claimed_counts.get(sid, nack.delivery_count)
        if retrycount >= 0:
            count = retrycount
        elif not justid:
            count += 1
        claimed_counts[sid] = count
        claims.append([idb, deliverytime, count])
        out.append(_claim_reply(st, sid, justid))
    if claims:
        _ensure_consumer(s, key, st, group, name, now)
    if claims or dropped or new_last is not None:
        if name not in g.consumers:  # only drops or LASTID: no consumer involved
            s.emit("xclaim", key, {"group": group, "consumer": None, "time": now, "claims": [],
                                   "dropped": dropped, "last_id": format_id(new_last) if new_last else None})
        else:
            s.emit("xclaim", key, {"group": group, "consumer": name, "time": now, "claims": claims,
                                   "dropped": dropped, "last_id": format_id(new_last) if new_last else None})
    return out


@command("xautoclaim", -6, "write fast", (1, 1, 1), group="stream", since="6.2.0",
         tips="nondeterministic_output",
         summary="Changes (or acquires) ownership of messages in a consumer group, as if the messages were "
                 "delivered to the specified consumer.",
         complexity="O(1) if COUNT is small.")
def xautoclaim(s: Session, args: list[bytes]):
    key, group, name = args[1], args[2], args[3]
    st, g = _stream_and_group(s, key, group)
    minidle = max(parse_int(args[4], "ERR Invalid min-idle-time argument for XAUTOCLAIM"), 0)
    start = parse_range_id(args[5], 0, True)
    count = 100
    justid = False
    j = 6
    n = len(args)
    while j < n:
        opt = args[j].upper()
        if opt == b"COUNT" and n - 1 - j:
            try:
                count = parse_int(args[j + 1])
            except ReplyError:
                count = 0
            if not 1 <= count <= (2 ** 63 - 1) // 16:
                raise ReplyError("ERR COUNT must be > 0")
            j += 1
        elif opt == b"JUSTID":
            justid = True
        else:
            raise ReplyError(errors.SYNTAX)
        j += 1
    now = now_ms()
    attempts = count * 10
    keys = list(islice(g.pel.irange(start), attempts + 1))
    examined = 0
    claims = []
    dropped = []
    out = []
    for sid in keys:
        if attempts == 0 or count == 0:
            break
        attempts -= 1
        examined += 1
        idb = format_id(sid)
        if sid not in st.entries:
            dropped.append(idb)
            count -= 1
            continue
        nack = g.pel[sid]
        if minidle and now - nack.delivery_time < minidle:
            continue
        claims.append([idb, now, nack.delivery_count + (0 if justid else 1)])
        out.append(_claim_reply(st, sid, justid))
        count -= 1
    cursor = format_id(keys[examined]) if examined < len(keys) else b"0-0"
    if claims:  # Redis creates the consumer only once it claims something
        _ensure_consumer(s, key, st, group, name, now)
    if claims or dropped:
        s.emit("xclaim", key, {"group": group, "consumer": name if claims else None, "time": now,
                               "claims": claims, "dropped": dropped, "last_id": None})
    return [cursor, out, dropped]
