"""Trigger benchmark: Fjord's durable webhooks beside Redis's keyspace notifications.

One run, same machine, same client code for both sides:

(a) Redis floor: ``redis-server`` (no persistence) with
    ``notify-keyspace-events E$``; a writer sends ``SET`` at a fixed rate
    (default 1,000/s, open loop, one pipelined connection) while a
    subscriber on ``__keyevent@0__:set`` timestamps each message.
    Fire-and-forget: a subscriber that is away loses events, and the message
    carries no value.
(b) Fjord: ``fjord serve`` (``durability sync``: acknowledged = fsynced)
    with a trigger ``WEBHOOK`` to a local aiohttp receiver (batch 100, no
    window); the same writer; the receiver timestamps each CloudEvent.
    Durable and exact: at-least-once, ordered per key, checkpointed.
(c) Throughput: a paused trigger, ``--events`` SETs written, then RESUME;
    delivered events/s until the receiver has every event (batches of 100).

Latency is reported two ways: from the write's acknowledgement (the brief's
measure: "acked -> received"; for Redis it is near zero or negative, since
Redis publishes the message before it writes the reply) and from the moment
the write was sent (comparable for both). Targets: Fjord p99 <= 3x Redis's
notification p99; >= 20,000 events/s delivered with batches of 100.

Usage: ``python bench/triggers.py [--rate 1000] [--seconds 5] [--events 50000]
[--quick]``. Prints a table and the ratios; machines are noisy, compare
ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque

import hiredis
import orjson
from aiohttp import web

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import ROOT, free_port, wait_ready  # noqa: E402

now = time.perf_counter




class Process:
    """redis-server or fjord serve on a free port with a private directory."""

    def __init__(self, kind: str):
        self.kind = kind
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix=f"bench-trig-{kind}-")
        if kind == "redis":
            binary = shutil.which("redis-server")
            if binary is None:
                sys.exit("redis-server is not installed (apt-get install redis-server)")
            cmd = [binary, "--port", str(self.port), "--save", "", "--appendonly", "no", "--dir", self.dir,
                   "--notify-keyspace-events", "E$"]
        else:
            cmd = [sys.executable, "-m", "store", "serve", "--port", str(self.port), "--data-dir", self.dir,
                   "--loglevel", "warning"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(self.port, self.proc)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def encode(*args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class Client:
    """A pipelining RESP client: replies are matched to requests in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.parser = hiredis.Reader()
        self.waiting: deque[asyncio.Future] = deque()
        self.task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, port: int) -> "Client":
        r, w = await asyncio.open_connection("127.0.0.1", port)
        return cls(r, w)

    async def _read(self) -> None:
        while True:
            data = await self.reader.read(1 << 16)
            if not data:
                break
            self.parser.feed(data)
            while (reply := self.parser.gets()) is not False:
                fut = self.waiting.popleft()
                if not fut.done():
                    fut.set_result(reply)

    def send(self, *args) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.waiting.append(fut)
        self.writer.write(encode(*args))
        return fut

    async def call(self, *args):
        reply = await self.send(*args)
        if isinstance(reply, hiredis.ReplyError):
            raise RuntimeError(str(reply))
        return reply

    async def close(self) -> None:
        self.task.cancel()
        self.writer.close()


async def paced_sets(port: int, prefix: str, rate: int, seconds: float) -> tuple[dict, dict]:
    """SET prefix<i> at ``rate`` per second (open loop); returns the send and
    acknowledgement times by key."""
    client = await Client.connect(port)
    sent: dict[str, float] = {}
    acked: dict[str, float] = {}
    total = int(rate * seconds)
    start = now()
    futures = []
    for i in range(total):
        delay = start + i / rate - now()
        if delay > 0:
            await asyncio.sleep(delay)
        key = f"{prefix}{i}"
        sent[key] = now()
        fut = client.send("SET", key, "v")
        fut.add_done_callback(lambda _f, k=key: acked.__setitem__(k, now()))
        futures.append(fut)
    await asyncio.gather(*futures)
    await client.close()
    return sent, acked


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def summary(label: str, received: dict, sent: dict, acked: dict) -> dict:
    lost = [k for k in sent if k not in received]
    from_ack = [(received[k] - acked[k]) * 1000 for k in sent if k in received and k in acked]
    from_send = [(received[k] - sent[k]) * 1000 for k in sent if k in received]
    return {"label": label, "n": len(sent), "lost": len(lost),
            "ack_p50": percentile(from_ack, 50), "ack_p99": percentile(from_ack, 99),
            "send_p50": percentile(from_send, 50), "send_p99": percentile(from_send, 99)}


# ------------------------------------------------------------------ (a) Redis


async def redis_notifications(rate: int, seconds: float) -> dict:
    srv = Process("redis")
    try:
        received: dict[str, float] = {}
        r, w = await asyncio.open_connection("127.0.0.1", srv.port)
        w.write(encode("SUBSCRIBE", "__keyevent@0__:set"))
        parser = hiredis.Reader()

        async def listen() -> None:
            while True:
                data = await r.read(1 << 16)
                if not data:
                    return
                t = now()
                parser.feed(data)
                while (msg := parser.gets()) is not False:
                    if msg[0] == b"message":
                        received.setdefault(msg[2].decode(), t)

        task = asyncio.get_running_loop().create_task(listen())
        await asyncio.sleep(0.2)
        sent, acked = await paced_sets(srv.port, "lat:", rate, seconds)
        await asyncio.sleep(0.5)
        task.cancel()
        w.close()
        return summary("redis keyspace notification (pub/sub)", received, sent, acked)
    finally:
        srv.stop()


