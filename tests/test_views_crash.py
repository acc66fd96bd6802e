"""Exactly-once views: random traffic, every built-in kind compared with the
same result recomputed from the final keyspace; then SIGKILL mid-stream,
restart, and the comparison must hold again (no double counting, nothing
skipped)."""

from __future__ import annotations

import random
import threading
import time

import asyncio
import os

import redis

from streams.filelog import FileLog

VIEWS = '''
from streams.views import Count, Field, Index, Latest, KeyPart, Max, Min, Sum, TopN, View

count = Count("count", match="order:*", by=Field("status"))
total = Sum("total", match="order:*", by=Field("status"), value=Field("amount"))
low = Min("low", match="order:*", by=Field("status"), value=Field("amount"))
high = Max("high", match="order:*", by=Field("status"), value=Field("amount"))
parts = Count("parts", match="order:*", by=KeyPart(1))
index = Index("index", match="order:*", field="customer")
top = TopN("top", match="player:*", score=Field("score"), n=5)
feed = Latest("feed", match="feed:*", by=KeyPart(0), n=30)


class EventCount(View):
    """Not idempotent: counts every order event once, by type (the keyed
    kinds fold images, so replaying an event twice would not show there)."""

    name = "events"
    match = (b"order:*",)
    images = False

    def apply(self, state, change):
        t = change.event.type.encode()
        state[t] = state.get(t, 0) + 1


events = EventCount()
'''

STATUSES = ["new", "paid", "shipped"]


def traffic(r: redis.Redis, rnd: random.Random, stop: threading.Event | None, ops: int) -> None:
    """Random writes touching every path a view must get right."""
    for _ in range(ops):
        if stop is not None and stop.is_set():
            return
        i = rnd.randrange(40)
        key = f"order:{i}"
        op = rnd.random()
        try:
            if op < 0.35:
                r.hset(key, mapping={"status": rnd.choice(STATUSES), "amount": rnd.randint(1, 100),
                                     "customer": f"c{rnd.randrange(5)}"})
            elif op < 0.5:
                r.hincrby(key, "amount", rnd.randint(-5, 5))
            elif op < 0.55:
                r.hdel(key, "status")
            elif op < 0.62:
                r.delete(key)
            elif op < 0.67:
                r.rename(key, f"order:{rnd.randrange(40)}")
            elif op < 0.7:
                r.pexpire(key, rnd.randint(1, 30))
            elif op < 0.75:
                with r.pipeline(transaction=True) as p:
                    p.hset(key, "status", "paid")
                    p.hset(f"order:{rnd.randrange(40)}", mapping={"status": "new", "amount": 1})
                    p.execute()
            else:
                r.hset(f"player:{rnd.randrange(15)}", "score", rnd.randint(0, 50))
        except redis.ResponseError:
            pass  # e.g. RENAME of a missing key
        except (redis.ConnectionError, OSError):
            return  # the server was killed under us


def expected(r: redis.Redis, data_dir: str) -> dict:
    """Every view recomputed from the keyspace as it is now."""
    orders = {}
    for k in r.scan_iter(match="order:*", count=1000):
        if r.type(k) == b"hash":
            orders[k] = r.hgetall(k)
    out = {"count": {}, "total": {}, "low": {}, "high": {}, "parts": {}, "index": {}}
    for k, h in orders.items():
        part = k.split(b":")[1]
        out["parts"][part] = out["parts"].get(part, 0) + 1
        if b"customer" in h:
            out["index"].setdefault(h[b"customer"], []).append(k)
        if b"status" not in h:
            continue
        s = h[b"status"]
        out["count"][s] = out["count"].get(s, 0) + 1
        if b"amount" in h:
            a = int(h[b"amount"])
            out["total"][s] = out["total"].get(s, 0) + a
            out["low"][s] = min(out["low"].get(s, a), a)
            out["high"][s] = max(out["high"].get(s, a), a)
    out["index"] = {c: sorted(ks) for c, ks in out["index"].items()}
    players = [(k, int(r.hget(k, "score"))) for k in r.scan_iter(match="player:*", count=1000)]
    players.sort(key=lambda p: (-p[1], p[0]))
    out["top"] = [[k, s] for k, s in players[:5]]
    out["events"] = events_in_log(data_dir)
    return out


def events_in_log(data_dir: str) -> dict:
    """Order events per type, counted from the log itself (the truth)."""

    async def scan() -> dict:
        log = await FileLog.open(os.path.join(data_dir, "log"), readonly=True)
        counts: dict = {}
        try:
            async for rec in log.read(log.start_offset):
                for ev in rec.events:
                    if ev.key is not None and ev.db == 0 and ev.key.startswith(b"order:"):
                        counts[ev.type.encode()] = counts.get(ev.type.encode(), 0) + 1
        finally:
            await log.close()
        return counts

    return asyncio.run(scan())


def actual(r: redis.Redis) -> dict:
    off = r.execute_command("FJORD.OFFSET")
    out = {}
    for name in ("count", "total", "low", "high", "parts", "index", "events"):
        rows = r.execute_command("FJORD.VIEW", "RANGE", name, 0, -1, "AFTER", off, "TIMEOUT", 20000)
        out[name] = {g: v for g, v in rows}
    out["top"] = r.execute_command("FJORD.VIEW", "GET", "top", "all", "AFTER", off) or []
    return out


def settle(r: redis.Redis) -> None:
    """Let pending expiries fire, then write once so FJORD.OFFSET is ours."""
    time.sleep(0.05)
    for i in range(40):  # every key traffic() uses: lazy expiry of anything due, now
        r.exists(f"order:{i}")
    r.set("settle", str(time.time()))


def test_views_match_keyspace_and_survive_sigkill(new_fjord, tmp_path):
    path = tmp_path / "crashviews.py"
    path.write_text(VIEWS)
    srv = new_fjord("--views", str(path), "--triggers", "no")
    rnd = random.Random(7)
    r = srv.client()
    traffic(r, rnd, None, 1500)
    feed_keys = []
    for n in range(20):
        feed_keys.append(f"feed:{n}".encode())
        r.set(feed_keys[-1], "x")
    settle(r)
    assert actual(r) == expected(r, srv.data_dir)

    # SIGKILL while a writer is busy: views are between checkpoints
    for round_ in range(2):
        stop = threading.Event()
        writer = threading.Thread(target=traffic, args=(srv.client(), random.Random(round_), stop, 100000))
        writer.start()
        for n in range(20):
            feed_keys.append(f"feed:{len(feed_keys)}".encode())
            r.set(feed_keys[-1], "x")
        time.sleep(0.4 + 0.3 * round_)
        srv.kill()
        stop.set()
        writer.join(timeout=10)
        srv.start()
        r = srv.client()
        settle(r)
        assert actual(r) == expected(r, srv.data_dir)
        feed = r.execute_command("FJORD.VIEW", "GET", "feed", "feed")
        assert [e[3] for e in feed] == feed_keys[::-1][:30]
        info = r.execute_command("FJORD.VIEW", "INFO", "count")
        info = info if isinstance(info, dict) else dict(zip(info[::2], info[1::2]))
        assert info[b"rebuilds"] == 0 and info[b"errors"] == 0
    traffic(r, rnd, None, 300)
    settle(r)
    assert actual(r) == expected(r, srv.data_dir)
    srv.stop()
