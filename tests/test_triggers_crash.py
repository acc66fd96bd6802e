"""The dispatcher SIGKILLed in the middle of a batch, then restarted:
nothing is lost, and an event delivered twice carries the same id.

Two ways the dispatcher runs, both killed: inside ``fjord serve`` (the
whole server dies) and as ``fjord triggers run`` (its own process, reading
the server's log read-only while the server keeps serving). The receiver
is a real aiohttp server on loopback, slow enough that the kill lands while
batches are in flight.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from aiohttp import web

from conftest import ROOT, free_port

N = 240
KEYS = 6


class Receiver:
    """An aiohttp webhook receiver on its own thread; records every event."""

    def __init__(self, delay: float = 0.02):
        self.port = free_port()
        self.delay = delay
        self.events: list[dict] = []
        self.requests = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def hook(request):
            body = await request.json()
            self.requests += 1
            await asyncio.sleep(self.delay)
            self.events.extend(body["records"])
            return web.Response(status=200)

        async def start():
            app = web.Application()
            app.router.add_post("/hook", hook)
            self.runner = web.AppRunner(app)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
            self.ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def values(self) -> set[int]:
        return {int(e["data"]["data"]["elements"][0]) for e in list(self.events)}


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def check(receiver: Receiver) -> None:
    """Every value delivered; duplicates are the same event under the same
    id; per key, first deliveries come in write order."""
    by_id: dict[str, dict] = {}
    firsts: dict[str, list[int]] = {}
    for e in receiver.events:
        if e["id"] in by_id:
            assert by_id[e["id"]]["data"] == e["data"]  # a duplicate is the same event
            continue
        by_id[e["id"]] = e
        firsts.setdefault(e["subject"], []).append(int(e["data"]["data"]["elements"][0]))
    assert sorted(v for vs in firsts.values() for v in vs) == list(range(N))
    print(f"{len(receiver.events)} deliveries of {N} events")
    for key, vs in firsts.items():
        assert vs == sorted(vs), key


def write_all(client) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(N):
        pipe.rpush(f"k{i % KEYS}", i)
        if i % 20 == 19:
            pipe.execute()
    pipe.execute()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def create(client, port: int) -> None:
    client.execute_command("FJORD.TRIGGER", "CREATE", "crash", "WEBHOOK", f"http://127.0.0.1:{port}/hook",
                           "ALLOW-PRIVATE", "BATCH", "8", "BACKOFF", "50", "RETRIES", "1000")


def test_server_sigkilled_mid_batch_resumes_without_loss(new_fjord, receiver):
    srv = new_fjord()
    c = srv.client()
    create(c, receiver.port)
    write_all(c)
    wait_for(lambda: len(receiver.events) >= N // 4)
    assert len(receiver.values()) < N  # killed with deliveries still to make
    srv.restart(signal.SIGKILL)
    wait_for(lambda: receiver.values() >= set(range(N)))
    check(receiver)
    info = srv.client().execute_command("FJORD.TRIGGER", "INFO", "crash")
    assert info  # the subscription survived the crash (it lives in the log)


def test_standalone_dispatcher_sigkilled_mid_batch(new_fjord, receiver, tmp_path):
    srv = new_fjord("--triggers", "no")
    c = srv.client()
    create(c, receiver.port)

    def start():
        return subprocess.Popen([sys.executable, "-m", "store", "triggers", "run", "--dir", srv.data_dir],
                                cwd=ROOT, stdout=open(tmp_path / "dispatcher.log", "ab"), stderr=subprocess.STDOUT)

    proc = start()
    try:
        write_all(c)
        wait_for(lambda: len(receiver.events) >= N // 4)
        assert len(receiver.values()) < N
        proc.kill()
        proc.wait(10)
        proc = start()
        wait_for(lambda: receiver.values() >= set(range(N)))
        check(receiver)
        assert os.path.exists(os.path.join(srv.data_dir, "triggers", "crash.checkpoint"))
    finally:
        proc.kill()
        proc.wait(10)
