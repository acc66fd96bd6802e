"""Log retention: FileLog.delete_segments_before, the consumer registry, the
retention rule (snapshots, holds, age, bytes cap) and a real server that
deletes covered segments, keeps what holds need, and restarts intact."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from streams.events import Event, encode_record
from streams.filelog import FileLog
from streams.log import LogError
from store.retention import ConsumerHold, ConsumerRegistry, plan

SMALL = ("--log-segment-bytes", "4096", "--log-retention-hours", "0", "--snapshot-keep", "1",
         "--snapshot-every-events", "0")


def payload(i: int) -> bytes:
    return encode_record(1000 + i, [Event("set", 0, b"k%d" % i, {"value": b"x" * 200, "expire_at": None})])


def log_files(data_dir: str) -> list[str]:
    return sorted(os.listdir(os.path.join(data_dir, "log")))


# ------------------------------------------------------------- FileLog level


def test_delete_segments_before_keeps_active_and_start_offset(tmp_path):
    async def main():
        lg = await FileLog.open(str(tmp_path), segment_bytes=4096)
        for i in range(100):
            await lg.append([payload(i)])
        segs = lg.segment_list()
        assert len(segs) >= 4
        # an offset inside segment 1: only segment 0 is wholly below it
        assert await lg.delete_segments_before(segs[1][0] + 1) == [segs[0][0]]
        assert lg.start_offset == segs[1][0]
        assert not os.path.exists(segs[0][3])
        assert not os.path.exists(segs[0][3][:-4] + ".index")
        # everything: the active segment stays, so the log still ends where it did
        deleted = await lg.delete_segments_before(10**9)
        assert deleted == [s[0] for s in segs[1:-1]]
        assert lg.start_offset == segs[-1][0] and lg.end_offset == 100
        assert [r.offset async for r in lg.read(0)] == list(range(segs[-1][0], 100))
        await lg.append([payload(100)])
        await lg.close()
        lg = await FileLog.open(str(tmp_path), segment_bytes=4096)  # reopens cleanly
        assert lg.start_offset == segs[-1][0] and lg.end_offset == 101
        await lg.close()

    asyncio.run(main())


def test_reader_inside_a_deleted_segment_gets_a_clear_error(tmp_path):
    async def main():
        lg = await FileLog.open(str(tmp_path), segment_bytes=4096)
        for i in range(60):
            await lg.append([payload(i)])
        segs = lg.segment_list()
        reader = lg.read(0)
        first = await reader.__anext__()
        assert first.offset == 0
        await lg.delete_segments_before(segs[2][0])
        with pytest.raises(LogError, match="no longer in the log"):
            async for _ in reader:
                pass
        await lg.close()

    asyncio.run(main())


# ------------------------------------------------------------ registry, rule


def test_consumer_registry_is_durable_json(tmp_path):
    reg = ConsumerRegistry(str(tmp_path))
    assert reg.all() == [] and reg.min_offset() is None
    reg.hold("views.a", 40)
    reg.hold("trigger-b", 7)
    reg.hold("views.a", 50)  # moves forward
    assert [(h.name, h.offset) for h in ConsumerRegistry(str(tmp_path)).all()] == [("trigger-b", 7), ("views.a", 50)]
    assert reg.min_offset() == 7
    assert reg.release("trigger-b") and not reg.release("trigger-b")
    assert reg.min_offset() == 50
    assert not [n for n in os.listdir(tmp_path / "consumers") if n.endswith(".tmp")]
    with pytest.raises(ValueError):
        reg.hold("../evil", 1)


def test_plan_respects_oldest_snapshot_holds_age_and_cap(tmp_path):
    segs = []
    for base in (0, 10, 20, 30, 40):  # 40 is the active segment
        path = tmp_path / f"{base}.log"
        path.write_bytes(b"x" * 100)
        segs.append((base, base + 10, 100, str(path)))
    now = time.time()
    # newest snapshot 35, oldest kept 25: only segments ending <= 25 go
    assert plan(segs, 35, 25, [], 0, 0, now).cutoff == 20
    # a hold at 12 keeps segment 10.. (it holds offset 12)
    hold = ConsumerHold("v", 12, 0)
    p = plan(segs, 35, 35, [hold], 0, 0, now)
    assert p.cutoff == 10 and not p.forced
    # too young: nothing
    assert plan(segs, 35, 35, [], 3600, 0, now).cutoff == 0
    # a cap of 250 bytes forces past the hold and age, but not past the newest snapshot (35)
    p = plan(segs, 35, 35, [hold], 3600, 250, now)
    assert p.cutoff == 30 and p.forced and p.lost == [(hold, 30)]
    p = plan(segs, 15, 15, [hold], 3600, 1, now)
    assert p.cutoff == 10  # segment 10..19 holds offsets >= 15: kept


# --------------------------------------------------------------- the server


def fill(c, n: int, start: int = 0) -> None:
    """Write in small batches: a segment rolls only between group commits."""
    for chunk in range(start, start + n, 10):
        pipe = c.pipeline(transaction=False)
        for i in range(chunk, min(chunk + 10, start + n)):
            pipe.set(f"key:{i}", "v" * 150)
        pipe.execute()


def retention_pass(c) -> dict:
    """SAVE (which kicks retention) and wait for the pass it triggers."""
    runs = c.info("persistence")["log_retention_runs"]
    assert c.save()
    deadline = time.time() + 10
    while time.time() < deadline:
        info = c.info("persistence")
        if info["log_retention_runs"] > runs:
            return info
        time.sleep(0.02)
    raise AssertionError("no retention pass after SAVE")


def test_server_deletes_covered_segments_and_restarts_intact(new_fjord):
    srv = new_fjord(*SMALL)
    c = srv.client()
    fill(c, 300)
    before = log_files(srv.data_dir)
    info = retention_pass(c)
    assert info["log_start_offset"] > 0
    assert info["log_retention_deleted_segments"] >= 3
    assert info["log_start_offset"] <= info["snapshot_offset"]
    after = log_files(srv.data_dir)
    assert before[-1] in after  # the active segment is never deleted
    assert len(after) < len(before)
    start = info["log_start_offset"]
    fill(c, 50, 300)  # a tail after the snapshot
    srv.restart()
    c = srv.client()
    assert c.dbsize() == 350
    assert c.get("key:0") == b"v" * 150 and c.get("key:349") == b"v" * 150
    # reading from a deleted offset says so
    r = subprocess.run([sys.executable, "-m", "store", "log", "read", "--data-dir", srv.data_dir, "--from", "0"],
                       cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "no longer in the log" in r.stderr and f"--from {start}" in r.stderr
    r = subprocess.run([sys.executable, "-m", "store", "log", "read", "--data-dir", srv.data_dir,
                        "--from", str(start), "--to", str(start + 1)],
                       cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout


def test_default_retention_window_keeps_young_segments(new_fjord):
    srv = new_fjord("--log-segment-bytes", "4096", "--snapshot-keep", "1")
    c = srv.client()
    fill(c, 200)
    info = retention_pass(c)
    assert info["log_retention_hours"] == 24
    assert info["log_start_offset"] == 0 and info["log_retention_deleted_segments"] == 0


def test_consumer_hold_keeps_segments_until_released(new_fjord):
    srv = new_fjord(*SMALL)
    c = srv.client()
    reg = ConsumerRegistry(srv.data_dir)
    reg.hold("view-test", 5)
    fill(c, 300)
    info = retention_pass(c)
    assert info["log_start_offset"] <= 5
    reg.hold("view-test", 150)
    info = retention_pass(c)
    assert 0 < info["log_start_offset"] <= 150
    reg.release("view-test")
    info = retention_pass(c)
    assert info["log_start_offset"] > 150
    assert info["log_retention_forced"] == 0


def test_bytes_cap_overrides_a_hold_and_says_so(new_fjord):
    srv = new_fjord(*SMALL)
    c = srv.client()
    ConsumerRegistry(srv.data_dir).hold("slow-trigger", 0)
    fill(c, 300)
    info = retention_pass(c)
    assert info["log_start_offset"] == 0  # the hold keeps everything
    assert c.config_set("log-retention-bytes", "8192")
    info = retention_pass(c)
    assert info["log_start_offset"] > 0 and info["log_retention_forced"] == 1
    assert info["log_bytes"] <= 8192 + 4096 + 400  # the active segment may hold up to one more
    out = srv.output()
    assert "ERROR" in out and "'slow-trigger' LOST events" in out
    assert f"records 0..{info['log_start_offset'] - 1}" in out
    srv.restart()
    assert srv.client().dbsize() == 300
