"""Epochs: one writer per log at a time (ARCHITECTURE.md invariant 5).

A node becomes the writer by appending an *epoch claim*: a record holding
one ``fjord-epoch`` event ``{epoch, node, addr}`` whose record epoch is the
claimed epoch. Every record a writer appends afterwards carries its epoch.
Every reader applies the same rule (``streams.materializer.EpochFence``): a
claim counts iff it is above the current epoch (the first claim in log order
wins), any other record counts iff its epoch equals the current one. The
winning claim is kept in ``Keyspace.meta`` (so snapshots carry it): it tells
replicas and Sentinel clients where the writer is.

A writer acknowledges a write only when its record is durable AND no newer
claim precedes it. On the embedded file log the LOCK (flock) already makes the
writer exclusive, so there is nothing to check. On a shared log (Kafka)
``ConfirmingLog`` reads the log up to each batch it appended before reporting
it durable; finding a newer claim raises ``FencedError``, the batch's replies
become errors and the server steps down (store/replication.py).
Design and failure cases: docs/failover.md.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, NamedTuple, Sequence

from streams.events import Event, Record, encode_record
from streams.filelog import FileLog
from streams.log import Log, LogWriteError
from streams.materializer import CLAIM, EpochFence

from .keyspace import Keyspace

META_KEY = ("fjord", "epoch")


class Claim(NamedTuple):
    """The winning epoch claim: who writes, and where clients find it."""

    epoch: int
    node: str
    addr: str  # "host:port"

    @property
    def host_port(self) -> tuple[str, int] | None:
        host, _, port = self.addr.rpartition(":")
        return (host, int(port)) if host and port.isdigit() else None


class FencedError(LogWriteError):
    """A newer epoch was claimed before this writer's batch: it does not
    count, and this node is no longer the writer."""


def current_claim(keyspace: Keyspace) -> Claim | None:
    """The newest winning claim the keyspace has applied, if any."""
    raw = keyspace.meta.get(META_KEY)
    if raw is None:
        return None
    epoch, node, addr = raw.decode("utf-8", "replace").split(" ", 2)
    return Claim(int(epoch), node, addr)


def current_epoch(keyspace: Keyspace) -> int:
    claim = current_claim(keyspace)
    return claim.epoch if claim is not None else 0


def fence_for(keyspace: Keyspace) -> EpochFence:
    """The fence a replay into ``keyspace`` continues with: the epoch of
    the claim it holds (from a snapshot), else 0."""
    return EpochFence(current_epoch(keyspace))


def claim_event(epoch: int, node: str, addr: str) -> Event:
    return Event(CLAIM, None, None, {"epoch": epoch, "node": node.encode(), "addr": addr.encode()})


def claim_payload(time_ms: int, epoch: int, node: str, addr: str) -> bytes:
    return encode_record(time_ms, [claim_event(epoch, node, addr)], epoch=epoch)


def is_exclusive(log_: Log) -> bool:
    """A log only one process can append to (the flock'ed file log): a claim
    made there can never be overtaken while its writer holds it."""
    inner = log_.inner if isinstance(log_, ConfirmingLog) else log_
    return isinstance(inner, FileLog) and not inner.readonly


class ConfirmingLog(Log):
    """A shared log seen by a writer of epoch ``epoch``: ``append`` (synced)
    returns only after the log was read up to the batch and no claim above
    ``epoch`` came before it; else it raises ``FencedError`` (for this batch
    and every later one)."""

    def __init__(self, inner: Log, epoch: int, checked: int):
        self.inner = inner
        self.epoch = epoch
        self.checked = checked  # records below this offset were read and hold no newer claim
        self.deposed: str | None = None
        self._lock = asyncio.Lock()

    @property
    def start_offset(self) -> int:
        return self.inner.start_offset

    @property
    def end_offset(self) -> int:
        return self.inner.end_offset

    async def append(self, payloads: Sequence[bytes], *, sync: bool = True) -> int:
        if self.deposed is not None:
            raise FencedError(self.deposed)
        first = await self.inner.append(payloads, sync=sync)
        if sync:
            await self.confirm(first + len(payloads))
        return first

    async def sync(self) -> None:
        await self.inner.sync()
        await self.confirm(self.inner.end_offset)

    async def confirm(self, end: int) -> None:
        """Read ``[checked, end)``; raise ``FencedError`` at a newer claim."""
        async with self._lock:
            if self.deposed is not None:
                raise FencedError(self.deposed)
            if self.checked >= end:
                return
            async for record in self.inner.read(self.checked, end):
                ev = record.events
                if len(ev) == 1 and ev[0].type == CLAIM:
                    claimed = ev[0].data.get("epoch")
                    if type(claimed) is int and claimed > self.epoch:
                        self.deposed = (
                            f"FENCED epoch {claimed} was claimed at offset {record.offset} by "
                            f"{ev[0].data.get('addr', b'?').decode('utf-8', 'replace')}; this node "
                            f"(epoch {self.epoch}) is no longer the writer"
                        )
                        raise FencedError(self.deposed)
                self.checked = record.offset + 1

    def read(self, start: int, end: int | None = None) -> AsyncIterator[Record]:
        return self.inner.read(start, end)

    async def wait_for(self, offset: int, timeout: float | None = None) -> bool:
        return await self.inner.wait_for(offset, timeout)

    async def close(self) -> None:
        await self.inner.close()

    def stats(self) -> dict:
        return self.inner.stats()