# ------------------------------------------------------------------ receiver


class Receiver:
    """A local webhook endpoint that timestamps every CloudEvent by key."""

    def __init__(self):
        self.received: dict[str, float] = {}
        self.ids: set[str] = set()
        self.posts = 0
        self.changed = asyncio.Event()
        self.port = free_port()

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        t = now()
        doc = orjson.loads(body)
        self.posts += 1
        received = self.received
        for ev in doc["records"]:
            self.ids.add(ev["id"])
            key = ev.get("subject")
            if key is not None and key not in received:
                received[key] = t
        self.changed.set()
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.add_routes([web.post("/hook", self.hook)])
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def wait_for(self, predicate, timeout: float) -> bool:
        deadline = now() + timeout
        while not predicate():
            left = deadline - now()
            if left <= 0:
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 0.5))
            except asyncio.TimeoutError:
                pass
        return True

    async def stop(self) -> None:
        await self.runner.cleanup()


# ------------------------------------------------------------------ (b)+(c) Fjord


async def fjord_triggers(rate: int, seconds: float, events: int) -> tuple[dict, dict]:
    srv = Process("fjord")
    receiver = Receiver()
    await receiver.start()
    url = f"http://127.0.0.1:{receiver.port}/hook"
    admin = await Client.connect(srv.port)
    try:
        await admin.call("FJORD.TRIGGER", "CREATE", "latency", "WEBHOOK", url, "MATCH", "lat:*",
                         "BATCH", 100, "ALLOW-PRIVATE")
        await wait_running(admin, "latency")
        sent, acked = await paced_sets(srv.port, "lat:", rate, seconds)
        await receiver.wait_for(lambda: all(k in receiver.received for k in sent), 30)
        latency = summary("fjord trigger -> webhook (durable)", receiver.received, sent, acked)
        await admin.call("FJORD.TRIGGER", "DELETE", "latency")

        # (c): write everything while paused, then time the delivery alone
        await admin.call("FJORD.TRIGGER", "CREATE", "throughput", "WEBHOOK", url, "MATCH", "thr:*",
                         "BATCH", 100, "ALLOW-PRIVATE", "PAUSED")
        await wait_running(admin, "throughput")
        writer = await Client.connect(srv.port)
        chunk = 1000
        for base in range(0, events, chunk):
            futs = [writer.send("SET", f"thr:{i}", "v") for i in range(base, min(base + chunk, events))]
            await asyncio.gather(*futs)
        await writer.close()
        before = len(receiver.ids)
        t0 = now()
        await admin.call("FJORD.TRIGGER", "RESUME", "throughput")
        done = await receiver.wait_for(lambda: len(receiver.ids) - before >= events, 120)
        elapsed = now() - t0
        delivered = len(receiver.ids) - before
        throughput = {"events": delivered, "complete": done, "seconds": elapsed,
                      "per_second": delivered / elapsed if elapsed > 0 else 0.0}
        info = await admin.call("FJORD.TRIGGER", "INFO", "throughput")
        throughput["info"] = info
        return latency, throughput
    finally:
        await admin.close()
        await receiver.stop()
        srv.stop()


async def wait_running(admin: Client, name: str, timeout: float = 10.0) -> None:
    """Until the dispatcher has started the trigger's runner."""
    deadline = now() + timeout
    while now() < deadline:
        info = await admin.call("FJORD.TRIGGER", "INFO", name)
        fields = dict(zip(info[::2], info[1::2]))
        if fields.get(b"state") in (b"running", b"paused"):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"trigger {name} did not start")


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "n/a (floor <= 0)"


async def main_async(ns: argparse.Namespace) -> int:
    print(f"rate {ns.rate} writes/s for {ns.seconds:g} s per side; throughput: {ns.events} events, batch 100")
    redis = await redis_notifications(ns.rate, ns.seconds)
    fjord, thr = await fjord_triggers(ns.rate, ns.seconds, ns.events)
    print()
    print(f"{'case':44} {'n':>6} {'lost':>5} {'ack->recv p50':>14} {'p99':>8} {'send->recv p50':>15} {'p99':>8}")
    for row in (redis, fjord):
        print(f"{row['label']:44} {row['n']:6d} {row['lost']:5d} {row['ack_p50']:11.3f} ms {row['ack_p99']:8.3f}"
              f" {row['send_p50']:12.3f} ms {row['send_p99']:8.3f}")
    print()
    print(f"p99 ratio fjord/redis, from the ack:  {_ratio(fjord['ack_p99'], redis['ack_p99'])} (target <= 3x)")
    print(f"p99 ratio fjord/redis, from the send: {_ratio(fjord['send_p99'], redis['send_p99'])} (target <= 3x)")
    print(f"throughput: {thr['events']} events in {thr['seconds']:.2f} s = {thr['per_second']:,.0f} events/s"
          f" (target >= 20,000){'' if thr['complete'] else ' INCOMPLETE'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=int, default=1000, help="writes per second for the latency cases")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds of writes per latency case")
    p.add_argument("--events", type=int, default=50000, help="events for the throughput case")
    p.add_argument("--quick", action="store_true", help="1 s of writes, 10,000 events")
    ns = p.parse_args(argv)
    if ns.quick:
        ns.seconds, ns.events = 1.0, 10000
    try:
        import uvloop
        return uvloop.run(main_async(ns))
    except ImportError:
        return asyncio.run(main_async(ns))


if __name__ == "__main__":
    sys.exit(main())
