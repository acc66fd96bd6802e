"""``fjord restore``: a new data dir holding the keyspace as it was at a point.

The point is a log position: ``--to-offset N`` keeps every record below
offset N; ``--to-time T`` keeps the records from the start of the log up to
(excluding) the first one whose writer time is after T. A restore is always
a *prefix* of the log, so it is a state the server really had (a writer's
clock that stepped back cannot make a restore skip a record and keep a later
one).

How: the newest snapshot of the source at or before the point (if any) is
loaded into a fresh ``Keyspace``, then the log is replayed from the
snapshot's offset up to the point with the same appliers the server uses.
The target gets a snapshot of that keyspace stamped with the restore offset
N and an empty log whose first segment file is named for base N
(``log/<N:020d>.log``): ``FileLog`` takes segment bases from file names, so
the restored server's next write gets offset N, and offsets below N mean the
same thing in both directories. The source is opened read-only, so it may be
restored from while its server runs.

Time arguments: unix ms (digits, >= 10^11), unix seconds (digits below that,
or with a fraction: ``1764255600.5``), or ISO-8601 (``2026-11-27T15:04:05Z``;
without a zone it is UTC).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from streams.filelog import FileLog
from streams.snapshot import latest_snapshot, list_snapshots, read_sections

from .fencing import fence_for
from .keyspace import DEFAULT_DATABASES, Keyspace
from .logcli import open_log_readonly
from .snapshotting import load_sections, load_types, write_state


class RestoreError(Exception):
    """The restore cannot be done as asked (message says why)."""


@dataclass
class RestoreResult:
    offset: int  # the restored state covers every record below this offset
    time_ms: int  # writer time of the last record applied (0 if none)
    snapshot_offset: int | None  # the source snapshot started from, if any
    records: int  # log records replayed on top of it
    keys: int


def parse_time(text: str) -> int:
    """A point in time as unix ms (see the module doc for the forms)."""
    t = text.strip()
    if t.isdigit():
        v = int(t)
        return v if v >= 10**11 else v * 1000
    try:
        return round(float(t) * 1000)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise RestoreError(f"cannot read {text!r} as a time (unix ms, unix seconds or ISO-8601)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return round(dt.timestamp() * 1000)


def _check_target(target: str) -> None:
    if os.path.exists(target):
        if not os.path.isdir(target):
            raise RestoreError(f"target {target!r} exists and is not a directory")
        if os.listdir(target):
            raise RestoreError(f"target {target!r} is not empty; restore only into a new or empty directory")


class _Progress:
    """One stderr line, rewritten at most every half second, only once the
    replay has taken more than a second (short restores print nothing)."""

    def __init__(self, first: int, last: int | None, out=sys.stderr):
        self.first, self.last, self.out = first, last, out
        self.t0 = time.monotonic()
        self.shown = 0.0

    def update(self, offset: int) -> None:
        now = time.monotonic()
        if now - self.t0 < 1.0 or now - self.shown < 0.5:
            return
        self.shown = now
        if self.last is not None and self.last > self.first:
            pct = 100.0 * (offset - self.first) / (self.last - self.first)
            self.out.write(f"\rreplaying: offset {offset} / {self.last} ({pct:.0f}%)")
        else:
            self.out.write(f"\rreplaying: offset {offset}")
        self.out.flush()

    def done(self) -> None:
        if self.shown:
            self.out.write("\n")
            self.out.flush()


async def restore(source: str, target: str, *, to_offset: int | None = None, to_time_ms: int | None = None,
                  databases: int = DEFAULT_DATABASES, progress: bool = True) -> RestoreResult:
    """Build ``target`` from ``source`` as of ``to_offset`` or ``to_time_ms``
    (exactly one). Raises ``RestoreError`` for anything the user must fix."""
    load_types()  # every data type's appliers
    if (to_offset is None) == (to_time_ms is None):
        raise RestoreError("give exactly one of --to-offset and --to-time")
    if to_offset is not None and to_offset < 0:
        raise RestoreError("--to-offset must be >= 0")
    if os.path.realpath(source) == os.path.realpath(target):
        raise RestoreError("the target must be a different directory from the source")
    _check_target(target)
    snap_dir = os.path.join(source, "snapshots")
    log = await open_log_readonly(source)
    try:
        end = log.end_offset
        if to_offset is not None:
            if to_offset > end:
                raise RestoreError(f"offset {to_offset} is past the end of the log ({end})")
            snap = latest_snapshot(snap_dir, max_offset=to_offset)
        else:
            # A snapshot taken at or before T covers only records written before T.
            snaps = [s for s in list_snapshots(snap_dir) if s.time_ms <= to_time_ms and s.offset <= end]
            snap = max(snaps, key=lambda s: s.offset) if snaps else None
        keyspace = Keyspace(databases)
        start = 0
        last_time = 0
        if snap is not None:
            load_sections(keyspace, read_sections(snap))
            start, last_time = snap.offset, snap.time_ms
        if start < log.start_offset:
            raise RestoreError(
                f"the log now starts at offset {log.start_offset} and no snapshot covers the offsets before it "
                f"(nearest usable snapshot: {'none' if snap is None else snap.offset}): cannot restore that far back"
            )
        stop = to_offset if to_offset is not None else end
        # The snapshot's claim (if any) is the epoch in force at ``start``:
        # a deposed writer's records are skipped here as in every replay.
        admit = fence_for(keyspace).admit
        bar = _Progress(start, stop) if progress else None
        point, records = start, 0
        async for record in log.read(start, stop):
            if to_time_ms is not None and record.time_ms > to_time_ms:
                break
            if record.offset != point:
                raise RestoreError(f"the log skips from offset {point} to {record.offset}")
            if admit(record):
                for event in record.events:
                    keyspace.apply(event)
            point, last_time = record.offset + 1, record.time_ms
            records += 1
            if bar is not None and records % 2000 == 0:
                bar.update(point)
        if bar is not None:
            bar.done()
        if point < stop and to_offset is not None:
            raise RestoreError(f"replay stopped at offset {point}, before {stop}")
    finally:
        await log.close()
    await asyncio.to_thread(_write_target, target, point, last_time, keyspace)
    return RestoreResult(point, last_time, None if snap is None else snap.offset, records, keyspace.key_count())


def _write_target(target: str, offset: int, time_ms: int, keyspace: Keyspace) -> None:
    """The snapshot at ``offset`` and an empty log continuing from it."""
    os.makedirs(target, exist_ok=True)
    _check_target(target)
    write_state(os.path.join(target, "snapshots"), offset, time_ms, keyspace)
    log_dir = os.path.join(target, "log")
    os.makedirs(log_dir)
    fd = os.open(os.path.join(log_dir, f"{offset:020d}.log"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    for d in (log_dir, target):
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


async def verify_target(target: str, offset: int) -> None:
    """Open the new log as a server would, to be sure it continues at ``offset``."""
    log = await FileLog.open(os.path.join(target, "log"))
    try:
        if log.end_offset != offset:
            raise RestoreError(f"the new log starts at {log.end_offset}, not {offset}")
    finally:
        await log.close()


# ------------------------------------------------------------------ argparse


def add_parser(sub) -> None:
    p = sub.add_parser(
        "restore", help="build a new data dir holding the keyspace as of an offset or a time",
        description="Point-in-time restore: load the nearest snapshot of --data-dir at or before the point, "
                    "replay the log up to it and write the result as a new data dir (a snapshot plus an "
                    "empty log continuing at the same offset) that `fjord serve --data-dir` starts from. "
                    "The source is only read, so its server may keep running.",
    )
    p.add_argument("--data-dir", required=True, metavar="SRC", help="the data dir to restore from")
    p.add_argument("--target-dir", required=True, metavar="DST", help="a new or empty directory to create")
    point = p.add_mutually_exclusive_group(required=True)
    point.add_argument("--to-offset", type=int, metavar="N", help="keep every record below offset N")
    point.add_argument("--to-time", metavar="T",
                       help="keep the records written at or before T (unix ms, unix seconds, or ISO-8601; "
                            "UTC when no zone is given), up to the first one written after it")
    p.add_argument("--databases", type=int, default=DEFAULT_DATABASES, metavar="N",
                   help=f"number of databases of the source (default: {DEFAULT_DATABASES})")


def run(ns: argparse.Namespace) -> int:
    try:
        to_time = None if ns.to_time is None else parse_time(ns.to_time)

        async def go() -> RestoreResult:
            result = await restore(ns.data_dir, ns.target_dir, to_offset=ns.to_offset, to_time_ms=to_time,
                                   databases=ns.databases)
            await verify_target(ns.target_dir, result.offset)
            return result

        r = asyncio.run(go())
    except (RestoreError, OSError) as exc:
        print(f"fjord restore: {exc}", file=sys.stderr)
        return 1
    base = "no snapshot" if r.snapshot_offset is None else f"snapshot at offset {r.snapshot_offset}"
    when = "-" if not r.time_ms else datetime.fromtimestamp(r.time_ms / 1000, tz=timezone.utc).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")
    print(f"restored {ns.target_dir}: {base} + {r.records} records applied; {r.keys} keys; "
          f"state as of offset {r.offset} (last record written {when}); the new log continues at offset {r.offset}")
    return 0
