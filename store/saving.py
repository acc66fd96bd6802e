"""The server's side of snapshots: BGSAVE, SAVE, automatic snapshots, the
figures of LASTSAVE and INFO persistence.

The serving process never builds a snapshot. It runs the snapshotter
(``store/snapshotter.py``) as a child process, ``python -m store snapshot``,
telling it where the data is and the durable end of the log to cover; it
only waits for the child's exit status and then reads the new snapshot's
header. A child killed mid-way leaves at most a temp file, which the next
snapshotter removes; the server keeps serving either way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from streams import snapshot
from streams.snapshot import SnapshotInfo

from .snapshotter import BUSY_EXIT, snapshot_dir

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("fjord.saving")

#: how often the automatic trigger checks the log's growth (seconds)
AUTO_CHECK_SECONDS = 0.5


def spawn(args: list[str]) -> subprocess.Popen:
    """Start a child without stalling the event loop. Not
    ``asyncio.create_subprocess_exec``: under uvloop (libuv) that is a plain
    fork(), which copies the page tables of the whole keyspace while the
    loop waits (measured: 25-50 ms with 150 MB resident, 70-120 ms with
    480 MB, on every snapshot). CPython's ``subprocess`` uses vfork():
    0.1-5 ms whatever the heap's size."""
    return subprocess.Popen(args, stdin=subprocess.DEVNULL)


async def wait_exit(proc: subprocess.Popen) -> int:
    """The child's exit status, awaited on a pidfd (Linux >= 5.3) or, where
    there is none, on a thread; the event loop never blocks."""
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        return await loop.run_in_executor(None, proc.wait)
    try:
        exited = loop.create_future()
        loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))
        try:
            await exited
        finally:
            loop.remove_reader(pidfd)
    finally:
        os.close(pidfd)
    return proc.wait()


class Saver:
    """Runs at most one snapshotter child at a time and remembers results."""

    def __init__(self, server: "Server"):
        self.server = server
        self.enabled = False  # snapshots need the embedded file log
        self.proc: subprocess.Popen | None = None
        self.task: asyncio.Task | None = None
        self.newest: SnapshotInfo | None = None
        self.count = 0
        self.last_status = "ok"
        self.last_started = 0.0
        self.last_seconds = -1
        #: futures resolved with True/False when the running child ends
        self.waiters: list[asyncio.Future] = []
        self.stopping = False

    @property
    def directory(self) -> str:
        return snapshot_dir(self.server.config["dir"])

    @property
    def in_progress(self) -> bool:
        return self.task is not None and not self.task.done()

    @property
    def last_save_time(self) -> int:
        """LASTSAVE: the newest snapshot's time, else the server's start."""
        if self.newest is not None:
            return self.newest.time_ms // 1000
        return int(self.server.stats.start_time)

    @property
    def offset(self) -> int:
        """Log offset the newest snapshot covers (0 without one)."""
        return self.newest.offset if self.newest is not None else 0

    def changes_since_save(self) -> int:
        log_ = self.server.log
        if log_ is None:
            return 0
        return max(log_.end_offset - max(self.offset, 0 if self.newest else log_.start_offset), 0)

    def refresh(self) -> None:
        """Re-read the snapshot directory (cheap: headers and footers)."""
        infos = snapshot.list_snapshots(self.directory)
        self.count = len(infos)
        self.newest = infos[-1] if infos else None

    # ---------------------------------------------------------- running

    def start(self) -> bool:
        """Start a snapshotter child unless one runs; False if one does."""
        if self.in_progress or self.stopping:
            return False
        self.task = asyncio.get_running_loop().create_task(self._run())
        return True

    def wait(self) -> asyncio.Future:
        """A future resolved with the running (or next) child's success."""
        fut = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        return fut

    async def _run(self) -> None:
        srv = self.server
        config = srv.config
        self.last_started = time.time()
        ok = False
        try:
            # Cover every write made before the request: records staged but
            # not yet durable are waited for (briefly: group commit, or the
            # async mode's once-a-second fsync).
            committer = srv.committer
            target = srv.log.end_offset + (committer.staged - committer.durable if committer else 0)
            if target > srv.log.end_offset:
                await srv.log.wait_for(target - 1, timeout=5)
            args = [sys.executable, "-m", "store", "snapshot", "--data-dir", config["dir"],
                    "--max-offset", str(min(target, srv.log.end_offset)),
                    "--databases", str(config["databases"]),
                    "--keep", str(config["snapshot-keep"]), "--loglevel", config["loglevel"],
                    "--cpu-percent", str(config["snapshot-cpu-percent"]),
                    "--parent-pid", str(os.getpid())]
            if config["kafka-bootstrap"]:  # the child reads the topic instead of the file log
                args += ["--kafka-bootstrap", config["kafka-bootstrap"], "--kafka-topic", config["kafka-topic"]]
            self.proc = spawn(args)
            rc = await wait_exit(self.proc)
            ok = rc == 0
            if rc == BUSY_EXIT:
                log.warning("a snapshotter was already running (another process); this one gave up")
            elif not ok:
                log.error("the snapshotter exited with status %d", rc)
            await asyncio.get_running_loop().run_in_executor(None, self.refresh)
            if ok and srv.retention is not None:
                srv.retention.kick()  # a newer snapshot may cover more of the log
        except Exception as exc:  # noqa: BLE001 - a failed snapshot must not stop the server
            log.error("could not run the snapshotter: %s", exc)
        finally:
            self.proc = None
            self.last_status = "ok" if ok else "err"
            self.last_seconds = int(time.time() - self.last_started)
            waiters, self.waiters = self.waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(ok)

    async def auto(self) -> None:
        """Snapshot every ``snapshot-every-events`` records (0: never)."""
        srv = self.server
        while True:
            await asyncio.sleep(AUTO_CHECK_SECONDS)
            every = srv.config["snapshot-every-events"]
            if every > 0 and not self.in_progress and not srv.loading and self.changes_since_save() >= every:
                log.info("%d records since the last snapshot: starting the snapshotter",
                         self.changes_since_save())
                self.start()

    async def stop(self) -> None:
        """On shutdown: end a running child (a snapshot is written
        atomically, so killing it costs nothing but the work)."""
        self.stopping = True
        proc = self.proc
        if proc is not None and proc.returncode is None:
            try:
                proc.terminate()
            except ProcessLookupError:
                pass
        if self.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.task), 10)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
