"""Scripting benchmark: EVALSHA of small scripts, Fjord vs redis-server,
same machine, same run (helpers from bench/compare.py).

Cases, 50 clients, unpipelined, Fjord ``--durability async`` vs
``redis-server --appendonly yes --appendfsync everysec``:

- EVALSHA of a read script (``GET`` of a random key)
- EVALSHA of a write script (``INCR`` of a random key, the effect logged)
- EVALSHA of a two-call script (read-modify-write, as a rate limiter does)
- EVAL of the read script (body sent each time: sha1 + cache lookup)
- plain GET, for reference: what a script adds to a command's cost

Target: Fjord/Redis >= 0.5. Usage: ``python bench/scripting.py [--requests N]
[--rounds R] [--quick] [--markdown] [--cpu]``.

``--cpu`` adds a second table: each server's own CPU time (user + sys, from
/proc) per request, pipelined (-P 16) so that syscalls weigh less. On a
shared, loaded machine ops/s swing by 2x from run to run; CPU time per
request moves far less, and its Redis/Fjord ratio is the cost ratio of the
command itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from compare import Server, ensure_redis, measure, print_table  # noqa: E402

READ = "return redis.call('get', KEYS[1])"
WRITE = "return redis.call('incr', KEYS[1])"
LIMITER = ("local n = redis.call('incr', KEYS[1]) "
           "if n == 1 then redis.call('expire', KEYS[1], 60) end "
           "return n")
TARGET = 0.5


def load(server: Server, body: str) -> str:
    return server.cli("SCRIPT", "LOAD", body).strip()


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_request(server: Server, command: list[str], requests: int) -> float:
    """The server's CPU microseconds per request over one pipelined run."""
    before = _cpu_seconds(server.proc.pid)
    subprocess.run(["redis-benchmark", "-p", str(server.port), "-n", str(requests), "-c", "50", "-P", "16",
                    "-r", "100000", "-q", *command], capture_output=True, timeout=600, check=True)
    return (_cpu_seconds(server.proc.pid) - before) * 1e6 / requests


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=100_000, help="requests per run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per case (median kept)")
    ap.add_argument("--quick", action="store_true", help="fewer requests and one round")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument("--cpu", action="store_true", help="also print server CPU time per request")
    ns = ap.parse_args()
    if ns.quick:
        ns.requests, ns.rounds = 20_000, 1
    ensure_redis()
    fj = Server("fjord", ["--durability", "async"])
    rd = Server("redis", ["--appendonly", "yes", "--appendfsync", "everysec"])
    results = []
    try:
        cases = [("GET, no script (reference)", ["GET", "key:__rand_int__"])]
        for label, body in (("EVALSHA read (GET)", READ), ("EVALSHA write (INCR)", WRITE),
                            ("EVALSHA INCR+EXPIRE", LIMITER)):
            sha = load(fj, body)
            if sha != load(rd, body):
                raise RuntimeError(f"the servers disagree on the sha1 of {body!r}")
            cases.append((label, ["EVALSHA", sha, "1", "key:__rand_int__"]))
        cases.append(("EVAL read (GET)", ["EVAL", READ, "1", "key:__rand_int__"]))
        fj.cli("SET", "key:000000000001", "0")
        rd.cli("SET", "key:000000000001", "0")
        for label, command in cases:
            results.append((*measure(label, label, 1, fj, rd, ns.requests, ns.rounds, command), TARGET))
        cpu = []
        if ns.cpu:
            n = ns.requests * 4
            for label, command in cases:
                f = statistics.median(cpu_per_request(fj, command, n) for _ in range(ns.rounds))
                r = statistics.median(cpu_per_request(rd, command, n) for _ in range(ns.rounds))
                cpu.append((label, f, r))
    finally:
        fj.stop()
        rd.stop()
    print_table(results, ns.markdown)
    if cpu:
        print()
        print("server CPU per request, -P 16 (us; Redis/Fjord = cost ratio, same target)")
        width = max(len(label) for label, _, _ in cpu)
        for label, f, r in cpu:
            print(f"{label.ljust(width)}  fjord {f:6.2f}  redis {r:6.2f}  redis/fjord {r / f:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
