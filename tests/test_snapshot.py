"""Snapshots: the file format, the keyspace as events, the snapshotter
process, loading at start-up, SAVE/BGSAVE/LASTSAVE/INFO, and a crash test
that SIGKILLs the server and its snapshotter child mid-snapshot."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib

import pytest
import redis

from conftest import ROOT, FjordProcess, RawClient
from streams import segment, snapshot
from streams.events import Event, decode_record
from streams.filelog import FileLog
from streams.snapshot import SnapshotCorruptError
from store.keyspace import Keyspace
from store.snapshotting import load_types, state_events

load_types()


def events_sample() -> list[Event]:
    return [
        Event("set", 0, b"k", {"value": b"v", "expire_at": None}),
        Event("set", 1, b"\xff\x00bin", {"value": b"\x80\x81", "expire_at": 1764255600123}),
        Event("hset", 0, b"h", {"fields": [[b"f", b"1"]]}),
    ]


# ------------------------------------------------------------------ format


def test_format_round_trip_and_exact_header(tmp_path):
    d = str(tmp_path)
    info = snapshot.write_snapshot(d, 42, 1764255600123, iter(events_sample()))
    assert info.offset == 42 and info.events == 3 and info.time_ms == 1764255600123
    assert os.path.basename(info.path) == "snapshot-00000000000000000042.fjs"
    raw = open(info.path, "rb").read()
    body = b"FJORDSNP" + struct.pack(">HQQQ", 1, 42, 1764255600123, 3)
    assert raw[:34] == body and raw[34:38] == struct.pack(">I", zlib.crc32(body))
    # one chunk frame at index 0 holding the three events
    _, payload, end = segment.parse(raw, 38, 0)
    assert decode_record(0, payload).events == events_sample()
    footer = raw[end:]
    assert footer[:24] == b"FJSNPEND" + struct.pack(">QQ", 1, 3) and len(footer) == 28
    crc = zlib.crc32(footer[:24], zlib.crc32(raw[:38], zlib.crc32(raw[38:end])))
    assert footer[24:] == struct.pack(">I", crc)
    assert list(snapshot.read_snapshot(info.path)) == events_sample()
    assert snapshot.list_snapshots(d) == [info]
    assert snapshot.latest_snapshot(d, 41) is None and snapshot.latest_snapshot(d) == info


def test_many_chunks(tmp_path):
    evs = [Event("set", 0, b"k%d" % i, {"value": b"x" * (i % 50), "expire_at": None}) for i in range(5000)]
    info = snapshot.write_snapshot(str(tmp_path), 7, 1, evs)
    assert list(snapshot.read_snapshot(info)) == evs


def test_corrupt_or_truncated_snapshot_is_rejected_and_previous_used(tmp_path):
    d = str(tmp_path)
    old = snapshot.write_snapshot(d, 10, 1, events_sample())
    new = snapshot.write_snapshot(d, 20, 2, events_sample())
    raw = open(new.path, "rb").read()
    # truncated (no footer): skipped by the cheap check
    open(new.path, "wb").write(raw[:-10])
    assert snapshot.latest_snapshot(d) == old
    # a flipped byte inside a chunk: header/footer fine, full check fails
    bad = bytearray(raw)
    bad[50] ^= 0xFF
    open(new.path, "wb").write(bytes(bad))
    assert snapshot.latest_snapshot(d).offset == 20
    with pytest.raises(SnapshotCorruptError):
        list(snapshot.read_snapshot(new.path))

    async def load():
        from store.snapshotter import load_latest
        ks = Keyspace()
        return await load_latest(ks, d, 100), ks

    (info, n, _), ks = asyncio.run(load())
    assert info.offset == 10 and n == 3 and ks.dbs[0].data[b"k"] == b"v"
    # a leftover temp file is never listed
    open(os.path.join(d, "snapshot-00000000000000000030.fjs.123.tmp"), "wb").write(raw)
    assert [s.offset for s in snapshot.list_snapshots(d)] == [10, 20]


# ------------------------------------------------------------------ state events


def dump(ks: Keyspace) -> list:
    from store.zset import ZSet
    out = []
    for db in ks.dbs:
        for k, v in sorted(db.data.items()):
            if isinstance(v, ZSet):
                v = sorted(v.scores.items())
            elif isinstance(v, set):
                v = sorted(v)
            elif not isinstance(v, bytes):
                v = list(v.items()) if isinstance(v, dict) else list(v)
            out.append((db.index, k, type(v).__name__, v, db.expires.get(k)))
    return out


def test_state_events_round_trip_every_type(tmp_path):
    ks = Keyspace()
    apply = ks.apply
    apply(Event("set", 0, b"s", {"value": b"\x00\xffbin", "expire_at": 1900000000000}))
    apply(Event("set", 3, b"plain", {"value": b"v", "expire_at": None}))
    apply(Event("hset", 0, b"h", {"fields": [[b"f%d" % i, b"v%d" % i] for i in range(2500)]}))
    apply(Event("expire", 0, b"h", {"at": 1900000000001}))
    apply(Event("rpush", 0, b"l", {"elements": [b"%d" % i for i in range(2100)]}))
    apply(Event("lpush", 0, b"l", {"elements": [b"head"]}))
    apply(Event("sadd", 2, b"st", {"members": [b"a", b"b", b"\xfe"]}))
    apply(Event("expire", 2, b"st", {"at": 1900000000002}))
    apply(Event("zadd", 0, b"z", {"members": [[b"0.1", b"a"], [b"inf", b"b"], [b"-inf", b"c"],
                                              [b"1e-300", b"d"], [b"3", b"e"]]}))
    apply(Event("expire", 0, b"z", {"at": 1900000000003}))
    info = snapshot.write_snapshot(str(tmp_path), 5, 1, state_events(ks))
    fresh = Keyspace()
    for e in snapshot.read_snapshot(info):
        fresh.apply(e)
    assert dump(fresh) == dump(ks)
    assert fresh.dbs[0].expires[b"z"] == 1900000000003 and list(fresh.dbs[0].data[b"l"])[0] == b"head"


# ------------------------------------------------------------------ the log read-only


def test_readonly_filelog_takes_no_lock_and_ignores_torn_tail(tmp_path):
    path = str(tmp_path / "log")

    async def run():
        owner = await FileLog.open(path)
        await owner.append([b'{"v":1,"time":1,"events":[]}'] * 3)
        seg = os.path.join(path, "00000000000000000000.log")
        size = os.path.getsize(seg)
        with open(seg, "ab") as f:  # a record being written right now
            f.write(segment.frame(3, b'{"v":1,"time":1,"events":[]}')[:10])
        reader = await FileLog.open(path, readonly=True)
        assert reader.end_offset == 3
        assert [r.offset async for r in reader.read(0)] == [0, 1, 2]
        await reader.close()
        assert os.path.getsize(seg) == size + 10  # nothing truncated
        await owner.close()

    asyncio.run(run())


# ------------------------------------------------------------------ servers


def fill(c: redis.Redis, n: int = 200) -> None:
    p = c.pipeline(transaction=False)
    for i in range(n):
        p.set(f"s{i}", i)
        p.hset(f"h{i % 7}", f"f{i}", i)
        p.rpush(f"l{i % 5}", i)
        p.sadd(f"set{i % 3}", i)
        p.zadd(f"z{i % 4}", {f"m{i}": i / 3})
    p.set("ttl", "v", ex=1000)
    p.execute()


def all_keys(c: redis.Redis) -> dict:
    out = {}
    for k in sorted(c.keys("*")):
        t = c.type(k)
        v = {b"string": c.get, b"hash": c.hgetall, b"list": lambda k: c.lrange(k, 0, -1),
             b"set": c.smembers, b"zset": lambda k: c.zrange(k, 0, -1, withscores=True)}[t](k)
        out[k] = (t, v, c.pexpiretime(k) if c.ttl(k) > 0 else -1)
    return out


def test_restart_from_snapshot_plus_tail(tmp_path):
    srv = FjordProcess(str(tmp_path / "data"), args=("--snapshot-every-events", "0")).start()
    try:
        c = srv.client()
        fill(c)
        assert c.save() is True
        info = c.info("persistence")
        assert info["rdb_changes_since_last_save"] == 0 and info["snapshot_count"] == 1
        assert info["rdb_last_bgsave_status"] == "ok" and info["snapshot_offset"] > 0
        c.set("after", "snap")
        c.hdel("h1", "f1")
        assert c.info("persistence")["rdb_changes_since_last_save"] == 2
        before = all_keys(c)
        srv.restart()
        c = srv.client()
        assert all_keys(c) == before
        assert "loaded snapshot at offset" in srv.output()
    finally:
        srv.stop()


def test_bgsave_lastsave_and_auto_snapshots(tmp_path):
    srv = FjordProcess(str(tmp_path / "data"), args=("--snapshot-every-events", "50")).start()
    try:
        c = srv.client()
        t0 = int(time.time())
        raw = RawClient(srv.port)
        assert raw.call("BGSAVE") == b"+Background saving started\r\n"
        assert raw.call("BGSAVE") == b"-ERR Background save already in progress\r\n"
        assert raw.call("BGSAVE", "SCHEDULE") == b"+Background saving scheduled\r\n"
        assert raw.call("SAVE") == b"-ERR Background save already in progress\r\n"
        raw.close()
        deadline = time.time() + 10
        while c.info("persistence")["rdb_bgsave_in_progress"] and time.time() < deadline:
            time.sleep(0.02)
        assert c.lastsave().timestamp() >= t0 - 1
        for i in range(120):
            c.set(f"k{i}", i)
        deadline = time.time() + 10
        while c.info("persistence")["snapshot_offset"] < 100 and time.time() < deadline:
            time.sleep(0.05)
        assert c.info("persistence")["snapshot_offset"] >= 100  # taken automatically
        with pytest.raises(redis.ResponseError, match="syntax error"):
            c.execute_command("BGSAVE", "NOW")
    finally:
        srv.stop()


def test_snapshotter_reads_a_log_being_written(tmp_path):
    data = str(tmp_path / "data")
    srv = FjordProcess(data, args=("--snapshot-every-events", "0")).start()
    stop = threading.Event()
    acked = [0]

    def write():
        c = srv.client()
        i = 0
        while not stop.is_set():
            c.set(f"w{i}", i)
            acked[0] = i = i + 1

    t = threading.Thread(target=write)
    t.start()
    try:
        for _ in range(3):
            time.sleep(0.2)
            rc = subprocess.run([sys.executable, "-m", "store", "snapshot", "--data-dir", data],
                                cwd=ROOT, capture_output=True, timeout=30).returncode
            assert rc == 0
        newest = snapshot.latest_snapshot(os.path.join(data, "snapshots"))
        ks = Keyspace()
        for e in snapshot.read_snapshot(newest):
            ks.apply(e)
        n = len(ks.dbs[0].data)
        assert n >= 1 and newest.offset == n  # one SET per record
        assert all(ks.dbs[0].data[b"w%d" % i] == b"%d" % i for i in range(n))
    finally:
        stop.set()
        t.join()
        srv.stop()
    out = subprocess.run([sys.executable, "-m", "store", "snapshot", "inspect", newest.path],
                         cwd=ROOT, capture_output=True, text=True).stdout
    assert f"offset:         {newest.offset}" in out and "checksums:      ok" in out


# ------------------------------------------------------------------ crash


def children(pid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def test_crash_during_snapshots(tmp_path):
    """Writers keep writing while BGSAVE runs over and over; the server and
    its snapshotter child are SIGKILLed at random points; after each restart
    every acknowledged write is there."""
    rng = random.Random(int(os.environ.get("FJORD_CRASH_SEED", "4")))
    data = str(tmp_path / "data")
    srv = FjordProcess(data, args=("--snapshot-every-events", "300"))
    acked: dict[str, int] = {}
    lists: dict[str, int] = {}
    killed_children = 0
    for round_ in range(6):
        srv.start()
        stop = threading.Event()

        def write(w: int):
            c = srv.client(socket_timeout=1, retry=None)
            try:
                while not stop.is_set():
                    key = f"w{w}:{rng.randrange(20)}"
                    v = acked.get(key, 0) + 1
                    c.set(key, v)
                    acked[key] = v
                    lk = f"list{w}"
                    c.rpush(lk, lists.get(lk, 0))
                    lists[lk] = lists.get(lk, 0) + 1
            except (redis.ConnectionError, redis.TimeoutError):
                pass

        def bgsave():
            c = srv.client(socket_timeout=1, retry=None)
            try:
                while not stop.is_set():
                    try:
                        c.execute_command("BGSAVE")
                    except redis.ResponseError:
                        pass
                    time.sleep(0.01)
            except (redis.ConnectionError, redis.TimeoutError):
                pass

        threads = [threading.Thread(target=write, args=(w,)) for w in range(4)] + [threading.Thread(target=bgsave)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.3, 0.9))
        kids = children(srv.proc.pid)
        # the snapshotter first (often mid-snapshot), then the server
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed_children += 1
            except ProcessLookupError:
                pass
        srv.kill()
        stop.set()
        for t in threads:
            t.join()
        srv.start()
        c = srv.client()
        for key, v in acked.items():
            got = int(c.get(key))
            assert got >= v, (round_, key, got, v)
            acked[key] = got  # an unacknowledged write may have landed
        for lk, n in lists.items():
            elems = [int(x) for x in c.lrange(lk, 0, -1)]
            assert len(elems) >= n and elems[:n] == list(range(n)), (round_, lk)
            lists[lk] = len(elems)
        srv.kill()
    assert killed_children, "the snapshotter was never killed mid-way"
    assert snapshot.list_snapshots(os.path.join(data, "snapshots")), "no snapshot was ever written"
    assert "loaded snapshot at offset" in srv.output()
