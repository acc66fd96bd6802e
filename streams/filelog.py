"""``FileLog``: the embedded log, segmented append-only files in a directory.

Layout of ``<dir>``::

    LOCK                          flock'ed by the one process that owns the log
    00000000000000000000.log      segment holding records from offset 0
    00000000000000000000.index    sparse (offset, position) pairs + CRC, written on roll
    00000000000000052113.log      next segment, first record at offset 52113
    ...

Segments roll by size. Every ~4 KiB of a segment gets an index entry, so
``read(from_offset)`` seeks close to the record instead of scanning. Index
files are derived data: a missing, torn or stale one is rebuilt by scanning
its segment.

Opening the log checks it. Closed segments were fsynced before the next one
started, so only their tails are checked (cheap: from the last index entry);
damage inside them is caught by the checksum of every read, i.e. at replay.
The newest segment is checked record by record: a bad record with nothing
valid after it is a torn tail (a write the crash interrupted, never
acknowledged) and is truncated with a warning; a bad record with valid
records after it is corruption, and opening fails with ``LogCorruptError``
unless ``repair=True``, which truncates the log there and says so loudly.

Writes and fsyncs run on one I/O thread, never on the event loop; offsets are
assigned on that thread too, so appends issued concurrently (or abandoned by
a cancelled caller) still get consecutive offsets. fsync latency is reported
through ``stats()``.
"""

from __future__ import annotations

import asyncio
import bisect
import fcntl
import logging
import os
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import AsyncIterator, Sequence

from . import segment
from .events import Record, decode_record
from .log import Log, LogCorruptError, LogError, LogWriteError

log = logging.getLogger("fjord.log")

_INDEX_ENTRY = struct.Struct(">QQ")
_INDEX_CRC = struct.Struct(">I")
READ_CHUNK = 1 << 20
_entry_offset = itemgetter(0)
_segment_base = attrgetter("base")


@dataclass
class _Segment:
    base: int
    path: str
    size: int = 0
    #: sparse index, sorted: (offset, byte position of that record's frame).
    #: One list of tuples, so a reader thread never sees half an entry.
    index: list[tuple[int, int]] = field(default_factory=list)

    def position_for(self, offset: int) -> tuple[int, int]:
        """Greatest indexed (offset, position) at or before ``offset``."""
        i = bisect.bisect_right(self.index, offset, key=_entry_offset) - 1
        if i < 0:
            return self.base, 0
        return self.index[i]


