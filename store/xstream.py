"""The stream value (Redis's t_stream.c data model) and the appliers of
stream events.

A ``Stream`` keeps its entries in a ``SortedDict`` id -> flat field/value
list, ids being ``(ms, seq)`` tuples of unsigned 64-bit integers. Besides
the entries it carries what Redis keeps and XINFO shows: the last generated
id, ``entries_added``, ``max_deleted_id`` and the consumer groups
(``store.xstream_groups``). It also mirrors Redis's *node* layout (runs of
at most ``NODE_MAX_ENTRIES`` appended entries, a node dropped once all of
its entries are deleted), because ``MAXLEN ~``/``MINID ~`` trim whole
nodes only: without the same boundaries, approximate trimming would remove
different entries than redis-server does.

Events (Redis keyspace-notification names; every id as ``b"ms-seq"``; all
effects, so replay needs no clock and no trimming decision):

- ``xadd`` {id, fields}: the id the writer chose (``*`` resolved)
- ``xtrim`` {count}: the first ``count`` entries were trimmed (XADD's
  MAXLEN/MINID too, after its ``xadd``)
- ``xdel`` {ids}: only ids that existed
- ``xsetid`` {last_id, entries_added?, max_deleted_id?}
- ``xgroup-create`` {group, id, entries_read} (creates the key for MKSTREAM)
- ``xgroup-setid`` {group, id, entries_read}, ``xgroup-destroy`` {group}
- ``xgroup-createconsumer`` {group, consumer, time}, ``xgroup-delconsumer``
- ``xreadgroup`` {group, consumer, time, ids, ...}: deliveries (PEL,
  delivery counts and times, the group's last id): see xstream_groups
- ``xclaim`` {group, consumer, time, claims, dropped, last_id?} and
  ``xack`` {group, ids}: Redis notifies nothing for these three, and neither
  does Fjord (``notify.EVENTS`` maps them to no notification)
"""

from __future__ import annotations

from bisect import bisect_right

from sortedcontainers import SortedDict

from streams.events import Event

from . import notify
from .keyspace import COPIERS, ENCODINGS, TYPE_NAMES, Keyspace, applies
from .snapshotting import SectionType, register
from .xstream_groups import Consumer, Group, Nack

U64 = (1 << 64) - 1
MIN_ID = (0, 0)
MAX_ID = (U64, U64)
#: Redis's stream-node-max-entries default: entries per node
NODE_MAX_ENTRIES = 100


def format_id(sid: tuple[int, int]) -> bytes:
    return b"%d-%d" % sid


def parse_event_id(b: bytes) -> tuple[int, int]:
    """An id as events spell it (always ``ms-seq``)."""
    ms, _, seq = b.partition(b"-")
    return int(ms), int(seq)


