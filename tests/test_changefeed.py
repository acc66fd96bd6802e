"""The change feed's public reading API (triggers/changefeed.py): whole
records from ``batches()``, events from ``changes()``, images by mode, and
epoch fencing. Over a real in-memory log; no server needed."""

from __future__ import annotations

import asyncio

from streams.events import Event, encode_record
from streams.memlog import MemoryLog
from triggers.changefeed import ChangeFeed


def run(coro):
    return asyncio.run(coro)


async def filled_log() -> MemoryLog:
    log = MemoryLog()
    await log.append([
        encode_record(1, [Event("set", 0, b"a", {"value": b"1", "expire_at": None})]),
        # one MULTI/EXEC: two events, one record
        encode_record(2, [Event("hset", 0, b"h", {"fields": [[b"f", b"v"]]}),
                          Event("set", 0, b"a", {"value": b"\xff", "expire_at": None})]),
        encode_record(3, [Event("del", 0, b"a", {})]),
    ])
    return log


async def collect_batches(feed: ChangeFeed, stop_at: int) -> list:
    out = []
    async for next_offset, changes in feed.batches(stop_at):
        assert feed.position == next_offset
        out.append((next_offset, changes))
    return out


def test_batches_give_whole_records_without_images():
    async def main():
        feed = ChangeFeed(await filled_log(), 0)
        got = await collect_batches(feed, 3)
        assert [(n, [(c.offset, c.index, c.event.type) for c in ch]) for n, ch in got] == [
            (1, [(0, 0, "set")]), (2, [(1, 0, "hset"), (1, 1, "set")]), (3, [(2, 0, "del")])]
        assert feed.shadow is None  # no images asked: no shadow keyspace at all
        assert all(c.old is None and c.new is None for _, ch in got for c in ch)
        assert got[1][1][1].event.data == {"value": b"\xff", "expire_at": None}

    run(main())


def test_json_images_before_and_after_each_event():
    async def main():
        feed = ChangeFeed(await filled_log(), 0, images=True)
        changes = [c async for c in feed.changes(3)]
        assert [(c.old, c.new) for c in changes] == [
            (None, {"type": "string", "value": "1"}),
            (None, {"type": "hash", "value": [["f", "v"]]}),
            ({"type": "string", "value": "1"}, {"type": "string", "value": {"b64": "/w=="}}),
            ({"type": "string", "value": {"b64": "/w=="}}, None),
        ]
        assert feed.position == 3

    run(main())


def test_raw_images_hold_the_shadow_value():
    async def main():
        feed = ChangeFeed(await filled_log(), 0, images="raw")
        got = await collect_batches(feed, 2)
        assert got[0][1][0].new == {"type": "string", "value": b"1"}
        assert got[1][1][0].old is None and got[1][1][0].new["type"] == "hash"

    run(main())


def test_changes_hold_the_position_inside_a_record():
    """A trigger checkpoints ``feed.position``: it must not pass a record
    while only part of its events were taken."""
    async def main():
        feed = ChangeFeed(await filled_log(), 0)
        it = feed.changes(3)
        first = await it.__anext__()
        assert (first.offset, feed.position) == (0, 0)
        second = await it.__anext__()
        assert (second.offset, second.index, feed.position) == (1, 0, 1)
        third = await it.__anext__()
        assert (third.offset, third.index, feed.position) == (1, 1, 1)
        await it.__anext__()
        assert feed.position == 2
        await it.aclose()

    run(main())


def test_batches_skip_a_deposed_writers_records():
    async def main():
        log = MemoryLog()
        await log.append([
            encode_record(1, [Event("set", 0, b"a", {"value": b"old", "expire_at": None})]),
            encode_record(2, [Event("fjord-epoch", None, None, {"epoch": 1})], epoch=1),
            encode_record(3, [Event("set", 0, b"a", {"value": b"deposed", "expire_at": None})]),
            encode_record(4, [Event("set", 0, b"a", {"value": b"new", "expire_at": None})], epoch=1),
        ])
        feed = ChangeFeed(log, 0, images="raw")
        got = await collect_batches(feed, 4)
        assert [n for n, _ in got] == [1, 2, 3, 4]
        assert got[2][1] == []  # epoch 0 after the claim of epoch 1: counts for nobody
        assert feed.shadow.dbs[0].data[b"a"] == b"new"

    run(main())
