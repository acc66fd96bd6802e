"""FileLog specifics (segments, index files, LOCK, failed writes) and the
GroupCommitter that batches appends onto any Log."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import struct
import time
import zlib

import pytest
from conftest import FjordProcess

from streams import segment
from streams.commit import GroupCommitter
from streams.events import Event, encode_record
from streams.filelog import FileLog
from streams.log import LogError, LogWriteError
from streams.memlog import MemoryLog


def payload(i: int, pad: int = 0) -> bytes:
    return encode_record(i, [Event("set", 0, b"k%d" % i, {"value": b"v" * pad})])


async def offsets(lg, start: int = 0, end: int | None = None) -> list[int]:
    return [r.offset async for r in lg.read(start, end)]


def segment_files(d: str) -> tuple[list[int], list[int]]:
    names = os.listdir(d)
    logs = sorted(int(n[:-4]) for n in names if n.endswith(".log"))
    indexes = sorted(int(n[:-6]) for n in names if n.endswith(".index"))
    return logs, indexes


def read_index(path: str) -> list[tuple[int, int]]:
    raw = open(path, "rb").read()
    body, crc = raw[:-4], struct.unpack(">I", raw[-4:])[0]
    assert zlib.crc32(body) == crc
    return list(struct.iter_unpack(">QQ", body))


async def fill(d: str, n: int, **kw) -> FileLog:
    lg = await FileLog.open(d, segment_bytes=4096, index_interval=512, **kw)
    for i in range(0, n, 4):
        await lg.append([payload(j, pad=j % 50) for j in range(i, min(i + 4, n))])
    return lg


# ------------------------------------------------------------ segments


async def test_segments_roll_by_size_and_closed_ones_get_an_index(tmp_path):
    d = str(tmp_path / "log")
    lg = await fill(d, 400)
    logs, indexes = segment_files(d)
    assert len(logs) >= 5
    assert logs[0] == 0
    assert indexes == logs[:-1]  # every closed segment, not the active one
    assert lg.stats()["log_segments"] == len(logs)
    for k, base in enumerate(logs[:-1]):
        path = os.path.join(d, f"{base:020d}.log")
        data = open(path, "rb").read()
        # a segment rolls once it reaches segment_bytes, after a whole batch
        assert len(data) >= 4096
        entries = read_index(os.path.join(d, f"{base:020d}.index"))
        assert entries[0] == (base, 0)
        for (o, p), (o2, p2) in zip(entries, entries[1:]):
            assert o2 > o and p2 - p >= 512  # sparse: one entry per ~index_interval bytes
        for o, p in entries:
            assert segment.parse(data, p, o)[0] == o  # each entry points at its frame
        # the segment's last record is the one before the next base
        pos, off = 0, base
        while pos < len(data):
            off, _, pos = segment.parse(data, pos, off)
            off += 1
        assert off == logs[k + 1]
    await lg.close()


async def test_index_written_live_equals_a_rebuilt_one(tmp_path):
    d = str(tmp_path / "log")
    lg = await fill(d, 30)
    await lg.close()  # reopen in the middle of a segment: index spacing must carry over
    lg = await FileLog.open(d, segment_bytes=4096, index_interval=512)
    for i in range(30, 200):
        await lg.append([payload(i, pad=i % 50)])
    await lg.close()
    logs, indexes = segment_files(d)
    live = {b: open(os.path.join(d, f"{b:020d}.index"), "rb").read() for b in indexes}
    for b in indexes:
        os.unlink(os.path.join(d, f"{b:020d}.index"))
    lg = await FileLog.open(d, segment_bytes=4096, index_interval=512)
    await lg.close()
    assert {b: open(os.path.join(d, f"{b:020d}.index"), "rb").read() for b in indexes} == live


async def test_missing_torn_or_stale_index_files_are_rebuilt(tmp_path, caplog):
    d = str(tmp_path / "log")
    lg = await fill(d, 400)
    await lg.close()
    logs, indexes = segment_files(d)
    assert len(indexes) >= 4
    path = [os.path.join(d, f"{b:020d}.index") for b in indexes]
    good = [open(p, "rb").read() for p in path]
    os.unlink(path[0])  # missing
    with open(path[1], "r+b") as f:  # torn: half an entry
        f.truncate(len(good[1]) - 9)
    damaged = bytearray(good[2])  # flipped bit: checksum fails
    damaged[10] ^= 1
    open(path[2], "wb").write(damaged)
    open(path[3], "wb").write(good[0])  # another segment's index: well-formed, wrong
    open(path[-1], "wb").write(b"")  # empty
    caplog.set_level("INFO", logger="fjord.log")
    lg = await FileLog.open(d, segment_bytes=4096, index_interval=512)
    try:
        assert [open(p, "rb").read() for p in path] == good
        assert caplog.text.count("rebuilt the index") == 5
        assert await offsets(lg) == list(range(400))
        for start in range(400):
            assert await offsets(lg, start, start + 2) == list(range(start, min(start + 2, 400)))
    finally:
        await lg.close()


async def test_second_open_of_the_same_directory_is_refused(tmp_path):
    d = str(tmp_path / "log")
    lg = await FileLog.open(d)
    with pytest.raises(LogError, match=r"in use by another process \(its LOCK file is held\)"):
        await FileLog.open(d)
    await lg.append([payload(0)])
    await lg.close()
    lg2 = await FileLog.open(d)  # released on close
    assert lg2.end_offset == 1
    await lg2.close()


async def test_a_failed_open_releases_the_lock(tmp_path):
    d = str(tmp_path / "log")
    lg = await fill(d, 10)
    await lg.close()
    first = os.path.join(d, "00000000000000000000.log")  # the only, active segment
    data = bytearray(open(first, "rb").read())
    data[30] ^= 0xFF  # middle corruption: open fails
    open(first, "wb").write(data)
    for _ in range(2):  # the second attempt fails the same way, not with LOCK
        with pytest.raises(LogError, match="corrupt"):
            await FileLog.open(d, segment_bytes=4096, index_interval=512)


async def test_written_offset_runs_ahead_of_end_offset_without_sync(tmp_path):
    lg = await FileLog.open(str(tmp_path / "log"))
    await lg.append([payload(0)])
    fsyncs = lg.stats()["log_fsyncs"]
    await lg.append([payload(1), payload(2)], sync=False)
    assert (lg.written_offset, lg.end_offset) == (3, 1)
    assert lg.stats()["log_fsyncs"] == fsyncs
    await lg.sync()
    assert (lg.written_offset, lg.end_offset) == (3, 3)
    assert lg.stats()["log_fsyncs"] == fsyncs + 1
    await lg.close()


# ------------------------------------------------------------ failed writes


@pytest.fixture
def file_size_limit():
    """Make writes past a size fail for real (EFBIG) via RLIMIT_FSIZE."""
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    yield lambda n: resource.setrlimit(resource.RLIMIT_FSIZE, (n, old[1]))
    resource.setrlimit(resource.RLIMIT_FSIZE, old)
    signal.signal(signal.SIGXFSZ, old_handler)


async def test_a_failed_write_is_cut_back_and_counts_for_nothing(tmp_path, file_size_limit):
    d = str(tmp_path / "log")
    lg = await FileLog.open(d)
    await lg.append([payload(i) for i in range(3)])
    seg = os.path.join(d, "00000000000000000000.log")
    good_size = os.path.getsize(seg)
    file_size_limit(good_size + 100)  # the batch starts to land, then EFBIG
    with pytest.raises(LogWriteError):
        await lg.append([payload(i, pad=60) for i in range(3, 8)])
    file_size_limit(resource.RLIM_INFINITY)
    assert os.path.getsize(seg) == good_size
    assert (lg.end_offset, lg.written_offset) == (3, 3)
    assert await lg.append([payload(3)]) == 3  # offsets resume where the log is
    assert await offsets(lg) == [0, 1, 2, 3]
    await lg.close()
    lg = await FileLog.open(d)
    assert lg.end_offset == 4 and lg.dropped_tail_bytes == 0
    assert await offsets(lg) == [0, 1, 2, 3]
    await lg.close()


# ------------------------------------------------------------ event loop


async def test_writes_and_fsyncs_stay_off_the_event_loop(tmp_path):
    lg = await FileLog.open(str(tmp_path / "log"))
    big = [b"x" * (4 << 20)] * 2
    max_stall = 0.0
    ticks_during_append = 0
    in_append = False
    running = True

    async def heartbeat():
        nonlocal max_stall, ticks_during_append
        while running:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            max_stall = max(max_stall, time.perf_counter() - t - 0.001)
            ticks_during_append += in_append

    hb = asyncio.create_task(heartbeat())
    await asyncio.sleep(0.01)
    t0 = time.perf_counter()
    for _ in range(6):
        in_append = True
        await lg.append(big)
        in_append = False
    elapsed = time.perf_counter() - t0
    running = False
    await hb
    await lg.close()
    assert lg.fsyncs >= 6
    assert ticks_during_append >= 6, f"the loop did not run during {elapsed:.3f}s of appends"
    assert max_stall < 0.05, f"event loop stalled {max_stall * 1000:.1f} ms"


# ------------------------------------------------------------ group commit


class CountingLog(MemoryLog):
    """A memory log that records the size of every append, and can hold
    appends at a gate to keep one in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.gate: asyncio.Event | None = None
        self.in_flight = 0

    async def append(self, payloads, *, sync=True):
        self.batches.append(len(payloads))
        self.in_flight += 1
        try:
            if self.gate is not None:
                await self.gate.wait()
            return await super().append(payloads, sync=sync)
        finally:
            self.in_flight -= 1


