"""Materialized views: the fold engine on plain inputs, then a real server
with ``--views`` (FJORD.VIEW, read your writes, write-back, rebuild on a
changed definition, INFO)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
import redis

from streams.events import Event
from streams.views import Change, Count, Field, Index, KeyPart, Latest, Max, Min, Sum, TopN, Value, View
from streams.views.runner import ViewRunner
from streams.views.state import CheckpointStore

# ------------------------------------------------------------------ engine, plain inputs


def _hash(**fields) -> dict:
    return {"type": "hash", "value": [[k, str(v)] for k, v in fields.items()]}


class Feeder:
    """Feeds one change per record to a runner, images given by hand."""

    def __init__(self, runner: ViewRunner):
        self.runner = runner
        self.offset = 0

    def __call__(self, type_: str, key: bytes | None, new: dict | None, db: int = 0, origin=None) -> None:
        ev = Event(type_, db, key, {})
        self.runner.feed(self.offset + 1, [Change(self.offset, 0, 1000 + self.offset, origin, ev, None, new)])
        self.offset += 1


def test_aggregates_retract_old_contributions():
    views = [Count("c", match="order:*", by=Field("status")),
             Sum("s", match="order:*", by=Field("status"), value=Field("amount")),
             Min("lo", match="order:*", by=Field("status"), value=Field("amount")),
             Max("hi", match="order:*", by=KeyPart(0), value=Field("amount"))]
    runners = [ViewRunner(v) for v in views]
    feeders = [Feeder(r) for r in runners]

    def do(*a, **kw):
        for f in feeders:
            f(*a, **kw)

    do("hset", b"order:1", _hash(status="paid", amount=10))
    do("hset", b"order:2", _hash(status="paid", amount=5))
    do("hset", b"order:3", _hash(status="new", amount=7))
    do("hset", b"other:1", _hash(status="paid", amount=1000))       # not matched
    do("hset", b"order:2", _hash(status="new", amount=5))          # moves group
    do("hincrby", b"order:1", _hash(status="paid", amount=30))     # value changes
    do("del", b"order:3", None)
    c, s, lo, hi = runners
    assert c.view.get(c.state, b"paid") == 1 and c.view.get(c.state, b"new") == 1
    assert s.view.get(s.state, b"paid") == 30 and s.view.get(s.state, b"new") == 5
    assert lo.view.get(lo.state, b"new") == 5
    assert hi.view.get(hi.state, b"order") == 30
    do("del", b"order:1", None)
    assert c.view.get(c.state, b"paid") is None       # empty groups disappear
    assert s.view.groups(s.state) == [b"new"]
    do("flushdb", None, None)
    assert c.view.groups(c.state) == [] and hi.view.groups(hi.state) == []


def test_index_topn_latest_and_custom_view():
    idx = ViewRunner(Index("by_customer", match="order:*", field="customer"))
    top = ViewRunner(TopN("top", match="score:*", score=Value(), n=2))
    latest = ViewRunner(Latest("feed", match="*", by=KeyPart(0), n=2))
    fi, ft, fl = Feeder(idx), Feeder(top), Feeder(latest)
    fi("hset", b"order:1", _hash(customer="ann"))
    fi("hset", b"order:2", _hash(customer="ann"))
    fi("hset", b"order:2", _hash(customer="bob"))
    assert idx.view.get(idx.state, b"ann") == [b"order:1"]
    assert idx.view.get(idx.state, b"bob") == [b"order:2"]
    for name, score in ((b"a", 5), (b"b", 9), (b"c", 7), (b"b", 1)):
        ft("set", b"score:" + name, {"type": "string", "value": str(score)})
    assert top.view.get(top.state, b"all") == [[b"score:c", 7], [b"score:a", 5]]
    assert top.view.range(top.state, 0, -1) == [[b"score:c", 7], [b"score:a", 5], [b"score:b", 1]]
    for i in range(3):
        fl("set", b"user:%d" % i, {"type": "string", "value": "x"})
    assert [e[3] for e in latest.view.get(latest.state, b"user")] == [b"user:2", b"user:1"]

    class Chars(View):
        name = "chars"
        match = (b"*",)

        def apply(self, state, change):
            if change.new is not None:
                state[change.event.key] = len(change.new["value"])

    custom = ViewRunner(Chars())
    Feeder(custom)("set", b"k", {"type": "string", "value": "hello"})
    assert custom.view.get(custom.state, b"k") == 5


def test_reserved_prefix_own_origin_and_errors_are_skipped():
    class Boom(View):
        name = "boom"

        def apply(self, state, change):
            if change.event.key == b"bad":
                raise ValueError("no")
            state[change.event.key] = 1

    r = ViewRunner(Boom())
    f = Feeder(r)
    f("set", b"__view:boom:x", {"type": "string", "value": "1"})
    f("set", b"mine", {"type": "string", "value": "1"}, origin="view:boom")
    f("set", b"bad", {"type": "string", "value": "1"})
    f("set", b"good", {"type": "string", "value": "1"})
    assert r.state == {b"good": 1}
    st = r.stats()
    assert st["errors"] == 1 and "ValueError" in st["last_error"] and st["offset"] == 4


def test_checkpoint_restores_state_and_position_and_rebuilds_on_new_definition(tmp_path):
    store = CheckpointStore(str(tmp_path))
    r = ViewRunner(Count("c", match="o:*", by=KeyPart(1)), store)
    f = Feeder(r)
    f("set", b"o:x", {"type": "string", "value": "1"})
    f("set", b"o:y", {"type": "string", "value": "1"})
    store.save(r.checkpoint())
    again = ViewRunner(Count("c", match="o:*", by=KeyPart(1)), store)
    assert again.restored and again.next_offset == 2 and again.view.groups(again.state) == [b"x", b"y"]
    changed = ViewRunner(Count("c", match="o:*", by=KeyPart(0)), store)   # new definition
    assert not changed.restored and changed.next_offset == 0 and changed.rebuild_reason == "definition changed"
    (tmp_path / "c.view").write_bytes(b"garbage")
    assert not ViewRunner(Count("c", match="o:*", by=KeyPart(1)), store).restored


def test_wait_for_offset():
    async def main():
        r = ViewRunner(Count("c"))
        f = Feeder(r)
        assert not await r.wait_for(0, 0.01)
        waiter = asyncio.ensure_future(r.wait_for(1, 2))
        await asyncio.sleep(0)
        f("set", b"a", {"type": "string", "value": "1"})
        await asyncio.sleep(0)
        assert not waiter.done()
        f("set", b"b", {"type": "string", "value": "1"})
        assert await waiter

    asyncio.run(main())


# ------------------------------------------------------------------ a real server

VIEWS_MODULE = '''
from streams.views import Count, Field, Index, Latest, KeyPart, Sum, TopN

by_status = Count("by_status", match="order:*", by=Field("status"), writeback=True)
revenue = Sum("revenue", match="order:*", by=Field("status"), value=Field("amount"))
by_customer = Index("by_customer", match="order:*", field="customer", writeback=True)
top = TopN("top", match="player:*", score=Field("score"), n=3, writeback=True)
feed = Latest("feed", match="order:*", by=KeyPart(0), n=3)
'''


def _map(reply) -> dict:
    """A map reply as a dict, RESP2 (flat array) or RESP3."""
    return reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2]))


@pytest.fixture
def viewserver(new_fjord, tmp_path):
    path = tmp_path / "myviews.py"
    path.write_text(VIEWS_MODULE)
    srv = new_fjord("--views", str(path), "--triggers", "no")
    yield srv
    srv.stop()


def test_fjord_view_commands(viewserver):
    r = viewserver.client()
    r.hset("order:1", mapping={"status": "paid", "amount": 10, "customer": "ann"})
    r.hset("order:2", mapping={"status": "paid", "amount": 5, "customer": "bob"})
    r.hset("order:3", mapping={"status": "new", "amount": 7, "customer": "ann"})
    r.hset("player:a", "score", 3)
    r.hset("player:b", "score", 9)
    off = r.execute_command("FJORD.OFFSET")
    assert off >= 4
    assert r.execute_command("FJORD.VIEW", "LIST") == [b"by_customer", b"by_status", b"feed", b"revenue", b"top"]
    assert r.execute_command("FJORD.VIEW", "GET", "by_status", "paid", "AFTER", off) == 2
    assert r.execute_command("FJORD.VIEW", "GET", "revenue", "paid", "AFTER", off) == 15
    assert r.execute_command("FJORD.VIEW", "GET", "by_customer", "ann", "AFTER", off) == [b"order:1", b"order:3"]
    assert r.execute_command("FJORD.VIEW", "GET", "by_customer", "zed") is None
    assert r.execute_command("FJORD.VIEW", "RANGE", "top", 0, -1, "AFTER", off) == [[b"player:b", 9], [b"player:a", 3]]
    assert r.execute_command("FJORD.VIEW", "RANGE", "by_status", 0, 0) == [[b"new", 1]]
    feed = r.execute_command("FJORD.VIEW", "GET", "feed", "order", "AFTER", off)
    assert [e[3] for e in feed] == [b"order:3", b"order:2", b"order:1"]
    info = _map(r.execute_command("FJORD.VIEW", "INFO", "by_status"))
    assert info[b"state"] == b"running" and info[b"kind"] == b"count" and info[b"errors"] == 0
    # the views' own write-backs are records too (each view skips them): lag drops to 0 once
    # they are read
    deadline = time.monotonic() + 10
    while _map(r.execute_command("FJORD.VIEW", "INFO", "by_status"))[b"lag_events"] != 0:
        assert time.monotonic() < deadline, "by_status never caught up"
        time.sleep(0.02)
    # write-back: ordinary keys under the reserved prefix, and the views did not count them
    assert r.get("__view:by_status:paid") == b"2"
    assert r.smembers("__view:by_customer:ann") == {b"order:1", b"order:3"}
    assert r.zrange("__view:top:all", 0, -1, withscores=True) == [(b"player:a", 3.0), (b"player:b", 9.0)]
    r.hset("order:2", "status", "new")
    off = r.execute_command("FJORD.OFFSET")
    assert r.execute_command("FJORD.VIEW", "GET", "by_status", "new", "AFTER", off) == 2
    for _ in range(50):
        if r.get("__view:by_status:paid") == b"1":
            break
        time.sleep(0.02)
    assert r.get("__view:by_status:paid") == b"1"
    # each view holds the log it still needs against retention
    assert os.path.exists(os.path.join(viewserver.data_dir, "consumers", "view:by_status.json"))
    views_info = r.info("views")
    assert views_info["views"] == 5 and views_info["view_by_status"]["state"] == "running"
    # errors, word for word
    with pytest.raises(redis.ResponseError, match="no such view 'nope'"):
        r.execute_command("FJORD.VIEW", "GET", "nope", "x")
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("FJORD.VIEW", "GET", "by_status", "x", "AFTER")
    with pytest.raises(redis.ResponseError, match="TIMEOUT view 'by_status' has not reached offset 999999"):
        r.execute_command("FJORD.VIEW", "GET", "by_status", "x", "AFTER", 999999, "TIMEOUT", 50)


def test_read_your_writes_across_two_connections(viewserver):
    """A writer passes its offset to a reader on another connection; the
    reader's AFTER waits until the view has the write."""
    writer, reader = viewserver.client(), viewserver.client()
    for i in range(200):
        writer.hset(f"order:{i}", mapping={"status": "rush", "amount": 1, "customer": "c"})
        off = writer.execute_command("FJORD.OFFSET")
        assert reader.execute_command("FJORD.VIEW", "GET", "by_status", "rush", "AFTER", off) == i + 1


