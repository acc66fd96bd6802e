"""Damaged logs: a torn or damaged last record is dropped with a warning; a
damaged record with valid records after it stops start-up unless --repair.

Checked twice: on ``FileLog`` directly, and on a real ``fjord serve``
process killed with SIGKILL whose log file is then damaged on disk.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import struct

import pytest

from streams import segment
from streams.events import Event, decode_record, encode_record
from streams.filelog import FileLog
from streams.log import LogCorruptError
from streams.materializer import Materializer

FIRST_SEGMENT = "00000000000000000000.log"


def frames(path: str) -> list[tuple[int, int, int, bytes]]:
    """(offset, start byte, end byte, payload) of every frame in a segment."""
    data = open(path, "rb").read()
    out, pos = [], 0
    while pos < len(data):
        offset, payload, end = segment.parse(data, pos)
        out.append((offset, pos, end, payload))
        pos = end
    return out


def flip_byte(path: str, pos: int) -> None:
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x55]))


def truncate(path: str, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


def payload(i: int) -> bytes:
    return encode_record(i, [Event("set", 0, b"key:%d" % i, {"value": b"value %d" % i})])


async def make_log(d: str, n: int, **kw) -> None:
    lg = await FileLog.open(d, **kw)
    for i in range(n):
        await lg.append([payload(i)])
    await lg.close()


async def offsets(lg) -> list[int]:
    return [r.offset async for r in lg.read(0)]


class Keys:
    def __init__(self) -> None:
        self.keys: list[bytes] = []

    def apply(self, event: Event) -> None:
        self.keys.append(event.key)


# ================================================================ log level


@pytest.mark.parametrize("damage", ["cut half", "flip payload byte", "flip header byte", "zero tail"])
async def test_damaged_last_record_is_dropped_with_a_warning(tmp_path, caplog, damage):
    d = str(tmp_path / "log")
    await make_log(d, 10)
    path = os.path.join(d, FIRST_SEGMENT)
    size = os.path.getsize(path)
    _, start, end, _ = frames(path)[-1]
    if damage == "cut half":
        truncate(path, start + (end - start) // 2)
    elif damage == "flip payload byte":
        flip_byte(path, end - 3)
    elif damage == "flip header byte":
        flip_byte(path, start + 6)  # inside the CRC
    else:  # the file grew but the data never landed: zeros
        with open(path, "ab") as f:
            f.write(b"\x00" * 300)
        start, size = end, size + 300
    dropped = os.path.getsize(path) - start
    caplog.set_level(logging.WARNING, logger="fjord.log")
    lg = await FileLog.open(d)
    try:
        assert lg.end_offset == (10 if damage == "zero tail" else 9)
        assert await offsets(lg) == list(range(lg.end_offset))
        assert os.path.getsize(path) == start
        assert lg.dropped_tail_bytes == dropped
        assert lg.stats()["log_dropped_tail_bytes"] == dropped
        assert f"dropped {dropped} bytes" in caplog.text
        assert f"the log now ends at offset {lg.end_offset}" in caplog.text
        # the log goes on from there, and stays clean
        n = lg.end_offset
        assert await lg.append([payload(n)]) == n
    finally:
        await lg.close()
    caplog.clear()
    lg = await FileLog.open(d)
    assert lg.dropped_tail_bytes == 0 and "dropped" not in caplog.text
    await lg.close()


async def test_only_the_last_record_damaged_leaves_an_empty_log_if_it_was_the_first(tmp_path):
    d = str(tmp_path / "log")
    await make_log(d, 1)
    path = os.path.join(d, FIRST_SEGMENT)
    truncate(path, 10)  # inside the header
    lg = await FileLog.open(d)
    assert lg.end_offset == 0 and lg.dropped_tail_bytes == 10
    await lg.close()


@pytest.mark.parametrize("damage", ["flip payload byte", "cut out bytes", "bad magic"])
async def test_damaged_middle_record_refuses_to_open(tmp_path, damage):
    d = str(tmp_path / "log")
    await make_log(d, 10)
    path = os.path.join(d, FIRST_SEGMENT)
    _, start, end, _ = frames(path)[4]
    if damage == "flip payload byte":
        flip_byte(path, end - 5)
    elif damage == "bad magic":
        flip_byte(path, start)
    else:
        data = open(path, "rb").read()
        open(path, "wb").write(data[: start + 20] + data[start + 25:])
    size = os.path.getsize(path)
    with pytest.raises(LogCorruptError) as info:
        await FileLog.open(d)
    msg = str(info.value)
    assert f"corrupt at byte {start} (offset 4:" in msg
    assert "valid records follow" in msg and "--repair" in msg
    assert os.path.getsize(path) == size  # nothing touched without --repair


async def test_repair_truncates_at_a_damaged_middle_record(tmp_path, caplog):
    d = str(tmp_path / "log")
    await make_log(d, 10)
    path = os.path.join(d, FIRST_SEGMENT)
    _, start, end, _ = frames(path)[4]
    flip_byte(path, end - 5)
    caplog.set_level(logging.WARNING, logger="fjord.log")
    lg = await FileLog.open(d, repair=True)
    try:
        assert lg.end_offset == 4
        assert await offsets(lg) == [0, 1, 2, 3]
        assert os.path.getsize(path) == start
        assert "REPAIR" in caplog.text and "truncating the log at offset 4" in caplog.text
        assert [r.levelname for r in caplog.records if "REPAIR" in r.message] == ["ERROR"]
        assert await lg.append([payload(4)]) == 4
    finally:
        await lg.close()


SMALL = {"segment_bytes": 4096, "index_interval": 512}


async def closed_segments_log(tmp_path) -> tuple[str, list[str]]:
    d = str(tmp_path / "log")
    await make_log(d, 300, **SMALL)
    segs = sorted(n for n in os.listdir(d) if n.endswith(".log"))
    assert len(segs) >= 4
    return d, [os.path.join(d, n) for n in segs]


async def test_damage_in_a_closed_segment_is_caught_at_replay(tmp_path):
    d, segs = await closed_segments_log(tmp_path)
    offset, start, end, _ = frames(segs[1])[1]  # before the segment's last index entry
    flip_byte(segs[1], end - 2)
    lg = await FileLog.open(d, **SMALL)  # closed segments: only the tail is checked at open
    try:
        with pytest.raises(LogCorruptError, match=rf"{re.escape(segs[1])} is corrupt at byte {start} "
                                                  rf"\(offset {offset}: checksum mismatch\).*--repair"):
            await Materializer(lg, Keys()).catch_up()
    finally:
        await lg.close()
    lg = await FileLog.open(d, **SMALL, repair=True)
    try:
        assert lg.end_offset == offset
        keys = Keys()
        await Materializer(lg, keys).catch_up()
        assert keys.keys == [b"key:%d" % i for i in range(offset)]
        assert sorted(os.listdir(d)) == sorted(
            [os.path.basename(s) for s in segs[:2]] + ["LOCK", os.path.basename(segs[0])[:-4] + ".index"]
        )
        assert await lg.append([payload(offset)]) == offset
    finally:
        await lg.close()


@pytest.mark.parametrize("damage", ["cut last record", "cut at a record boundary", "missing segment"])
async def test_a_closed_segment_that_ends_early_refuses_to_open(tmp_path, damage):
    d, segs = await closed_segments_log(tmp_path)
    last = frames(segs[1])[-1]
    if damage == "cut last record":
        truncate(segs[1], last[2] - 3)
    elif damage == "cut at a record boundary":
        truncate(segs[1], last[1])  # every frame left is valid, one record is gone
    else:
        os.unlink(segs[2])
    with pytest.raises(LogCorruptError, match=r"offset \d+.*--repair"):
        await FileLog.open(d, **SMALL)
    lg = await FileLog.open(d, **SMALL, repair=True)
    try:
        n = lg.end_offset
        assert n == (last[0] + 1 if damage == "missing segment" else last[0])
        assert await offsets(lg) == list(range(n))
    finally:
        await lg.close()


# ============================================================= server level


def write_keys(server, n: int, prefix: str = "k") -> None:
    r = server.client()
    for i in range(n):
        assert r.set(f"{prefix}{i}", f"value-{i}-" + "x" * 40) is True
    r.close()


def key_of(record_payload: bytes, offset: int) -> bytes:
    (event,) = decode_record(offset, record_payload).events
    assert event.type == "set"
    return event.key


def run_to_exit(server, *extra: str, timeout: float = 20) -> tuple[int, str]:
    """Start ``server`` expecting it to refuse; return (exit code, its output)."""
    before = len(server.output()) if os.path.exists(server.log_path) else 0
    server.args.extend(extra)
    server.start(wait=False)
    rc = server.proc.wait(timeout=timeout)
    server.logfile.close()
    for a in extra:
        server.args.remove(a)
    return rc, server.output()[before:]


def start_and_output(server, *extra: str) -> str:
    before = len(server.output())
    server.args.extend(extra)
    server.start()
    for a in extra:
        server.args.remove(a)
    return server.output()[before:]


def test_server_drops_a_damaged_last_record_after_sigkill(new_fjord):
    s = new_fjord()
    write_keys(s, 20)
    s.kill()
    path = os.path.join(s.data_dir, "log", FIRST_SEGMENT)
    recs = frames(path)
    offset, start, end, last_payload = recs[-1]
    assert key_of(last_payload, offset) == b"k19"
    truncate(path, start + (end - start) // 2)
    out = start_and_output(s)
    dropped = (end - start) // 2
    assert f"dropped {dropped} bytes" in out and "WARNING" in out
    r = s.client()
    assert r.dbsize() == 19
    assert r.get("k18") == b"value-18-" + b"x" * 40
    assert r.get("k19") is None
    assert r.set("k19", "again") is True  # and writes go on
    s.kill()
    s.start()
    assert s.client().get("k19") == b"again"


def test_server_refuses_a_damaged_middle_record_unless_repair(new_fjord):
    s = new_fjord()
    write_keys(s, 20)
    s.kill()
    path = os.path.join(s.data_dir, "log", FIRST_SEGMENT)
    offset, start, end, bad_payload = frames(path)[10]
    assert key_of(bad_payload, offset) == b"k10"
    flip_byte(path, end - 4)
    size = os.path.getsize(path)
    rc, out = run_to_exit(s)
    assert rc == 1
    assert f"is corrupt at byte {start} (offset {offset}: checksum mismatch)" in out
    assert "refusing to start" in out and "--repair" in out
    assert "Traceback" not in out
    assert os.path.getsize(path) == size
    out = start_and_output(s, "--repair")
    assert "REPAIR" in out and f"truncating the log at offset {offset}" in out
    r = s.client()
    assert sorted(r.keys()) == sorted(b"k%d" % i for i in range(10))
    assert os.path.getsize(path) == start
    s.kill()
    s.start()  # repaired for good: starts without --repair
    assert s.client().dbsize() == 10


def index_entries(segment_path: str) -> list[tuple[int, int]]:
    raw = open(segment_path[:-4] + ".index", "rb").read()
    return list(struct.iter_unpack(">QQ", raw[:-4]))


@pytest.mark.parametrize("where", ["early: caught at replay", "last record: caught at open"])
def test_server_stops_at_damage_in_a_closed_segment(new_fjord, where):
    s = new_fjord("--log-segment-bytes", "4096")
    r = s.client()
    for batch in range(4):  # pipelines make big batches: segments get several index entries
        pipe = r.pipeline(transaction=False)
        for i in range(batch * 100, batch * 100 + 100):
            pipe.set(f"k{i}", f"value-{i}-" + "x" * 40)
        pipe.execute()
    r.close()
    s.kill()
    logdir = os.path.join(s.data_dir, "log")
    segs = sorted(os.path.join(logdir, n) for n in os.listdir(logdir) if n.endswith(".log"))
    assert len(segs) >= 3
    recs = frames(segs[0])
    if where.startswith("early"):
        # before the last index entry: open checks only from there on
        entries = index_entries(segs[0])
        assert len(entries) >= 2, entries
        offset, start, end, bad_payload = recs[len(recs) // 4]
        assert end < entries[-1][1]
    else:
        offset, start, end, bad_payload = recs[-1]
    bad_key = key_of(bad_payload, offset)
    flip_byte(segs[0], end - 4)
    rc, out = run_to_exit(s)
    assert rc == 1
    assert f"{segs[0]} is corrupt at byte {start} (offset {offset}: checksum mismatch)" in out
    assert f"--repair to truncate the log at offset {offset}" in out
    assert "Traceback" not in out
    out = start_and_output(s, "--repair")
    assert "REPAIR" in out and f"deleting {len(segs) - 1} later segment(s)" in out
    r = s.client()
    assert r.dbsize() == offset
    assert r.get(bad_key) is None
    assert r.get(b"k%d" % (offset - 1)) is not None


def test_server_refuses_a_record_of_an_unknown_schema_version(new_fjord):
    s = new_fjord(start=False)

    async def write() -> None:
        lg = await FileLog.open(os.path.join(s.data_dir, "log"))
        await lg.append([payload(0), b'{"v":99,"time":0,"events":[]}'])
        await lg.close()

    asyncio.run(write())
    rc, out = run_to_exit(s)
    assert rc == 1
    assert "record at offset 1 has unknown schema version 99" in out and "Traceback" not in out
