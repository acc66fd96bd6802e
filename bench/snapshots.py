"""Snapshot benchmark: Fjord vs a real redis-server, same machine, same run.

What it measures (issue 4, "what it must show"), each as a ratio:

a. **Serving latency during a snapshot.** ``redis-benchmark`` (GET and SET,
   50 clients, ``--csv``, p99 column) against a server holding ``--keys``
   keys, once idle and once while snapshots are taken back to back (BGSAVE
   again as soon as the previous one ends). Fjord's snapshotter is a child
   process that replays the log; Redis forks. Printed: p99 idle, p99 during
   snapshots and their ratio for each server (target: Fjord <= 1.5x).
b. **Restart time.** ``--keys`` small keys, a snapshot (``SAVE``), then
   ``--keys/10`` more SETs (Fjord: the log's tail past the snapshot; Redis:
   ``SAVE`` again so its RDB holds the same data), SIGKILL, start again and
   time until ``PING`` answers ``PONG`` rather than ``-LOADING`` (process
   start included on both sides). Target: Fjord <= 2x Redis.
c. **Snapshot size**: Fjord's newest snapshot file vs Redis's ``dump.rdb``
   of the same data (plus Fjord's log size, for reference).

Order: load, (b), (c), then (a) (redis-benchmark's SETs add keys of their
own). Data is loaded with pipelined raw RESP. Fjord runs with ``--durability
async --snapshot-every-events 0`` (snapshots only when asked); Redis with
``--save ""`` and no AOF. Machines are shared and noisy: compare ratios.

Usage: ``python bench/snapshots.py [--keys N] [--requests N] [--quick]
[--repeat N] [--cpu-percent 100,50,25] [--latency-only]`` (default 1,000,000
keys, a few minutes; ``--quick``: 200,000 keys). The latency case runs
``--repeat`` rounds (default 3), idle then busy, cases interleaved, and
prints medians (the ratio column: median of the per-round ratios);
``--cpu-percent`` compares several ``snapshot-cpu-percent`` values (set with
CONFIG SET on the same server) in the same run. Snapshot state is polled on
one connection (a ``redis-cli`` per poll costs more CPU than it measures).
Installs ``redis-server redis-tools`` with apt if missing.
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import ROOT, Server, ensure_redis, wait_ready  # noqa: E402


# ------------------------------------------------------------------ data


def _resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def fill(port: int, start: int, stop: int, tag: bytes = b"v", batch: int = 10_000) -> None:
    """SET key:i to ``<tag>:i`` for i in [start, stop), pipelined."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        for base in range(start, stop, batch):
            n = min(batch, stop - base)
            s.sendall(b"".join(_resp(b"SET", b"key:%d" % i, tag + b":%d" % i) for i in range(base, base + n)))
            want, got = 5 * n, 0  # each reply is "+OK\r\n"
            while got < want:
                chunk = s.recv(1 << 20)
                if not chunk:
                    raise RuntimeError("server closed the connection while loading data")
                if b"-" in chunk:
                    raise RuntimeError(f"error while loading data: {chunk[:200]!r}")
                got += len(chunk)


def info(server: Server, section: str = "persistence") -> dict[str, str]:
    out = server.cli("INFO", section)
    return dict(line.split(":", 1) for line in out.splitlines() if ":" in line)


# ------------------------------------------------------------------ (a) latency


def p99(port: int, keys: int, requests: int) -> dict[str, float]:
    """p99 latency (ms) of GET and SET from redis-benchmark's CSV."""
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-n", str(requests), "-c", "50",
                          "-r", str(keys), "-t", "get,set", "--csv"],
                         capture_output=True, text=True, timeout=900).stdout
    rows = list(csv.reader(io.StringIO(out)))
    col = rows[0].index("p99_latency_ms")
    return {row[0]: float(row[col]) for row in rows[1:] if row}


