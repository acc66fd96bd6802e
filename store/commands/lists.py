"""List commands (Redis's t_list.c, the non-blocking ones) and the appliers
of list events.

A list is a ``ListValue``: a ``collections.deque`` of bytes. Pushing and
popping at either end is O(1); LINDEX/LSET/LINSERT in the middle are O(n),
as they are on Redis's quicklist.

Events (Redis keyspace-notification names, effects only):

- ``lpush`` / ``rpush`` {elements: [...]}: in push order (so LPUSH a b c
  leaves c first). LPUSHX/RPUSHX write the same events.
- ``lpop`` / ``rpop`` {count: n, elements: [...]}: ``count`` elements leave
  that end. Popping is deterministic given the state, so appliers use only
  ``count``; ``elements`` is there for change-stream consumers.
- ``lset`` {index, element}: ``index`` is normalized to 0 <= index < length.
- ``lrem`` {count, element, removed: n}: ``count`` as LREM took it (0 = all,
  > 0 from the head, < 0 from the tail); ``removed`` is how many went (>= 1).
- ``ltrim`` {start, stop}: the elements kept, normalized to non-negative
  indexes; ``start > stop`` means none are kept. A trim that would keep the
  whole list writes no event.
- ``linsert`` {where: "before"|"after", pivot, element}: next to the first
  occurrence of ``pivot``. ``where`` is bytes in the event, as every string
  is once read back from the log.
- LMOVE/RPOPLPUSH write ``lpush``/``rpush`` on the destination then
  ``lpop``/``rpop`` on the source, the order Redis 7.0 notifies them in.
  When source and destination are the same key this order also matters for
  the state: popping the only element first would delete the key (and its
  TTL), which Redis does not do.

An applier that leaves a list empty deletes the key (Redis never keeps an
empty list), so no separate ``del`` event is written for that. Appliers never
read the clock.

``lookup_list``, ``pop_elements``, ``move_element``, ``parse_where`` and
``parse_mpop`` are plain functions over a session so the blocking family
(BLPOP, BRPOP, BLMOVE, BLMPOP) can serve a woken client with the same code.
"""

from __future__ import annotations

from collections import deque
from itertools import islice

from streams.events import Event

from .. import errors
from ..keyspace import COPIERS, ENCODINGS, TYPE_NAMES, Db, Keyspace, applies
from ..resp import NULL_ARRAY, OK, Raw, ReplyError
from ..session import Session
from .args import INT64_MAX, INT64_MIN, parse_int, parse_int_in_range
from .table import command


class ListValue(deque):
    """A list of bytes elements. A class of its own so TYPE and type checks
    tell it from any other deque-based value."""

    __slots__ = ()


TYPE_NAMES[ListValue] = b"list"
COPIERS[ListValue] = ListValue  # elements are immutable bytes
# Redis 7.0 stores every list as a quicklist (listpack lists came in 7.2).
ENCODINGS[ListValue] = lambda v: b"quicklist"

# ------------------------------------------------------------------ appliers


@applies("lpush")
def _apply_lpush(ks: Keyspace, e: Event) -> None:
    data = ks.dbs[e.db].data
    dq = data.get(e.key)
    if dq is None:
        data[e.key] = ListValue(reversed(e.data["elements"]))
    else:
        dq.extendleft(e.data["elements"])


@applies("rpush")
def _apply_rpush(ks: Keyspace, e: Event) -> None:
    data = ks.dbs[e.db].data
    dq = data.get(e.key)
    if dq is None:
        data[e.key] = ListValue(e.data["elements"])
    else:
        dq.extend(e.data["elements"])


@applies("lpop", "rpop")
def _apply_pop(ks: Keyspace, e: Event) -> None:
    db = ks.dbs[e.db]
    dq = db.data[e.key]
    n = e.data["count"]
    if n >= len(dq):
        db.remove(e.key)
        return
    pop = dq.popleft if e.type == "lpop" else dq.pop
    for _ in range(n):
        pop()


@applies("lset")
def _apply_lset(ks: Keyspace, e: Event) -> None:
    ks.dbs[e.db].data[e.key][e.data["index"]] = e.data["element"]


