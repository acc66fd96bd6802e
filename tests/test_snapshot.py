"""Snapshots: the file format, the keyspace as sections, the snapshotter
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

import msgpack
import pytest
import redis

from conftest import ROOT, FjordProcess, RawClient
from streams import segment, snapshot
from streams.events import Event
from streams.filelog import FileLog
from streams.snapshot import SnapshotCorruptError
from store.keyspace import Keyspace
from store import snapshotting
from store.snapshotting import load_sections, load_types, state_sections, write_state

load_types()


def sections_sample() -> list:
    return [
        {"db": 0, "type": "string", "keys": [b"k"], "values": [b"v"]},
        {"db": 1, "type": "string", "keys": [b"\xff\x00bin"], "values": [b"\x80\x81"], "expires": [1764255600123]},
        {"db": 0, "type": "hash", "keys": [b"h"], "values": [[b"f", b"1"]]},
    ]


# ------------------------------------------------------------------ format


def test_format_round_trip_and_exact_header(tmp_path):
    d = str(tmp_path)
    info = snapshot.write_snapshot(d, 42, 1764255600123, iter(sections_sample()), weigh=lambda s: len(s["keys"]))
    assert info.offset == 42 and info.events == 3 and info.time_ms == 1764255600123
    assert os.path.basename(info.path) == "snapshot-00000000000000000042.fjs"
    raw = open(info.path, "rb").read()
    body = b"FJORDSNP" + struct.pack(">HQQQ", 2, 42, 1764255600123, 3)
    assert raw[:34] == body and raw[34:38] == struct.pack(">I", zlib.crc32(body))
    # one chunk frame per section, indexes 0, 1, 2, payload = msgpack (bytes as bin)
    p = 38
    for i, sec in enumerate(sections_sample()):
        _, payload, p = segment.parse(raw, p, i)
        assert payload == msgpack.packb(sec, use_bin_type=True)
    footer = raw[p:]
    assert footer[:24] == b"FJSNPEND" + struct.pack(">QQ", 3, 3) and len(footer) == 28
    crc = zlib.crc32(footer[:24], zlib.crc32(raw[:38], zlib.crc32(raw[38:p])))
    assert footer[24:] == struct.pack(">I", crc)
    assert list(snapshot.read_sections(info.path)) == sections_sample()
    assert snapshot.list_snapshots(d) == [info]
    assert snapshot.latest_snapshot(d, 41) is None and snapshot.latest_snapshot(d) == info
    # without weigh, the header counts sections
    assert snapshot.write_snapshot(d, 43, 1, sections_sample()).events == 3


def test_version_1_snapshots_are_refused(tmp_path):
    d = str(tmp_path)
    info = snapshot.write_snapshot(d, 5, 1, sections_sample())
    raw = bytearray(open(info.path, "rb").read())
    body = b"FJORDSNP" + struct.pack(">HQQQ", 1, 5, 1, 3)
    raw[:38] = body + struct.pack(">I", zlib.crc32(body))
    open(info.path, "wb").write(bytes(raw))
    with pytest.raises(SnapshotCorruptError, match="unsupported snapshot format version 1"):
        snapshot.inspect_snapshot(info.path)
    assert snapshot.list_snapshots(d) == [] and snapshot.latest_snapshot(d) is None


def test_many_chunks(tmp_path):
    secs = [{"db": 0, "type": "string", "keys": [b"k%d" % i], "values": [b"x" * (i % 50)]} for i in range(5000)]
    info = snapshot.write_snapshot(str(tmp_path), 7, 1, secs)
    assert list(snapshot.read_sections(info)) == secs


def test_corrupt_or_truncated_snapshot_is_rejected_and_previous_used(tmp_path):
    d = str(tmp_path)
    w = {"weigh": snapshotting.section_keys}
    old = snapshot.write_snapshot(d, 10, 1, sections_sample(), **w)
    new = snapshot.write_snapshot(d, 20, 2, sections_sample(), **w)
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
        list(snapshot.read_sections(new.path))

    async def load():
        from store.snapshotter import load_latest
        ks = Keyspace()
        return await load_latest(ks, d, 100), ks

    (info, n, _), ks = asyncio.run(load())
    assert info.offset == 10 and n == 3 and ks.dbs[0].data[b"k"] == b"v"
    assert ks.dbs[1].expires[b"\xff\x00bin"] == 1764255600123 and ks.dbs[0].data[b"h"] == {b"f": b"1"}
    # a leftover temp file is never listed
    open(os.path.join(d, "snapshot-00000000000000000030.fjs.123.tmp"), "wb").write(raw)
    assert [s.offset for s in snapshot.list_snapshots(d)] == [10, 20]


def test_chunk_count_mismatch_is_rejected(tmp_path):
    """A file whose frames and footer disagree (chunks dropped, checksums
    recomputed) is not loaded."""
    info = snapshot.write_snapshot(str(tmp_path), 3, 1, sections_sample())
    raw = open(info.path, "rb").read()
    _, _, p = segment.parse(raw, 38, 0)
    footer_body = b"FJSNPEND" + struct.pack(">QQ", 3, 3)
    head = raw[:38]
    crc = zlib.crc32(footer_body, zlib.crc32(head, zlib.crc32(raw[38:p])))
    open(info.path, "wb").write(head + raw[38:p] + footer_body + struct.pack(">I", crc))
    with pytest.raises(SnapshotCorruptError, match="holds 1 chunks"):
        list(snapshot.read_sections(info.path))


# ------------------------------------------------------------------ state sections


def dump(ks: Keyspace) -> list:
    from store.zset import ZSet
    out = []
    for db in ks.dbs:
        for k, v in sorted(db.data.items()):
            if isinstance(v, ZSet):
                assert list(v.order) == sorted((s, m) for m, s in v.scores.items())
                v = sorted(v.scores.items())
            elif isinstance(v, set):
                v = sorted(v)
            elif not isinstance(v, bytes):
                v = list(v.items()) if isinstance(v, dict) else list(v)
            out.append((db.index, k, type(db.data[k]).__name__, v, db.expires.get(k)))
    return out


def every_type_keyspace(big: int = 2500) -> Keyspace:
    ks = Keyspace()
    apply = ks.apply
    apply(Event("set", 0, b"s", {"value": b"\x00\xffbin", "expire_at": 1900000000000}))
    apply(Event("set", 3, b"plain", {"value": b"v", "expire_at": None}))
    apply(Event("set", 3, b"\xfe\x00", {"value": b"", "expire_at": 1900000000009}))
    apply(Event("hset", 0, b"h", {"fields": [[b"f%d" % i, b"v%d" % i] for i in range(big)]}))
    apply(Event("expire", 0, b"h", {"at": 1900000000001}))
    apply(Event("hset", 1, b"\x00h", {"fields": [[b"\xff", b""]]}))
    apply(Event("rpush", 0, b"l", {"elements": [b"%d" % i for i in range(big)]}))
    apply(Event("lpush", 0, b"l", {"elements": [b"head"]}))
    apply(Event("rpush", 2, b"l2", {"elements": [b"x", b"x", b"\x80"]}))
    apply(Event("sadd", 2, b"st", {"members": [b"a", b"b", b"\xfe"]}))
    apply(Event("expire", 2, b"st", {"at": 1900000000002}))
    apply(Event("sadd", 0, b"bigset", {"members": [b"m%d" % i for i in range(big)]}))
    apply(Event("zadd", 0, b"z", {"members": [[b"0.1", b"a"], [b"inf", b"b"], [b"-inf", b"c"],
                                              [b"1e-300", b"d"], [b"3", b"e"], [b"-0", b"f"],
                                              [b"0.30000000000000004", b"g"]]}))
    apply(Event("expire", 0, b"z", {"at": 1900000000003}))
    apply(Event("zadd", 1, b"bigz", {"members": [[b"%d" % (i % 97), b"m%d" % i] for i in range(big)]
                                     + [[b"inf", b"top"], [b"-inf", b"bottom"]]}))
    apply(Event("expire", 1, b"bigz", {"at": 1900000000004}))
    return ks


def test_state_sections_round_trip_every_type(tmp_path):
    ks = every_type_keyspace()
    info = write_state(str(tmp_path), 5, 1, ks)
    assert info.events == ks.key_count()
    fresh = Keyspace()
    assert load_sections(fresh, snapshot.read_sections(info)) == ks.key_count()
    assert dump(fresh) == dump(ks)
    assert fresh.dbs[0].expires[b"z"] == 1900000000003 and list(fresh.dbs[0].data[b"l"])[0] == b"head"
    z = fresh.dbs[0].data[b"z"]
    assert z.scores[b"b"] == float("inf") and z.scores[b"c"] == float("-inf") and z.scores[b"d"] == 1e-300
    assert list(fresh.dbs[0].data[b"h"])[:2] == [b"f0", b"f1"]  # field order kept
    assert b"plain" not in fresh.dbs[3].expires
    # the sections are columnar and carry expires only where a key has one
    secs = list(snapshot.read_sections(info))
    plain = [s for s in secs if s["db"] == 3]
    assert plain == [{"db": 3, "type": "string", "keys": [b"plain", b"\xfe\x00"], "values": [b"v", b""],
                      "expires": [None, 1900000000009]}]
    assert all("expires" not in s for s in secs if s["db"] == 1 and s["type"] == "hash")


def test_big_collections_and_many_keys_span_sections(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshotting, "PART_ITEMS", 301)  # odd: parts must not split pairs
    monkeypatch.setattr(snapshotting, "SECTION_KEYS", 100)
    ks = every_type_keyspace(big=2000)
    for i in range(1050):
        ks.apply(Event("set", 0, b"k%d" % i, {"value": b"v%d" % i, "expire_at": 1900000000000 + i if i % 3 else None}))
    for i in range(250):
        ks.apply(Event("hset", 4, b"h%d" % i, {"fields": [[b"f", b"%d" % i]]}))
    secs = list(state_sections(ks))
    appended = [s for s in secs if s.get("append")]
    assert {s["type"] for s in appended} == {"hash", "list", "set", "zset"}
    assert all(len(s["values"][0]) <= 301 for s in secs if s["type"] != "string" and len(s["keys"]) == 1)
    assert all(len(s["keys"]) <= 100 for s in secs)
    info = write_state(str(tmp_path), 9, 1, ks)
    assert info.events == ks.key_count()
    fresh = Keyspace()
    load_sections(fresh, snapshot.read_sections(info))
    assert dump(fresh) == dump(ks)


def test_unknown_value_type_is_an_error():
    ks = Keyspace()
    ks.dbs[0].data[b"x"] = object()
    with pytest.raises(TypeError, match="no snapshot dumper"):
        list(state_sections(ks))


def test_inspect_cli(tmp_path):
    info = write_state(str(tmp_path), 5, 1, every_type_keyspace())
    out = subprocess.run([sys.executable, "-m", "store", "snapshot", "inspect", "--events", info.path],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "format version: 2" in out.stdout and "checksums:      ok" in out.stdout
    assert "key types:      hash=2, list=2, set=2, string=3, zset=2" in out.stdout
    assert '{"db":0,"key":"s","type":"string","expire_at":1900000000000}' in out.stdout


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
        load_sections(ks, snapshot.read_sections(newest))
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


# ------------------------------------------------------------------ pacing (snapshot-cpu-percent)


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_cpu_pacer_keeps_the_budget():
    from store.snapshotter import CpuPacer

    pacer = CpuPacer(25)
    cpu0, wall0 = time.process_time(), time.monotonic()
    for _ in range(10):
        _burn(0.01)
        pacer.pause_sync()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    # 25 %: wall time at least 4x the CPU time (less sleep when the machine
    # is busy and the burning itself took longer than its CPU time)
    assert pacer.slept > 0 and wall >= 3.9 * cpu
    unpaced = CpuPacer(100)
    _burn(0.01)
    unpaced.pause_sync()
    assert not unpaced.active and unpaced.slept == 0


def test_snapshot_written_back_in_steps_is_valid(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot, "WRITEBACK_BYTES", 4096)
    secs = [{"db": 0, "type": "string", "keys": [b"k%d" % i], "values": [b"x" * 1000]} for i in range(300)]
    info = snapshot.write_snapshot(str(tmp_path), 9, 1, secs)
    assert info.size > 300 * 1000
    assert list(snapshot.read_sections(info)) == secs


def test_paced_snapshot_completes_and_is_correct(tmp_path):
    """A snapshotter held to 10 % of a core still finishes, pauses to keep
    its budget, and what it wrote loads back exactly."""
    srv = FjordProcess(str(tmp_path / "data"),
                       args=("--snapshot-every-events", "0", "--snapshot-cpu-percent", "10")).start()
    try:
        c = srv.client()
        assert c.config_get("snapshot-cpu-percent") == {"snapshot-cpu-percent": "10"}
        with pytest.raises(redis.ResponseError, match="between 1 and 100"):
            c.config_set("snapshot-cpu-percent", 0)
        fill(c, 2000)
        assert c.save() is True
        info = c.info("persistence")
        assert info["rdb_last_bgsave_status"] == "ok" and info["rdb_changes_since_last_save"] == 0
        out = srv.output()
        assert "paused for the 10% CPU budget" in out
        paused = float(out.rsplit("of it paused for the 10% CPU budget", 1)[0].rsplit("(", 1)[1].split()[0])
        assert paused > 0
        c.config_set("snapshot-cpu-percent", 100)
        c.set("after", "snap")
        assert c.save() is True
        assert "paused for the 100% CPU budget" in srv.output()
        before = all_keys(c)
        srv.restart()  # SIGKILL, then start from the unpaced snapshot
        c = srv.client()
        assert all_keys(c) == before
    finally:
        srv.stop()


def test_snapshotter_child_is_spawned_and_awaited_off_the_loop():
    """``spawn`` (vfork, not uvloop's fork of the whole keyspace) and
    ``wait_exit`` (a pidfd) give the child's exit status under uvloop."""
    import uvloop

    from store.saving import spawn, wait_exit

    async def run() -> tuple[int, int]:
        ticks = 0

        async def tick():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.ensure_future(tick())
        rc = await wait_exit(spawn([sys.executable, "-c", "import time; time.sleep(0.3); raise SystemExit(7)"]))
        ticker.cancel()
        return rc, ticks

    rc, ticks = uvloop.run(run())
    assert rc == 7
    assert ticks >= 5  # the loop kept running while the child did
