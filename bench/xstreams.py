"""Streams benchmark: XADD and XREADGROUP, Fjord vs redis-server, same run.

Reuses ``bench/compare.py`` (servers on free ports, ``redis-benchmark`` with
a custom command, alternating rounds, medians). Cases, 50 clients,
unpipelined:

- ``XADD s * f v``: Fjord ``--durability async`` vs ``redis-server
  --appendonly yes --appendfsync everysec``;
- durable ``XADD``: Fjord's default (``sync``: every reply after fsync) vs
  ``--appendfsync always``;
- ``XREADGROUP GROUP g c COUNT 1 STREAMS s >`` (one new entry per call, each
  delivery recorded in the PEL and, in Fjord, logged), async vs everysec, on
  a stream pre-filled by the XADD case.

Prints ops/s and the ratio Fjord/Redis (target >= 0.7).
Usage: ``python bench/xstreams.py [--requests N] [--rounds R] [--quick] [--markdown]``.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from compare import Server, ensure_redis, measure, print_table  # noqa: E402

TARGET = 0.7
XADD = ["XADD", "bench:stream", "*", "field", "value"]
XREADGROUP = ["XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "bench:stream", ">"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=50_000, help="requests per run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per case (median kept)")
    ap.add_argument("--quick", action="store_true", help="fewer requests and one round")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ns = ap.parse_args()
    if ns.quick:
        ns.requests, ns.rounds = 10_000, 1
    ensure_redis()
    servers = {
        "fjord-async": Server("fjord", ["--durability", "async"]),
        "fjord-sync": Server("fjord", []),
        "redis-everysec": Server("redis", ["--appendonly", "yes", "--appendfsync", "everysec"]),
        "redis-always": Server("redis", ["--appendonly", "yes", "--appendfsync", "always"]),
    }
    results = []
    try:
        fj, rd = servers["fjord-async"], servers["redis-everysec"]
        results.append((*measure("XADD, 50 clients", "xadd", 1, fj, rd, ns.requests, ns.rounds, XADD), TARGET))
        results.append((*measure("durable XADD, 50 clients", "xadd", 1, servers["fjord-sync"],
                                 servers["redis-always"], ns.requests, ns.rounds, XADD), TARGET))
        for srv in (fj, rd):  # the XADD case left rounds * requests entries to read
            srv.cli("XGROUP", "CREATE", "bench:stream", "g", "0")
        results.append((*measure("XREADGROUP >, 50 clients", "xreadgroup", 1, fj, rd, ns.requests, ns.rounds,
                                 XREADGROUP), TARGET))
    finally:
        for s in servers.values():
            s.stop()
    print_table(results, ns.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