class Stream:
    """One stream: entries by id, generation state, groups, node layout."""

    __slots__ = ("entries", "last_id", "entries_added", "max_deleted_id", "groups", "nodes")

    def __init__(self):
        #: (ms, seq) -> [field, value, field, value, ...]
        self.entries: SortedDict = SortedDict()
        self.last_id = MIN_ID
        self.entries_added = 0
        self.max_deleted_id = MIN_ID
        #: group name -> Group
        self.groups: dict[bytes, Group] = {}
        #: first id of each node -> [live entries, last id appended, entries appended]
        self.nodes: SortedDict = SortedDict()

    def __len__(self) -> int:
        return len(self.entries)

    def first_id(self) -> tuple[int, int]:
        """The first entry's id (0-0 when empty), XINFO's recorded-first-entry-id."""
        return self.entries.peekitem(0)[0] if self.entries else MIN_ID

    def ids_after(self, gt: tuple[int, int], count: int) -> list:
        """Up to ``count`` (0: all) entry ids greater than ``gt``, in order:
        what XREADGROUP ``>`` delivers, on its hot path. Bisects the sorted
        key index's chunks directly: ``irange`` costs three times as much."""
        if self.last_id <= gt:  # the last generated id bounds every entry
            return []
        keys = self.entries._list
        lists = keys._lists
        n = len(lists)
        pos = bisect_right(keys._maxes, gt)
        if pos == n:
            return []
        chunk = lists[pos]
        i = bisect_right(chunk, gt)
        if not count:
            out = chunk[i:]
            for j in range(pos + 1, n):
                out += lists[j]
            return out
        out = chunk[i:i + count]
        while len(out) < count and pos + 1 < n:
            pos += 1
            out += lists[pos][:count - len(out)]
        return out

    # ------------------------------------------------------------ mutation

    def append(self, sid: tuple[int, int], fields: list[bytes]) -> None:
        self.entries[sid] = fields
        self.last_id = sid
        self.entries_added += 1
        nodes = self.nodes
        if nodes:
            first, node = nodes.peekitem(-1)
            # a node counts the entries appended to it, deleted or not
            if node[2] < NODE_MAX_ENTRIES:
                node[0] += 1
                node[1] = sid
                node[2] += 1
                return
        nodes[sid] = [1, sid, 1]

    def delete(self, sid: tuple[int, int]) -> None:
        """Remove one entry (XDEL); its node goes once empty."""
        del self.entries[sid]
        nodes = self.nodes
        i = nodes.bisect_right(sid) - 1
        first, node = nodes.peekitem(i)
        node[0] -= 1
        if node[0] == 0:
            del nodes[first]

    def trim_first(self, count: int) -> None:
        """Remove the first ``count`` entries (an ``xtrim`` event)."""
        entries = self.entries
        nodes = self.nodes
        while count > 0 and nodes:
            first, node = nodes.peekitem(0)
            take = min(count, node[0])
            for _ in range(take):
                entries.popitem(0)
            count -= take
            node[0] -= take
            if node[0] == 0:
                del nodes[first]

    def trim_count(self, maxlen: int | None, minid: tuple[int, int] | None, approx: bool, limit: int) -> int:
        """How many entries MAXLEN/MINID trimming removes, Redis's way:
        whole nodes first; with ``~`` nothing inside a node; ``limit``
        (0: none) caps the entries removed."""
        length = len(self.entries)
        removed = 0
        entries = self.entries
        for first, (live, last, _total) in self.nodes.items():
            if maxlen is not None and length <= maxlen:
                break
            if limit and removed + live > limit:
                break
            whole = (length - live >= maxlen) if maxlen is not None else last < minid
            if whole:
                length -= live
                removed += live
                continue
            if approx:
                break
            # exact: entries one by one inside this node
            for sid in entries.irange(first, last):
                if maxlen is not None:
                    if length <= maxlen:
                        break
                elif sid >= minid:
                    break
                length -= 1
                removed += 1
            break
        return removed

    def copy(self) -> "Stream":
        c = Stream()
        c.entries = SortedDict((k, list(v)) for k, v in self.entries.items())
        c.last_id = self.last_id
        c.entries_added = self.entries_added
        c.max_deleted_id = self.max_deleted_id
        c.nodes = SortedDict((k, list(v)) for k, v in self.nodes.items())
        c.groups = {name: g.copy() for name, g in self.groups.items()}
        return c

    # ------------------------------------------------------------ snapshots

    def to_flat(self) -> list:
        """The stream as snapshot items (msgpack-able): a head, then one
        item per entry, per node and per pending delivery, so a big stream
        spans several sections (``snapshotting.PART_ITEMS`` items each).

        - head: [last_id, entries_added, max_deleted_id,
          [[group, last_id, entries_read, [[consumer, seen_time], ...]], ...]]
        - an entry: [ms, seq, fields] (3 long)
        - a node: [0, ms, seq, live, last_ms, last_seq, appended] (7 long)
        - a delivery: [1, group #, ms, seq, consumer, time, count] (7 long)
        """
        groups = list(self.groups.items())
        head = [list(self.last_id), self.entries_added, list(self.max_deleted_id),
                [[name, list(g.last_id), g.entries_read, [[c, con.seen_time] for c, con in g.consumers.items()]]
                 for name, g in groups]]
        flat = [head]
        flat += ([k[0], k[1], v] for k, v in self.entries.items())
        flat += ([0, k[0], k[1], n[0], n[1][0], n[1][1], n[2]] for k, n in self.nodes.items())
        for gi, (_name, g) in enumerate(groups):
            flat += ([1, gi, k[0], k[1], n.consumer, n.delivery_time, n.delivery_count] for k, n in g.pel.items())
        return flat

    @classmethod
    def from_flat(cls, flat: list) -> "Stream":
        """The stream of ``to_flat``'s items (the first part of them)."""
        last, added, maxdel, groups = flat[0]
        st = cls()
        st.last_id = tuple(last)
        st.entries_added = added
        st.max_deleted_id = tuple(maxdel)
        for name, glast, entries_read, consumers in groups:
            g = st.groups[name] = Group(tuple(glast), entries_read)
            for cname, seen in consumers:
                g.consumers[cname] = Consumer(seen)
        st.extend_flat(flat, 1)
        return st

    def extend_flat(self, items: list, start: int = 0) -> None:
        """Add ``to_flat`` items after the head (a later snapshot part)."""
        entries, nodes = [], []
        groups = list(self.groups.values())
        pels: list[list] = [[] for _ in groups]
        for i in range(start, len(items)):
            it = items[i]
            if len(it) == 3:
                entries.append(((it[0], it[1]), it[2]))
            elif it[0] == 0:
                _, ms, seq, live, lms, lseq, total = it
                nodes.append(((ms, seq), [live, (lms, lseq), total]))
            else:
                _, gi, ms, seq, cname, when, count = it
                pels[gi].append(((ms, seq), Nack(cname, when, count)))
        if entries:
            self.entries.update(entries)
        if nodes:
            self.nodes.update(nodes)
        for g, pel in zip(groups, pels):
            if pel:
                g.pel.update(pel)
                consumers = g.consumers
                for sid, nack in pel:
                    owner = consumers.get(nack.consumer)
                    if owner is not None:
                        owner.pel[sid] = nack


