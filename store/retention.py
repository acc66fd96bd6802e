"""Log retention: delete log segments nobody can need any more.

The log is the truth, but once snapshots cover its head that head is only
needed by three kinds of reader, and retention keeps it for each of them:

* **Restart and the snapshotter** start from the newest snapshot: segments
  holding records at or after its offset are never deleted.
* **``fjord restore``** starts from a kept snapshot (``snapshot-keep`` of
  them) and replays forward: the log is kept back to the *oldest* kept
  snapshot's offset, so a restore can start from any snapshot on disk.
* **Registered consumers** (triggers, views, tests today) hold the offset
  they still need in ``<data_dir>/consumers/`` (``ConsumerRegistry``): the
  log is kept back to the smallest such offset.

A closed segment (never the active one) is deleted when every record in it
is below all three bounds and it is older than ``log-retention-hours``
(age: its file's mtime, i.e. the time of its last write). Segments go from
the oldest on, so the log stays one contiguous range.

``log-retention-bytes`` (0: no cap) overrides the consumer holds and the
restore bound: while the log is bigger than the cap, the oldest segments
covered by the newest snapshot are deleted anyway (never past the newest
snapshot, without which the keyspace could not be rebuilt), and each
consumer that lost events is named at ERROR with the offsets it lost.

The server runs retention about once a minute and right after each
snapshot. Planning only lists segments and stats files (on a thread);
deleting runs on the log's I/O thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from streams import snapshot

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("fjord.retention")

#: how often the server checks without being asked (seconds)
CHECK_SECONDS = 60.0
_NAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,200}$")


@dataclass(frozen=True)
class ConsumerHold:
    """A registered consumer and the first log offset it still needs."""

    name: str
    offset: int
    updated_ms: int


class ConsumerRegistry:
    """Durable holds on the log, one JSON file per consumer in
    ``<data_dir>/consumers/``, each written atomically (temp file, fsync,
    rename, fsync the directory) so a crash leaves the old hold or the new
    one, never half a file."""

    def __init__(self, data_dir: str):
        self.directory = os.path.join(data_dir, "consumers")

    def _path(self, name: str) -> str:
        if not _NAME.match(name) or name.startswith("."):
            raise ValueError(f"bad consumer name {name!r} (letters, digits and _.:@- only)")
        return os.path.join(self.directory, name + ".json")

    def hold(self, name: str, offset: int) -> None:
        """Record that ``name`` still needs every record from ``offset`` on."""
        if offset < 0:
            raise ValueError("a consumer's offset cannot be negative")
        path = self._path(name)
        os.makedirs(self.directory, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        body = orjson.dumps({"name": name, "offset": offset, "updated_ms": int(time.time() * 1000)})
        with open(tmp, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self._fsync_dir()

    def release(self, name: str) -> bool:
        """Drop ``name``'s hold; False if it had none."""
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            return False
        self._fsync_dir()
        return True

    def all(self) -> list[ConsumerHold]:
        """Every hold, by name. An unreadable file is skipped with a warning
        (it holds nothing: better than blocking retention forever)."""
        try:
            names = sorted(n for n in os.listdir(self.directory) if n.endswith(".json"))
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            try:
                with open(os.path.join(self.directory, n), "rb") as f:
                    doc = orjson.loads(f.read())
                out.append(ConsumerHold(str(doc["name"]), int(doc["offset"]), int(doc.get("updated_ms", 0))))
            except FileNotFoundError:
                continue  # released meanwhile
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable consumer hold %s: %s", n, exc)
        return out

    def min_offset(self) -> int | None:
        """The smallest offset any consumer still needs (None: no holds)."""
        holds = self.all()
        return min(h.offset for h in holds) if holds else None

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass(frozen=True)
class Plan:
    """What one retention pass deletes: everything below ``cutoff``."""

    cutoff: int  # 0: nothing to delete
    deleted_bytes: int
    forced: bool  # the bytes cap went past a consumer hold or the restore bound
    lost: list[tuple[ConsumerHold, int]]  # consumers that lose events, and up to which offset


