"""The trigger engine: change feed and images, subscriptions, the durable
registry, the dispatcher (batching, per-key hold-back, retries, bisect,
dead letters, checkpoints) and the service, over a real FileLog, with
real sinks: an in-process function Sink and the webhook sink posting to
a real aiohttp receiver on loopback."""

from __future__ import annotations

import asyncio
import os

import orjson
import pytest
from aiohttp import web

import store.commands  # noqa: F401 - registers commands and appliers
from store.keyspace import Keyspace
from store.snapshotting import load_sections, state_sections
from streams.events import Event, decode_record, encode_record
from streams.filelog import FileLog
from triggers import registry
from triggers.changefeed import ChangeFeed
from triggers.delivery import Outcome
from triggers.service import TriggerService
from triggers.subscription import Subscription, TriggerError

from conftest import free_port
from triggerkit import FunctionSink, LogWriter, wait_until


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def open_log(tmp_path):
    return await FileLog.open(str(tmp_path / "data" / "log"))


# ------------------------------------------------------------------ store-level pieces


def test_origin_round_trips_and_is_absent_by_default():
    ev = Event("set", 0, b"k", {"value": b"v"})
    assert b"origin" not in encode_record(1, [ev])
    rec = decode_record(7, encode_record(1, [ev], "trigger:t"))
    assert rec.origin == "trigger:t"
    assert decode_record(7, encode_record(1, [ev])).origin is None


def test_meta_is_replayed_snapshotted_and_invisible_to_data():
    ks = Keyspace()
    for ev in (Event("fjord-meta-set", None, None, {"ns": b"trigger", "name": b"a", "value": b"{}"}),
               Event("fjord-meta-set", None, None, {"ns": "view", "name": "b", "value": b"x\xff"}),
               Event("flushall", None, None, {}),
               Event("fjord-meta-del", None, None, {"ns": b"view", "name": b"b"})):
        ks.apply(ev)
    assert ks.meta == {("trigger", "a"): b"{}"}
    assert ks.key_count() == 0
    copy = Keyspace()
    load_sections(copy, list(state_sections(ks)))
    assert copy.meta == ks.meta and copy.key_count() == 0


def test_subscription_words_and_errors():
    sub = Subscription.from_words([b"t", b"FUNCTION", b"os.path:join", b"MATCH", b"u:*", b"o:*", b"EVENTS", b"set,h",
                                   b"VIEW", b"new_image", b"BATCH", b"5", b"RETRIES", b"2", b"START", b"TRIM_HORIZON"])
    assert (sub.match, sub.events, sub.view, sub.batch_size, sub.max_attempts) == \
        (["u:*", "o:*"], ["set", "h"], "NEW_IMAGE", 5, 3)
    assert sub.matches(Event("hset", 0, b"o:1", {})) and sub.matches(Event("set", 0, b"u:1", {}))
    assert not sub.matches(Event("lpush", 0, b"u:1", {})) and not sub.matches(Event("set", 0, b"x", {}))
    assert not sub.matches(Event("fjord-meta-set", None, None, {}))
    secret = Subscription.from_words([b"s", b"FUNCTION", b"os.path:join", b"SECRET", b"whsec_" + b"QUFB" * 8])
    assert secret.public()["secret"] == "********" and secret.to_json()["secret"].startswith("whsec_")
    for words, msg in (([b"t", b"SMTP", b"x"], "unknown sink"),
                       ([b"t", b"FUNCTION", b"os.path:join", b"VIEW", b"ALL"], "VIEW must be"),
                       ([b"t", b"FUNCTION", b"os.path:join", b"BATCH", b"0"], "BATCH must be between"),
                       ([b"t", b"FUNCTION", b"os.path:join", b"BOGUS"], "unknown trigger option"),
                       ([b"bad name", b"FUNCTION", b"os.path:join"], "trigger names")):
        with pytest.raises(TriggerError, match=msg) as info:
            Subscription.from_words(words)
        assert str(info.value).startswith("ERR ")


# ------------------------------------------------------------------ images of every type