class Conn:
    """One connection for polling (a redis-cli process per poll would cost
    the 2-core machine more CPU than what is measured)."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def call(self, *args: str) -> bytes:
        self.sock.sendall(_resp(*(a.encode() for a in args)))
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        line, _, rest = self.buf.partition(b"\r\n")
        if line[:1] != b"$":
            self.buf = rest
            return line
        n = int(line[1:])
        while len(rest) < n + 2:
            rest += self.sock.recv(65536)
        self.buf = rest[n + 2:]
        return rest[:n]

    def saving(self) -> bool:
        return b"rdb_bgsave_in_progress:1" in self.call("INFO", "persistence")

    def close(self) -> None:
        self.sock.close()


class SnapshotLoop(threading.Thread):
    """BGSAVE again as soon as the previous snapshot ends, until stopped.
    ``durations``: seconds of each snapshot that ended (polled every 20 ms)."""

    def __init__(self, server: Server):
        super().__init__(daemon=True)
        self.server = server
        self.halt = threading.Event()
        self.count = 0
        self.durations: list[float] = []
        self.conn = Conn(server.port)

    def run(self) -> None:
        conn = Conn(self.server.port)
        try:
            while not self.halt.is_set():
                t0 = time.perf_counter()
                conn.call("BGSAVE")
                self.count += 1
                while not self.halt.is_set() and conn.saving():
                    time.sleep(0.02)
                if not self.halt.is_set():
                    self.durations.append(time.perf_counter() - t0)
        finally:
            conn.close()

    def busy(self) -> None:
        """Wait until a snapshot is under way."""
        deadline = time.time() + 10
        while not self.conn.saving() and time.time() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=120)
        while self.conn.saving():
            time.sleep(0.05)
        self.conn.close()


def latency_case(server: Server, keys: int, requests: int) -> tuple[dict, dict, SnapshotLoop]:
    idle = p99(server.port, keys, requests)
    loop = SnapshotLoop(server)
    loop.start()
    loop.busy()
    try:
        busy = p99(server.port, keys, requests)
    finally:
        loop.stop()
    return idle, busy, loop


def latency_rows(servers: list[tuple[str, Server, str | None]], keys: int, requests: int,
                 repeat: int) -> list[tuple]:
    """Idle vs during-snapshot p99 for each (label, server, Fjord
    snapshot-cpu-percent or None), the cases interleaved and repeated
    ``repeat`` times; medians of p99s and of the per-round ratios."""
    got: dict[str, list] = {label: [] for label, _, _ in servers}
    for _ in range(repeat):
        for label, server, cpu in servers:
            if cpu is not None:
                server.cli("CONFIG", "SET", "snapshot-cpu-percent", cpu)
            got[label].append(latency_case(server, keys, requests))
    rows = []
    med = statistics.median
    for label, server, cpu in servers:
        runs = got[label]
        took = [d for _, _, loop in runs for d in loop.durations]
        started = sum(loop.count for _, _, loop in runs)
        took_s = f", {started} snapshots" + (f" of {med(took):.2f} s" if took else ", none ended in a round")
        for test in ("GET", "SET"):
            ratios = [b[test] / i[test] for i, b, _ in runs if i[test]]
            rows.append((f"{label} {test} p99 ms (idle / during; median of {len(runs)}{took_s})",
                         f"{med(i[test] for i, _, _ in runs):.3f}", f"{med(b[test] for _, b, _ in runs):.3f}",
                         f"{med(ratios):.2f}x" if ratios else "n/a",
                         "<= 1.5x" if server.kind == "fjord" else "(reference)"))
    return rows


# ------------------------------------------------------------------ (b) restart


def restart_seconds(server: Server) -> float:
    """SIGKILL the server and start it again with the same command and
    data; seconds until PING answers PONG."""
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    t0 = time.perf_counter()
    server.proc = subprocess.Popen(server.proc.args, cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
    wait_ready(server.port, server.proc, timeout=900)
    return time.perf_counter() - t0


def _size(pattern: str) -> int:
    return sum(os.path.getsize(p) for p in glob.glob(pattern))


# ------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=1_000_000, help="keys in the dataset")
    ap.add_argument("--requests", type=int, default=200_000, help="redis-benchmark requests per latency run")
    ap.add_argument("--quick", action="store_true", help="200,000 keys, 100,000 requests")
    ap.add_argument("--repeat", type=int, default=3, help="latency rounds (medians are reported)")
    ap.add_argument("--cpu-percent", default="",
                    help="comma-separated snapshot-cpu-percent values to compare in the latency case "
                         "(default: the server's default only)")
    ap.add_argument("--latency-only", action="store_true", help="skip the restart and size cases")
    ns = ap.parse_args()
    if ns.quick:
        ns.keys, ns.requests = 200_000, 100_000
    tail = ns.keys // 10
    ensure_redis()
    # A deployment has its bytecode cached; without the cache every
    # snapshotter child would compile ~90 modules (0.15 s of CPU) first.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    fj = Server("fjord", ["--durability", "async", "--snapshot-every-events", "0"])
    rd = Server("redis", ["--appendonly", "no"])
    rows = []
    try:
        t0 = time.perf_counter()
        for s in (fj, rd):
            fill(s.port, 0, ns.keys)
        print(f"loaded {ns.keys:,} keys into each server in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

        if ns.latency_only:
            fj.cli("SAVE")
            rows += latency_cases(fj, rd, ns)
            return 0
        # (b) restart: snapshot, then a tail of ns.keys/10 SETs
        fj.cli("SAVE")
        fill(fj.port, 0, tail, b"tail")
        fill(rd.port, 0, tail, b"tail")
        rd.cli("SAVE")
        time.sleep(1.5)  # Fjord async durability: let the tail reach its fsync
        fj_secs = restart_seconds(fj)
        rd_secs = restart_seconds(rd)
        fj_keys, rd_keys = int(fj.cli("DBSIZE")), int(rd.cli("DBSIZE"))
        check = fj.cli("GET", f"key:{tail - 1}").strip() == f"tail:{tail - 1}"
        rows.append((f"restart s ({ns.keys:,} keys + {tail:,} tail; Fjord/Redis)",
                     f"{fj_secs:.2f}", f"{rd_secs:.2f}", f"{fj_secs / rd_secs:.2f}x", "<= 2x"))
        if fj_keys != ns.keys or rd_keys != ns.keys or not check:
            print(f"WARNING: after restart Fjord has {fj_keys} keys (tail ok: {check}), Redis {rd_keys}",
                  file=sys.stderr)
        replay = info(fj)
        print(f"Fjord replay after the snapshot: {replay.get('replay_records')} records "
              f"in {replay.get('replay_seconds')} s", file=sys.stderr)

        # (c) sizes
        snap = sorted(glob.glob(os.path.join(fj.dir, "data", "snapshots", "*.fjs")))
        snap_size = os.path.getsize(snap[-1]) if snap else 0
        rdb_size = os.path.getsize(os.path.join(rd.dir, "dump.rdb"))
        log_size = _size(os.path.join(fj.dir, "data", "log", "*.log"))
        rows.append(("snapshot bytes (Fjord snapshot / RDB)", f"{snap_size:,}", f"{rdb_size:,}",
                     f"{snap_size / rdb_size:.2f}x", ""))
        rows.append(("Fjord log bytes (reference)", f"{log_size:,}", "", "", ""))

        # (a) latency, idle vs during snapshots (last: redis-benchmark adds keys)
        rows += latency_cases(fj, rd, ns)
    finally:
        fj.stop()
        rd.stop()
        print_table(rows)
    return 0


def latency_cases(fj: Server, rd: Server, ns) -> list[tuple]:
    cpus = [c.strip() for c in ns.cpu_percent.split(",") if c.strip()]
    cases = [(f"fjord cpu {c}%", fj, c) for c in cpus] or [("fjord", fj, None)]
    return latency_rows(cases + [("redis", rd, None)], ns.keys, ns.requests, ns.repeat)


def print_table(rows) -> None:
    header = ("case", "Fjord | idle", "Redis | busy", "ratio", "target")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))


if __name__ == "__main__":
    sys.exit(main())
