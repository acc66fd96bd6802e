"""Snapshot cursors for the SCAN family, and random picks from a dict.

Redis resumes a SCAN from a hash-table bucket number; a Python dict can be
neither indexed nor resumed. So the first call of a scan (cursor 0) takes a
snapshot, ``list(d)``, and keeps it in a bounded LRU ``CursorTable`` owned by
the server; the cursor sent back encodes ``(snapshot id, position)`` as one
integer, and each later call walks the next ``count`` entries of the
snapshot. Callers skip entries that no longer exist, so the SCAN guarantees
hold: an element present for the whole scan is returned exactly once (Redis
may return it twice), an element added during the scan may or may not be.

A cursor the table no longer knows (evicted, or from before a restart)
restarts the scan from a fresh snapshot rather than failing or ending it: the
client then sees some elements twice, which SCAN allows, and misses none.

The same table keeps the snapshots ``random_pick`` (RANDOMKEY) samples from.
Everything here is O(1) per call amortized: a snapshot costs O(n) once and
serves O(n) positions.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from typing import Callable, Hashable, Sequence

from . import errors
from .resp import ReplyError

_POS_BITS = 32
_POS_MASK = (1 << _POS_BITS) - 1
_ULONG_MAX = 2**64 - 1
_SPACE = b" \t\n\v\f\r"


def parse_cursor(arg: bytes) -> int:
    """A cursor as Redis reads it (C ``strtoul``): sign allowed, "" is 0, a
    negative number wraps modulo 2**64, leading space or trailing junk fails."""
    arg = arg.split(b"\x00", 1)[0]  # C string functions stop at NUL
    if arg[:1] and arg[:1] in _SPACE:
        raise ReplyError(errors.INVALID_CURSOR)
    digits = arg[1:] if arg[:1] in (b"+", b"-") else arg
    if arg and (not digits or not digits.isdigit() or not digits.isascii()):
        raise ReplyError(errors.INVALID_CURSOR)
    value = int(digits) if digits else 0
    if value > _ULONG_MAX:
        raise ReplyError(errors.INVALID_CURSOR)
    return (-value) & _ULONG_MAX if arg[:1] == b"-" else value


class _Snapshot:
    __slots__ = ("owner", "items", "uses", "last_used")

    def __init__(self, owner: Hashable, items: list):
        self.owner = owner
        self.items = items
        self.uses = 0
        self.last_used = time.monotonic()


class CursorTable:
    """Snapshots by id, least recently used evicted first.

    Bounded in count (``max_snapshots``, a hard limit) and in total entries
    held (references, not copies, but a scan of a million keys still pins
    8 MB of pointers). The entry budget only evicts snapshots idle for
    ``min_idle_s``: evicting a scan in progress would make it restart, and two
    clients scanning a database bigger than the budget would then restart
    each other forever. So scans in progress may exceed the budget; each
    pins one list of the keys it walks.
    """

    def __init__(self, max_snapshots: int = 1024, max_items: int = 8_000_000, min_idle_s: float = 10.0):
        self.max_snapshots = max_snapshots
        self.max_items = max_items
        self.min_idle_s = min_idle_s
        self._snaps: OrderedDict[int, _Snapshot] = OrderedDict()
        self._items = 0
        self._samples: dict[Hashable, int] = {}
        self._rng = random.Random()

    def __len__(self) -> int:
        return len(self._snaps)

    # ------------------------------------------------------------ storage

    def _add(self, owner: Hashable, items: list) -> int:
        while True:
            # random ids: a stale cursor from an earlier process is unlikely
            # to name a live snapshot, and the owner check catches the rest
            sid = self._rng.randrange(1, 1 << 31)
            if sid not in self._snaps:
                break
        self._snaps[sid] = _Snapshot(owner, items)
        self._items += len(items)
        self._evict()
        return sid

    def _evict(self) -> None:
        snaps = self._snaps
        while len(snaps) > self.max_snapshots:
            self._items -= len(snaps.popitem(last=False)[1].items)
        idle_before = time.monotonic() - self.min_idle_s
        while self._items > self.max_items and len(snaps) > 1:
            oldest = next(iter(snaps.values()))
            if oldest.last_used > idle_before:
                break  # least recently used is still in use: so are all others
            self._items -= len(snaps.popitem(last=False)[1].items)

    def _get(self, sid: int, owner: Hashable) -> _Snapshot | None:
        snap = self._snaps.get(sid)
        if snap is None or snap.owner != owner:
            return None
        self._snaps.move_to_end(sid)
        snap.last_used = time.monotonic()
        return snap

    def _drop(self, sid: int) -> None:
        snap = self._snaps.pop(sid, None)
        if snap is not None:
            self._items -= len(snap.items)

    # ------------------------------------------------------------ SCAN

    def page(self, cursor: int, owner: Hashable, source: Callable[[], list], count: int
             ) -> tuple[int, Sequence]:
        """The next ``count`` snapshot entries after ``cursor`` and the cursor
        to return (0 when the walk is over).

        ``owner`` names what is walked (e.g. ``("db", 0)``, ``("hash", 0, key)``)
        so a cursor used against something else restarts instead of walking a
        foreign snapshot. ``source()`` makes the snapshot. Entries may have
        disappeared since; the caller filters them.
        """
        snap = self._get(cursor >> _POS_BITS, owner) if cursor else None
        if snap is None:
            items = source()
            if len(items) <= count:  # one page: no need to keep anything
                return 0, items
            sid, pos = self._add(owner, items), 0
        else:
            sid, items, pos = cursor >> _POS_BITS, snap.items, cursor & _POS_MASK
        end = pos + count
        batch = items[pos:end]
        if end >= len(items):
            self._drop(sid)
            return 0, batch
        return (sid << _POS_BITS) | end, batch

    # ------------------------------------------------------------ RANDOMKEY

    def random_pick(self, owner: Hashable, d: dict, alive: Callable[[object], bool], tries: int = 16):
        """A random key of ``d`` for which ``alive(key)`` holds, or None.

        Picks uniformly from a snapshot of ``d``'s keys kept in this table.
        The snapshot is retaken after as many picks as it has entries (so the
        copy costs O(1) per pick amortized), when ``d`` has doubled or halved
        since, or after ``tries`` misses in a row (keys deleted or expired).
        Keys added since the snapshot are not eligible until it is retaken:
        the pick is close to uniform, not exactly (Redis's is not either).

        ``alive`` may delete the key (lazy expiry), so ``d`` is never iterated
        while calling it. If retaking the snapshot does not help, every key is
        tried in random order, so the answer is None only when none is alive.
        """
        if not d:
            self._drop(self._samples.pop(owner, 0))
            return None
        sid = self._samples.get(owner)
        snap = self._get(sid, owner) if sid else None
        n = len(d)
        if snap is None or snap.uses >= len(snap.items) or not len(snap.items) // 2 <= n <= 2 * len(snap.items):
            snap = self._resample(owner, d)
        rng = self._rng
        for attempt in range(2):
            items = snap.items
            for _ in range(tries):
                snap.uses += 1
                key = items[rng.randrange(len(items))]
                if key in d and alive(key):
                    return key
            if attempt == 0:
                if not d:
                    return None
                snap = self._resample(owner, d)
        keys = list(d)
        rng.shuffle(keys)
        for key in keys:
            if key in d and alive(key):
                return key
        return None

    def _resample(self, owner: Hashable, d: dict) -> _Snapshot:
        old = self._samples.pop(owner, None)
        if old is not None:
            self._drop(old)
        sid = self._add(owner, list(d))
        self._samples[owner] = sid
        return self._snaps[sid]