def test_definition_change_rebuilds_and_restart_resumes(new_fjord, tmp_path):
    path = tmp_path / "v.py"
    path.write_text("from streams.views import Count, KeyPart\n"
                    "v = Count('v', match='k:*', by=KeyPart(1))\n")
    srv = new_fjord("--views", str(path), "--triggers", "no")
    r = srv.client()
    for i in range(30):
        r.set(f"k:{i % 3}:{i}", "x")
    off = r.execute_command("FJORD.OFFSET")
    assert r.execute_command("FJORD.VIEW", "GET", "v", "0", "AFTER", off) == 10
    srv.stop()  # clean stop: a final checkpoint
    srv.start()
    r = srv.client()
    info = r.execute_command("FJORD.VIEW", "INFO", "v")
    info = _map(info)
    assert info[b"rebuilds"] == 0 and info[b"applied"] == 30
    assert r.execute_command("FJORD.VIEW", "GET", "v", "1") == 10
    srv.stop()
    path.write_text("from streams.views import Count, KeyPart\n"
                    "v = Count('v', match='k:*', by=KeyPart(2))\n")   # a new definition
    srv.start()
    r = srv.client()
    r.set("k:0:0", "y")
    off = r.execute_command("FJORD.OFFSET")
    assert r.execute_command("FJORD.VIEW", "GET", "v", "0", "AFTER", off) == 1
    info = r.execute_command("FJORD.VIEW", "INFO", "v")
    info = _map(info)
    assert info[b"rebuilds"] == 1 and info[b"rebuild_reason"] == b"definition changed"
    assert len(r.execute_command("FJORD.VIEW", "RANGE", "v", 0, -1)) == 30
    assert r.execute_command("FJORD.VIEW", "REBUILD", "v") == b"OK"
    off = r.execute_command("FJORD.OFFSET")
    for _ in range(100):
        if r.execute_command("FJORD.VIEW", "GET", "v", "29") == 1:
            break
        time.sleep(0.02)
    assert len(r.execute_command("FJORD.VIEW", "RANGE", "v", 0, -1)) == 30
    srv.stop()


def test_without_views_and_bad_module(new_fjord, tmp_path):
    srv = new_fjord("--triggers", "no")
    r = srv.client()
    assert r.execute_command("FJORD.OFFSET") == -1
    r.set("a", "1")
    first = r.execute_command("FJORD.OFFSET")
    r.set("a", "2")
    assert r.execute_command("FJORD.OFFSET") == first + 1
    with pytest.raises(redis.ResponseError, match="no views are loaded"):
        r.execute_command("FJORD.VIEW", "LIST")
    srv.stop()
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('oops')\n")
    broken = new_fjord("--views", str(bad), "--triggers", "no", name="other", start=False)
    broken.start(wait=False)
    assert broken.proc.wait(timeout=20) != 0
    assert "cannot load views" in broken.output() and "oops" in broken.output()