SCRIPT = [
    ("set", "s", "hello"), ("incrby", "n", "5"), ("append", "s", "!"), ("setrange", "s", "0", "J"),
    ("rpush", "l", "a", "b", "c"), ("lpush", "l", "z"), ("lpop", "l"), ("lset", "l", "0", "A"),
    ("linsert", "l", "BEFORE", "A", "q"), ("lrem", "l", "1", "q"), ("ltrim", "l", "0", "1"),
    ("hset", "h", "f1", "v1", "f2", "v2"), ("hincrby", "h", "n", "3"), ("hincrbyfloat", "h", "x", "1.5"),
    ("hdel", "h", "f2"),
    ("sadd", "st", "b", "a", "c"), ("srem", "st", "c"), ("sinterstore", "st2", "st"),
    ("zadd", "z", "1", "m1", "2", "m2", "3", "m3"), ("zincrby", "z", "5", "m1"), ("zrem", "z", "m2"),
    ("zpopmin", "z"), ("zadd", "z", "+inf", "top"),
    ("xadd", "x", "1-1", "f", "v"), ("xadd", "x", "2-1", "g", "w"), ("xdel", "x", "1-1"),
    ("set", "bin", b"\xff\x00"), ("expire", "s", "1000"), ("persist", "s"),
    ("rename", "s", "s2"), ("copy", "s2", "s3"), ("move", "s3", "1"), ("del", "n"),
    ("set", "gone", "1", "PX", "1"), ("swapdb", "0", "1"), ("swapdb", "0", "1"), ("flushdb",),
]
VIEWS = ("KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES")


def test_every_event_type_with_every_view(tmp_path):
    async def main():
        log_ = await open_log(tmp_path)
        w = LogWriter(log_)
        sinks = {v: FunctionSink() for v in VIEWS}
        for v in VIEWS:
            # CONCURRENCY 1: one batch at a time, so the whole stream keeps log order
            await w.create([f"v-{v}", "FUNCTION", "os.path:join", "VIEW", v, "BATCH", "7", "CONCURRENCY", "1"])
        svc = TriggerService(data_dir=str(tmp_path / "data"), sink_factory=lambda sub: sinks[sub.view[:]])
        await svc.start_on(log_, w.keyspace.meta)
        for cmd in SCRIPT:
            await w.run(*cmd)
            if cmd[:2] == ("set", "gone"):
                await asyncio.sleep(0.01)
                assert await w.run("get", "gone") is None  # lazy expiry writes "expired"
        end = log_.end_offset
        await wait_until(lambda: all(svc.runners[f"v-{v}"].position() >= end for v in VIEWS))
        await svc.stop()
        await log_.close()
        return sinks, w

    sinks, w = run(main())
    records = {v: s.delivered for v, s in sinks.items()}
    ids = [r.id for r in records["KEYS_ONLY"]]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))  # log order
    for v in VIEWS:
        assert [r.id for r in records[v]] == ids, v
    types = {r.type for r in records["KEYS_ONLY"]}
    assert {"set", "incrby", "append", "setrange", "rpush", "lpush", "lpop", "lset", "linsert", "lrem", "ltrim",
            "hset", "hincrby", "hincrbyfloat", "hdel", "sadd", "srem", "sinterstore", "zadd", "zincr", "zrem",
            "zpopmin", "xadd", "xdel", "expire", "persist", "rename_from", "rename_to", "copy_to", "move_from",
            "move_to", "del", "expired", "swapdb", "flushdb"} <= types, types
    for r in records["KEYS_ONLY"]:
        assert r.old_image is None and r.new_image is None and r.view == "KEYS_ONLY"
    for r in records["NEW_IMAGE"]:
        assert r.old_image is None
    for r in records["OLD_IMAGE"]:
        assert r.new_image is None
    both = records["NEW_AND_OLD_IMAGES"]

    def last(type_, key):
        return [r for r in both if r.type == type_ and r.key == key][-1]

    assert last("set", "s").old_image is None
    assert last("set", "s").new_image == {"type": "string", "value": "hello"}
    assert last("setrange", "s").new_image == {"type": "string", "value": "Jello!"}
    assert last("hdel", "h").old_image["value"] == [["f1", "v1"], ["f2", "v2"], ["n", "3"], ["x", "1.5"]]
    assert last("hdel", "h").new_image == {"type": "hash", "value": [["f1", "v1"], ["n", "3"], ["x", "1.5"]]}
    assert last("sadd", "st").new_image == {"type": "set", "value": ["a", "b", "c"]}
    assert last("zadd", "z").new_image == {"type": "zset", "value": [["m1", 6.0], ["top", "inf"]]}
    assert last("xdel", "x").old_image == {"type": "stream", "value": [["1-1", ["f", "v"]], ["2-1", ["g", "w"]]]}
    assert last("xdel", "x").new_image == {"type": "stream", "value": [["2-1", ["g", "w"]]]}
    assert last("ltrim", "l").new_image == {"type": "list", "value": ["A", "b"]}
    assert last("set", "bin").new_image == {"type": "string", "value": {"b64": "/wA="}}
    assert last("del", "n").old_image == {"type": "string", "value": "5"} and last("del", "n").new_image is None
    assert last("expired", "gone").old_image == {"type": "string", "value": "1"}
    assert last("rename_from", "s").new_image is None
    assert last("rename_to", "s2").new_image == {"type": "string", "value": "Jello!"}
    assert last("flushdb", None).key is None


