"""Trigger workers as a Kafka consumer group (triggers/workgroup.py).

Two ``fjord triggers run --kafka-bootstrap`` workers share the triggers of a
Fjord node whose log is a Kafka topic (Tansu, tests/kafkakit.py): the group
tells each worker who is alive, rendezvous hashing splits the triggers, and
positions are committed group offsets. One worker is SIGKILLed mid-delivery;
the survivor takes its triggers over from their committed positions, and
every event still reaches the aiohttp receiver of every trigger.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
import urllib.request

from aiohttp import web

from conftest import ROOT, FjordProcess, free_port
from kafkakit import unique_topic
from triggers.workgroup import owner

N = 120


class Receiver:
    """aiohttp webhook receiver on its own thread: values seen per subscription."""

    def __init__(self):
        self.port = free_port()
        self.seen: dict[str, list[int]] = {}
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def hook(request):
            body = await request.json()
            await asyncio.sleep(0.05)  # slow enough that a kill lands mid-delivery
            for rec in body["records"]:
                self.seen.setdefault(body["subscription"], []).append(int(rec["data"]["data"]["elements"][0]))
            return web.Response(status=200)

        async def start():
            app = web.Application()
            app.router.add_post("/hook", hook)
            self.runner = web.AppRunner(app)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
            ready.set()

        self.thread = threading.Thread(target=lambda: (self.loop.run_until_complete(start()),
                                                       self.loop.run_forever()), daemon=True)
        self.thread.start()
        ready.wait(10)

    def values(self, name: str) -> set[int]:
        return set(self.seen.get(name, ()))

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.05)


class Worker:
    def __init__(self, tmp_path, name: str, bootstrap: str, topic: str, *extra: str):
        self.log_path = tmp_path / f"{name}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "store", "triggers", "run", "--kafka-bootstrap", bootstrap,
             "--kafka-topic", topic, "--dir", str(tmp_path / name), *extra],
            cwd=ROOT, stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_id(self) -> str | None:
        m = re.search(r"this one is (\w+)", self.output())
        return m.group(1) if m else None


    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def last_members(worker: Worker) -> int:
    counts = re.findall(r"trigger workers: (\d+) member", worker.output())
    return int(counts[-1]) if counts else 0


def test_two_workers_share_triggers_and_survive_a_sigkill(tmp_path, broker):
    topic = unique_topic()
    node = FjordProcess(str(tmp_path / "node"), args=(
        "--kafka-bootstrap", broker.bootstrap, "--kafka-topic", topic, "--triggers", "no")).start()
    receiver = Receiver()
    a = b = None
    try:
        c = node.client()
        c.set("warm", "up")  # the topic exists before the workers open it
        a = Worker(tmp_path, "a", broker.bootstrap, topic)
        admin_port = free_port()
        b = Worker(tmp_path, "b", broker.bootstrap, topic, "--admin-port", str(admin_port))
        wait_for(lambda: last_members(a) == 2 and last_members(b) == 2, 40, "both workers in the group")
        ida, idb = a.worker_id(), b.worker_id()
        # two triggers owned by each worker (the split is rendezvous hashing)
        names = {ida: [], idb: []}
        i = 0
        while min(len(v) for v in names.values()) < 2:
            name = f"t{i}"
            i += 1
            if len(names[owner(name, [ida, idb])]) < 2:
                names[owner(name, [ida, idb])].append(name)
        triggers = names[ida] + names[idb]
        for name in triggers:
            c.execute_command("FJORD.TRIGGER", "CREATE", name, "WEBHOOK", f"http://127.0.0.1:{receiver.port}/hook",
                              "ALLOW-PRIVATE", "BATCH", "4", "BACKOFF", "50", "RETRIES", "1000")
        for i in range(N // 2):
            c.rpush(f"k{i % 5}", i)
        wait_for(lambda: all(len(receiver.values(n)) >= N // 4 for n in names[ida]), 30, "worker a delivering")
        for i in range(N // 2, N):
            c.rpush(f"k{i % 5}", i)
        time.sleep(0.25)  # a's positions committed (every 0.2 s), a still delivering
        assert "handed over" not in a.output()
        a.kill()  # SIGKILL: no goodbye to the group; the broker notices after the session timeout
        assert any(len(receiver.values(n)) < N for n in names[ida]), "a finished before it was killed"
        for name in triggers:
            wait_for(lambda: receiver.values(name) >= set(range(N)), 45, f"every event of {name}")
        for name in triggers:  # per key, first deliveries in write order
            firsts: dict[int, list[int]] = {}
            for v in dict.fromkeys(receiver.seen[name]):
                firsts.setdefault(v % 5, []).append(v)
            assert all(vs == sorted(vs) for vs in firsts.values()), name
        assert last_members(b) == 1
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/triggers", timeout=5) as resp:
            assert sorted(t["name"] for t in json.load(resp)) == sorted(triggers)  # b runs them all now
        for name in names[ida]:  # b resumed a's triggers from a's committed positions, not from scratch
            first = int(re.search(rf"trigger {name}: delivering from offset (\d+)", a.output()).group(1))
            resumed = int(re.search(rf"trigger {name}: delivering from offset (\d+)", b.output()).group(1))
            # a commits every 0.2 s: under load its last commit may trail what it delivered,
            # but it is past where it started (a resume from scratch would equal ``first``)
            assert resumed > first, (name, first, resumed)
    finally:
        for w in (a, b):
            if w is not None:
                w.kill()
        receiver.close()
        node.stop()
