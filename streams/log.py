"""The ``Log`` interface every backend implements.

A log is an ordered sequence of records, each at an integer offset, starting
at ``start_offset`` and ending (exclusive) at ``end_offset``. Records below
``end_offset`` are durable: an implementation only moves ``end_offset`` once
the bytes are fsynced (file log) or acknowledged by all in-sync replicas
(Kafka). One writer appends; any number of readers read from any offset.

Backends: ``FileLog`` (embedded, segmented files), ``KafkaLog`` (a Kafka
topic partition) and ``MemoryLog`` (tests and tools). All pass the same
contract tests in ``tests/test_log_contract.py``.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import AsyncIterator, Sequence

from .events import Record


class LogError(Exception):
    """Base class for log failures."""


class LogWriteError(LogError):
    """An append did not become durable (disk full, I/O error, broker down).

    Nothing of the failed batch counts: the backend has rolled its end back
    to the last durable offset before raising.
    """


class LogCorruptError(LogError):
    """Records the log holds fail their checks (checksum, framing, offset
    sequence) and are not a torn tail; the message names the offset."""


class Log(ABC):
    """An append-only, durable sequence of records."""

    #: another process can open this log and read it (the snapshotter child,
    #: ``fjord triggers run``): true for the file log and Kafka, not for memory
    shared = False

    @property
    @abstractmethod
    def start_offset(self) -> int:
        """Offset of the oldest record still held."""

    @property
    @abstractmethod
    def end_offset(self) -> int:
        """Offset the next record will get; everything below is durable."""

    @abstractmethod
    async def append(self, payloads: Sequence[bytes], *, sync: bool = True) -> int:
        """Append encoded records in order and return the first one's offset.

        With ``sync`` (the default) the call returns only once the records are
        durable, and ``end_offset`` has moved past them. With ``sync=False``
        they are handed to the OS (file log) and become durable, and visible
        to readers through ``end_offset``, at a later ``sync()`` (or the next
        synced append). Offsets are consecutive across calls even when calls
        overlap. Raises ``LogWriteError`` if the batch could not be written;
        then none of it counts.
        """

    @abstractmethod
    async def sync(self) -> None:
        """Make everything appended so far durable."""

    @abstractmethod
    def read(self, start: int, end: int | None = None) -> AsyncIterator[Record]:
        """Yield records with ``start <= offset < end`` (``end`` defaults to
        ``end_offset`` at the time of the call)."""

    async def wait_for(self, offset: int, timeout: float | None = None) -> bool:
        """Wait until ``end_offset > offset``; return False on timeout.

        This is how a reader tails the log: read to the end, then wait.
        """
        if self.end_offset > offset:
            return True
        waiters = self.__dict__.setdefault("_end_waiters", [])
        fut = asyncio.get_running_loop().create_future()
        waiters.append((offset, fut))
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            if (offset, fut) in waiters:
                waiters.remove((offset, fut))

    def _notify_end(self) -> None:
        """Backends call this whenever ``end_offset`` moves forward."""
        waiters = self.__dict__.get("_end_waiters")
        if not waiters:
            return
        end = self.end_offset
        for offset, fut in list(waiters):
            if end > offset and not fut.done():
                fut.set_result(None)

    @abstractmethod
    async def close(self) -> None:
        """Flush and release resources."""

    def stats(self) -> dict:
        """Backend figures for INFO persistence."""
        return {}