def test_feed_images_start_from_a_snapshot_and_the_log(tmp_path):
    """A feed starting mid-log rebuilds the key's earlier state first."""
    async def main():
        log_ = await open_log(tmp_path)
        w = LogWriter(log_)
        await w.run("hset", "h", "a", "1")
        await w.run("hset", "h", "b", "2")
        start = log_.end_offset
        await w.run("hdel", "h", "a")
        feed = ChangeFeed(log_, start, images=True)
        got = [ch async for ch in feed.changes(stop_at=log_.end_offset)]
        await log_.close()
        return got

    (ch,) = run(main())
    assert ch.old == {"type": "hash", "value": [["a", "1"], ["b", "2"]]}
    assert ch.new == {"type": "hash", "value": [["b", "2"]]}
    assert ch.id.endswith("-0")


# ------------------------------------------------------------------ ordering, retries, dead letters


def test_per_key_hold_back_while_other_keys_flow(tmp_path):
    async def main():
        log_ = await open_log(tmp_path)
        w = LogWriter(log_)
        broken = {"on": True}

        def decide(batch):
            bad = [r.id for r in batch.records if r.key == "bad"]
            if broken["on"] and bad:
                return Outcome(False, failed_ids=bad[:1], error="bad is down")
            return Outcome(True)

        sink = FunctionSink(decide)
        await w.create(["t", "FUNCTION", "os.path:join", "BATCH", "4", "BACKOFF", "20", "RETRIES", "10000"])
        svc = TriggerService(data_dir=str(tmp_path / "data"), sink_factory=lambda sub: sink)
        await svc.start_on(log_, w.keyspace.meta)
        for i in range(5):
            await w.run("rpush", "bad", i)
            await w.run("set", f"good{i}", i)
        await wait_until(lambda: sum(1 for r in sink.delivered if r.key.startswith("good")) == 5)
        assert not any(r.key == "bad" for r in sink.delivered)
        stats = svc.info("t")
        assert stats["failed"] >= 1 and stats["last_error"] == "bad is down" and stats["lag_events"] >= 5
        cp = svc.runners["t"].position()
        assert cp <= min(r.offset for r in sink.batches[0].records if r.key == "bad")  # the checkpoint waits
        broken["on"] = False
        end = log_.end_offset
        await wait_until(lambda: svc.runners["t"].position() >= end)
        await svc.stop()
        await log_.close()
        return sink

    sink = run(main())
    bad = [int(r.data["elements"][0]) if "elements" in r.data else r.id for r in sink.delivered if r.key == "bad"]
    firsts = []
    for r in sink.delivered:
        if r.key == "bad" and r.id not in firsts:
            firsts.append(r.id)
    assert len(firsts) == 5 and firsts == sorted(firsts, key=lambda i: int(i.split("-")[0]))
    assert len(bad) >= 5


