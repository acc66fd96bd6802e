"""``FileLog``: the embedded log, segmented append-only files in a directory.

Layout of ``<dir>``::

    LOCK                          flock'ed by the one process that owns the log
    00000000000000000000.log      segment holding records from offset 0
    00000000000000000000.index    sparse (offset, position) pairs, written on roll
    00000000000000052113.log      next segment, first record at offset 52113
    ...

Segments roll by size. Every ~4 KiB of a segment gets an index entry, so
``read(from_offset)`` seeks close to the record instead of scanning. Closed
segments are fsynced before the next one starts; only the newest segment can
hold a torn tail, and opening the log checks it record by record.

Writes and fsyncs run on one I/O thread, never on the event loop; their
latency is measured and reported through ``stats()``.
"""

from __future__ import annotations

import asyncio
import bisect
import fcntl
import logging
import os
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import AsyncIterator, Sequence

from . import segment
from .events import Record, decode_record
from .log import Log, LogCorruptError, LogError, LogWriteError

log = logging.getLogger("fjord.log")

_INDEX_ENTRY = struct.Struct(">QQ")
READ_CHUNK = 1 << 20


@dataclass
class _Segment:
    base: int
    path: str
    size: int = 0
    #: sparse index: parallel lists of offsets and byte positions
    idx_offsets: list[int] = field(default_factory=list)
    idx_positions: list[int] = field(default_factory=list)

    def add_index(self, offset: int, pos: int) -> None:
        self.idx_offsets.append(offset)
        self.idx_positions.append(pos)

    def position_for(self, offset: int) -> tuple[int, int]:
        """Greatest indexed (offset, position) at or before ``offset``."""
        i = bisect.bisect_right(self.idx_offsets, offset) - 1
        if i < 0:
            return self.base, 0
        return self.idx_offsets[i], self.idx_positions[i]


def _segment_name(base: int, ext: str) -> str:
    return f"{base:020d}.{ext}"


