"""``fjord log tail|read|history``: the log, printed for people.

Every subcommand opens ``<data-dir>/log`` read-only (no LOCK taken, nothing
truncated), so it works while a server owns the directory, and prints one
line per event::

    1203 2026-11-27T15:04:05.123Z db0 set user:1 value="alice" expire_at=nil

offset, the writer's time (UTC, ms), db (``db*`` for keyless events such as
``flushall``), event type, key, then the event's data as ``name=value``.
Byte strings are quoted the way redis-cli quotes them (``"a\\x00b"``); a key
is quoted only when it needs to be. With ``--json`` each record is printed
as its raw JSON (the log's own encoding, see streams/events.py) with its
``offset`` added, one record per line, for ``jq`` and other programs.

Fencing (docs/failover.md): a record that ``EpochFence`` skips (written by a
deposed writer after its successor's claim, or a losing claim) is shown, not
hidden, since this is where one looks for what happened, but marked: the
line ends with `` [fenced]`` and the JSON gets ``"fenced": true``. Starting
mid-log, the fence first reads the log from its start (decoding only) to
learn the epoch in force, so ``tail`` on a long log takes a moment.

``history`` scans the whole log (a CLI may take its time); the server's
``FJORD.HISTORY`` command answers from an in-memory index instead.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections import deque
from datetime import datetime, timezone
from typing import AsyncIterator, Iterable

import orjson

from streams.events import Event, Record, encode_record
from streams.filelog import FileLog
from streams.log import LogError
from streams.materializer import EpochFence, fence_at

_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-./@#{}[]+=,")
_ESCAPES = {ord("\\"): "\\\\", ord('"'): '\\"', ord("\n"): "\\n", ord("\r"): "\\r",
            ord("\t"): "\\t", 7: "\\a", 8: "\\b"}


def quote(b: bytes) -> str:
    """``b`` as redis-cli prints a bulk string: double quotes, C escapes,
    ``\\xhh`` for every other non-printable byte."""
    out = ['"']
    for c in b:
        esc = _ESCAPES.get(c)
        if esc is not None:
            out.append(esc)
        elif 32 <= c < 127:
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    out.append('"')
    return "".join(out)


def show_key(key: bytes | None) -> str:
    """A key bare when it is plain text, else quoted."""
    if key is None:
        return "-"
    if key and all(c in _PLAIN for c in key):
        return key.decode("ascii")
    return quote(key)


def show_value(v) -> str:
    if isinstance(v, (bytes, bytearray)):
        return quote(bytes(v))
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + " ".join(show_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + " ".join(f"{k}={show_value(x)}" for k, x in v.items()) + "}"
    return str(v)


def iso_time(ms: int) -> str:
    """Unix ms as ISO-8601 UTC with milliseconds: 2026-11-27T15:04:05.123Z."""
    t = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


FENCED_MARK = " [fenced]"


def format_event(offset: int, time_ms: int, e: Event, fenced: bool = False) -> str:
    db = "db*" if e.db is None else f"db{e.db}"
    parts = [str(offset), iso_time(time_ms), db, e.type, show_key(e.key)]
    parts += [f"{k}={show_value(v)}" for k, v in e.data.items()]
    return " ".join(parts) + (FENCED_MARK if fenced else "")


def format_record(r: Record, json: bool = False, fenced: bool = False) -> list[str]:
    """The lines printed for one record; ``fenced``: the fence skips it."""
    if json:
        doc = orjson.loads(encode_record(r.time_ms, r.events, r.origin, epoch=r.epoch))
        out = {"offset": r.offset, **doc}
        if fenced:
            out["fenced"] = True
        return [orjson.dumps(out).decode("utf-8")]
    return [format_event(r.offset, r.time_ms, e, fenced) for e in r.events]


# ------------------------------------------------------------- opening the log


def log_dir(data_dir: str) -> str:
    return os.path.join(data_dir, "log")


async def open_log_readonly(data_dir: str) -> FileLog:
    """The data dir's log opened for reading only: no LOCK, no truncation,
    so a running server is not disturbed. Refuses a dir with no log."""
    path = log_dir(data_dir)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no log in {data_dir!r} (expected the directory {path})")
    return await FileLog.open(path, readonly=True)


async def _records(data_dir: str, start: int | None, end: int | None, last: int | None = None,
                   state: list | None = None) -> AsyncIterator[tuple[Record, bool]]:
    """``(record, fenced)`` pairs; ``state`` (if given) receives the fence
    as it stands after the last record, for a caller that reads on."""
    log = await open_log_readonly(data_dir)
    try:
        if last is not None:
            start = max(log.start_offset, log.end_offset - last)
        elif start is not None and start < log.start_offset:
            raise LogError(f"offset {start} is no longer in the log: retention deleted the records before "
                           f"offset {log.start_offset} (covered by a snapshot); use --from {log.start_offset} "
                           f"or later")
        start = max(start or 0, log.start_offset)
        fence = await fence_at(log, start)
        if state is not None:
            state.append(fence)
        async for r in log.read(start, end):
            yield r, not fence.admit(r)
    finally:
        await log.close()


def _print(lines: Iterable[str]) -> None:
    for line in lines:
        print(line)


async def tail(data_dir: str, n: int, follow: bool, json: bool, poll: float = 0.25) -> None:
    """Print the last ``n`` records; with ``follow``, keep printing new ones
    as they become durable (polling: the log is reopened read-only whenever
    its segment files grew)."""
    nxt = None
    state: list[EpochFence] = []
    async for r, fenced in _records(data_dir, None, None, last=n, state=state):
        _print(format_record(r, json, fenced))
        nxt = r.offset + 1
    if not follow:
        return
    sys.stdout.flush()
    seen = None
    while True:
        now = _segment_sizes(data_dir)
        if now == seen:  # nothing written: skip reopening (which scans the active segment)
            await asyncio.sleep(poll)
            continue
        seen = now
        log = await open_log_readonly(data_dir)
        try:
            if nxt is None:
                nxt = log.end_offset if n == 0 else log.start_offset
            nxt = max(nxt, log.start_offset)
            fence = state[0] if state else await fence_at(log, nxt)
            state[:] = [fence]
            async for r in log.read(nxt):
                _print(format_record(r, json, not fence.admit(r)))
                nxt = r.offset + 1
        finally:
            await log.close()
        sys.stdout.flush()
        await asyncio.sleep(poll)


def _segment_sizes(data_dir: str) -> list[tuple[str, int]]:
    path = log_dir(data_dir)
    out = []
    for name in os.listdir(path):
        if name.endswith(".log"):
            try:
                out.append((name, os.path.getsize(os.path.join(path, name))))
            except FileNotFoundError:  # deleted by retention meanwhile
                pass
    return sorted(out)


async def read(data_dir: str, start: int, end: int | None, json: bool) -> None:
    async for r, fenced in _records(data_dir, start, end):
        _print(format_record(r, json, fenced))


async def history(data_dir: str, key: bytes, db: int, count: int, json: bool) -> int:
    """Print the last ``count`` events on ``key`` in ``db``, oldest first.
    Returns how many were found."""
    found: deque[tuple[Record, Event, bool]] = deque(maxlen=count)
    async for r, fenced in _records(data_dir, None, None):
        for e in r.events:
            if e.key == key and e.db == db:
                found.append((r, e, fenced))
    for r, e, fenced in found:
        if json:
            _print(format_record(Record(r.offset, r.time_ms, [e], r.origin, r.epoch), True, fenced))
        else:
            print(format_event(r.offset, r.time_ms, e, fenced))
    return len(found)


# ------------------------------------------------------------------ argparse


def add_parser(sub) -> None:
    p = sub.add_parser("log", help="print the log's events (read-only; safe while the server runs)",
                       description="Print events from a data directory's log, one line per event: "
                                   "offset, time (UTC), db, type, key, data.")
    lsub = p.add_subparsers(dest="log_cmd", required=True)

    def common(q):
        q.add_argument("--data-dir", default="./data", metavar="PATH", help="data directory (default: ./data)")
        q.add_argument("--json", action="store_true", help="print each record's raw JSON, one per line")

    q = lsub.add_parser("tail", help="print the last records")
    common(q)
    q.add_argument("-n", type=int, default=20, metavar="N", help="how many records (default: 20)")
    q.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    q = lsub.add_parser("read", help="print records from an offset")
    common(q)
    q.add_argument("--from", dest="start", type=int, required=True, metavar="N", help="first offset")
    q.add_argument("--to", dest="end", type=int, default=None, metavar="M", help="stop before offset M")
    q = lsub.add_parser("history", help="print a key's events (scans the whole log)")
    common(q)
    q.add_argument("key", help="the key (UTF-8)")
    q.add_argument("--db", type=int, default=0, metavar="N", help="database (default: 0)")
    q.add_argument("--count", type=int, default=20, metavar="N", help="at most N events, the latest (default: 20)")


def run(ns: argparse.Namespace) -> int:
    """Run ``fjord log ...``; returns the exit status."""
    try:
        if ns.log_cmd == "tail":
            asyncio.run(tail(ns.data_dir, max(ns.n, 0), ns.follow, ns.json))
        elif ns.log_cmd == "read":
            asyncio.run(read(ns.data_dir, ns.start, ns.end, ns.json))
        else:
            asyncio.run(history(ns.data_dir, os.fsencode(ns.key), ns.db, max(ns.count, 1), ns.json))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `fjord log read ... | head`
        sys.stderr.close()
        return 0
    except Exception as exc:  # noqa: BLE001 - a CLI reports, it does not trace back
        print(f"fjord log: {exc}", file=sys.stderr)
        return 1
    return 0