class FailingLog(CountingLog):
    """Appends raise LogWriteError while ``failing`` is set (like a full disk)."""

    failing = False

    async def append(self, payloads, *, sync=True):
        if self.failing:
            self.batches.append(len(payloads))
            if self.gate is not None:
                await self.gate.wait()
            raise LogWriteError("No space left on device")
        return await super().append(payloads, sync=sync)


class Waiter:
    def __init__(self, name: str, journal: list):
        self.name, self.journal = name, journal

    def on_durable(self, seq: int) -> None:
        self.journal.append(("durable", self.name, seq))

    def on_lost(self, seq: int, error: Exception) -> None:
        self.journal.append(("lost", self.name, seq, str(error)))


async def settle(committer: GroupCommitter) -> None:
    while committer._pending or committer._inflight:  # noqa: SLF001 - test of the committer itself
        await asyncio.sleep(0)


async def test_everything_staged_in_one_pass_is_one_append():
    lg = CountingLog()
    gc = GroupCommitter(lg)
    seqs = [gc.stage(payload(i)) for i in range(100)]
    assert seqs == list(range(1, 101))
    assert gc.pending and lg.batches == []  # nothing written inside the pass
    await settle(gc)
    assert lg.batches == [100]
    assert (gc.batches, gc.records, gc.max_batch, gc.durable, gc.last_offset) == (1, 100, 100, 100, 99)
    assert not gc.pending
    assert [r.offset async for r in lg.read(0)] == list(range(100))