class FileLog(Log):
    """Segmented, checksummed, fsynced append-only file log.

    Open with ``await FileLog.open(path)``. ``repair=True`` truncates the log
    at the first corrupt record instead of refusing to start.
    """

    def __init__(self, path: str, *, segment_bytes: int = 64 << 20, index_interval: int = 4096):
        self.path = path
        self.segment_bytes = segment_bytes
        self.index_interval = index_interval
        self._segments: list[_Segment] = []
        self._bases: list[int] = []
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._written = 0  # offset after the last record handed to the OS
        self._durable = 0  # offset after the last fsynced record
        self._since_index = 0
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fjord-log-io")
        self._reader_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fjord-log-read")
        self._writing = False
        self.fsyncs = 0
        self.fsync_seconds_total = 0.0
        self.last_fsync_seconds = 0.0
        self.max_fsync_seconds = 0.0
        self.bytes_written = 0
        self.dropped_tail_bytes = 0

    # ------------------------------------------------------------------ open

    @classmethod
    async def open(cls, path: str, *, repair: bool = False, **kwargs) -> "FileLog":
        self = cls(path, **kwargs)
        await asyncio.get_running_loop().run_in_executor(self._io, self._open_sync, repair)
        return self

    def _open_sync(self, repair: bool) -> None:
        os.makedirs(self.path, exist_ok=True)
        self._lock_fd = os.open(os.path.join(self.path, "LOCK"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise LogError(f"log directory {self.path} is in use by another process") from None
        bases = sorted(
            int(name[:-4]) for name in os.listdir(self.path) if name.endswith(".log") and name[:-4].isdigit()
        )
        if not bases:
            bases = [0]
            self._create_segment_file(0)
        for base in bases:
            seg = _Segment(base, os.path.join(self.path, _segment_name(base, "log")))
            seg.size = os.path.getsize(seg.path)
            self._segments.append(seg)
            self._bases.append(base)
        if repair:
            self._verify_all_and_repair()
        for seg in self._segments[:-1]:
            self._load_or_build_index(seg)
        self._recover_active()
        self._fd = os.open(self._segments[-1].path, os.O_WRONLY | os.O_APPEND)

    def _create_segment_file(self, base: int) -> None:
        fd = os.open(os.path.join(self.path, _segment_name(base, "log")), os.O_WRONLY | os.O_CREAT, 0o644)
        os.fsync(fd)
        os.close(fd)
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        dfd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _load_or_build_index(self, seg: _Segment) -> None:
        ipath = os.path.join(self.path, _segment_name(seg.base, "index"))
        try:
            with open(ipath, "rb") as f:
                raw = f.read()
            if len(raw) % _INDEX_ENTRY.size:
                raise ValueError("torn index")
            for off, pos in _INDEX_ENTRY.iter_unpack(raw):
                if pos >= seg.size:
                    raise ValueError("index points past the segment")
                seg.add_index(off, pos)
        except (OSError, ValueError):
            seg.idx_offsets.clear()
            seg.idx_positions.clear()
            self._scan_segment(seg, build_index=True)
            self._write_index(seg)

    def _scan_segment(self, seg: _Segment, build_index: bool) -> tuple[int, int, str | None]:
        """Walk a segment checking every frame. Returns (next_offset,
        valid_bytes, error) where error describes the first bad frame."""
        with open(seg.path, "rb") as f:
            data = f.read()
        pos, expected, since = 0, seg.base, self.index_interval
        while pos < len(data):
            try:
                offset, _, nxt = segment.parse(data, pos, expected)
            except segment.Incomplete:
                return expected, pos, "incomplete record"
            except segment.Corrupt as exc:
                return expected, pos, str(exc)
            if build_index and since >= self.index_interval:
                seg.add_index(offset, pos)
                since = 0
            since += nxt - pos
            pos, expected = nxt, offset + 1
        return expected, pos, None

    def _write_index(self, seg: _Segment) -> None:
        ipath = os.path.join(self.path, _segment_name(seg.base, "index"))
        tmp = ipath + ".tmp"
        with open(tmp, "wb") as f:
            f.write(b"".join(_INDEX_ENTRY.pack(o, p) for o, p in zip(seg.idx_offsets, seg.idx_positions)))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, ipath)

    def _recover_active(self) -> None:
        seg = self._segments[-1]
        next_offset, valid, error = self._scan_segment(seg, build_index=True)
        self._since_index = 0
        if error is not None:
            with open(seg.path, "rb") as f:
                data = f.read()
            follower = segment.find_next_valid(data, valid, next_offset)
            if follower is not None:
                raise LogCorruptError(
                    f"log segment {seg.path} is corrupt at byte {valid} (offset {next_offset}: {error}) "
                    f"and valid records follow at byte {follower}; refusing to start. "
                    f"Start with --repair to truncate the log at offset {next_offset} "
                    f"(dropping {len(data) - valid} bytes)."
                )
            dropped = seg.size - valid
            log.warning(
                "log tail of %s is torn at byte %d (%s): truncating %d bytes; "
                "the log now ends at offset %d", seg.path, valid, error, dropped, next_offset,
            )
            self.dropped_tail_bytes = dropped
            with open(seg.path, "r+b") as f:
                f.truncate(valid)
                f.flush()
                os.fsync(f.fileno())
            seg.size = valid
        if seg.idx_offsets:
            self._since_index = seg.size - seg.idx_positions[-1]
        self._written = self._durable = next_offset

    def _verify_all_and_repair(self) -> None:
        """Scan every segment; truncate at the first bad record (--repair)."""
        for i, seg in enumerate(self._segments):
            next_offset, valid, error = self._scan_segment(seg, build_index=False)
            if error is None or i == len(self._segments) - 1 and valid == seg.size:
                continue
            if i == len(self._segments) - 1:
                return  # a bad tail is handled by the normal recovery
            later = self._segments[i + 1 :]
            log.error(
                "REPAIR: %s is corrupt at byte %d (offset %d: %s); truncating the log there and "
                "deleting %d later segment(s). Events from offset %d on are lost.",
                seg.path, valid, next_offset, error, len(later), next_offset,
            )
            with open(seg.path, "r+b") as f:
                f.truncate(valid)
                os.fsync(f.fileno())
            seg.size = valid
            for s in later:
                os.unlink(s.path)
                try:
                    os.unlink(os.path.join(self.path, _segment_name(s.base, "index")))
                except FileNotFoundError:
                    pass
            del self._segments[i + 1 :]
            del self._bases[i + 1 :]
            try:
                os.unlink(os.path.join(self.path, _segment_name(seg.base, "index")))
            except FileNotFoundError:
                pass
            self._fsync_dir()
            return

    # ----------------------------------------------------------------- write

    @property
    def start_offset(self) -> int:
        return self._segments[0].base

    @property
    def end_offset(self) -> int:
        return self._durable

    @property
    def written_offset(self) -> int:
        """End of what was handed to the OS (ahead of ``end_offset`` only
        with ``sync=False``)."""
        return self._written

    async def append(self, payloads: Sequence[bytes], *, sync: bool = True) -> int:
        if self._writing:
            raise LogError("FileLog.append is not reentrant: one batch at a time")
        self._writing = True
        try:
            first = self._written
            await asyncio.get_running_loop().run_in_executor(self._io, self._write_batch, first, payloads, sync)
        finally:
            self._writing = False
        self._written = first + len(payloads)
        if sync:
            self._durable = self._written
            self._notify_end()
        return first

    def _write_batch(self, first: int, payloads: Sequence[bytes], sync: bool) -> None:
        seg = self._segments[-1]
        if seg.size >= self.segment_bytes and payloads:
            self._roll(first)
            seg = self._segments[-1]
        start_size = seg.size
        frames = []
        pos = start_size
        for i, p in enumerate(payloads):
            fr = segment.frame(first + i, p)
            if self._since_index >= self.index_interval or pos == 0:
                seg.add_index(first + i, pos)
                self._since_index = 0
            self._since_index += len(fr)
            pos += len(fr)
            frames.append(fr)
        data = b"".join(frames)
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            if sync:
                self._fsync()
        except OSError as exc:
            self._rollback(seg, start_size)
            raise LogWriteError(f"{exc.strerror or exc}") from exc
        seg.size = pos
        self.bytes_written += len(data)

    def _rollback(self, seg: _Segment, size: int) -> None:
        # Undo a partial batch so the file ends on a record boundary again.
        while seg.idx_positions and seg.idx_positions[-1] >= size:
            seg.idx_positions.pop()
            seg.idx_offsets.pop()
        try:
            os.ftruncate(self._fd, size)
        except OSError:
            log.exception("could not truncate %s after a failed write", seg.path)
        seg.size = size

    def _fsync(self) -> None:
        t0 = time.perf_counter()
        os.fdatasync(self._fd)
        dt = time.perf_counter() - t0
        self.fsyncs += 1
        self.fsync_seconds_total += dt
        self.last_fsync_seconds = dt
        if dt > self.max_fsync_seconds:
            self.max_fsync_seconds = dt

    def _roll(self, base: int) -> None:
        old = self._segments[-1]
        self._fsync()
        self._write_index(old)
        os.close(self._fd)
        self._create_segment_file(base)
        seg = _Segment(base, os.path.join(self.path, _segment_name(base, "log")))
        self._segments.append(seg)
        self._bases.append(base)
        self._since_index = 0
        self._fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND)
        log.info("rolled log to a new segment at offset %d", base)

    async def sync(self) -> None:
        if self._durable == self._written:
            return
        target = self._written
        await asyncio.get_running_loop().run_in_executor(self._io, self._fsync)
        self._durable = max(self._durable, target)
        self._notify_end()

    # ------------------------------------------------------------------ read

    async def read(self, start: int, end: int | None = None) -> AsyncIterator[Record]:
        if end is None:
            end = self._durable
        start = max(start, self.start_offset)
        loop = asyncio.get_running_loop()
        while start < end:
            batch = await loop.run_in_executor(self._reader_pool, self._read_chunk, start, end)
            if not batch:
                break
            for offset, payload in batch:
                yield decode_record(offset, payload)
            start = batch[-1][0] + 1

    def _read_chunk(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """Read up to ~1 MiB of frames starting at offset ``start`` (runs on a
        reader thread; verifies every checksum it reads)."""
        i = bisect.bisect_right(self._bases, start) - 1
        if i < 0:
            return []
        seg = self._segments[i]
        off, pos = seg.position_for(start)
        out: list[tuple[int, bytes]] = []
        with open(seg.path, "rb") as f:
            f.seek(pos)
            buf = f.read(min(READ_CHUNK, max(seg.size - pos, 0)))
            p = 0
            while off < end and p < len(buf):
                try:
                    o, payload, p2 = segment.parse(buf, p, off)
                except segment.Incomplete:
                    if p:
                        break
                    # a single record larger than a chunk: read it whole
                    need = segment.HEADER_SIZE
                    if len(buf) >= segment.HEADER_SIZE:
                        need += segment.HEADER.unpack_from(buf, 0)[1]
                    more = f.read(need - len(buf))
                    if not more:
                        raise LogCorruptError(f"log segment {seg.path} ends inside the record at offset {off}")
                    buf += more
                    continue
                except segment.Corrupt as exc:
                    raise LogCorruptError(
                        f"log segment {seg.path} is corrupt at byte {pos + p} (offset {off}: {exc}); "
                        f"start with --repair to truncate the log there"
                    ) from None
                if o >= start:
                    out.append((o, payload))
                p, off = p2, o + 1
        return out

    # ----------------------------------------------------------------- admin

    def stats(self) -> dict:
        return {
            "log_start_offset": self.start_offset,
            "log_end_offset": self._durable,
            "log_written_offset": self._written,
            "log_segments": len(self._segments),
            "log_bytes": sum(s.size for s in self._segments),
            "log_fsyncs": self.fsyncs,
            "log_fsync_last_ms": round(self.last_fsync_seconds * 1000, 3),
            "log_fsync_max_ms": round(self.max_fsync_seconds * 1000, 3),
            "log_fsync_avg_ms": round(self.fsync_seconds_total * 1000 / self.fsyncs, 3) if self.fsyncs else 0,
            "log_dropped_tail_bytes": self.dropped_tail_bytes,
        }

    async def close(self) -> None:
        if self._fd is not None:
            await asyncio.get_running_loop().run_in_executor(self._io, self._close_sync)
        self._io.shutdown(wait=True)
        self._reader_pool.shutdown(wait=True)

    def _close_sync(self) -> None:
        if self._written != self._durable:
            self._fsync()
            self._durable = self._written
        os.close(self._fd)
        self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