def test_bisect_isolates_a_poison_event_into_the_dead_letters_and_redrive(tmp_path):
    async def main():
        log_ = await open_log(tmp_path)
        w = LogWriter(log_)
        poisoned = {"on": True}

        def decide(batch):
            if poisoned["on"] and any(r.key == "poison" for r in batch.records):
                return Outcome(False, error="500 from the handler")
            return Outcome(True)

        sink = FunctionSink(decide)
        await w.create(["t", "FUNCTION", "os.path:join", "BATCH", "8", "BACKOFF", "10", "RETRIES", "2",
                        "START", "TRIM_HORIZON"])
        for i in range(7):
            await w.run("set", f"k{i}", i)
            if i == 3:
                await w.run("set", "poison", "x")
        svc = TriggerService(data_dir=str(tmp_path / "data"), sink_factory=lambda sub: sink)
        await svc.start_on(log_, w.keyspace.meta)
        end = log_.end_offset
        await wait_until(lambda: svc.runners["t"].position() >= end)
        info = svc.info("t")
        assert info["dead_lettered"] == 1 and info["delivered"] == 7
        dead = await svc.dlq("t", 10)
        assert [d["record"]["key"] for d in dead] == ["poison"] and dead[0]["attempts"] == 3
        assert dead[0]["error"] == "500 from the handler"
        poisoned["on"] = False
        assert await svc.redrive("t") == 1
        await wait_until(lambda: any(r.key == "poison" for r in sink.delivered))
        await wait_until(lambda: not os.path.exists(svc.runners["t"].dlq.redrive_path))
        assert await svc.dlq("t", 10) == []
        await svc.stop()
        await log_.close()
        return sink, dead

    sink, dead = run(main())
    keys = [r.key for r in sink.delivered]
    assert sorted(set(keys)) == sorted([f"k{i}" for i in range(7)] + ["poison"])
    assert [r.id for r in sink.delivered if r.key == "poison"] == [dead[0]["id"]]  # same id on redrive
    assert max(len(b.records) for b in sink.batches) == 8 and min(len(b.records) for b in sink.batches) == 1


def test_write_back_with_its_own_origin_does_not_retrigger(tmp_path):
    async def main():
        log_ = await open_log(tmp_path)
        w = LogWriter(log_)
        sink = FunctionSink()
        await w.create(["t", "FUNCTION", "os.path:join"])
        svc = TriggerService(data_dir=str(tmp_path / "data"), sink_factory=lambda sub: sink)
        await svc.start_on(log_, w.keyspace.meta)
        await w.run("set", "a", "1")
        await w.run("set", "a-copy", "1", origin="trigger:t")  # what the function wrote back
        await w.run("set", "b", "1", origin="trigger:other")
        end = log_.end_offset
        await wait_until(lambda: svc.runners["t"].position() >= end)
        await svc.stop()
        await log_.close()
        return sink

    assert [r.key for r in run(main()).delivered] == ["a", "b"]


def test_checkpoint_resume_pause_and_delete(tmp_path):
    async def main():
        log_ = await open_log(tmp_path)
        w = LogWriter(log_)
        sink = FunctionSink()
        await w.create(["t", "FUNCTION", "os.path:join"])
        svc = TriggerService(data_dir=str(tmp_path / "data"), sink_factory=lambda sub: sink)
        await svc.start_on(log_, w.keyspace.meta)
        await w.run("set", "a", "1")
        await wait_until(lambda: len(sink.delivered) == 1)
        await svc.stop()  # saves the checkpoint
        await w.run("set", "b", "1")  # written while the dispatcher is down
        svc = TriggerService(data_dir=str(tmp_path / "data"), sink_factory=lambda sub: sink)
        await svc.start_on(log_, w.keyspace.meta)
        await wait_until(lambda: len(sink.delivered) == 2)
        assert [r.key for r in sink.delivered] == ["a", "b"]
        registry.emit_set_paused(w.session, "t", True)
        await w.flush()
        await wait_until(lambda: svc.info("t")["state"] == "paused")
        await w.run("set", "c", "1")
        await asyncio.sleep(0.3)
        assert len(sink.delivered) == 2 and svc.info("t")["lag_events"] == 1
        registry.emit_set_paused(w.session, "t", False)
        await w.flush()
        await wait_until(lambda: len(sink.delivered) == 3)
        holds = [n for n in os.listdir(tmp_path / "data" / "consumers") if n.endswith(".json")]
        assert holds == ["trigger-t.json"]
        registry.emit_delete(w.session, "t")
        await w.flush()
        await wait_until(lambda: "t" not in svc.runners)
        assert not os.path.exists(tmp_path / "data" / "triggers" / "t.checkpoint")
        assert [n for n in os.listdir(tmp_path / "data" / "consumers") if n.endswith(".json")] == []
        await svc.stop()
        await log_.close()

    run(main())