async def test_records_staged_during_an_append_form_the_next_batch():
    lg = CountingLog()
    lg.gate = asyncio.Event()
    gc = GroupCommitter(lg)
    gc.stage(payload(0))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert lg.batches == [1] and lg.in_flight == 1
    for i in range(1, 4):  # three more passes while the first append is in flight
        gc.stage(payload(i))
        await asyncio.sleep(0)
    assert lg.batches == [1] and lg.in_flight == 1  # never two appends at once
    lg.gate.set()
    await settle(gc)
    assert lg.batches == [1, 3]
    assert gc.durable == 4 and gc.batches == 2 and gc.max_batch == 3
    assert [r.offset async for r in lg.read(0)] == [0, 1, 2, 3]


async def test_waiters_are_released_in_order_when_their_record_is_durable():
    lg = CountingLog()
    lg.gate = asyncio.Event()
    gc = GroupCommitter(lg)
    journal: list = []
    gc.wait(gc.stage(payload(0)), Waiter("a", journal))
    await asyncio.sleep(0)
    gc.wait(gc.stage(payload(1)), Waiter("b", journal))
    gc.stage(payload(2))
    gc.wait(3, Waiter("c", journal))
    assert journal == []
    lg.gate.set()
    await settle(gc)
    assert journal == [("durable", "a", 1), ("durable", "b", 3), ("durable", "c", 3)]
    gc.wait(2, Waiter("late", journal))  # already durable: told at once
    assert journal[-1] == ("durable", "late", 3)


