"""``FJORD.HISTORY key [COUNT n]``: a key's most recent events, newest first.

Reply: an array of ``[offset, time_ms, type, data]`` entries, ``data`` being
the event's data flattened to ``[name, value, ...]`` (nested lists stay
arrays, ``nil`` for null). A key with no known history gets an empty array.
Scope: the current db, the events whose key is this key (``rename_to`` and
``copy_to`` name the destination, ``rename_from`` the source).

Design (the log can be long, the event loop must not wait on it):

- ``KeyHistory`` keeps, per (db, key), the offsets of the key's last
  ``PER_KEY`` records in a bounded deque, for at most ``MAX_KEYS`` keys
  (least recently written evicted first). Only offsets, so memory does not
  depend on value sizes.
- The index is built from the log when someone asks, never on the write
  path: each FJORD.HISTORY first waits until everything staged before it is
  durable, then indexes, on a worker thread, the records written since the
  previous request (at most the last ``SCAN_RECORDS``; the first request
  after a start indexes that many). Writes pay nothing for a command most
  servers are never sent; a request pays for the records since the last one.
- Answering: the offsets are read back from the log (its reader threads) in
  a task, and the reply is sent as a ``Delayed`` one, like WAIT; records not
  yet durable are waited for (the reply would be held for them anyway).
  Every record read is checked to hold an event on the key, so an offset
  made stale (records lost in a failed append, then reused) is dropped:
  the index is a hint, the log is the truth.
- Inside MULTI/EXEC a command cannot wait, so it is refused there.
- Fencing (docs/failover.md): the index applies ``EpochFence`` as replay
  does, so a deposed writer's records (and losing claims) never show. The
  fence is kept between requests; when indexing starts mid-log (the first
  request, or after a gap) it is first brought up to that offset by reading
  the log's prefix (decode only, on the worker thread).

``fjord log history KEY`` scans the whole log instead (no limits).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from typing import TYPE_CHECKING

from .. import errors
from streams.materializer import EpochFence, fence_at

from ..resp import Delayed, Raw, ReplyError, encode_error
from ..session import Session
from .args import ArgCursor
from .table import command

if TYPE_CHECKING:
    from ..server import Server

log = logging.getLogger("fjord.history")

#: offsets kept per key (the most COUNT can show)
PER_KEY = 64
#: keys tracked; about 100 bytes + 8 per offset each
MAX_KEYS = 100_000
#: at most this many of the newest records are indexed by one request
SCAN_RECORDS = 1_000_000
DEFAULT_COUNT = 10
#: how long a reply waits for a record still being made durable
DURABLE_WAIT_SECONDS = 5.0

Slot = tuple[int, bytes]
_answering: set[asyncio.Task] = set()


def _remember(table: OrderedDict, slot: Slot, offset: int, per_key: int, max_keys: int) -> None:
    d = table.get(slot)
    if d is None:
        table[slot] = d = deque(maxlen=per_key)
        if len(table) > max_keys:
            table.popitem(last=False)
    else:
        table.move_to_end(slot)
    if not d or d[-1] != offset:
        d.append(offset)


class KeyHistory:
    """Recent record offsets per (db, key), indexed from the log on request."""

    def __init__(self, per_key: int = PER_KEY, max_keys: int = MAX_KEYS):
        self.per_key = per_key
        self.max_keys = max_keys
        self.table: OrderedDict[Slot, deque[int]] = OrderedDict()
        #: the table covers the log's records below this offset
        self.indexed_upto = 0
        #: which records count, as it stands at ``indexed_upto`` (None: not known yet)
        self.fence: EpochFence | None = None
        self._lock: asyncio.Lock | None = None

    async def offsets(self, server: "Server", db: int, key: bytes, count: int) -> list[int]:
        """Up to ``count`` offsets of records on the key, newest first, after
        indexing what the log gained since the last request."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one indexing thread at a time; it owns the table meanwhile
            await self._refresh(server)
            d = self.table.get((db, key))
            return list(reversed(d))[:count] if d else []

    async def _refresh(self, server: "Server") -> None:
        log_, committer = server.log, server.committer
        staged_end = log_.end_offset + (committer.staged - committer.durable if committer else 0)
        if staged_end > log_.end_offset:  # this client may have just written: include it
            await log_.wait_for(staged_end - 1, DURABLE_WAIT_SECONDS)
        end = log_.end_offset
        start = max(self.indexed_upto, log_.start_offset, end - SCAN_RECORDS)
        if start < end:
            await asyncio.to_thread(self._index, log_, start, end)
        self.indexed_upto = max(self.indexed_upto, end)

    def _index(self, log_, start: int, end: int) -> None:
        """Runs on a worker thread with its own event loop; decoding happens
        here, off the server's loop (the log's reads are thread-safe)."""
        async def scan() -> None:
            if self.fence is None or start != self.indexed_upto:
                self.fence = await fence_at(log_, start)
            admit = self.fence.admit
            async for r in log_.read(start, end):
                if not admit(r):
                    continue
                for e in r.events:
                    if e.key is not None:
                        _remember(self.table, (e.db, e.key), r.offset, self.per_key, self.max_keys)

        asyncio.run(scan())