def test_disable_stops_delivery_and_keeps_events(tmp_path):
    async def main():
        log_ = await open_log(tmp_path)
        w = LogWriter(log_)
        gone = {"on": True}
        sink = FunctionSink(lambda b: Outcome(False, disable=True, error="410 Gone") if gone["on"] else Outcome(True))
        await w.create(["t", "FUNCTION", "os.path:join"])
        svc = TriggerService(data_dir=str(tmp_path / "data"), sink_factory=lambda sub: sink)
        await svc.start_on(log_, w.keyspace.meta)
        await w.run("set", "a", "1")
        await wait_until(lambda: svc.info("t")["state"] == "disabled")
        assert svc.info("t")["disabled_reason"] == "410 Gone"
        cp_path = tmp_path / "data" / "triggers" / "t.checkpoint"
        await wait_until(lambda: cp_path.exists() and orjson.loads(cp_path.read_bytes())["disabled"] == "410 Gone")
        gone["on"] = False
        registry.emit_set_paused(w.session, "t", True)  # PAUSE then RESUME re-enables
        await w.flush()
        await wait_until(lambda: svc.info("t")["state"] == "paused")
        registry.emit_set_paused(w.session, "t", False)
        await w.flush()
        await wait_until(lambda: [r.key for r in sink.delivered] == ["a"])
        await svc.stop()
        await log_.close()

    run(main())


# ------------------------------------------------------------------ a real receiver


def test_receiver_down_then_up_loses_nothing_and_keeps_key_order(tmp_path):
    port = free_port()
    received: list[dict] = []

    async def hook(request):
        body = await request.json()
        received.extend(body["records"])
        return web.Response(status=204)

    async def main():
        log_ = await open_log(tmp_path)
        w = LogWriter(log_)
        await w.create(["t", "WEBHOOK", f"http://127.0.0.1:{port}/hook", "ALLOW-PRIVATE", "BATCH", "16",
                        "BACKOFF", "50,100,200", "RETRIES", "100000", "TIMEOUT", "2000"])
        svc = TriggerService(data_dir=str(tmp_path / "data"))
        await svc.start_on(log_, w.keyspace.meta)
        for i in range(60):
            await w.run("rpush", f"k{i % 4}", i)
        await wait_until(lambda: svc.info("t")["failed"] > 0)
        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        for i in range(60, 100):
            await w.run("rpush", f"k{i % 4}", i)
        end = log_.end_offset
        try:
            await wait_until(lambda: svc.runners["t"].position() >= end, timeout=20)
        finally:
            info = svc.info("t")
            await svc.stop()
            await runner.cleanup()
            await log_.close()
        return info

    info = run(main())
    assert info["retried"] > 0 and info["dead_lettered"] == 0
    firsts: dict[str, list[int]] = {}
    seen = set()
    for ev in received:
        if ev["id"] in seen:
            continue
        seen.add(ev["id"])
        firsts.setdefault(ev["subject"], []).append(int(ev["data"]["data"]["elements"][0]))
    assert sorted(v for vs in firsts.values() for v in vs) == list(range(100))
    for key, values in firsts.items():
        assert values == sorted(values), key


