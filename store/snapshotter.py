"""The snapshotter (``fjord snapshot``) and snapshot loading.

The snapshotter is a process of its own: the server starts it as a child
(BGSAVE, SAVE, every ``snapshot-every-events`` records) and does no snapshot
work itself. It loads the newest snapshot, replays the log from that snapshot's
offset with the same ``Materializer`` and ``Keyspace.apply`` the server uses,
and writes a new snapshot (``streams/snapshot.py``). It opens the log
read-only: no LOCK, nothing truncated, the owner's half-written tail is its end.

``snapshots/LOCK`` (flock) keeps two snapshotters from running at once; a
second one exits with ``BUSY_EXIT``.

Staying out of the server's way (the server's p99 during a snapshot): as the
server's child it runs at nice 10 with the lowest best-effort I/O priority,
``--cpu-percent`` (``snapshot-cpu-percent``) paces it to a CPU budget
(``CpuPacer``: slices of work, sleeps in between), and the snapshot file is
written back in steps (``streams/snapshot.py``) rather than by one big fsync.
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
from .snapshotting import SectionLoader, load_types, section_keys, state_sections

log = logging.getLogger("fjord.snapshot")

#: exit status of a snapshotter that found another one running
BUSY_EXIT = 3
#: snapshots kept by default (the newest, plus one to fall back on)
DEFAULT_KEEP = 2
#: CPU budget of a snapshotter, percent of one core (100: unpaced)
DEFAULT_CPU_PERCENT = 100


class CpuPacer:
    """Keeps a process under ``percent`` of one core by sleeping between
    slices of work: after each slice it sleeps until CPU time / wall time
    is back at the budget. A snapshot then takes about ``100 / percent``
    times longer, and the serving process, which shares a small machine
    with it, gets the cores back for the rest of the time. The budget is
    settled per slice (no credit is saved up while the process waits for
    I/O, so it never bursts). ``percent >= 100`` disables it."""

    #: CPU seconds below which a pause is not worth a sleep yet
    MIN_SLICE = 0.005

    def __init__(self, percent: int = DEFAULT_CPU_PERCENT):
        self.percent = percent
        self.active = 0 < percent < 100
        self.slept = 0.0
        self._reset()

    def _reset(self) -> None:
        self._cpu0 = time.process_time()
        self._wall0 = time.monotonic()

    def _owed(self) -> float | None:
        """Seconds to sleep now, or None if this slice is too short yet."""
        if not self.active:
            return None
        cpu = time.process_time() - self._cpu0
        if cpu < self.MIN_SLICE:
            return None
        return cpu * 100 / self.percent - (time.monotonic() - self._wall0)

    def pause_sync(self) -> None:
        owed = self._owed()
        if owed is None:
            return
        if owed > 0:
            time.sleep(owed)
            self.slept += owed
        self._reset()

    async def pause(self) -> None:
        owed = self._owed()
        if owed is None:
            return
        if owed > 0:
            await asyncio.sleep(owed)
            self.slept += owed
        self._reset()

    def paced(self, items):
        """``items``, pausing before each one is handed out."""
        for item in items:
            self.pause_sync()
            yield item


class _PacedLog:
    """A log whose ``read`` pauses every ``every`` records (the replay's
    slices); everything else is the wrapped log's."""

    def __init__(self, log_, pacer: CpuPacer, every: int = 1000):
        self._log, self._pacer, self._every = log_, pacer, every

    def __getattr__(self, name):
        return getattr(self._log, name)

    async def read(self, start: int, end: int | None = None):
        n = 0
        async for record in self._log.read(start, end):
            yield record
            n += 1
            if n % self._every == 0:
                await self._pacer.pause()


def log_dir(data_dir: str) -> str:
    return os.path.join(data_dir, "log")


def snapshot_dir(data_dir: str) -> str:
    return os.path.join(data_dir, "snapshots")


class SnapshotBusy(LogError):
    """Another snapshotter holds ``snapshots/LOCK``."""


#: the snapshot directory's sidecar naming the log its snapshots come from
LOG_ID_FILE = "LOG_ID"


class SnapshotLogMismatch(LogError):
    """The snapshot directory belongs to another log (streams/logid.py)."""