def _flat(v):
    """Event data as RESP values: dicts become flat [name, value, ...]."""
    if isinstance(v, dict):
        out = []
        for k, x in v.items():
            out.append(k.encode() if isinstance(k, str) else k)
            out.append(_flat(x))
        return out
    if isinstance(v, (list, tuple)):
        return [_flat(x) for x in v]
    if isinstance(v, bool):
        return int(v)
    return v


async def _entries(server: "Server", db: int, key: bytes, offsets: list[int], count: int) -> list:
    log_ = server.log
    if offsets and not log_.end_offset > max(offsets):
        await log_.wait_for(max(offsets), DURABLE_WAIT_SECONDS)
    out = []
    for offset in offsets:  # newest first
        async for r in log_.read(offset, offset + 1):
            for e in reversed(r.events):
                if e.key == key and e.db == db:
                    out.append([r.offset, r.time_ms, e.type.encode(), _flat(e.data)])
        if len(out) >= count:
            break
    return out[:count]


@command("fjord.history", -2, "readonly noscript", (1, 1, 1), group="generic", since="0.1.0",
         summary="Returns the most recent events of a key from the log, newest first",
         complexity="O(N) where N is COUNT")
def fjord_history(s: Session, args: list[bytes]):
    cur = ArgCursor(args, 2)
    count = DEFAULT_COUNT
    while cur:
        if cur.next_upper() == b"COUNT":
            count = cur.next_int()
            if count <= 0:
                raise ReplyError(errors.OUT_OF_RANGE_POSITIVE)
        else:
            raise ReplyError(errors.SYNTAX)
    server = s.server
    conn = server.clients.get(s.id) if server is not None else None
    if conn is None or s.in_exec or s.multi is not None:
        raise ReplyError("ERR FJORD.HISTORY cannot run inside MULTI or a script")
    db, key = s.db_index, args[1]
    delayed = Delayed([], None)

    async def answer() -> None:
        try:
            offsets = await server.key_history.offsets(server, db, key, count)
            reply = await _entries(server, db, key, offsets, count)
        except Exception as exc:  # noqa: BLE001 - one failed read costs one reply
            log.warning("FJORD.HISTORY could not read the log: %s", exc)
            reply = Raw(encode_error(f"ERR could not read the log: {exc}"))
        if server.blocking.clients.get(conn) is delayed:  # still waiting for this very reply
            conn.unblock(reply)

    task = asyncio.get_running_loop().create_task(answer())
    _answering.add(task)  # the loop holds tasks only weakly
    task.add_done_callback(_answering.discard)
    return delayed