@applies("lrem")
def _apply_lrem(ks: Keyspace, e: Event) -> None:
    db = ks.dbs[e.db]
    dq = db.data[e.key]
    element, count = e.data["element"], e.data["count"]
    left = abs(count) if count else len(dq)
    kept = []
    for x in (dq if count >= 0 else reversed(dq)):
        if left and x == element:
            left -= 1
        else:
            kept.append(x)
    if not kept:
        db.remove(e.key)
        return
    if count < 0:
        kept.reverse()
    dq.clear()
    dq.extend(kept)


@applies("ltrim")
def _apply_ltrim(ks: Keyspace, e: Event) -> None:
    db = ks.dbs[e.db]
    dq = db.data[e.key]
    start, stop = e.data["start"], min(e.data["stop"], len(dq) - 1)
    if start > stop:
        db.remove(e.key)
        return
    kept = stop - start + 1
    if kept < len(dq) - kept:  # cheaper to rebuild than to pop the rest one by one
        keep = list(islice(dq, start, stop + 1))
        dq.clear()
        dq.extend(keep)
    else:
        for _ in range(len(dq) - 1 - stop):
            dq.pop()
        for _ in range(start):
            dq.popleft()


@applies("linsert")
def _apply_linsert(ks: Keyspace, e: Event) -> None:
    dq = ks.dbs[e.db].data[e.key]
    i = dq.index(e.data["pivot"])
    dq.insert(i if e.data["where"] == b"before" else i + 1, e.data["element"])


# ------------------------------------------------------------------ helpers


def lookup_list(s: Session, key: bytes, db: Db | None = None) -> ListValue | None:
    """The list at ``key``, None if absent; WRONGTYPE for any other type."""
    dq = s.lookup(key, db)
    if dq is not None and type(dq) is not ListValue:
        raise ReplyError(errors.WRONGTYPE)
    return dq


def parse_where(b: bytes) -> bool:
    """LEFT -> True, RIGHT -> False, anything else a syntax error."""
    w = b.upper()
    if w == b"LEFT":
        return True
    if w == b"RIGHT":
        return False
    raise ReplyError(errors.SYNTAX)




def pop_elements(s: Session, key: bytes, left: bool, count: int, db: Db | None = None) -> list[bytes]:
    """Pop up to ``count`` (>= 1) elements from the existing list at ``key``
    and emit the ``lpop``/``rpop`` event; returns them in pop order."""
    if db is None:
        db = s.db
    dq = db.data[key]
    if count == 1:
        elements = [dq[0] if left else dq[-1]]
    elif count >= len(dq):
        elements = list(dq) if left else list(reversed(dq))
    else:
        elements = list(islice(dq if left else reversed(dq), count))
    s.emit("lpop" if left else "rpop", key, {"count": len(elements), "elements": elements}, db.index)
    return elements


def move_element(s: Session, src: bytes, dst: bytes, from_left: bool, to_left: bool,
                 db: Db | None = None) -> bytes | None:
    """LMOVE: pop one element from ``src``, push it onto ``dst``; None when
    ``src`` is absent. Both types are checked before anything is emitted."""
    if db is None:
        db = s.db
    dq = lookup_list(s, src, db)
    if dq is None:
        return None
    lookup_list(s, dst, db)
    element = dq[0] if from_left else dq[-1]
    # Push first, as Redis notifies, and so a one-element list rotated onto
    # itself is never empty (see the module doc).
    s.emit("lpush" if to_left else "rpush", dst, {"elements": [element]}, db.index)
    s.emit("lpop" if from_left else "rpop", src, {"count": 1, "elements": [element]}, db.index)
    return element


def parse_mpop(args: list[bytes], numkeys_idx: int) -> tuple[list[bytes], bool, int]:
    """``numkeys key [key ...] LEFT|RIGHT [COUNT count]`` of LMPOP/BLMPOP:
    returns (keys, from_left, count)."""
    numkeys = parse_int_in_range(args[numkeys_idx], 1, INT64_MAX, errors.NUMKEYS_POSITIVE)
    where_idx = numkeys_idx + numkeys + 1
    if where_idx >= len(args):
        raise ReplyError(errors.SYNTAX)
    left = parse_where(args[where_idx])
    count = 0
    j = where_idx + 1
    while j < len(args):
        if not count and args[j].upper() == b"COUNT" and j + 1 < len(args):
            count = parse_int_in_range(args[j + 1], 1, INT64_MAX, errors.COUNT_NOT_POSITIVE)
            j += 2
        else:
            raise ReplyError(errors.SYNTAX)
    return args[numkeys_idx + 1:where_idx], left, count or 1