async def bind_to_log(directory: str, log_) -> str | None:
    """Tie ``directory``'s snapshots to ``log_``'s identity, or refuse.

    The sidecar ``LOG_ID`` names the log the snapshots were made from; it is
    written when missing (a new directory, or one from before identities:
    those snapshots are adopted, with a warning when there are any). A
    directory bound to another log raises ``SnapshotLogMismatch``: loading
    its snapshots would mix two histories at the same offsets, and setting
    them aside would hide the mistake, so the server refuses to start."""
    from streams.logid import log_identity, write_atomically

    identity = await log_identity(log_)
    if identity is None:
        return None
    path = os.path.join(directory, LOG_ID_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            bound = f.read().strip()
    except FileNotFoundError:
        bound = None
    if bound == identity:
        return identity
    if bound is not None:
        raise SnapshotLogMismatch(
            f"the snapshots in {directory} were made from the log {bound}, not from this log {identity}: "
            f"refusing to load them (use another data dir, or move that directory away to rebuild from the log)")
    os.makedirs(directory, exist_ok=True)
    if snapshot.list_snapshots(directory):
        log.warning("snapshots in %s carry no log identity; assuming they come from %s", directory, identity)
    write_atomically(path, identity + "\n")
    return identity


async def load_latest(keyspace: Keyspace, directory: str, max_offset: int,
                      progress: Callable[[int, int], None] | None = None,
                      pacer: CpuPacer | None = None,
                      ) -> tuple[SnapshotInfo | None, int, float]:
    """Load the newest snapshot at or below ``max_offset`` into the (empty)
    ``keyspace``; if it turns out corrupt, reset and try the one before.
    Returns ``(snapshot or None, keys loaded, seconds)``. Sections are read
    and decoded on a thread and applied on the caller's loop, a bulk update
    each. ``progress(keys_done, keys_total)`` is called after each section
    (up to ``snapshotting.SECTION_KEYS`` keys), never per key. A ``pacer``
    (the snapshotter's CPU budget) pauses between sections."""
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
                if pacer is not None:
                    await pacer.pause()
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
                        keep: int = DEFAULT_KEEP, kafka_bootstrap: str | None = None,
                        kafka_topic: str | None = None,
                        cpu_percent: int = DEFAULT_CPU_PERCENT) -> SnapshotInfo:
    """Build and write a snapshot of ``data_dir`` up to ``max_offset`` (the
    log's current end by default). Raises ``SnapshotBusy`` if another
    snapshotter runs, ``LogError`` if the log cannot be read. Loading,
    replay and writing stay under ``cpu_percent`` of a core (``CpuPacer``)."""
    load_types()
    pacer = CpuPacer(cpu_percent)
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
        if kafka_bootstrap:  # the log is a Kafka topic; snapshots stay in the data dir
            from streams.kafkalog import KafkaLog, topic_for
            flog = await KafkaLog.open(kafka_bootstrap, kafka_topic or topic_for(), create=False)
        else:
            flog = await FileLog.open(log_dir(data_dir), readonly=True)
        try:
            end = flog.end_offset if max_offset is None else min(max_offset, flog.end_offset)
            ks = Keyspace(databases)
            base, keys, secs = await load_latest(ks, sdir, end, pacer=pacer)
            start = base.offset if base is not None else 0
            if base is not None:
                log.info("loaded snapshot at offset %d with %d keys in %.3f s", base.offset, keys, secs)
            if start < flog.start_offset:
                raise LogError(f"the log starts at offset {flog.start_offset} and no snapshot covers "
                               f"the records before it")
            from .fencing import fence_for  # the epoch the base snapshot holds (store/fencing.py)
            source = _PacedLog(flog, pacer) if pacer.active else flog
            stats = await Materializer(source, ks, start, fence_for(ks)).catch_up(end)
            if not kafka_bootstrap:
                _fsync_log_files(flog.path)
        finally:
            await flog.close()
        sections = state_sections(ks)
        info = snapshot.write_snapshot(sdir, end, int(time.time() * 1000),
                                       pacer.paced(sections) if pacer.active else sections, weigh=section_keys)
        prune(sdir, keep)
        log.info("wrote snapshot %s at offset %d: %d keys, %d bytes (replayed %d records) in %.3f s "
                 "(%.3f s of it paused for the %d%% CPU budget)", info.path, info.offset, info.events,
                 info.size, stats.records, time.perf_counter() - t0, pacer.slept, cpu_percent)
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
    p.add_argument("--cpu-percent", type=int, default=DEFAULT_CPU_PERCENT,
                   help="CPU budget, percent of one core: work in slices and sleep in between, so the "
                        "snapshot takes longer but leaves the cores to the server (default: 100, unpaced)")
    p.add_argument("--loglevel", default="notice", help="debug, verbose, notice or warning")
    p.add_argument("--parent-pid", type=int, default=None,
                   help="exit when this process (the server that started us) dies")
    p.add_argument("--kafka-bootstrap", default=None, help="read the log from this Kafka broker (HOST:PORT)")
    p.add_argument("--kafka-topic", default=None, help="the log's Kafka topic (default: fjord.default.log)")
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
        asyncio.run(take_snapshot(ns.data_dir, ns.max_offset, ns.databases, ns.keep,
                                  getattr(ns, "kafka_bootstrap", None), getattr(ns, "kafka_topic", None),
                                  getattr(ns, "cpu_percent", DEFAULT_CPU_PERCENT)))
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
    # The server's clients come first; a snapshot can wait. SCHED_IDLE runs
    # the child only on a CPU nothing else wants, and a waking server preempts
    # it at once: measured in the same run (bench/snapshots.py --quick), GET
    # p99 during snapshots fell from 2.96x idle at nice 10 to 1.29x, SET from
    # 1.81x to 1.32x. Where SCHED_IDLE is refused, fall back to nice 10.
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (OSError, AttributeError):
        try:
            os.nice(10)
        except OSError:
            pass
    _idle_io_priority()
    return True


def _idle_io_priority() -> None:
    """ioprio_set(IOPRIO_WHO_PROCESS, self, best effort, level 7): the
    snapshot's writes queue behind the server's log writes (mq-deadline and
    BFQ honour it; other schedulers ignore it). Not IOPRIO_CLASS_IDLE: with
    ext4's ordered mode a log fsync can have to wait for the snapshot's
    dirty pages, and starving those would stall the server instead."""
    import ctypes
    import platform

    numbers = {"x86_64": 251, "aarch64": 30}
    nr = numbers.get(platform.machine())
    if nr is None:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall(nr, 1, 0, (2 << 13) | 7)  # who=PROCESS, pid=0 (us), class BE << 13 | level 7
    except (OSError, AttributeError):
        pass


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
