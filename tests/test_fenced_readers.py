"""Readers that bypass the materializer honour the same EpochFence rule.

One log, built directly with FileLog + encode_record, holds a writer of
epoch 1, a successor's claim for epoch 2, then a late record of the deposed
epoch-1 writer and a losing claim for epoch 2. ``fjord log`` shows those
two marked as fenced; restore, FJORD.HISTORY and the trigger change feed
leave them out, also when they start reading mid-log (docs/failover.md).
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from store.fencing import claim_event
from streams.events import Event, encode_record
from streams.filelog import FileLog

DEPOSED, LOSING_CLAIM = 4, 5


def build_log(data_dir: str) -> None:
    def rec(events, epoch=None):
        return encode_record(1_700_000_000_000, events, epoch=epoch)

    payloads = [
        rec([Event("set", 0, b"a", {"value": b"1"})]),                      # 0: before fencing (epoch 0)
        rec([claim_event(1, "A", "127.0.0.1:1")], epoch=1),                 # 1: A claims 1
        rec([Event("set", 0, b"a", {"value": b"2"})], epoch=1),             # 2
        rec([claim_event(2, "B", "127.0.0.1:2")], epoch=2),                 # 3: B claims 2
        rec([Event("set", 0, b"a", {"value": b"3"})], epoch=1),             # 4: deposed A, too late
        rec([claim_event(2, "C", "127.0.0.1:3")], epoch=2),                 # 5: C loses the race for 2
        rec([Event("set", 0, b"b", {"value": b"x"})], epoch=2),             # 6
    ]

    async def go():
        log = await FileLog.open(os.path.join(data_dir, "log"))
        await log.append(payloads)
        await log.close()

    os.makedirs(data_dir)
    asyncio.run(go())


@pytest.fixture
def fenced_dir(tmp_path) -> str:
    d = str(tmp_path / "data")
    build_log(d)
    return d


def test_fjord_log_marks_fenced_records_even_mid_log(fenced_dir, capsys):
    from store import logcli

    asyncio.run(logcli.read(fenced_dir, 0, None, True))
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["offset"] for d in docs if d.get("fenced")] == [DEPOSED, LOSING_CLAIM]
    assert docs[2]["epoch"] == 1  # --json keeps the record's epoch

    # from offset 4 on, the fence must know epoch 2 from the records before
    asyncio.run(logcli.read(fenced_dir, DEPOSED, None, False))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("4 ") and lines[0].endswith(" [fenced]")
    assert lines[1].endswith(" [fenced]") and not lines[2].endswith(" [fenced]")

    asyncio.run(logcli.history(fenced_dir, b"a", 0, 10, False))
    lines = capsys.readouterr().out.splitlines()
    assert [ln.endswith(" [fenced]") for ln in lines] == [False, False, True]


def test_restore_skips_the_deposed_writers_records(fenced_dir, tmp_path):
    from store.keyspace import Keyspace
    from store.restore import restore
    from store.snapshotter import load_latest
    from store.snapshotting import load_types

    target = str(tmp_path / "restored")
    asyncio.run(restore(fenced_dir, target, to_offset=7, progress=False))
    load_types()
    ks = Keyspace(16)
    asyncio.run(load_latest(ks, os.path.join(target, "snapshots"), 7))
    data = ks.dbs[0].data
    assert bytes(data[b"a"]) == b"2" and bytes(data[b"b"]) == b"x"


def test_change_feed_started_mid_log_skips_the_deposed_record(fenced_dir):
    from triggers.changefeed import ChangeFeed

    async def go(start):
        log = await FileLog.open(os.path.join(fenced_dir, "log"), readonly=True)
        try:
            feed = ChangeFeed(log, start)
            return [(c.offset, c.event.key) async for c in feed.changes(stop_at=7) if c.event.key]
        finally:
            await log.close()

    assert asyncio.run(go(DEPOSED)) == [(6, b"b")]
    assert asyncio.run(go(0)) == [(0, b"a"), (2, b"a"), (6, b"b")]


def test_fjord_history_command_leaves_out_fenced_records(fenced_dir, tmp_path):
    from conftest import FjordProcess

    srv = FjordProcess(fenced_dir).start()
    try:
        c = srv.client()
        assert c.get("a") == b"2"  # replay agrees
        got = c.execute_command("FJORD.HISTORY", "a")
        assert [e[0] for e in got] == [2, 0]
    finally:
        srv.stop()