_BULK_HEADERS = [b"$%d\r\n" % n for n in range(1024)]


def _bulk_array(elements) -> Raw:
    """An array of bulk strings, encoded here (the same bytes in RESP2 and
    RESP3): LRANGE's hot path, about twice as fast as the generic encoder."""
    out = [b"*%d\r\n" % len(elements)]
    add = out.append
    headers = _BULK_HEADERS
    for x in elements:
        n = len(x)
        add(headers[n] if n < 1024 else b"$%d\r\n" % n)
        add(x)
        add(b"\r\n")
    return Raw(b"".join(out))


def _norm_index(index: int, length: int) -> int | None:
    """A Redis list index (negative counts from the tail) as 0..length-1, or None."""
    if index < 0:
        index += length
    return index if 0 <= index < length else None


# ------------------------------------------------------------------ pushes


def _push(s: Session, args: list[bytes], event: str, only_existing: bool):
    key = args[1]
    dq = s.lookup(key)
    if dq is None:
        if only_existing:
            return 0
        length = 0
    elif type(dq) is not ListValue:
        raise ReplyError(errors.WRONGTYPE)
    else:
        length = len(dq)
    elements = args[2:]
    s.emit(event, key, {"elements": elements})
    return length + len(elements)


_PUSH_COMPLEXITY = ("O(1) for each element added, so O(N) to add N elements when the command is called "
                    "with multiple arguments.")


@command("lpush", -3, "write denyoom fast", (1, 1, 1), group="list", since="1.0.0",
         summary="Prepend one or multiple elements to a list", complexity=_PUSH_COMPLEXITY)
def lpush(s: Session, args: list[bytes]):
    return _push(s, args, "lpush", False)


@command("rpush", -3, "write denyoom fast", (1, 1, 1), group="list", since="1.0.0",
         summary="Append one or multiple elements to a list", complexity=_PUSH_COMPLEXITY)
def rpush(s: Session, args: list[bytes]):
    return _push(s, args, "rpush", False)


@command("lpushx", -3, "write denyoom fast", (1, 1, 1), group="list", since="2.2.0",
         summary="Prepend an element to a list, only if the list exists", complexity=_PUSH_COMPLEXITY)
def lpushx(s: Session, args: list[bytes]):
    return _push(s, args, "lpush", True)


@command("rpushx", -3, "write denyoom fast", (1, 1, 1), group="list", since="2.2.0",
         summary="Append an element to a list, only if the list exists", complexity=_PUSH_COMPLEXITY)
def rpushx(s: Session, args: list[bytes]):
    return _push(s, args, "rpush", True)


# ------------------------------------------------------------------ pops


def _pop(s: Session, args: list[bytes], left: bool):
    if len(args) == 2:
        key = args[1]
        dq = s.lookup(key)
        if dq is None:
            return None
        if type(dq) is not ListValue:
            raise ReplyError(errors.WRONGTYPE)
        element = dq[0] if left else dq[-1]
        s.emit("lpop" if left else "rpop", key, {"count": 1, "elements": [element]})
        return element
    if len(args) > 3:
        raise ReplyError(errors.wrong_arity("lpop" if left else "rpop"))
    count = parse_int_in_range(args[2], 0, INT64_MAX, errors.OUT_OF_RANGE_POSITIVE)
    if lookup_list(s, args[1]) is None:
        return NULL_ARRAY
    if count == 0:
        return []
    return pop_elements(s, args[1], left, count)


_POP_COMPLEXITY = "O(N) where N is the number of elements returned"


@command("lpop", -2, "write fast", (1, 1, 1), group="list", since="1.0.0",
         summary="Remove and get the first elements in a list", complexity=_POP_COMPLEXITY)