def _segment_name(base: int, ext: str) -> str:
    return f"{base:020d}.{ext}"


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class FileLog(Log):
    """Segmented, checksummed, fsynced append-only file log.

    Open with ``await FileLog.open(path)``. ``repair=True`` truncates the log
    at the first corrupt record instead of refusing to start.

    ``FileLog.open(path, readonly=True)`` is for a reader in another process
    (the snapshotter) while the owner runs: it takes no LOCK, writes and
    truncates nothing (not even an index file), and reads up to the last
    complete valid record at open time; a torn or still-being-written tail is
    simply the end.
    """

    shared = True

    def __init__(self, path: str, *, segment_bytes: int = 64 << 20, index_interval: int = 4096):
        self.path = path
        self.segment_bytes = segment_bytes
        self.index_interval = index_interval
        self._segments: list[_Segment] = []
        self._bases: list[int] = []
        self._fd: int | None = None
        self._lock_fd: int | None = None
        # _written and _synced belong to the I/O thread; _durable to the loop.
        self._written = 0  # offset after the last record handed to the OS
        self._synced = 0  # offset after the last fsynced record
        self._durable = 0  # end_offset: what readers may see
        self._since_index = 0
        self._broken: str | None = None
        self._closed = False
        self.readonly = False
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fjord-log-io")
        self._reader_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fjord-log-read")
        self.fsyncs = 0
        self.fsync_seconds_total = 0.0
        self.last_fsync_seconds = 0.0
        self.max_fsync_seconds = 0.0
        self.bytes_written = 0
        self.dropped_tail_bytes = 0

    # ------------------------------------------------------------------ open

    @classmethod
    async def open(cls, path: str, *, repair: bool = False, readonly: bool = False, **kwargs) -> "FileLog":
        """Open (creating if needed) the log in ``path``; see the module doc
        for what is checked. Raises ``LogError`` if another process holds
        the directory and ``LogCorruptError`` for corruption. ``readonly``:
        see the class doc."""
        self = cls(path, **kwargs)
        self.readonly = readonly
        if readonly and repair:
            raise ValueError("a read-only log cannot be repaired")
        try:
            await asyncio.get_running_loop().run_in_executor(self._io, self._open_sync, repair)
        except BaseException:
            self._release_files()
            self._io.shutdown(wait=False)
            self._reader_pool.shutdown(wait=False)
            raise
        return self

    def _open_sync(self, repair: bool) -> None:
        if self.readonly:
            self._open_readonly_sync()
            return
        os.makedirs(self.path, exist_ok=True)
        self._lock_fd = os.open(os.path.join(self.path, "LOCK"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LogError(
                f"log directory {self.path} is in use by another process "
                f"(its LOCK file is held); only one Fjord may own a data directory"
            ) from None
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
            self._repair_closed_segments()
        for i, seg in enumerate(self._segments[:-1]):
            self._open_closed_segment(seg, self._segments[i + 1].base)
        self._recover_active(repair)
        self._fd = os.open(self._segments[-1].path, os.O_WRONLY | os.O_APPEND)

    def _open_readonly_sync(self) -> None:
        if not os.path.isdir(self.path):
            raise LogError(f"no log in {self.path}")
        for attempt in range(3):
            try:
                return self._open_readonly_once()
            except FileNotFoundError:
                # the owner's retention deleted a segment between our listing
                # and our reading it: list again
                if attempt == 2:
                    raise
                self._segments, self._bases = [], []

    def _open_readonly_once(self) -> None:
        bases = sorted(
            int(name[:-4]) for name in os.listdir(self.path) if name.endswith(".log") and name[:-4].isdigit()
        )
        for base in bases or [0]:
            seg = _Segment(base, os.path.join(self.path, _segment_name(base, "log")))
            seg.size = os.path.getsize(seg.path) if bases else 0
            self._segments.append(seg)
            self._bases.append(base)
        for i, seg in enumerate(self._segments[:-1]):
            self._open_closed_segment(seg, self._segments[i + 1].base)
        if bases:
            self._recover_active(False)

    async def refresh(self) -> int:
        """Read-only logs: take in the records the owner appended since
        (growing active segment, new segments, segments retention deleted)
        and return the new ``end_offset``. This is how a replica on the same
        machine tails its writer's log (store/replication.py)."""
        if not self.readonly:
            return self._durable
        end = await asyncio.get_running_loop().run_in_executor(self._io, self._refresh_sync)
        if end > self._durable:
            self._durable = end
            self._notify_end()
        return self._durable

    def _refresh_sync(self) -> int:
        seg = self._segments[-1]
        try:
            if os.path.getsize(seg.path) < seg.size:
                raise LogError(f"log segment {seg.path} shrank under a reader (the owner cut back a failed write)")
        except FileNotFoundError:
            raise LogError(f"log segment {seg.path} vanished under a reader") from None
        before = len(seg.index)
        nxt, valid, _ = self._scan(seg, self._written, seg.size, build_index=True)
        seg.size, self._written = valid, nxt
        # _scan indexes the first record of every call: keep the entries
        # ~index_interval apart, or frequent refreshes would grow the index
        # by one entry per refresh
        if len(seg.index) > before:
            kept, last = seg.index[:before], seg.index[before - 1][1] if before else None
            for entry in seg.index[before:]:
                if last is None or entry[1] - last >= self.index_interval:
                    kept.append(entry)
                    last = entry[1]
            seg.index = kept
        bases = sorted(
            int(name[:-4]) for name in os.listdir(self.path) if name.endswith(".log") and name[:-4].isdigit()
        )
        segs = self._segments
        for base in bases:
            # the owner rolls only after the old segment is complete, so a
            # segment starting exactly at our end is the next one
            if base <= segs[-1].base or base != self._written:
                continue
            new = _Segment(base, os.path.join(self.path, _segment_name(base, "log")))
            nxt, valid, _ = self._scan(new, base, 0, build_index=True)
            new.size, self._written = valid, nxt
            segs = segs + [new]
        if bases:
            segs = [sg for sg in segs if sg.base >= bases[0]] or segs[-1:]  # retention deleted the others
        if segs is not self._segments:
            self._segments = segs
            self._bases = [sg.base for sg in segs]
        self._synced = self._written
        return self._written

    def _release_files(self) -> None:
        for name in ("_fd", "_lock_fd"):
            fd = getattr(self, name)
            if fd is not None:
                setattr(self, name, None)
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _create_segment_file(self, base: int) -> int:
        """Create (and make durable in the directory) an empty segment file;
        return an append fd for it."""
        path = os.path.join(self.path, _segment_name(base, "log"))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.fsync(fd)
            self._fsync_dir()
        except OSError:
            os.close(fd)
            _unlink_quietly(path)
            raise
        return fd

    def _fsync_dir(self) -> None:
        dfd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _index_path(self, seg: _Segment) -> str:
        return os.path.join(self.path, _segment_name(seg.base, "index"))

    def _scan(self, seg: _Segment, offset: int, pos: int, build_index: bool) -> tuple[int, int, str | None]:
        """Check every frame of ``seg`` from byte ``pos`` (where the record at
        ``offset`` starts) to the end. Returns ``(next_offset, valid_bytes,
        error)``: the offset after the last good record, the byte position
        after it, and what is wrong with the frame there (None if the
        segment ends cleanly)."""
        with open(seg.path, "rb") as f:
            f.seek(pos)
            data = f.read()
        p, expected, since = 0, offset, self.index_interval
        while p < len(data):
            try:
                _, _, nxt = segment.parse(data, p, expected)
            except segment.Incomplete:
                return expected, pos + p, "incomplete record"
            except segment.Corrupt as exc:
                return expected, pos + p, str(exc)
            if build_index and since >= self.index_interval:
                seg.index.append((expected, pos + p))
                since = 0
            since += nxt - p
            p, expected = nxt, expected + 1
        if build_index:
            self._since_index = since if seg.index else 0
        return expected, pos + p, None

    def _load_index(self, seg: _Segment) -> bool:
        """Load ``seg``'s index file if it is present and sound."""
        try:
            with open(self._index_path(seg), "rb") as f:
                raw = f.read()
        except OSError:
            return False
        body, trailer = raw[:-_INDEX_CRC.size], raw[-_INDEX_CRC.size:]
        if len(raw) < _INDEX_CRC.size or len(body) % _INDEX_ENTRY.size:
            return False
        if _INDEX_CRC.unpack(trailer)[0] != zlib.crc32(body):
            return False
        entries = list(_INDEX_ENTRY.iter_unpack(body))
        if not entries or entries[0] != (seg.base, 0) or entries[-1][1] >= seg.size:
            return False
        for (o1, p1), (o2, p2) in zip(entries, entries[1:]):
            if o2 <= o1 or p2 <= p1:
                return False
        seg.index = entries
        return True

    def _write_index(self, seg: _Segment) -> None:
        ipath = self._index_path(seg)
        tmp = ipath + ".tmp"
        body = b"".join(_INDEX_ENTRY.pack(o, p) for o, p in seg.index)
        with open(tmp, "wb") as f:
            f.write(body + _INDEX_CRC.pack(zlib.crc32(body)))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, ipath)

    def _corrupt(self, seg: _Segment, pos: int, offset: int, error: str, tail: str = "") -> LogCorruptError:
        return LogCorruptError(
            f"log segment {seg.path} is corrupt at byte {pos} (offset {offset}: {error}){tail}; "
            f"refusing to start. Start with --repair to truncate the log at offset {offset} "
            f"(every record from offset {offset} on is lost)."
        )

    def _open_closed_segment(self, seg: _Segment, next_base: int) -> None:
        """Load a closed segment's index and check its tail ends exactly
        where the next segment begins. A stale index is rebuilt first; only
        a segment that fails a full scan is corrupt."""
        if self._load_index(seg):
            offset, pos = seg.index[-1]
            nxt, valid, error = self._scan(seg, offset, pos, build_index=False)
            if error is None and nxt == next_base:
                return
        seg.index = []
        nxt, valid, error = self._scan(seg, seg.base, 0, build_index=True)
        if error is not None:
            raise self._corrupt(seg, valid, nxt, error)
        if nxt != next_base:
            raise self._corrupt(seg, valid, nxt, f"the segment ends here but the next one starts at offset {next_base}")
        if self.readonly:
            return
        log.info("rebuilt the index of %s", seg.path)
        self._write_index(seg)

    def _recover_active(self, repair: bool) -> None:
        seg = self._segments[-1]
        seg.index = []
        next_offset, valid, error = self._scan(seg, seg.base, 0, build_index=True)
        if self.readonly:
            # The owner may be writing right now, so a bad frame here is
            # (very likely) a record half-written: the end, for this reader.
            # Real corruption is the owner's to report when it starts.
            seg.size = valid
            self._written = self._synced = self._durable = next_offset
            return
        if error is not None:
            with open(seg.path, "rb") as f:
                data = f.read()
            dropped = seg.size - valid
            follower = segment.find_next_valid(data, valid, next_offset)
            if follower is not None and not repair:
                raise self._corrupt(seg, valid, next_offset, error, f" and valid records follow at byte {follower}")
            if follower is not None:
                log.error(
                    "REPAIR: %s is corrupt at byte %d (offset %d: %s); truncating the log at offset %d, "
                    "dropping %d bytes including valid records. Events from offset %d on are lost.",
                    seg.path, valid, next_offset, error, next_offset, dropped, next_offset,
                )
            else:
                log.warning(
                    "log tail of %s is torn at byte %d (offset %d: %s): dropped %d bytes; "
                    "the log now ends at offset %d", seg.path, valid, next_offset, error, dropped, next_offset,
                )
            self.dropped_tail_bytes = dropped
            with open(seg.path, "r+b") as f:
                f.truncate(valid)
                f.flush()
                os.fsync(f.fileno())
            seg.size = valid
        self._written = self._synced = self._durable = next_offset

    def _repair_closed_segments(self) -> None:
        """Scan every closed segment fully; at the first bad record (or gap
        between segments) truncate there and delete every later segment.
        The newest segment is left to ``_recover_active``."""
        for i, seg in enumerate(self._segments[:-1]):
            next_base = self._segments[i + 1].base
            next_offset, valid, error = self._scan(seg, seg.base, 0, build_index=False)
            if error is None and next_offset == next_base:
                continue
            error = error or f"the segment ends here but the next one starts at offset {next_base}"
            later = self._segments[i + 1:]
            log.error(
                "REPAIR: %s is corrupt at byte %d (offset %d: %s); truncating the log at offset %d and "
                "deleting %d later segment(s). Events from offset %d on are lost.",
                seg.path, valid, next_offset, error, next_offset, len(later), next_offset,
            )
            with open(seg.path, "r+b") as f:
                f.truncate(valid)
                os.fsync(f.fileno())
            seg.size = valid
            for s in later:
                os.unlink(s.path)
                _unlink_quietly(self._index_path(s))
            _unlink_quietly(self._index_path(seg))
            del self._segments[i + 1:]
            del self._bases[i + 1:]
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
        if self._closed:
            raise LogWriteError("the log is closed")
        if self.readonly:
            raise LogWriteError("the log was opened read-only")
        payloads = list(payloads)
        loop = asyncio.get_running_loop()
        first = await loop.run_in_executor(self._io, self._write_batch, payloads, sync)
        if sync and first + len(payloads) > self._durable:
            self._durable = first + len(payloads)
            self._notify_end()
        return first

    def _write_batch(self, payloads: list[bytes], sync: bool) -> int:
        """Frame, write and (with ``sync``) fsync one batch; runs on the I/O
        thread. On failure the segment is cut back to where the batch began,
        so the file still ends on a record boundary."""
        if self._broken is not None:
            raise LogWriteError(self._broken)
        first = self._written
        if not payloads:
            if sync:
                self._sync_sync()
            return first
        try:
            if self._segments[-1].size >= self.segment_bytes:
                self._roll(first)
        except OSError as exc:
            raise LogWriteError(f"could not start a new log segment: {exc.strerror or exc}") from exc
        seg = self._segments[-1]
        start_size, since = seg.size, self._since_index
        frames, entries, pos = [], [], start_size
        for i, payload in enumerate(payloads):
            fr = segment.frame(first + i, payload)
            if since >= self.index_interval or pos == 0:
                entries.append((first + i, pos))
                since = 0
            since += len(fr)
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
        seg.index.extend(entries)
        seg.size = pos
        self._since_index = since
        self.bytes_written += len(data)
        self._written = first + len(payloads)
        if sync:
            self._synced = self._written
        return first

    def _rollback(self, seg: _Segment, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
        except OSError as exc:
            # The file may now hold part of a batch no one will acknowledge.
            # Appending after it would bury garbage mid-log: stop writing.
            self._broken = (
                f"log segment {seg.path} could not be cut back after a failed write "
                f"({exc.strerror or exc}); restart to recover"
            )
            log.error("%s", self._broken)

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
        """Close the active segment (fsync it, write its index) and start a
        new one at ``base``. Nothing changes if this raises."""
        old = self._segments[-1]
        self._fsync()
        self._synced = self._written
        try:
            self._write_index(old)
        except OSError as exc:
            log.warning("could not write the index of %s (%s); it is rebuilt on the next start", old.path, exc)
        fd = self._create_segment_file(base)
        os.close(self._fd)
        self._fd = fd
        # _segments before _bases: a reader that finds a base finds its segment
        self._segments.append(_Segment(base, os.path.join(self.path, _segment_name(base, "log"))))
        self._bases.append(base)
        self._since_index = 0
        log.info("rolled log to a new segment at offset %d", base)

    async def sync(self) -> None:
        if self._durable == self._written:
            return
        target = await asyncio.get_running_loop().run_in_executor(self._io, self._sync_sync)
        if target > self._durable:
            self._durable = target
            self._notify_end()

    def _sync_sync(self) -> int:
        if self._synced < self._written:
            try:
                self._fsync()
            except OSError as exc:
                raise LogWriteError(f"fsync failed: {exc.strerror or exc}") from exc
            self._synced = self._written
        return self._synced

    # ------------------------------------------------------------------ read

    async def read(self, start: int, end: int | None = None) -> AsyncIterator[Record]:
        end = self._durable if end is None else min(end, self._durable)
        start = max(start, self.start_offset)
        loop = asyncio.get_running_loop()
        while start < end:
            batch = await loop.run_in_executor(self._reader_pool, self._read_chunk, start, end)
            if not batch:
                raise LogCorruptError(f"record at offset {start} is missing from the log in {self.path}")
            for offset, payload in batch:
                yield decode_record(offset, payload)
            start = batch[-1][0] + 1

    def _read_chunk(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """Read about READ_CHUNK bytes of frames holding offsets from ``start``
        (runs on a reader thread; verifies every checksum it reads). Always
        returns at least the record at ``start`` if the segment has it,
        however large it is."""
        # One list, read once: retention replaces it (never edits it in
        # place), so base and segment always agree for this reader.
        segs = self._segments
        i = bisect.bisect_right(segs, start, key=_segment_base) - 1
        if i < 0:
            raise self._gone(start, segs[0].base)
        seg = segs[i]
        off, pos = seg.position_for(start)
        size = seg.size
        out: list[tuple[int, bytes]] = []
        try:
            f = open(seg.path, "rb")
        except FileNotFoundError:  # retention deleted it after we picked it
            raise self._gone(start, self.start_offset) from None
        with f:
            f.seek(pos)
            buf = f.read(min(READ_CHUNK, size - pos))
            p = 0
            while off < end and pos + p < size:
                try:
                    o, payload, nxt = segment.parse(buf, p, off)
                except segment.Incomplete:
                    if out:
                        break  # the caller comes back for the rest
                    buf, pos, p = self._read_more(f, seg, buf, pos, p, off, size)
                    continue
                except segment.Corrupt as exc:
                    raise LogCorruptError(
                        f"log segment {seg.path} is corrupt at byte {pos + p} (offset {off}: {exc}); "
                        f"start with --repair to truncate the log at offset {off} "
                        f"(every record from offset {off} on is lost)"
                    ) from None
                if o >= start:
                    out.append((o, payload))
                p, off = nxt, o + 1
        return out

    def _gone(self, offset: int, start: int) -> LogError:
        return LogError(
            f"offset {offset} is no longer in the log in {self.path}: retention deleted the segments "
            f"before offset {start} (covered by a snapshot); read from offset {start} or later"
        )

    @staticmethod
    def _read_more(f, seg: _Segment, buf: bytes, pos: int, p: int, off: int, size: int) -> tuple[bytes, int, int]:
        """The frame at ``buf[p:]`` runs past the buffer: drop what was
        consumed and read enough to hold the whole frame (or another chunk).
        Returns the new ``(buf, pos, p)``."""
        have = len(buf) - p
        need = segment.HEADER_SIZE
        if have >= need:
            need += segment.HEADER.unpack_from(buf, p)[1]
        want = min(max(need - have, READ_CHUNK), size - (pos + len(buf)))
        more = f.read(want) if want > 0 else b""
        if not more:
            raise LogCorruptError(
                f"log segment {seg.path} ends inside the record at offset {off} (byte {pos + p}); "
                f"start with --repair to truncate the log at offset {off}"
            )
        return buf[p:] + more, pos + p, 0

    # ------------------------------------------------------------- retention

    def segment_list(self) -> list[tuple[int, int, int, str]]:
        """``(base, end, size, path)`` of every segment, oldest first; the
        last one is the active segment (its ``end`` is ``written_offset``)."""
        segs = self._segments
        ends = [s.base for s in segs[1:]] + [self._written]
        return [(s.base, e, s.size, s.path) for s, e in zip(segs, ends)]

    async def delete_segments_before(self, offset: int) -> list[int]:
        """Delete every closed segment whose records are all below
        ``offset`` (never the active one), with its index; returns the
        deleted segments' base offsets. Runs on the I/O thread, so it never
        races a roll. A reader still inside a deleted segment gets a
        ``LogError`` saying so (or finishes, if it already had it open)."""
        if self.readonly:
            raise LogError("the log was opened read-only")
        if self._closed:
            raise LogError("the log is closed")
        return await asyncio.get_running_loop().run_in_executor(self._io, self._delete_before_sync, offset)

    def _delete_before_sync(self, offset: int) -> list[int]:
        segs = self._segments
        n = 0
        while n < len(segs) - 1 and segs[n + 1].base <= offset:
            n += 1
        if n == 0:
            return []
        doomed = segs[:n]
        # New lists, not edits in place: a reader thread holding the old
        # list keeps a consistent view (see _read_chunk).
        self._segments = segs[n:]
        self._bases = [s.base for s in self._segments]
        for seg in doomed:
            # index first: a crash in between leaves a segment whose index
            # is rebuilt, never an index without its segment
            _unlink_quietly(self._index_path(seg))
            _unlink_quietly(seg.path)
        self._fsync_dir()
        log.info("retention deleted %d log segment(s) holding offsets %d..%d; the log now starts at %d",
                 n, doomed[0].base, self._segments[0].base - 1, self._segments[0].base)
        return [s.base for s in doomed]

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
        """fsync what was written, close the files and release the LOCK."""
        if self._closed:
            return
        self._closed = True
        try:
            synced = await asyncio.get_running_loop().run_in_executor(self._io, self._close_sync)
            if synced > self._durable:
                self._durable = synced
                self._notify_end()
        finally:
            self._io.shutdown(wait=True)
            self._reader_pool.shutdown(wait=False)

    def _close_sync(self) -> int:
        try:
            if self._fd is not None and self._synced < self._written:
                self._sync_sync()
        finally:
            self._release_files()
        return self._synced
