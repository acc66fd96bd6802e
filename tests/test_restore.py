"""Point-in-time restore (``fjord restore``): functional tests.

A source server is written to in phases; after each phase the test records
the log position (offset and last writer time) and every key of every db as
a client sees it. Each phase is then restored, by offset and by time, while
the source keeps running; a server started on the restored dir must show
exactly the keyspace observed at that moment, and its next write must get
the next offset.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ROOT, FjordProcess
from store.restore import RestoreError, parse_time, restore
from streams.filelog import FileLog
from streams.snapshot import list_snapshots

DBS = (0, 1, 3)


def fjord_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "store", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def log_position(data_dir: str) -> tuple[int, int]:
    """(end offset, writer time of the last record) of a data dir's log,
    read the way the tools read it: read-only, beside the running server."""

    async def go():
        log = await FileLog.open(os.path.join(data_dir, "log"), readonly=True)
        try:
            last = None
            async for r in log.read(log.end_offset - 1):
                last = r
            return log.end_offset, last.time_ms
        finally:
            await log.close()

    return asyncio.run(go())


def observe(port: int) -> dict:
    """Every key of the dbs in DBS: (type, value, absolute expiry ms)."""
    import redis

    state = {}
    for db in DBS:
        c = redis.Redis(port=port, db=db)
        for key in c.scan_iter(count=1000):
            t = c.type(key).decode()
            if t == "string":
                v = c.get(key)
            elif t == "hash":
                v = sorted(c.hgetall(key).items())
            elif t == "list":
                v = c.lrange(key, 0, -1)
            elif t == "set":
                v = sorted(c.smembers(key))
            elif t == "zset":
                v = c.zrange(key, 0, -1, withscores=True)
            else:
                raise AssertionError(f"unexpected type {t}")
            state[(db, key)] = (t, v, c.pexpiretime(key))
        c.close()
    return state


def phase0(c, c1):
    c.set("s:1", "alice")
    c.set(b"bin\x00\xff", b"\x00\x01\xfe")
    c.set("ttl", "v", ex=10_000)
    c.hset("h", mapping={"f1": "a", "f2": "b"})
    c.rpush("l", *[f"e{i}" for i in range(50)])
    c.sadd("st", "x", "y", "z")
    c.zadd("z", {"m1": 1.5, "m2": -3})
    c.incrby("counter", 5)
    c1.set("other-db", "one")
    c1.rpush("l1", "a", "b")


def phase1(c, c1):
    c.set("s:1", "bob")
    c.hdel("h", "f1")
    c.hset("h", "f3", "c")
    c.lpop("l", 10)
    c.srem("st", "x")
    c.zincrby("z", 2, "m1")
    c.rename("counter", "counter2")
    c.persist("ttl")
    c.expire("s:1", 5000)
    c.move("st", 3)
    pipe = c.pipeline(transaction=True)
    pipe.set("tx:a", "1").set("tx:b", "2").delete("z")
    pipe.execute()
    c1.flushdb()
    c1.set("after-flush", "x")


def phase2(c, c1):
    c.delete("h")
    c.set("s:1", "carol", keepttl=True)
    c.append(b"bin\x00\xff", b"\x02")
    c.zadd("z", {"new": 7})
    c.incr("counter2")
    c1.flushall()
    c.set("after-flushall", "y")


@pytest.fixture
def phases(tmp_path):
    """A source server written in three phases: yields (source, checkpoints)
    with checkpoints[i] = (end offset, last time ms, observed state)."""
    src = FjordProcess(str(tmp_path / "src")).start()
    try:
        c, c1 = src.client(), src.client(db=1)
        checkpoints = []
        for write in (phase0, phase1, phase2):
            write(c, c1)
            end, t = log_position(src.data_dir)
            checkpoints.append((end, t, observe(src.port)))
            time.sleep(0.005)  # the next phase's records get a later ms
        c.close()
        c1.close()
        yield src, checkpoints
    finally:
        if src.proc.poll() is None:
            src.proc.kill()
            src.proc.wait()
        src.logfile.close()


def check_restored(target: str, expected: dict, next_offset: int) -> None:
    srv = FjordProcess(target).start()
    try:
        assert observe(srv.port) == expected
        c = srv.client()
        c.set("written-after-restore", "1")
        c.close()
    finally:
        srv.stop()
    end, _ = log_position(target)
    assert end == next_offset + 1, "the restored log continues at the restore offset"


def test_restore_to_each_offset_and_time_while_source_runs(phases, tmp_path):
    src, checkpoints = phases
    for i, (end, t, state) in enumerate(checkpoints):
        dst = str(tmp_path / f"by-offset-{i}")
        out = fjord_cli("restore", "--data-dir", src.data_dir, "--target-dir", dst, "--to-offset", str(end))
        assert out.returncode == 0, out.stderr
        assert f"state as of offset {end}" in out.stdout and f"{len(state)} keys" in out.stdout
        check_restored(dst, state, end)

        dst = str(tmp_path / f"by-time-{i}")
        out = fjord_cli("restore", "--data-dir", src.data_dir, "--target-dir", dst, "--to-time", str(t))
        assert out.returncode == 0, out.stderr
        assert f"state as of offset {end}" in out.stdout
        check_restored(dst, state, end)
    assert src.proc.poll() is None, "the source server kept running"


def test_restore_starts_from_the_nearest_snapshot(phases, tmp_path):
    """A snapshot of phase 0 placed in the source is loaded instead of
    replaying from offset 0; restoring to before it replays the log."""
    src, checkpoints = phases
    end0, _, state0 = checkpoints[0]
    end1, t1, state1 = checkpoints[1]
    seed = str(tmp_path / "seed")
    asyncio.run(restore(src.data_dir, seed, to_offset=end0, progress=False))
    os.makedirs(os.path.join(src.data_dir, "snapshots"), exist_ok=True)
    (snap,) = list_snapshots(os.path.join(seed, "snapshots"))
    shutil.copy(snap.path, os.path.join(src.data_dir, "snapshots"))

    r = asyncio.run(restore(src.data_dir, str(tmp_path / "a"), to_offset=end1, progress=False))
    assert (r.snapshot_offset, r.records, r.offset) == (end0, end1 - end0, end1)
    check_restored(str(tmp_path / "a"), state1, end1)

    r = asyncio.run(restore(src.data_dir, str(tmp_path / "b"), to_time_ms=t1, progress=False))
    assert r.offset == end1
    check_restored(str(tmp_path / "b"), state1, end1)

    r = asyncio.run(restore(src.data_dir, str(tmp_path / "c"), to_offset=end0 - 3, progress=False))
    assert r.snapshot_offset is None and r.records == end0 - 3


def test_restore_refuses_bad_requests(phases, tmp_path):
    src, checkpoints = phases
    end = checkpoints[-1][0]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file").write_text("x")
    out = fjord_cli("restore", "--data-dir", src.data_dir, "--target-dir", str(busy), "--to-offset", "1")
    assert out.returncode == 1 and "is not empty" in out.stderr
    out = fjord_cli("restore", "--data-dir", src.data_dir, "--target-dir", str(tmp_path / "x"),
                    "--to-offset", str(end + 1))
    assert out.returncode == 1 and "past the end of the log" in out.stderr
    assert not (tmp_path / "x").exists()
    out = fjord_cli("restore", "--data-dir", src.data_dir, "--target-dir", str(tmp_path / "y"))
    assert out.returncode == 2 and "--to-offset" in out.stderr
    out = fjord_cli("restore", "--data-dir", src.data_dir, "--target-dir", str(tmp_path / "y"),
                    "--to-time", "yesterday")
    assert out.returncode == 1 and "cannot read 'yesterday' as a time" in out.stderr
    with pytest.raises(RestoreError, match="different directory"):
        asyncio.run(restore(src.data_dir, src.data_dir, to_offset=0))


def test_restore_to_offset_zero_is_empty(phases, tmp_path):
    src, _ = phases
    dst = str(tmp_path / "zero")
    out = fjord_cli("restore", "--data-dir", src.data_dir, "--target-dir", dst, "--to-offset", "0")
    assert out.returncode == 0, out.stderr
    check_restored(dst, {}, 0)


def test_parse_time_forms():
    assert parse_time("1764255600123") == 1764255600123  # unix ms
    assert parse_time("1764255600") == 1764255600000  # unix s
    assert parse_time("1764255600.5") == 1764255600500
    assert parse_time("2025-11-27T15:00:00.123Z") == 1764255600123
    assert parse_time("2025-11-27T15:00:00.123") == 1764255600123  # no zone: UTC
    assert parse_time("2025-11-27T16:00:00.123+01:00") == 1764255600123
    with pytest.raises(RestoreError):
        parse_time("soon")