async def test_a_waiter_that_raises_does_not_hold_the_others():
    class Broken(Waiter):
        def on_durable(self, seq):
            raise RuntimeError("boom")

    lg = CountingLog()
    gc = GroupCommitter(lg)
    journal: list = []
    gc.wait(gc.stage(payload(0)), Broken("x", journal))
    gc.wait(gc.stage(payload(1)), Waiter("y", journal))
    await settle(gc)
    assert journal == [("durable", "y", 2)]
    gc.wait(gc.stage(payload(2)), Waiter("z", journal))
    await settle(gc)
    assert journal[-1] == ("durable", "z", 3)


async def test_a_failed_append_loses_everything_not_durable():
    lg = FailingLog()
    failures: list = []
    gc = GroupCommitter(lg, on_failure=failures.append)
    journal: list = []
    gc.wait(gc.stage(payload(0)), Waiter("ok", journal))
    await settle(gc)
    assert gc.durable == 1
    lg.failing = True
    lg.gate = asyncio.Event()
    gc.wait(gc.stage(payload(1)), Waiter("a", journal))  # in the failing batch
    await asyncio.sleep(0)
    gc.wait(gc.stage(payload(2)), Waiter("b", journal))  # staged while it is in flight
    lg.gate.set()
    await settle(gc)
    assert journal == [
        ("durable", "ok", 1),
        ("lost", "a", 2, "No space left on device"),
        ("lost", "b", 2, "No space left on device"),
    ]
    assert len(failures) == 1 and isinstance(failures[0], LogWriteError)
    assert (gc.staged, gc.durable, gc.pending) == (1, 1, False)
    assert gc.last_error == "No space left on device"
    assert lg.batches == [1, 1]  # record 2 was dropped, never appended
    # the committer carries on once the log works again
    lg.failing = False
    lg.gate = None
    assert gc.stage(payload(1)) == 2
    await settle(gc)
    assert gc.durable == 2
    assert [r.offset async for r in lg.read(0)] == [0, 1]


async def test_a_cancelled_append_counts_as_lost():
    lg = CountingLog()
    lg.gate = asyncio.Event()
    failures: list = []
    gc = GroupCommitter(lg, on_failure=failures.append)
    journal: list = []
    gc.wait(gc.stage(payload(0)), Waiter("a", journal))
    await asyncio.sleep(0)
    gc._task.cancel()  # noqa: SLF001 - e.g. the loop shutting down under it
    await settle(gc)
    assert journal == [("lost", "a", 1, "log append was cancelled")]
    assert len(failures) == 1 and gc.staged == 0


async def test_group_commit_on_a_file_log_with_periodic_fsync(tmp_path):
    lg = await FileLog.open(str(tmp_path / "log"))
    gc = GroupCommitter(lg, sync=False, fsync_interval=0.02)
    for i in range(10):
        gc.stage(payload(i))
    await settle(gc)
    assert lg.written_offset == 10
    assert await lg.wait_for(9, timeout=2)  # the once-per-interval fsync made them durable
    for i in range(10, 15):
        gc.stage(payload(i))
    await gc.close()
    assert lg.end_offset == 15
    await lg.close()


def test_a_second_server_on_the_same_data_dir_exits_with_a_clear_message(new_fjord):
    first = new_fjord()
    second = FjordProcess(first.data_dir)
    second.log_path += ".second"
    second.start(wait=False)
    assert second.proc.wait(timeout=20) == 1
    second.logfile.close()
    assert "is in use by another process (its LOCK file is held)" in second.output()
    assert first.client().ping()
