"""The ``Log`` contract, written once and run against every backend.

Each backend joins by adding a factory to ``BACKENDS``: something that can
``open()`` a fresh log and ``reopen()`` it (close, then open the same log
again). ``small_segments`` asks for a configuration that spreads a few
hundred small records over many segments, where the backend has segments.
"""

from __future__ import annotations

import asyncio

import pytest

from streams.events import Event, Record, encode_record
from streams.filelog import FileLog
from streams.kafkalog import KafkaLog
from streams.log import Log
from streams.memlog import MemoryLog

from kafkakit import unique_topic


class FileLogFactory:
    def __init__(self, tmp_path):
        self.dir = str(tmp_path / "log")
        self.kwargs: dict = {}

    async def open(self, small_segments: bool = False) -> Log:
        if small_segments:
            self.kwargs = {"segment_bytes": 4096, "index_interval": 512}
        return await FileLog.open(self.dir, **self.kwargs)

    async def reopen(self, log: Log) -> Log:
        await log.close()
        return await FileLog.open(self.dir, **self.kwargs)

    def segments(self, log: Log) -> int:
        return log.stats()["log_segments"]


class MemoryLogFactory:
    """A memory log lives as long as its object: reopening hands it back."""

    def __init__(self, tmp_path):
        pass

    async def open(self, small_segments: bool = False) -> Log:
        return MemoryLog()

    async def reopen(self, log: Log) -> Log:
        await log.close()
        return log

    def segments(self, log: Log) -> int | None:
        return None


class KafkaLogFactory:
    """A fresh topic per test on the session's Tansu broker (tests/kafkakit.py)."""

    def __init__(self, tmp_path, broker):
        self.bootstrap = broker.bootstrap
        self.topic = unique_topic()

    async def open(self, small_segments: bool = False) -> Log:
        return await KafkaLog.open(self.bootstrap, self.topic)

    async def reopen(self, log: Log) -> Log:
        await log.close()
        return await KafkaLog.open(self.bootstrap, self.topic)

    def segments(self, log: Log) -> int | None:
        return None


BACKENDS = {"file": FileLogFactory, "memory": MemoryLogFactory, "kafka": KafkaLogFactory}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request, tmp_path):
    if request.param == "kafka":
        return KafkaLogFactory(tmp_path, request.getfixturevalue("broker"))
    return BACKENDS[request.param](tmp_path)


@pytest.fixture
async def log(backend):
    lg = await backend.open()
    yield lg
    await lg.close()


def event_for(i: int) -> Event:
    # keys and values that are not all UTF-8, so the codec is exercised too
    return Event("set", i % 16, b"key:%d" % i, {"value": b"\xff" + str(i).encode(), "n": i})


def payload_for(i: int, extra: bytes = b"") -> bytes:
    ev = event_for(i)
    if extra:
        ev = ev._replace(data={**ev.data, "pad": extra})
    return encode_record(1_700_000_000_000 + i, [ev])


async def append_n(lg: Log, start: int, n: int, batch: int = 7) -> None:
    i = start
    while i < start + n:
        k = min(batch, start + n - i)
        first = await lg.append([payload_for(j) for j in range(i, i + k)])
        assert first == i
        i += k


async def read_all(lg: Log, start: int = 0, end: int | None = None) -> list[Record]:
    return [r async for r in lg.read(start, end)]


def check(records: list[Record], offsets) -> None:
    offsets = list(offsets)
    assert [r.offset for r in records] == offsets
    for r in records:
        assert r.events == [event_for(r.offset)]
        assert r.time_ms == 1_700_000_000_000 + r.offset


# ------------------------------------------------------------------ tests


async def test_new_log_is_empty(log):
    assert log.start_offset == 0 and log.end_offset == 0
    assert await read_all(log) == []


async def test_append_returns_consecutive_offsets(log):
    assert await log.append([payload_for(0)]) == 0
    assert await log.append([payload_for(1), payload_for(2), payload_for(3)]) == 1
    assert await log.append([]) == 4  # an empty batch takes no offset
    assert await log.append([payload_for(4)]) == 4
    assert log.end_offset == 5


async def test_overlapping_appends_get_distinct_consecutive_offsets(log):
    batches = [[payload_for(0)] * 3, [payload_for(0)] * 1, [payload_for(0)] * 5, [payload_for(0)] * 2]
    firsts = await asyncio.gather(*(log.append(b) for b in batches))
    spans = sorted((f, f + len(b)) for f, b in zip(firsts, batches))
    assert spans[0][0] == 0
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert log.end_offset == spans[-1][1] == 11


async def test_read_returns_exactly_the_records_in_order(log):
    await append_n(log, 0, 50)
    check(await read_all(log), range(50))
    check(await read_all(log, 0, 50), range(50))
    check(await read_all(log, 10, 20), range(10, 20))
    check(await read_all(log, 49), [49])
    check(await read_all(log, 17, 18), [17])
    assert await read_all(log, 20, 20) == []
    assert await read_all(log, 50) == []


