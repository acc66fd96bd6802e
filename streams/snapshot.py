"""Snapshots: the keyspace as of a log offset, as opaque msgpack sections.

This module frames, checksums and writes atomically; it knows nothing of
data types. The store hands in *sections* (any msgpack-able object: in
practice columnar batches of keys of one type, ``store/snapshotting.py``)
and gets them back in order from ``read_sections``. Columnar sections load
an order of magnitude faster than the per-key events of format version 1,
which this version refuses (nothing reads them any more).

File ``<data_dir>/snapshots/snapshot-<offset:020d>.fjs`` is the state after
every log record below ``offset`` was applied. Layout (integers big-endian)::

    header   magic "FJORDSNP" | version u16 (2) | offset u64 | time_ms u64
             | items u64 | CRC-32 of the preceding header bytes (u32)
    chunks   log-record frames (``segment.frame``), the frame "offset" being
             the chunk's index 0, 1, 2...; payload = one section, msgpack
             (``use_bin_type``: bytes stay bytes, str stays str)
    footer   magic "FJSNPEND" | chunks u64 | items u64 | file CRC (u32)

``items`` is what the writer's ``weigh(section)`` summed (the store counts
keys), so loaders can report progress; readers check the chunk count.

The file CRC is CRC-32 over the chunk bytes, then the header, then the
footer's fields before it (this order lets the writer fill the item count
into the header after streaming the chunks, without reading the file back).

Written atomically: temp file, fsync, rename, fsync the directory. A file
whose header or footer is not valid is never loaded (``list_snapshots``
skips it with a log line); ``read_sections`` checks the whole-file CRC
before yielding anything, then every frame's own CRC.

Which log the snapshots of a directory come from is not in the files: the
directory's ``LOG_ID`` sidecar names it (streams/logid.py), and the server
refuses a directory bound to another log (store/snapshotter.py
``bind_to_log``). So the format stays version 2.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from . import segment
import msgpack

from .log import LogError

log = logging.getLogger("fjord.snapshot")

MAGIC = b"FJORDSNP"
END_MAGIC = b"FJSNPEND"
FORMAT_VERSION = 2
_HEADER_BODY = struct.Struct(">8sHQQQ")
_CRC = struct.Struct(">I")
HEADER_SIZE = _HEADER_BODY.size + _CRC.size
_FOOTER_BODY = struct.Struct(">8sQQ")
FOOTER_SIZE = _FOOTER_BODY.size + _CRC.size
_READ = 1 << 20
PREFIX = "snapshot-"
SUFFIX = ".fjs"


class SnapshotCorruptError(LogError):
    """A snapshot file fails its checks (magic, version, checksums, framing)."""


@dataclass(frozen=True)
class SnapshotInfo:
    """One valid snapshot file: the state as of log ``offset``."""

    offset: int
    time_ms: int
    path: str
    size: int
    #: items the sections hold (keys, as the store counts them)
    events: int


def snapshot_name(offset: int) -> str:
    return f"{PREFIX}{offset:020d}{SUFFIX}"


def _header(offset: int, time_ms: int, events: int) -> bytes:
    body = _HEADER_BODY.pack(MAGIC, FORMAT_VERSION, offset, time_ms, events)
    return body + _CRC.pack(zlib.crc32(body))


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _one(section: object) -> int:
    return 1


#: start writing a snapshot's pages back every this many bytes
WRITEBACK_BYTES = 8 << 20


def _sync_file_range():
    """libc's sync_file_range (Linux), or None."""
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    return fn


class _Writeback:
    """Writes a growing file's pages back in ``WRITEBACK_BYTES`` steps while
    it is written, instead of leaving it all dirty for the final fsync:
    that fsync then finds little to do, and the disk never gets one big
    burst that the server's log fsyncs would queue behind. Each step starts
    writeback of the newest range (SYNC_FILE_RANGE_WRITE) and waits for the
    ones before it, so at most two steps are in flight. No journal commit
    is forced (unlike fdatasync); the final fsync still makes it durable."""

    _WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4

    def __init__(self, fd: int):
        self.fd = fd
        self.done = 0  # bytes handed to writeback so far
        self.fn = _sync_file_range()

    def advance(self, written: int) -> None:
        if self.fn is None or written - self.done < WRITEBACK_BYTES:
            return
        if self.done:  # wait for the steps before (clean pages cost nothing)
            self.fn(self.fd, 0, self.done, self._WAIT_BEFORE | self._WRITE | self._WAIT_AFTER)
        self.fn(self.fd, self.done, written - self.done, self._WRITE)
        self.done = written