def plan(segments: list[tuple[int, int, int, str]], newest: int, oldest: int, holds: list[ConsumerHold],
         max_age_s: float, cap_bytes: int, now: float) -> Plan:
    """Choose the segments to delete (oldest first, contiguous), from
    ``FileLog.segment_list()``; see the module doc for the rule."""
    keep_from = min([oldest] + [h.offset for h in holds])
    closed = segments[:-1]
    total = sum(s[2] for s in segments)
    cutoff = deleted = 0
    n = 0
    for base, end, size, path in closed:
        if end > keep_from:
            break
        try:
            age = now - os.stat(path).st_mtime
        except FileNotFoundError:
            age = max_age_s
        if age < max_age_s:
            break
        n += 1
        cutoff, deleted = end, deleted + size
    forced = False
    if cap_bytes > 0:
        for base, end, size, path in closed[n:]:
            if total - deleted <= cap_bytes or end > newest:
                break
            forced = True
            cutoff, deleted = end, deleted + size
    lost = [(h, cutoff) for h in holds if h.offset < cutoff] if forced else []
    return Plan(cutoff, deleted, forced, lost)


class Retention:
    """The server's retention task and its INFO figures."""

    def __init__(self, server: "Server"):
        self.server = server
        self.registry = ConsumerRegistry(server.config["dir"])
        self.deleted_segments = 0
        self.deleted_bytes = 0
        self.forced = 0  # passes the bytes cap forced past a hold or the restore bound
        self.last_run = 0
        self.runs = 0
        self._kick = asyncio.Event()

    def kick(self) -> None:
        """Run a pass soon (after a snapshot finished)."""
        self._kick.set()

    async def run(self) -> None:
        """Forever: a pass every ``CHECK_SECONDS`` or when kicked."""
        while True:
            try:
                await asyncio.wait_for(self._kick.wait(), CHECK_SECONDS)
            except asyncio.TimeoutError:
                pass
            self._kick.clear()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retention failing must not stop the server
                log.error("log retention failed: %s", exc)

    async def run_once(self) -> list[int]:
        """One pass; returns the deleted segments' base offsets."""
        try:
            return await self._pass()
        finally:
            self.last_run = int(time.time())
            self.runs += 1  # after the deletion: INFO shows a pass once it is complete

    async def _pass(self) -> list[int]:
        srv = self.server
        flog = srv.log
        if srv.loading or not srv.saver.enabled or flog is None:
            return []
        config = srv.config
        loop = asyncio.get_running_loop()

        def decide() -> tuple[Plan, list[snapshot.SnapshotInfo]]:
            snaps = snapshot.list_snapshots(srv.saver.directory)
            if not snaps:
                return Plan(0, 0, False, []), snaps
            return plan(flog.segment_list(), snaps[-1].offset, snaps[0].offset, self.registry.all(),
                        config["log-retention-hours"] * 3600.0, config["log-retention-bytes"],
                        time.time()), snaps

        p, snaps = await loop.run_in_executor(None, decide)
        if p.cutoff <= flog.start_offset:
            return []
        start = flog.start_offset
        deleted = await flog.delete_segments_before(p.cutoff)
        self.deleted_segments += len(deleted)
        self.deleted_bytes += p.deleted_bytes
        if p.forced:
            self.forced += 1
            log.error("log-retention-bytes (%d) forced deleting log records %d..%d; "
                      "the log now starts at offset %d", config["log-retention-bytes"], start,
                      p.cutoff - 1, flog.start_offset)
            for hold, upto in p.lost:
                log.error("consumer %r LOST events: it still needed offset %d, records %d..%d were deleted "
                          "by log-retention-bytes", hold.name, hold.offset, max(hold.offset, start), upto - 1)
            if snaps and snaps[0].offset < p.cutoff:
                log.error("fjord restore can no longer start from snapshots below offset %d", p.cutoff)
        return deleted

    def info_fields(self) -> list[tuple[str, object]]:
        return [
            ("log_retention_hours", self.server.config["log-retention-hours"]),
            ("log_retention_bytes", self.server.config["log-retention-bytes"]),
            ("log_retention_deleted_segments", self.deleted_segments),
            ("log_retention_deleted_bytes", self.deleted_bytes),
            ("log_retention_forced", self.forced),
            ("log_retention_runs", self.runs),
            ("log_retention_last_run", self.last_run),
        ]
