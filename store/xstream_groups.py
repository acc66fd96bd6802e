"""Consumer groups of a stream: the group, its pending entries list (PEL)
and its consumers, as Redis keeps them.

A ``Nack`` (Redis's name: a not-yet-acknowledged delivery) is shared by the
group's PEL and its owner's PEL, so a claim moves one object between two
consumers' indexes. Times are unix ms carried by the events (delivery
time, a consumer's seen time): appliers never read the clock.

``entries_read`` is the group's logical read counter (XINFO's
``entries-read``), -1 where Redis has none (shown as nil); the lag rules
that read it live here too (``estimate_read``, ``lag``).
"""

from __future__ import annotations

from sortedcontainers import SortedDict

#: Redis's SCG_INVALID_ENTRIES_READ: the counter is unknown
INVALID = -1


class Nack:
    """One pending delivery: who holds it, when it was last delivered, how often."""

    __slots__ = ("consumer", "delivery_time", "delivery_count")

    def __init__(self, consumer: bytes, delivery_time: int, delivery_count: int):
        self.consumer = consumer
        self.delivery_time = delivery_time
        self.delivery_count = delivery_count


class Consumer:
    """A consumer: when it was last seen, and the ids it holds.

    Its PEL is a plain dict, sorted only where an order is asked for
    (``sorted_ids``): a delivery then costs one sorted insert (the group's
    PEL), not two, and ordered reads of one consumer's PEL are rare."""

    __slots__ = ("seen_time", "pel")

    def __init__(self, seen_time: int):
        self.seen_time = seen_time
        #: id -> Nack (the same objects as the group's PEL)
        self.pel: dict = {}

    def sorted_ids(self, start=(0, 0)) -> list:
        return sorted(sid for sid in self.pel if sid >= start)


class Group:
    """A consumer group: last delivered id, read counter, PEL, consumers."""

    __slots__ = ("last_id", "entries_read", "pel", "consumers")

    def __init__(self, last_id: tuple[int, int], entries_read: int = INVALID):
        self.last_id = last_id
        self.entries_read = entries_read
        #: id -> Nack
        self.pel: SortedDict = SortedDict()
        #: name -> Consumer
        self.consumers: dict[bytes, Consumer] = {}

    def assign(self, sid, name: bytes, consumer: Consumer, when: int, count: int) -> None:
        """Make ``sid`` pending for ``consumer`` (new, or moved from another)."""
        nack = self.pel.get(sid)
        if nack is None:
            nack = self.pel[sid] = Nack(name, when, count)
        else:
            if nack.consumer != name:
                old = self.consumers.get(nack.consumer)
                if old is not None:
                    old.pel.pop(sid, None)
            nack.consumer = name
            nack.delivery_time = when
            nack.delivery_count = count
        consumer.pel[sid] = nack

    def ack(self, sid) -> bool:
        nack = self.pel.pop(sid, None)
        if nack is None:
            return False
        owner = self.consumers.get(nack.consumer)
        if owner is not None:
            owner.pel.pop(sid, None)
        return True

    def delete_consumer(self, name: bytes) -> int:
        """Remove a consumer and its pending entries; returns how many it had."""
        consumer = self.consumers.pop(name)
        for sid in consumer.pel:
            del self.pel[sid]
        return len(consumer.pel)

    def copy(self) -> "Group":
        g = Group(self.last_id, self.entries_read)
        for name, c in self.consumers.items():
            nc = g.consumers[name] = Consumer(c.seen_time)
            for sid, n in sorted(c.pel.items()):
                nc.pel[sid] = g.pel[sid] = Nack(n.consumer, n.delivery_time, n.delivery_count)
        for sid, n in self.pel.items():  # entries whose owner is gone (cannot happen, but keep them)
            if sid not in g.pel:
                g.pel[sid] = Nack(n.consumer, n.delivery_time, n.delivery_count)
        return g


# ------------------------------------------------------------------ lag rules


def has_tombstones(st, start, end=None) -> bool:
    """Whether a deleted entry may lie in [start, end] (only the newest
    deletion is known, as in Redis)."""
    maxdel = st.max_deleted_id
    if not st.entries or maxdel == (0, 0):
        return False
    if st.first_id() > maxdel:
        return False
    return start <= maxdel and (end is None or maxdel <= end)


def estimate_read(st, sid) -> int:
    """The read counter a group would have after reading up to ``sid``,
    INVALID when it cannot be known (deletions ahead, or a future id)."""
    if not st.entries_added:
        return 0
    if not st.entries and sid <= st.last_id:
        return st.entries_added
    if sid == st.last_id:
        return st.entries_added
    if sid > st.last_id:
        return INVALID
    first = st.first_id()
    maxdel = st.max_deleted_id
    if maxdel == (0, 0) or maxdel < first:
        if sid < first:
            return st.entries_added - len(st.entries)
        if sid == first:
            return st.entries_added - len(st.entries) + 1
    return INVALID


def lag(st, g: Group) -> int | None:
    """XINFO GROUPS' lag: entries not yet read by the group, None if unknown."""
    if not st.entries_added:
        return 0
    if g.entries_read != INVALID and not has_tombstones(st, g.last_id):
        return st.entries_added - g.entries_read
    read = estimate_read(st, g.last_id)
    return None if read == INVALID else st.entries_added - read


def advance_read(st, g_entries_read: int, sid) -> int:
    """The read counter after a group is delivered ``sid`` (XREADGROUP ``>``)."""
    if g_entries_read != INVALID and not has_tombstones(st, sid):
        return g_entries_read + 1
    if st.entries_added:
        return estimate_read(st, sid)
    return g_entries_read