def write_snapshot(directory: str, offset: int, time_ms: int, sections: Iterable[object],
                   weigh: Callable[[object], int] = _one) -> SnapshotInfo:
    """Write ``sections`` (one chunk each) as the snapshot at ``offset`` in
    ``directory``, atomically; an existing snapshot at the same offset is
    replaced. The header's item count is the sum of ``weigh(section)``."""
    os.makedirs(directory, exist_ok=True)
    final = os.path.join(directory, snapshot_name(offset))
    tmp = f"{final}.{os.getpid()}.tmp"
    count = chunks = 0
    crc = 0
    packer = msgpack.Packer(use_bin_type=True)
    try:
        with open(tmp, "wb") as f:
            f.write(b"\0" * HEADER_SIZE)  # filled in once the item count is known
            writeback, written = _Writeback(f.fileno()), HEADER_SIZE
            for section in sections:
                fr = segment.frame(chunks, packer.pack(section))
                crc = zlib.crc32(fr, crc)
                f.write(fr)
                written += len(fr)
                if written - writeback.done >= WRITEBACK_BYTES:
                    f.flush()
                    writeback.advance(written)
                chunks += 1
                count += weigh(section)
            header = _header(offset, time_ms, count)
            footer_body = _FOOTER_BODY.pack(END_MAGIC, chunks, count)
            crc = zlib.crc32(footer_body, zlib.crc32(header, crc))
            f.write(footer_body + _CRC.pack(crc))
            f.seek(0)
            f.write(header)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        _fsync_dir(directory)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return SnapshotInfo(offset, time_ms, final, os.path.getsize(final), count)


def _check_header_footer(path: str) -> SnapshotInfo:
    """Cheap validity check: header magic/version/CRC, footer magic and
    item count, name matching the header's offset. Raises
    ``SnapshotCorruptError``."""
    size = os.path.getsize(path)
    if size < HEADER_SIZE + FOOTER_SIZE:
        raise SnapshotCorruptError(f"snapshot {path} is truncated ({size} bytes)")
    with open(path, "rb") as f:
        header = f.read(HEADER_SIZE)
        f.seek(size - FOOTER_SIZE)
        footer = f.read(FOOTER_SIZE)
    body = header[:_HEADER_BODY.size]
    magic, version, offset, time_ms, events = _HEADER_BODY.unpack(body)
    if magic != MAGIC:
        raise SnapshotCorruptError(f"{path} is not a Fjord snapshot (bad magic)")
    if _CRC.unpack(header[_HEADER_BODY.size:])[0] != zlib.crc32(body):
        raise SnapshotCorruptError(f"snapshot {path} has a bad header checksum")
    if version != FORMAT_VERSION:
        raise SnapshotCorruptError(f"snapshot {path}: unsupported snapshot format version {version}")
    end_magic, _chunks, footer_events = _FOOTER_BODY.unpack(footer[:_FOOTER_BODY.size])
    if end_magic != END_MAGIC or footer_events != events:
        raise SnapshotCorruptError(f"snapshot {path} has no valid footer (half-written?)")
    name = os.path.basename(path)
    if name.startswith(PREFIX) and name.endswith(SUFFIX) and name[len(PREFIX):-len(SUFFIX)].isdigit():
        if int(name[len(PREFIX):-len(SUFFIX)]) != offset:
            raise SnapshotCorruptError(f"snapshot {path} holds offset {offset}, not the one its name says")
    return SnapshotInfo(offset, time_ms, path, size, events)


def inspect_snapshot(path: str) -> SnapshotInfo:
    """Header and footer of the snapshot at ``path`` (cheap checks only)."""
    return _check_header_footer(path)


