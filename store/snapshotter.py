"""The snapshotter (``fjord snapshot``) and snapshot loading.

The snapshotter is a process of its own: the server starts it as a child
(BGSAVE, SAVE, every ``snapshot-every-events`` records) and does no snapshot
work itself. It loads the newest snapshot, replays the log from that snapshot's
offset with the same ``Materializer`` and ``Keyspace.apply`` the server uses,
and writes a new snapshot (``streams/snapshot.py``). It opens the log
read-only: no LOCK, nothing truncated, the owner's half-written tail is its end.

``snapshots/LOCK`` (flock) keeps two snapshotters from running at once; a
second one exits with ``BUSY_EXIT``.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from typing import Callable

from streams import snapshot
from streams.filelog import FileLog
from streams.log import LogError
from streams.materializer import Materializer
from streams.snapshot import SnapshotCorruptError, SnapshotInfo

from .keyspace import DEFAULT_DATABASES, Keyspace
from .snapshotting import SectionLoader, load_types, write_state

log = logging.getLogger("fjord.snapshot")

#: exit status of a snapshotter that found another one running
BUSY_EXIT = 3
#: snapshots kept by default (the newest, plus one to fall back on)
DEFAULT_KEEP = 2


def log_dir(data_dir: str) -> str:
    return os.path.join(data_dir, "log")


def snapshot_dir(data_dir: str) -> str:
    return os.path.join(data_dir, "snapshots")


class SnapshotBusy(LogError):
    """Another snapshotter holds ``snapshots/LOCK``."""


async def load_latest(keyspace: Keyspace, directory: str, max_offset: int,
                      progress: Callable[[int, int], None] | None = None,
                      ) -> tuple[SnapshotInfo | None, int, float]:
    """Load the newest snapshot at or below ``max_offset`` into the (empty)
    ``keyspace``; if it turns out corrupt, reset and try the one before.
    Returns ``(snapshot or None, keys loaded, seconds)``. Sections are read
    and decoded on a thread and applied on the caller's loop, a bulk update
    each. ``progress(keys_done, keys_total)`` is called after each section
    (up to ``snapshotting.SECTION_KEYS`` keys), never per key."""
    loop = asyncio.get_running_loop()
    candidates = await loop.run_in_executor(None, snapshot.list_snapshots, directory)
    for info in reversed([s for s in candidates if s.offset <= max_offset]):
        t0 = time.perf_counter()
        loader = SectionLoader(keyspace)
        keys = 0
        sections = snapshot.read_sections(info)
        try:
            while True:
                section = await loop.run_in_executor(None, next, sections, None)
                if section is None:
                    break
                keys += loader.load(section)
                if progress is not None:
                    progress(keys, info.events)
            loader.finish()
        except (SnapshotCorruptError, ValueError, KeyError, TypeError, IndexError) as exc:
            log.error("not loading snapshot %s: %s; trying an older one", info.path, exc)
            keyspace.reset()
            continue
        return info, keys, time.perf_counter() - t0
    return None, 0, 0.0


def set_aside_future_snapshots(directory: str, end_offset: int) -> None:
    """Rename snapshots past the log's end (the log lost records they hold,
    e.g. after --repair): the log will write other records at those offsets,
    so such a snapshot must never be loaded."""
    for info in snapshot.list_snapshots(directory):
        if info.offset > end_offset:
            log.warning("snapshot %s is past the log's end (offset %d); renaming it to .orphan",
                        info.path, end_offset)
            os.replace(info.path, info.path + ".orphan")


def _fsync_log_files(path: str) -> None:
    """Make what this reader saw durable before a snapshot claims it: a
    record handed to the OS but not yet fsynced by the owner would otherwise
    be in the snapshot and possibly gone from the log after a power loss."""
    for name in os.listdir(path):
        if name.endswith(".log"):
            fd = os.open(os.path.join(path, name), os.O_RDONLY)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)


def prune(directory: str, keep: int) -> None:
    """Delete all but the newest ``keep`` snapshots."""
    infos = snapshot.list_snapshots(directory)
    for info in infos[:-keep] if keep > 0 else []:
        log.info("deleting old snapshot %s", info.path)
        os.unlink(info.path)


async def take_snapshot(data_dir: str, max_offset: int | None = None, databases: int = DEFAULT_DATABASES,
                        keep: int = DEFAULT_KEEP) -> SnapshotInfo:
    """Build and write a snapshot of ``data_dir`` up to ``max_offset`` (the
    log's current end by default). Raises ``SnapshotBusy`` if another
    snapshotter runs, ``LogError`` if the log cannot be read."""
    load_types()
    sdir = snapshot_dir(data_dir)
    os.makedirs(sdir, exist_ok=True)
    lock_fd = os.open(os.path.join(sdir, "LOCK"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SnapshotBusy(f"another snapshotter is writing in {sdir}") from None
        snapshot.remove_stale_temp_files(sdir)
        t0 = time.perf_counter()
        flog = await FileLog.open(log_dir(data_dir), readonly=True)
        try:
            end = flog.end_offset if max_offset is None else min(max_offset, flog.end_offset)
            ks = Keyspace(databases)
            base, keys, secs = await load_latest(ks, sdir, end)
            start = base.offset if base is not None else 0
            if base is not None:
                log.info("loaded snapshot at offset %d with %d keys in %.3f s", base.offset, keys, secs)
            if start < flog.start_offset:
                raise LogError(f"the log starts at offset {flog.start_offset} and no snapshot covers "
                               f"the records before it")
            stats = await Materializer(flog, ks, start).catch_up(end)
            _fsync_log_files(flog.path)
        finally:
            await flog.close()
        info = write_state(sdir, end, int(time.time() * 1000), ks)
        prune(sdir, keep)
        log.info("wrote snapshot %s at offset %d: %d keys, %d bytes (replayed %d records) in %.3f s",
                 info.path, info.offset, info.events, info.size, stats.records, time.perf_counter() - t0)
        return info
    finally:
        os.close(lock_fd)


# ------------------------------------------------------------------ CLI


def add_parser(sub) -> None:
    """``fjord snapshot [--data-dir D]`` and ``fjord snapshot inspect FILE``."""
    p = sub.add_parser(
        "snapshot", help="write a snapshot of a data directory, or inspect one",
        description="Load the newest snapshot of the data directory, replay the log from its offset and "
                    "write a new snapshot (safe while the server runs: the log is opened read-only). "
                    "'fjord snapshot inspect FILE' prints a snapshot's header and a summary.",
    )
    p.add_argument("--data-dir", default="./data", help="data directory (default: ./data)")
    p.add_argument("--max-offset", type=int, default=None,
                   help="cover the log only up to this offset (default: its current end)")
    p.add_argument("--databases", type=int, default=DEFAULT_DATABASES, help="number of databases")
    p.add_argument("--keep", type=int, default=DEFAULT_KEEP, help="snapshots to keep (older ones are deleted)")
    p.add_argument("--loglevel", default="notice", help="debug, verbose, notice or warning")
    p.add_argument("--parent-pid", type=int, default=None,
                   help="exit when this process (the server that started us) dies")
    actions = p.add_subparsers(dest="action")
    i = actions.add_parser("inspect", help="print a snapshot's header and a summary")
    i.add_argument("file")
    i.add_argument("--events", action="store_true", help="print every key (db, key, type, expiry), one JSON line each")


def run(ns) -> int:
    from .config import LOG_LEVELS

    logging.basicConfig(level=LOG_LEVELS.get(ns.loglevel, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if getattr(ns, "action", None) == "inspect":
        return inspect(ns.file, ns.events)
    if ns.parent_pid is not None and not _die_with_parent(ns.parent_pid):
        return 1
    try:
        asyncio.run(take_snapshot(ns.data_dir, ns.max_offset, ns.databases, ns.keep))
    except SnapshotBusy as exc:
        log.warning("%s", exc)
        return BUSY_EXIT
    except (LogError, OSError) as exc:
        log.error("snapshot failed: %s", exc)
        return 1
    return 0


def _die_with_parent(parent_pid: int) -> bool:
    """Run as the server's child: ask Linux to SIGTERM us when the server
    dies, so a killed server leaves no snapshotter behind competing for the
    CPU (the snapshot it was writing is only ever a temp file), and lower our
    priority below the server's. False if the parent is already gone."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the snapshot still completes
        pass
    if os.getppid() != parent_pid:
        log.warning("the server that asked for this snapshot is gone; not writing it")
        return False
    try:
        os.nice(10)  # the server's clients come first; a snapshot can wait
    except OSError:
        pass
    return True


def inspect(path: str, show_keys: bool) -> int:
    """Print the header, per-type key counts and (optionally) every key."""
    import collections
    import sys

    try:
        info = snapshot.inspect_snapshot(path)
        print(f"file:           {info.path}")
        print(f"format version: {snapshot.FORMAT_VERSION}")
        print(f"offset:         {info.offset}  (state after log records 0..{info.offset - 1})")
        print(f"time:           {info.time_ms}  ({time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(info.time_ms / 1000))})")
        print(f"keys (header):  {info.events}")
        print(f"size:           {info.size} bytes")
        types: collections.Counter = collections.Counter()
        sections = 0
        for sec in snapshot.read_sections(info):
            sections += 1
            if sec.get("append"):
                continue
            types[sec["type"]] += len(sec["keys"])
            if show_keys:
                exp = sec.get("expires") or [None] * len(sec["keys"])
                for key, at in zip(sec["keys"], exp):
                    print(_key_line(sec["db"], key, sec["type"], at))
        print(f"sections:       {sections}")
        print(f"keys:           {sum(types.values())}")
        print("key types:      " + ", ".join(f"{t}={n}" for t, n in sorted(types.items())))
        print("checksums:      ok")
    except (SnapshotCorruptError, OSError) as exc:
        print(f"fjord: {exc}", file=sys.stderr)
        return 1
    return 0


def _key_line(db: int, key: bytes, type_name: str, expire_at: int | None) -> str:
    """One key as a JSON line, bytes shown as the log's codec shows them."""
    import orjson

    from streams.events import _encode_bytes

    return orjson.dumps({"db": db, "key": key, "type": type_name, "expire_at": expire_at},
                        default=_encode_bytes).decode()
