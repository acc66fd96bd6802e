"""KafkaLog beyond the shared contract (tests/test_log_contract.py runs that):
the end offset from the high-water mark, tailing from another client,
duplicates from produce retries, and a broker that stops answering.
All against a real broker (Tansu, tests/kafkakit.py)."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer

from kafkakit import unique_topic
from streams.events import Event, encode_record
from streams.kafkalog import KafkaLog, topic_for
from streams.log import LogWriteError
from streams.materializer import Materializer
from streams.tailcache import TailCache


def payload(i: int) -> bytes:
    return encode_record(1_700_000_000_000 + i, [Event("rpush", 0, b"list", {"values": [b"%d" % i]})])


class ListTarget:
    """Collects applied events, to count how often each one was applied."""

    def __init__(self):
        self.values: list[bytes] = []

    def apply(self, event: Event) -> None:
        self.values.extend(event.data["values"])


def test_tail_cache_holds_contiguous_acknowledged_records_only():
    cache = TailCache(max_bytes=10)
    cache.expected = 5
    cache.add([5, 7], [[b"a", b"b"], [b"c"]])
    assert cache.covers(5, 8) and cache.slice(6, 8) == [(6, b"b"), (7, b"c")]
    assert not cache.covers(4, 6)
    # a batch landing past where it should (its retried first copy sits
    # below): not cached, and the cache empties
    cache.add([10], [[b"d"]])
    assert not cache.covers(10, 11) and not cache.covers(5, 6)
    cache.add([11], [[b"e"]])
    assert cache.slice(11, 12) == [(11, b"e")]
    # the memory bound drops the oldest
    cache.add([12], [[b"0123456789"]])
    assert not cache.covers(11, 12) and cache.covers(12, 13)


def test_topic_naming_scheme():
    assert topic_for() == "fjord.default.log"
    assert topic_for("shop") == "fjord.shop.log"


async def test_end_offset_is_the_high_water_mark_after_multi_record_batches(broker):
    topic = unique_topic()
    lg = await KafkaLog.open(broker.bootstrap, topic)
    try:
        assert await lg.append([payload(i) for i in range(5)]) == 0
        assert await lg.append([payload(i) for i in range(5, 12)]) == 5
    finally:
        await lg.close()
    # a fresh client knows only what the broker says (Tansu's ListOffsets
    # answers short here; the fetch's high-water mark does not)
    lg = await KafkaLog.open(broker.bootstrap, topic)
    try:
        assert (lg.start_offset, lg.end_offset) == (0, 12)
        assert [r.offset for r in [r async for r in lg.read(0)]] == list(range(12))
        assert await lg.append([payload(12)]) == 12
    finally:
        await lg.close()


async def test_another_client_tails_the_writers_appends(broker):
    topic = unique_topic()
    writer = await KafkaLog.open(broker.bootstrap, topic)
    reader = await KafkaLog.open(broker.bootstrap, topic)
    try:
        target = ListTarget()
        mat = Materializer(reader, target)

        async def follow(upto: int) -> None:
            while mat.offset < upto:
                await mat.catch_up()
                if mat.offset < upto:
                    assert await reader.wait_for(mat.offset, timeout=5)

        task = asyncio.create_task(follow(30))
        for i in range(0, 30, 3):
            await writer.append([payload(i), payload(i + 1), payload(i + 2)])
            await asyncio.sleep(0.005)
        t0 = time.monotonic()
        await asyncio.wait_for(task, 10)
        assert time.monotonic() - t0 < 2
        assert target.values == [b"%d" % i for i in range(30)]
        assert reader.end_offset == writer.end_offset == 30
    finally:
        await writer.close()
        await reader.close()


async def test_a_record_stored_twice_by_a_retry_applies_once(broker):
    topic = unique_topic()
    lg = await KafkaLog.open(broker.bootstrap, topic)
    raw = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    await raw.start()
    try:
        await lg.append([payload(0), payload(1)])
        # what a retry after a lost acknowledgement leaves behind: the same
        # message (same writer key) once more, then the writer carries on
        key = f"{lg.writer_id}:2".encode()
        await raw.send_and_wait(topic, payload(1), key=key, partition=0)
        await lg.refresh()
        assert lg.end_offset == 3
        lg._seq = 2  # the writer's next sequence follows the retried one
        assert await lg.append([payload(2)]) == 3
        # a fresh reader (no tail cache) sees four offsets, three effects
        reader = await KafkaLog.open(broker.bootstrap, topic)
        try:
            records = [r async for r in reader.read(0)]
            assert [r.offset for r in records] == [0, 1, 2, 3]
            assert records[2].events == []
            # a tailing reader meets the copy in a later read than the original
            target = ListTarget()
            mat = Materializer(reader, target)
            await mat.catch_up(2)
            await mat.catch_up()
            assert target.values == [b"0", b"1", b"2"]
            assert reader.duplicates_skipped == 2
        finally:
            await reader.close()
    finally:
        await raw.stop()
        await lg.close()


async def test_a_stopped_broker_fails_the_append_in_bounded_time_then_recovers(broker):
    topic = unique_topic()
    lg = await KafkaLog.open(broker.bootstrap, topic, produce_timeout_ms=600)
    try:
        await lg.append([payload(0)])
        broker.pause()
        try:
            t0 = time.monotonic()
            with pytest.raises(LogWriteError, match="did not acknowledge within 600 ms"):
                await lg.append([payload(1)])
            assert time.monotonic() - t0 < 1.5
            assert lg.end_offset == 1  # nothing of the failed batch counts
            # the broker stays away: sync() gives up in bounded time, and
            # what was acknowledged can still be read (the writer rebuilds
            # from it and keeps serving reads)
            t0 = time.monotonic()
            await lg.sync()
            assert time.monotonic() - t0 < 4
            assert lg.end_offset == 1
            assert [r.offset async for r in lg.read(0)] == [0]
            with pytest.raises(LogWriteError):  # no write until the broker answers
                await lg.append([payload(9)])
        finally:
            broker.resume()
        # sync() after a failure waits for the truth: the timed-out record
        # may or may not have landed, and end_offset says which
        await asyncio.wait_for(lg.sync(), 30)
        assert lg.end_offset in (1, 2)
        landed = lg.end_offset
        first = await asyncio.wait_for(lg.append([payload(2)]), 30)
        assert first == landed
        reader = await KafkaLog.open(broker.bootstrap, topic)
        try:
            assert reader.end_offset == landed + 1
            target = ListTarget()
            await Materializer(reader, target).catch_up()
            assert target.values[0] == b"0" and target.values[-1] == b"2"
        finally:
            await reader.close()
    finally:
        broker.resume()
        await lg.close()