def list_snapshots(directory: str) -> list[SnapshotInfo]:
    """Valid snapshots in ``directory`` by ascending offset. Files failing
    the cheap header/footer check are skipped with a warning."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        if not (name.startswith(PREFIX) and name.endswith(SUFFIX)):
            continue
        path = os.path.join(directory, name)
        try:
            out.append(_check_header_footer(path))
        except (SnapshotCorruptError, OSError, struct.error) as exc:
            log.warning("ignoring snapshot %s: %s", path, exc)
    out.sort(key=lambda s: s.offset)
    return out


def latest_snapshot(directory: str, max_offset: int | None = None) -> SnapshotInfo | None:
    """The newest valid snapshot with ``offset <= max_offset`` (any if None)."""
    for info in reversed(list_snapshots(directory)):
        if max_offset is None or info.offset <= max_offset:
            return info
    return None


def _verify_file_crc(info: SnapshotInfo) -> None:
    with open(info.path, "rb") as f:
        header = f.read(HEADER_SIZE)
        remaining = info.size - HEADER_SIZE - FOOTER_SIZE
        crc = 0
        while remaining > 0:
            block = f.read(min(_READ, remaining))
            if not block:
                raise SnapshotCorruptError(f"snapshot {info.path} is truncated")
            crc = zlib.crc32(block, crc)
            remaining -= len(block)
        footer = f.read(FOOTER_SIZE)
    crc = zlib.crc32(footer[:_FOOTER_BODY.size], zlib.crc32(header, crc))
    if len(footer) != FOOTER_SIZE or _CRC.unpack(footer[_FOOTER_BODY.size:])[0] != crc:
        raise SnapshotCorruptError(f"snapshot {info.path} fails its whole-file checksum")


def _as_info(info_or_path: SnapshotInfo | str) -> SnapshotInfo:
    if isinstance(info_or_path, SnapshotInfo):
        return info_or_path
    return _check_header_footer(info_or_path)


def _footer_chunks(info: SnapshotInfo) -> int:
    with open(info.path, "rb") as f:
        f.seek(info.size - FOOTER_SIZE)
        return _FOOTER_BODY.unpack(f.read(_FOOTER_BODY.size))[1]


def read_sections(info_or_path: SnapshotInfo | str) -> Iterator[object]:
    """The snapshot's sections, in the order they were written. The
    whole-file checksum is verified before the first one is yielded; every
    frame is checked again as it is decoded. Raises ``SnapshotCorruptError``."""
    try:
        info = _as_info(info_or_path)
        _verify_file_crc(info)
        want = _footer_chunks(info)
    except (OSError, struct.error) as exc:
        raise SnapshotCorruptError(f"cannot read snapshot {info_or_path}: {exc}") from exc
    end = info.size - FOOTER_SIZE
    with open(info.path, "rb") as f:
        f.seek(HEADER_SIZE)
        buf, p, pos, index = b"", 0, HEADER_SIZE, 0
        while pos < end or p < len(buf):
            try:
                _, payload, nxt = segment.parse(buf, p, index)
            except segment.Incomplete:
                if pos >= end:
                    raise SnapshotCorruptError(f"snapshot {info.path} ends inside chunk {index}") from None
                buf, p = buf[p:], 0
                need = segment.HEADER_SIZE
                if len(buf) >= need:
                    need += segment.HEADER.unpack_from(buf, 0)[1]
                more = f.read(min(max(need - len(buf), _READ), end - pos))
                if not more:
                    raise SnapshotCorruptError(f"snapshot {info.path} is truncated") from None
                buf += more
                pos += len(more)
                continue
            except segment.Corrupt as exc:
                raise SnapshotCorruptError(f"snapshot {info.path} is corrupt at chunk {index}: {exc}") from None
            p = nxt
            try:
                section = msgpack.unpackb(payload, raw=False, strict_map_key=False)
            except Exception as exc:  # msgpack raises several unrelated types
                raise SnapshotCorruptError(f"snapshot {info.path}: chunk {index} does not decode: {exc}") from None
            index += 1
            yield section
    if index != want:
        raise SnapshotCorruptError(f"snapshot {info.path} holds {index} chunks, its footer says {want}")


def remove_stale_temp_files(directory: str) -> None:
    """Delete temp files a killed writer left (call only while holding the
    snapshot lock, so no live writer owns them)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        if name.startswith(PREFIX) and name.endswith(".tmp"):
            log.info("removing a half-written snapshot left by a killed writer: %s", name)
            try:
                os.unlink(os.path.join(directory, name))
            except FileNotFoundError:
                pass