def lpop(s: Session, args: list[bytes]):
    return _pop(s, args, True)


@command("rpop", -2, "write fast", (1, 1, 1), group="list", since="1.0.0",
         summary="Remove and get the last elements in a list", complexity=_POP_COMPLEXITY)
def rpop(s: Session, args: list[bytes]):
    return _pop(s, args, False)


@command("lmpop", -4, "write movablekeys", (0, 0, 0), group="list", since="7.0.0", numkeys=1,
         summary="Pop elements from a list",
         complexity="O(N+M) where N is the number of provided keys and M is the number of elements "
                    "returned.")
def lmpop(s: Session, args: list[bytes]):
    keys, left, count = parse_mpop(args, 1)
    for key in keys:
        if lookup_list(s, key) is not None:
            return [key, pop_elements(s, key, left, count)]
    return NULL_ARRAY


@command("lmove", 5, "write denyoom", (1, 2, 1), group="list", since="6.2.0",
         summary="Pop an element from a list, push it to another list and return it",
         complexity="O(1)")
def lmove(s: Session, args: list[bytes]):
    from_left = parse_where(args[3])
    to_left = parse_where(args[4])
    return move_element(s, args[1], args[2], from_left, to_left)


@command("rpoplpush", 3, "write denyoom", (1, 2, 1), group="list", since="1.2.0",
         summary="Remove the last element in a list, prepend it to another list and return it",
         complexity="O(1)")
def rpoplpush(s: Session, args: list[bytes]):
    return move_element(s, args[1], args[2], False, True)


# ------------------------------------------------------------------ reads


@command("llen", 2, "readonly fast", (1, 1, 1), group="list", since="1.0.0",
         summary="Get the length of a list", complexity="O(1)")
def llen(s: Session, args: list[bytes]):
    dq = lookup_list(s, args[1])
    return 0 if dq is None else len(dq)


@command("lrange", 4, "readonly", (1, 1, 1), group="list", since="1.0.0",
         summary="Get a range of elements from a list",
         complexity="O(S+N) where S is the distance of start offset from HEAD for small lists, from "
                    "nearest end (HEAD or TAIL) for large lists; and N is the number of elements in "
                    "the specified range.")
def lrange(s: Session, args: list[bytes]):
    start = parse_int(args[2])
    stop = parse_int(args[3])
    dq = s.lookup(args[1])
    if dq is None:
        return []
    if type(dq) is not ListValue:
        raise ReplyError(errors.WRONGTYPE)
    n = len(dq)
    if start < 0:
        start = max(start + n, 0)
    if stop < 0:
        stop += n
    elif stop >= n:
        stop = n - 1
    if start > stop:
        return []
    if start == 0 and stop == n - 1:
        return _bulk_array(dq)
    if start <= n - 1 - stop:  # walk from the nearer end
        return _bulk_array(list(islice(dq, start, stop + 1)))
    out = list(islice(reversed(dq), n - 1 - stop, n - start))
    out.reverse()
    return _bulk_array(out)


@command("lindex", 3, "readonly", (1, 1, 1), group="list", since="1.0.0",
         summary="Get an element from a list by its index",
         complexity="O(N) where N is the number of elements to traverse to get to the element at "
                    "index. This makes asking for the first or the last element of the list O(1).")
def lindex(s: Session, args: list[bytes]):
    dq = lookup_list(s, args[1])
    if dq is None:
        return None
    i = _norm_index(parse_int(args[2]), len(dq))
    return None if i is None else dq[i]


@command("lpos", -3, "readonly", (1, 1, 1), group="list", since="6.0.6",
         summary="Return the index of matching elements on a list",
         complexity="O(N) where N is the number of elements in the list, for the average case. When "
                    "searching for elements near the head or the tail of the list, or when the MAXLEN "
                    "option is provided, the command may run in constant time.")