def _encoding(_s: Stream) -> bytes:
    return b"stream"


TYPE_NAMES[Stream] = b"stream"
COPIERS[Stream] = Stream.copy
ENCODINGS[Stream] = _encoding
# Items of ``Stream.to_flat``: a big stream spans sections (snapshotting's parts).
register(Stream, SectionType("stream", Stream.to_flat, Stream.from_flat, Stream.extend_flat))

# Redis notifies nothing for deliveries, claims and acks; they are logged all the same.
for _t in ("xreadgroup", "xclaim", "xack"):
    notify.EVENTS[_t] = ()


# ------------------------------------------------------------------ appliers


def _stream(ks: Keyspace, e: Event) -> Stream:
    return ks.dbs[e.db].data[e.key]


def _create(ks: Keyspace, e: Event) -> Stream:
    data = ks.dbs[e.db].data
    st = data.get(e.key)
    if st is None:
        st = data[e.key] = Stream()
    return st


@applies("xadd")
def _apply_xadd(ks: Keyspace, e: Event) -> None:
    _create(ks, e).append(parse_event_id(e.data["id"]), e.data["fields"])


@applies("xtrim")
def _apply_xtrim(ks: Keyspace, e: Event) -> None:
    _stream(ks, e).trim_first(e.data["count"])


@applies("xdel")
def _apply_xdel(ks: Keyspace, e: Event) -> None:
    st = _stream(ks, e)
    for b in e.data["ids"]:
        sid = parse_event_id(b)
        st.delete(sid)
        if sid > st.max_deleted_id:
            st.max_deleted_id = sid


@applies("xsetid")
def _apply_xsetid(ks: Keyspace, e: Event) -> None:
    st = _stream(ks, e)
    d = e.data
    st.last_id = parse_event_id(d["last_id"])
    if d.get("entries_added") is not None:
        st.entries_added = d["entries_added"]
    if d.get("max_deleted_id") is not None:
        st.max_deleted_id = parse_event_id(d["max_deleted_id"])


@applies("xgroup-create")
def _apply_xgroup_create(ks: Keyspace, e: Event) -> None:
    d = e.data
    _create(ks, e).groups[d["group"]] = Group(parse_event_id(d["id"]), d["entries_read"])


@applies("xgroup-setid")
def _apply_xgroup_setid(ks: Keyspace, e: Event) -> None:
    d = e.data
    g = _stream(ks, e).groups[d["group"]]
    g.last_id = parse_event_id(d["id"])
    g.entries_read = d["entries_read"]


@applies("xgroup-destroy")
def _apply_xgroup_destroy(ks: Keyspace, e: Event) -> None:
    del _stream(ks, e).groups[e.data["group"]]


@applies("xgroup-createconsumer")
def _apply_xgroup_createconsumer(ks: Keyspace, e: Event) -> None:
    d = e.data
    _stream(ks, e).groups[d["group"]].consumers[d["consumer"]] = Consumer(d["time"])


@applies("xgroup-delconsumer")
def _apply_xgroup_delconsumer(ks: Keyspace, e: Event) -> None:
    d = e.data
    _stream(ks, e).groups[d["group"]].delete_consumer(d["consumer"])


@applies("xreadgroup")
def _apply_xreadgroup(ks: Keyspace, e: Event) -> None:
    d = e.data
    g = _stream(ks, e).groups[d["group"]]
    ids = [parse_event_id(b) for b in d["ids"]]
    consumer = g.consumers[d["consumer"]]
    now = d["time"]
    consumer.seen_time = now
    if d.get("history"):
        for sid in ids:
            nack = g.pel[sid]
            nack.delivery_time = now
            nack.delivery_count += 1
        return
    if not d.get("noack"):
        for sid in ids:
            g.assign(sid, d["consumer"], consumer, now, 1)
    if ids:
        g.last_id = parse_event_id(d["last_id"])
        g.entries_read = d["entries_read"]


@applies("xclaim")
def _apply_xclaim(ks: Keyspace, e: Event) -> None:
    d = e.data
    g = _stream(ks, e).groups[d["group"]]
    name = d["consumer"]
    consumer = g.consumers.get(name) if name is not None else None
    if consumer is not None:
        consumer.seen_time = d["time"]
    for b in d.get("dropped", ()):
        g.ack(parse_event_id(b))
    for b, when, count in d["claims"]:
        g.assign(parse_event_id(b), name, consumer, when, count)
    if d.get("last_id") is not None:
        g.last_id = parse_event_id(d["last_id"])


@applies("xack")
def _apply_xack(ks: Keyspace, e: Event) -> None:
    g = _stream(ks, e).groups[e.data["group"]]
    for b in e.data["ids"]:
        g.ack(parse_event_id(b))


__all__ = ["Stream", "Group", "Consumer", "Nack", "format_id", "parse_event_id", "MIN_ID", "MAX_ID", "U64"]
