"""Functional tests: the Kafka runner (consumer group of ``fjord views run``
workers) and the faust adapter, against the real Tansu broker.

The same view module runs embedded in a Kafka-backed ``fjord serve`` and in
two workers of one consumer group; the active worker is SIGKILLed mid-stream,
the other takes the partition over from the shared checkpoint, and the
results must equal the embedded runner's, exactly (the module has a
non-idempotent view, so a double-applied event would show).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
import redis

from conftest import ROOT, FjordProcess, wait_until
from kafkakit import unique_topic
from test_views_crash import VIEWS, settle, traffic

NAMES = ("count", "total", "low", "high", "parts", "index", "events", "top", "feed")



class Worker:
    """One ``fjord views run`` Kafka worker process."""

    def __init__(self, tmp_path, name: str, args: list[str]):
        self.log_path = str(tmp_path / f"{name}.log")
        self.logfile = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "store", "views", "run", *args],
                                     cwd=ROOT, stdout=self.logfile, stderr=subprocess.STDOUT)

    def output(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def owns(self) -> bool:
        out = self.output()
        return out.rfind("assigned partition 0") > out.rfind("revoked partition 0")

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        self.logfile.close()


def worker_results(views_path: str, checkpoint_dir: str) -> tuple[int, dict]:
    from streams.views.state import CheckpointStore
    from triggers.viewcommands import to_reply
    from triggers.viewhost import load_views

    store = CheckpointStore(os.path.join(checkpoint_dir, "p0"))
    out, offsets = {}, set()
    for view in load_views(views_path):
        cp = store.load(view.name)
        assert cp is not None, f"no checkpoint for {view.name}"
        offsets.add(cp.next_offset)
        out[view.name] = to_reply(view.get(cp.state, b"all") if view.name == "top"
                                  else view.range(cp.state, 0, -1))
    assert len(offsets) == 1, offsets
    return offsets.pop(), out


def embedded_results(r: redis.Redis) -> dict:
    off = r.execute_command("FJORD.OFFSET")
    out = {}
    for name in NAMES:
        if name == "top":
            out[name] = r.execute_command("FJORD.VIEW", "GET", "top", "all", "AFTER", off)
        else:
            out[name] = r.execute_command("FJORD.VIEW", "RANGE", name, 0, -1, "AFTER", off, "TIMEOUT", 20000)
    return out


def test_kafka_workers_match_the_embedded_runner(tmp_path, broker):
    topic = unique_topic()
    views_path = tmp_path / "kviews.py"
    views_path.write_text(VIEWS)
    node = FjordProcess(str(tmp_path / "node"), args=(
        "--kafka-bootstrap", broker.bootstrap, "--kafka-topic", topic, "--triggers", "no",
        "--views", str(views_path))).start()
    shared = str(tmp_path / "checkpoints")
    args = ["--views", str(views_path), "--kafka-bootstrap", broker.bootstrap, "--kafka-topic", topic,
            "--group", f"g-{topic}", "--checkpoint-dir", shared, "--checkpoint-seconds", "0.2"]
    workers = [Worker(tmp_path, f"w{i}", args) for i in range(2)]
    try:
        r = node.client()
        rnd = random.Random(3)
        traffic(r, rnd, None, 400)
        active = wait_until(lambda: next((w for w in workers if w.owns()), None), 30, what="a worker owns partition 0")
        other = workers[1 - workers.index(active)]
        # kill the active worker while writes stream in
        stop = threading.Event()
        writer = threading.Thread(target=traffic, args=(node.client(), random.Random(4), stop, 1500))
        writer.start()
        time.sleep(0.5)
        active.stop(signal.SIGKILL)
        writer.join(timeout=60)
        traffic(r, rnd, None, 200)
        settle(r)
        end = r.info("persistence")["log_end_offset"]
        wait_until(other.owns, 30, what="the surviving worker takes partition 0 over")
        expected = embedded_results(r)

        def caught_up():
            try:
                return worker_results(str(views_path), shared)[0] >= end
            except AssertionError:
                return False

        wait_until(caught_up, 30, what=f"the worker reaches offset {end}")
        other.stop()  # a last checkpoint, then compare
        offset, got = worker_results(str(views_path), shared)
        assert offset == end
        assert got == expected
        assert "Traceback" not in other.output()
    finally:
        for w in workers:
            w.stop(signal.SIGKILL)
        node.stop()


def test_faust_example_agent_counts_the_change_stream(tmp_path, broker):
    """The faust adapter's example agent, run as a faust worker, counts the
    same order events by type as the embedded ``events`` view."""
    pytest.importorskip("faust")
    import json

    topic = unique_topic()
    views_path = tmp_path / "fviews.py"
    views_path.write_text(VIEWS)
    node = FjordProcess(str(tmp_path / "node"), args=(
        "--kafka-bootstrap", broker.bootstrap, "--kafka-topic", topic, "--triggers", "no",
        "--views", str(views_path))).start()
    out = tmp_path / "counts.json"
    agent = None
    try:
        r = node.client()
        traffic(r, random.Random(5), None, 300)
        settle(r)  # every PEXPIRE has fired its "expired" event
        r.set("other", "x")  # not under the prefix: not counted
        off = r.execute_command("FJORD.OFFSET")
        expected = {g.decode(): n for g, n in
                    r.execute_command("FJORD.VIEW", "RANGE", "events", 0, -1, "AFTER", off)}
        log_path = tmp_path / "faust.log"
        with open(log_path, "wb") as logfile:
            agent = subprocess.Popen(
                [sys.executable, "-m", "streams.views.faust_adapter", "--broker", f"kafka://{broker.bootstrap}",
                 "--topic", topic, "--prefix", "order:", "--app-id", f"example-{topic}", "--out", str(out),
                 "--data-dir", str(tmp_path / "faust")],
                cwd=ROOT, stdout=logfile, stderr=subprocess.STDOUT)

        def counted():
            if not out.exists():
                return None
            got = json.loads(out.read_text())
            return got if got == expected else None

        try:
            wait_until(counted, 40, what=f"the faust agent counts {expected}")
        except AssertionError:
            raise AssertionError(f"faust agent: {out.read_text() if out.exists() else 'no output'}; log:\n"
                                 f"{log_path.read_text()[-2000:]}") from None
    finally:
        if agent is not None and agent.poll() is None:
            agent.terminate()
            try:
                agent.wait(timeout=15)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
        node.stop()