def lpos(s: Session, args: list[bytes]):
    rank, count, maxlen = 1, None, 0
    j, n = 3, len(args)
    while j < n:
        opt = args[j].upper()
        if j + 1 >= n:
            raise ReplyError(errors.SYNTAX)
        if opt == b"RANK":
            rank = parse_int(args[j + 1])
            if rank == 0:
                raise ReplyError(errors.RANK_ZERO)
        elif opt == b"COUNT":
            count = parse_int_in_range(args[j + 1], 0, INT64_MAX, errors.COUNT_NEGATIVE)
        elif opt == b"MAXLEN":
            maxlen = parse_int_in_range(args[j + 1], 0, INT64_MAX, errors.MAXLEN_NEGATIVE)
        else:
            raise ReplyError(errors.SYNTAX)
        j += 2
    dq = lookup_list(s, args[1])
    if dq is None:
        return None if count is None else []
    element = args[2]
    length = len(dq)
    wanted = 1 if count is None else (count or length)
    if rank == INT64_MIN:  # -rank overflows in Redis: it acts as -1 and COUNT as 0 (all)
        rank, wanted = -1, (1 if count is None else length)
    forward = rank > 0
    skip = (rank if forward else -rank) - 1
    seq = dq if forward else reversed(dq)
    if maxlen:
        seq = islice(seq, maxlen)
    found: list[int] = []
    for i, x in enumerate(seq):
        if x == element:
            if skip:
                skip -= 1
                continue
            found.append(i if forward else length - 1 - i)
            if len(found) >= wanted:
                break
    if count is None:
        return found[0] if found else None
    return found


# ------------------------------------------------------------------ edits


@command("lset", 4, "write denyoom", (1, 1, 1), group="list", since="1.0.0",
         summary="Set the value of an element in a list by its index",
         complexity="O(N) where N is the length of the list. Setting either the first or the last "
                    "element of the list is O(1).")
def lset(s: Session, args: list[bytes]):
    dq = lookup_list(s, args[1])
    if dq is None:
        raise ReplyError(errors.NO_SUCH_KEY)
    i = _norm_index(parse_int(args[2]), len(dq))
    if i is None:
        raise ReplyError(errors.INDEX_OUT_OF_RANGE)
    s.emit("lset", args[1], {"index": i, "element": args[3]})
    return OK


@command("lrem", 4, "write", (1, 1, 1), group="list", since="1.0.0",
         summary="Remove elements from a list",
         complexity="O(N+M) where N is the length of the list and M is the number of elements "
                    "removed.")
def lrem(s: Session, args: list[bytes]):
    count = parse_int(args[2])
    dq = lookup_list(s, args[1])
    if dq is None:
        return 0
    element = args[3]
    present = dq.count(element)
    removed = present if count == 0 else min(abs(count), present)
    if removed:
        s.emit("lrem", args[1], {"count": count, "element": element, "removed": removed})
    return removed


@command("ltrim", 4, "write", (1, 1, 1), group="list", since="1.0.0",
         summary="Trim a list to the specified range",
         complexity="O(N) where N is the number of elements to be removed by the operation.")
def ltrim(s: Session, args: list[bytes]):
    start = parse_int(args[2])
    stop = parse_int(args[3])
    dq = lookup_list(s, args[1])
    if dq is None:
        return OK
    n = len(dq)
    if start < 0:
        start = max(start + n, 0)
    if stop < 0:
        stop += n
    if start > stop or start >= n:
        start, stop = n, n - 1  # nothing kept
    elif stop >= n:
        stop = n - 1
    if start > 0 or stop < n - 1:
        s.emit("ltrim", args[1], {"start": start, "stop": stop})
    return OK


@command("linsert", 5, "write denyoom", (1, 1, 1), group="list", since="2.2.0",
         summary="Insert an element before or after another element in a list",
         complexity="O(N) where N is the number of elements to traverse before seeing the value "
                    "pivot. This means that inserting somewhere on the left end on the list (head) can "
                    "be considered O(1) and inserting somewhere on the right end (tail) is O(N).")
def linsert(s: Session, args: list[bytes]):
    where = args[2].upper()
    if where != b"BEFORE" and where != b"AFTER":
        raise ReplyError(errors.SYNTAX)
    dq = lookup_list(s, args[1])
    if dq is None:
        return 0
    if args[3] not in dq:
        return -1
    s.emit("linsert", args[1], {"where": b"before" if where == b"BEFORE" else b"after",
                                "pivot": args[3], "element": args[4]})
    return len(dq)