def test_start_positions(tmp_path):
    async def main():
        log_ = await open_log(tmp_path)
        w = LogWriter(log_)
        await w.run("set", "a", "1")
        b_offset = log_.end_offset
        await w.run("set", "b", "1")
        await asyncio.sleep(0.01)
        c_time = int(__import__("time").time() * 1000)
        await w.run("set", "c", "1")
        sinks = {name: FunctionSink() for name in ("latest", "horizon", "offset", "time")}
        await w.create(["latest", "FUNCTION", "os.path:join"])
        await w.create(["horizon", "FUNCTION", "os.path:join", "START", "TRIM_HORIZON"])
        await w.create(["offset", "FUNCTION", "os.path:join", "START", str(b_offset)])
        await w.create(["time", "FUNCTION", "os.path:join", "START", "TIME", str(c_time)])
        svc = TriggerService(data_dir=str(tmp_path / "data"), sink_factory=lambda sub: sinks[sub.name])
        await svc.start_on(log_, w.keyspace.meta)
        await w.run("set", "d", "1")
        end = log_.end_offset
        await wait_until(lambda: all(r.position() >= end for r in svc.runners.values()))
        await svc.stop()
        await log_.close()
        return {name: [r.key for r in s.delivered] for name, s in sinks.items()}

    got = run(main())
    assert got == {"latest": ["d"], "horizon": ["a", "b", "c", "d"], "offset": ["b", "c", "d"], "time": ["c", "d"]}


def test_logged_position_survives_losing_the_checkpoint_files(tmp_path, monkeypatch):
    """What a promoted replica sees: no checkpoint file of its own, but the
    writer's logged position in the replicated log."""
    import shutil

    from triggers import dispatcher

    monkeypatch.setattr(dispatcher, "PUBLISH_SECONDS", 0.0)

    async def main():
        log_ = await open_log(tmp_path)
        w = LogWriter(log_)
        sink = FunctionSink()
        await w.create(["t", "FUNCTION", "os.path:join"])

        def write_position(name, offset, created):
            registry.emit_position(w.session, name, offset, created)
            asyncio.get_running_loop().create_task(w.flush())

        svc = TriggerService(data_dir=str(tmp_path / "data"), sink_factory=lambda sub: sink,
                             position_writer=write_position)
        await svc.start_on(log_, w.keyspace.meta)
        for i in range(5):
            await w.run("set", f"k{i}", i)
        await wait_until(lambda: (registry.logged_position(w.keyspace.meta, "t") or {}).get("offset", 0) >= 6)
        await svc.stop()
        shutil.rmtree(tmp_path / "data" / "triggers")
        await w.run("set", "after", 1)
        svc = TriggerService(data_dir=str(tmp_path / "data"), sink_factory=lambda sub: sink)
        await svc.start_on(log_, w.keyspace.meta)
        end = log_.end_offset
        await wait_until(lambda: svc.runners["t"].position() >= end)
        await svc.stop()
        registry.emit_delete(w.session, "t")
        assert registry.logged_position(w.keyspace.meta, "t") is None
        await log_.close()
        return [r.key for r in sink.delivered]

    assert run(main()) == [f"k{i}" for i in range(5)] + ["after"]


def test_an_outage_keeps_a_bounded_backlog_in_memory(tmp_path, monkeypatch):
    from triggers import dispatcher

    monkeypatch.setattr(dispatcher, "MAX_BUFFERED", 10)

    async def main():
        log_ = await open_log(tmp_path)
        w = LogWriter(log_)
        down = {"on": True}
        sink = FunctionSink(lambda b: Outcome(False, error="down") if down["on"] else Outcome(True))
        await w.create(["t", "FUNCTION", "os.path:join", "BACKOFF", "20", "RETRIES", "100000", "BATCH", "4"])
        svc = TriggerService(data_dir=str(tmp_path / "data"), sink_factory=lambda sub: sink)
        await svc.start_on(log_, w.keyspace.meta)
        for i in range(60):
            await w.run("set", f"k{i}", i)
        await asyncio.sleep(0.3)
        runner = svc.runners["t"]
        assert runner.buffered <= 10 and runner.feed.position < log_.end_offset
        assert svc.info("t")["lag_events"] >= 50
        down["on"] = False
        end = log_.end_offset
        await wait_until(lambda: runner.position() >= end)
        await svc.stop()
        await log_.close()
        return sorted({r.key for r in sink.delivered})

    assert run(main()) == sorted(f"k{i}" for i in range(60))
