"""Side-by-side benchmark: Fjord vs a real redis-server, same machine, same run.

Starts Debian's ``redis-server`` and ``fjord serve`` on free ports, runs
``redis-benchmark`` against each, and prints ops/s and the ratio
Fjord/Redis. Machines are shared and noisy, so each case alternates the two
servers for several rounds and keeps each side's median; compare ratios, not
absolute numbers.

Cases (persistence is matched on both sides, so ratios compare like with like):

- ``GET``/``SET`` unpipelined, 50 clients, and with ``-P 16``: Fjord with
  ``--durability async`` (fsync once a second) vs ``redis-server --appendonly
  yes --appendfsync everysec``.
- durable ``SET``, 50 clients: Fjord's default (``--durability sync``: every
  reply after fsync) vs ``redis-server --appendonly yes --appendfsync always``.
- data-type commands (when the server has them): LPUSH, LPOP, SADD, HSET,
  ZADD, ZRANGE of 100 elements, MSET of 10 keys, unpipelined, async vs
  everysec.

Usage: ``python bench/compare.py [--requests N] [--rounds R] [--quick]
[--markdown]``. Installs ``redis-server redis-tools`` with apt if missing.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ensure_redis() -> None:
    if shutil.which("redis-server") and shutil.which("redis-benchmark"):
        return
    prefix = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run(prefix + ["apt-get", "update", "-qq"], check=True)
    subprocess.run(prefix + ["apt-get", "install", "-y", "-qq", "redis-server", "redis-tools"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"server on port {port} did not start")


class Server:
    """A server process with a private data directory."""

    def __init__(self, kind: str, args: list[str]):
        self.kind = kind
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix=f"bench-{kind}-", dir=os.environ.get("BENCH_DIR"))
        if kind == "redis":
            cmd = ["redis-server", "--port", str(self.port), "--dir", self.dir, "--save", "", *args]
        else:
            cmd = [sys.executable, "-m", "store", "serve", "--port", str(self.port),
                   "--data-dir", os.path.join(self.dir, "data"), "--loglevel", "warning", *args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(self.port, self.proc)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def cli(self, *args: str) -> str:
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True).stdout


def run_benchmark(port: int, test: str, requests: int, clients: int, pipeline: int,
                  command: list[str] | None = None) -> float:
    """Return requests/s reported by redis-benchmark."""
    cmd = ["redis-benchmark", "-p", str(port), "-n", str(requests), "-c", str(clients),
           "-P", str(pipeline), "-r", "100000", "--csv"]
    cmd += command if command else ["-t", test]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    rows = list(csv.reader(io.StringIO(out)))
    for row in rows[1:]:
        if row and row[0] != "test":
            return float(row[1])
    raise RuntimeError(f"no result from redis-benchmark for {test}: {out!r}")


def seed_zset(server: Server) -> None:
    args = ["ZADD", "bench:zset"]
    for i in range(100):
        args += [str(i), f"member:{i:03d}"]
    server.cli(*args)


CORE_CASES = [
    # label, test, pipeline, fjord args, redis args, target
    ("GET, 50 clients", "get", 1, "everysec", 0.8),
    ("SET, 50 clients", "set", 1, "everysec", 0.8),
    ("GET, 50 clients, -P 16", "get", 16, "everysec", 0.6),
    ("SET, 50 clients, -P 16", "set", 16, "everysec", 0.6),
    ("durable SET, 50 clients", "set", 1, "always", 1.0),
]
TYPE_CASES = [
    ("LPUSH", "lpush", None),
    ("LPOP", "lpop", None),
    ("SADD", "sadd", None),
    ("HSET", "hset", None),
    ("ZADD", "zadd", None),
    ("ZRANGE 100 elements", "zrange100", ["ZRANGE", "bench:zset", "0", "99"]),
    ("MSET 10 keys", "mset", None),
]


def supports(server: Server, command: str) -> bool:
    return "unknown command" not in server.cli("COMMAND", "INFO", command).lower() and \
        server.cli("COMMAND", "INFO", command).strip() != ""


def measure(label, test, pipeline, fjord, redis_, requests, rounds, command=None):
    fj, rd = [], []
    for _ in range(rounds):
        fj.append(run_benchmark(fjord.port, test, requests, 50, pipeline, command))
        rd.append(run_benchmark(redis_.port, test, requests, 50, pipeline, command))
    f, r = statistics.median(fj), statistics.median(rd)
    return label, f, r, f / r if r else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=100_000, help="requests per unpipelined run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per case (median kept)")
    ap.add_argument("--quick", action="store_true", help="fewer requests and one round")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument("--no-types", action="store_true", help="skip the data-type cases")
    ns = ap.parse_args()
    if ns.quick:
        ns.requests, ns.rounds = 20_000, 1
    ensure_redis()
    results = []
    servers = {
        "fjord-async": Server("fjord", ["--durability", "async"]),
        "fjord-sync": Server("fjord", []),
        "redis-everysec": Server("redis", ["--appendonly", "yes", "--appendfsync", "everysec"]),
        "redis-always": Server("redis", ["--appendonly", "yes", "--appendfsync", "always"]),
    }
    try:
        for label, test, pipeline, mode, target in CORE_CASES:
            fj = servers["fjord-sync" if mode == "always" else "fjord-async"]
            rd = servers[f"redis-{mode}"]
            n = ns.requests * (4 if pipeline > 1 else 1)
            results.append((*measure(label, test, pipeline, fj, rd, n, ns.rounds), target))
        if not ns.no_types:
            fj, rd = servers["fjord-async"], servers["redis-everysec"]
            for label, test, command in TYPE_CASES:
                probe = command[0] if command else test.upper()
                if not supports(fj, probe):
                    results.append((label, None, None, None, 0.7))
                    continue
                if test == "zrange100":
                    seed_zset(fj)
                    seed_zset(rd)
                results.append((*measure(label, test, 1, fj, rd, ns.requests, ns.rounds, command), 0.7))
    finally:
        for s in servers.values():
            s.stop()
    print_table(results, ns.markdown)
    return 0


def print_table(results, markdown: bool) -> None:
    header = ("case", "Fjord ops/s", "Redis ops/s", "Fjord/Redis", "target")
    rows = []
    for label, f, r, ratio, target in results:
        if f is None:
            rows.append((label, "n/a", "n/a", "not implemented", f">= {target}"))
        else:
            mark = "" if ratio >= target else " (below)"
            rows.append((label, f"{f:,.0f}", f"{r:,.0f}", f"{ratio:.2f}{mark}", f">= {target}"))
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))


if __name__ == "__main__":
    sys.exit(main())