async def test_read_end_defaults_to_end_offset_and_is_clamped_to_it(log):
    await append_n(log, 0, 5)
    check(await read_all(log, 2, 1000), range(2, 5))


async def test_end_offset_moves_only_once_durable(log):
    await append_n(log, 0, 3)
    assert log.end_offset == 3
    first = await log.append([payload_for(3), payload_for(4)], sync=False)
    assert first == 3
    assert log.end_offset == 3  # written, not yet durable: invisible
    check(await read_all(log), range(3))
    assert await log.wait_for(3, timeout=0.01) is False
    await log.sync()
    assert log.end_offset == 5
    check(await read_all(log), range(5))
    await log.sync()  # nothing to do: idempotent
    assert log.end_offset == 5


async def test_unsynced_records_become_durable_with_the_next_synced_append(log):
    assert await log.append([payload_for(0)], sync=False) == 0
    assert await log.append([payload_for(1)]) == 1
    assert log.end_offset == 2
    check(await read_all(log), range(2))


async def test_wait_for_wakes_a_tailing_reader(log):
    seen: list[int] = []

    async def tail(upto: int) -> None:
        pos = 0
        while pos < upto:
            async for rec in log.read(pos):
                seen.append(rec.offset)
                pos = rec.offset + 1
            if pos < upto:
                assert await log.wait_for(pos, timeout=5)

    task = asyncio.create_task(tail(6))
    await asyncio.sleep(0.01)
    assert seen == [] and not task.done()
    await append_n(log, 0, 2)
    await asyncio.sleep(0.01)
    assert seen == [0, 1]
    await log.append([payload_for(2)], sync=False)
    await asyncio.sleep(0.01)
    assert seen == [0, 1]  # not durable, not seen
    await log.sync()
    await append_n(log, 3, 3)
    await asyncio.wait_for(task, 5)
    assert seen == list(range(6))


async def test_wait_for_returns_at_once_or_times_out(log):
    await append_n(log, 0, 2)
    assert await log.wait_for(1, timeout=0) is True
    assert await log.wait_for(2, timeout=0.02) is False
    waiter = asyncio.create_task(log.wait_for(2, timeout=5))
    await asyncio.sleep(0)
    await log.append([payload_for(2)])
    assert await waiter is True


async def test_large_records(backend):
    big1 = b"a" * ((1 << 20) + 3)  # just over 1 MiB
    big4 = bytes(range(256)) * ((4 << 20) // 256 + 5)  # over 4 MiB, not UTF-8
    lg = await backend.open()
    try:
        first = await lg.append([payload_for(0), payload_for(1, big1), payload_for(2)])
        assert first == 0
        await lg.append([payload_for(3, big4)])
        await lg.append([payload_for(4)])
        records = await read_all(lg)
        assert [r.offset for r in records] == [0, 1, 2, 3, 4]
        assert records[1].events[0].data["pad"] == big1
        assert records[3].events[0].data["pad"] == big4
        # from every offset: a small record followed by a big one must not
        # end the read early
        for start in range(5):
            assert [r.offset for r in await read_all(lg, start)] == list(range(start, 5))
            assert [r.offset for r in await read_all(lg, start, start + 1)] == [start]
        lg = await backend.reopen(lg)
        assert [r.events[0].data.get("pad") for r in await read_all(lg)] == [None, big1, None, big4, None]
    finally:
        await lg.close()


async def test_many_small_records_across_segments_read_from_every_offset(backend):
    lg = await backend.open(small_segments=True)
    try:
        n = 600
        await append_n(lg, 0, n, batch=5)
        segments = backend.segments(lg)
        assert segments is None or segments >= 5
        check(await read_all(lg), range(n))
        for start in range(n):
            check(await read_all(lg, start, start + 3), range(start, min(start + 3, n)))
        check(await read_all(lg, 123), range(123, n))
        lg = await backend.reopen(lg)
        assert lg.end_offset == n
        for start in range(0, n, 7):
            check(await read_all(lg, start, start + 2), range(start, min(start + 2, n)))
        await append_n(lg, n, 20)
        check(await read_all(lg, n - 5), range(n - 5, n + 20))
    finally:
        await lg.close()


async def test_reopen_preserves_everything(backend):
    lg = await backend.open()
    try:
        await append_n(lg, 0, 30)
        await lg.append([payload_for(30)], sync=False)  # close makes it durable
        lg = await backend.reopen(lg)
        assert lg.start_offset == 0 and lg.end_offset == 31
        check(await read_all(lg), range(31))
        assert await lg.append([payload_for(31)]) == 31
        lg = await backend.reopen(lg)
        check(await read_all(lg), range(32))
    finally:
        await lg.close()
