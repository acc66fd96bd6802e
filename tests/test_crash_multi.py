"""Crash test for transactions: MULTI/EXEC transfers, SIGKILL, restart, check.

Account keys start with a fixed total. Client threads move money between
them in transactions, each transfer also adding its id to the set ``done``
in the same transaction:

- blind transfers: ``MULTI; DECRBY from n; INCRBY to n; SADD done id; EXEC``;
- optimistic ones: ``WATCH from to; GET from; GET to`` then ``MULTI; SET from
  v-n; SET to w+n; SADD done id; EXEC``, retried when EXEC answers null. A
  WATCH that missed a concurrent change would lose an update here.

Other threads write unrelated keys, and readers read every account inside
one MULTI/EXEC, whose sum must always be the total. At a random moment the
server is SIGKILLed, restarted on the same data directory, and checked,
several rounds in a row:

- no transaction is half-applied: each account holds exactly its starting
  balance plus the transfers whose ids are in ``done`` (so the total holds);
- every acknowledged EXEC is in ``done``; no EXEC answered null is; every id
  in ``done`` was sent.

A SIGKILL cannot tear a write (what the process wrote is in the page cache),
so in every other round the log's tail is also cut at a random byte, as a
power loss could cut writes not yet acknowledged: the acknowledged check is
skipped for that round, but the cut must still drop whole transactions only,
which fails if one EXEC's events were ever spread over several records.

The RNG is seeded (``FJORD_CRASH_SEED`` overrides), so a failure names its seed.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field

import pytest

from conftest import FjordProcess, RawClient
from test_durability import resp, wait_serving
from crashkit import guarded

SEED = int(os.environ.get("FJORD_CRASH_SEED", "20261204"))
ROUNDS = 5
ACCOUNTS = [b"acct:%d" % i for i in range(8)]
START = 1000
TOTAL = START * len(ACCOUNTS)
BLIND, CAS, NOISE, READERS = 6, 4, 2, 2


@dataclass
class Ledger:
    """What clients sent and were told; one lock keeps it simple."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    #: transfer id -> (from, to, amount), recorded before it is sent
    sent: dict[bytes, tuple[bytes, bytes, int]] = field(default_factory=dict)
    acked: set[bytes] = field(default_factory=set)
    aborted: set[bytes] = field(default_factory=set)
    reads: int = 0
    problems: list[str] = field(default_factory=list)


class Reader:
    """Pipelined requests on a RawClient, replies read back in order."""

    def __init__(self, port: int):
        self.c = RawClient(port, timeout=10)

    def send(self, *commands) -> list[bytes]:
        self.c.send_raw(b"".join(resp(*cmd) for cmd in commands))
        return [self.c.read_reply() for _ in commands]

    def close(self) -> None:
        self.c.close()


def exec_items(reply: bytes) -> list[bytes] | None:
    """The lines of a flat EXEC array reply (None for the null array)."""
    if reply == b"*-1\r\n":
        return None
    lines = reply.split(b"\r\n")
    if not lines[0].startswith(b"*"):
        raise ValueError(reply)
    return lines[1:-1]


def pick(rng: random.Random) -> tuple[bytes, bytes, int]:
    a, b = rng.sample(ACCOUNTS, 2)
    return a, b, rng.randint(1, 9)


def blind_transfers(n: int, port: int, rng: random.Random, ledger: Ledger) -> None:
    c = Reader(port)
    seq = 0
    try:
        while True:
            seq += 1
            src, dst, amount = pick(rng)
            tid = b"b%d-%d-%d" % (n, seq, rng.getrandbits(32))
            with ledger.lock:
                ledger.sent[tid] = (src, dst, amount)
            replies = c.send(("MULTI",), ("DECRBY", src, amount), ("INCRBY", dst, amount),
                             ("SADD", "done", tid), ("EXEC",))
            items = exec_items(replies[-1])
            if replies[1:4] != [b"+QUEUED\r\n"] * 3 or items is None or len(items) != 3 or items[2] != b":1":
                with ledger.lock:
                    ledger.problems.append(f"blind transfer {tid!r}: unexpected replies {replies!r}")
                return
            with ledger.lock:
                ledger.acked.add(tid)
    except OSError:  # ConnectionError included: the server was killed
        return
    finally:
        c.close()


def cas_transfers(n: int, port: int, rng: random.Random, ledger: Ledger) -> None:
    c = Reader(port)
    seq = 0
    try:
        while True:
            seq += 1
            src, dst, amount = pick(rng)
            tid = b"c%d-%d-%d" % (n, seq, rng.getrandbits(32))
            _, mget = c.send(("WATCH", src, dst), ("MGET", src, dst))
            parts = mget.split(b"\r\n")
            have, want = int(parts[2]), int(parts[4])
            with ledger.lock:
                ledger.sent[tid] = (src, dst, amount)
            replies = c.send(("MULTI",), ("SET", src, have - amount), ("SET", dst, want + amount),
                             ("SADD", "done", tid), ("EXEC",))
            items = exec_items(replies[-1])
            with ledger.lock:
                if items is None:
                    ledger.aborted.add(tid)
                elif items == [b"+OK", b"+OK", b":1"]:
                    ledger.acked.add(tid)
                else:
                    ledger.problems.append(f"CAS transfer {tid!r}: unexpected replies {replies!r}")
                    return
    except OSError:
        return
    finally:
        c.close()


def noise(port: int, rng: random.Random, ledger: Ledger) -> None:
    """Writes outside the accounts, some in transactions of their own."""
    c = Reader(port)
    try:
        while True:
            key = b"noise:%d" % rng.randrange(20)
            if rng.random() < 0.5:
                c.send(("SET", key, rng.random()))
            else:
                c.send(("MULTI",), ("INCR", key + b":n"), ("DEL", key), ("EXEC",))
    except OSError:
        return
    finally:
        c.close()


def reader(port: int, ledger: Ledger) -> None:
    """Every account read in one transaction: the total never changes."""
    c = Reader(port)
    try:
        while True:
            replies = c.send(("MULTI",), *[("GET", a) for a in ACCOUNTS], ("EXEC",))
            items = exec_items(replies[-1])
            values = [int(x) for x in items[1::2]]
            with ledger.lock:
                ledger.reads += 1
                if sum(values) != TOTAL:
                    ledger.problems.append(f"a transaction read a total of {sum(values)}: {values}")
                    return
    except OSError:
        return
    finally:
        c.close()




def tear_log_tail(data_dir: str, rng: random.Random) -> None:
    """Cut the newest segment at a random byte among its last 64 KiB."""
    log_dir = os.path.join(data_dir, "log")
    path = os.path.join(log_dir, sorted(n for n in os.listdir(log_dir) if n.endswith(".log"))[-1])
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - rng.randint(1, min(size // 2, 65536)))


def verify(port: int, ledger: Ledger, round_: int, torn: bool) -> list[str]:
    """After a restart: balances are exactly what the logged transfers make
    them. After a torn tail, acknowledged transfers may be gone (and are
    forgotten); otherwise none may be."""
    c = Reader(port)
    members = c.send(("SMEMBERS", "done"))[0].split(b"\r\n")[2::2]
    done = set(members)
    balances = [int(x) for x in c.send(("MGET", *ACCOUNTS))[0].split(b"\r\n")[2::2]]
    c.close()
    bad = []
    unknown = done - ledger.sent.keys()
    if unknown:
        bad.append(f"round {round_}: {len(unknown)} transfer ids in 'done' were never sent")
    lost = ledger.acked - done
    if torn:
        ledger.acked -= lost
    elif lost:
        bad.append(f"round {round_}: {len(lost)} acknowledged EXECs are gone, e.g. {sorted(lost)[:3]}")
    ghosts = ledger.aborted & done
    if ghosts:
        bad.append(f"round {round_}: {len(ghosts)} EXECs answered null were applied")
    expected = {a: START for a in ACCOUNTS}
    for tid in done & ledger.sent.keys():
        src, dst, amount = ledger.sent[tid]
        expected[src] -= amount
        expected[dst] += amount
    got = dict(zip(ACCOUNTS, balances))
    if got != expected:
        bad.append(f"round {round_}: balances {got} != {expected} from the {len(done)} logged transfers "
                   f"(sum {sum(balances)}, total {TOTAL})")
    return bad


@pytest.mark.slow
def test_crash_multi(tmp_path):
    """Transactions survive SIGKILLs whole or not at all, never in part."""
    rng = random.Random(SEED)
    srv = FjordProcess(str(tmp_path / "data"))
    srv.log_path = str(tmp_path / "server.log")
    ledger = Ledger()
    failures: list[str] = []
    per_round = []
    try:
        srv.start(wait=False)
        wait_serving(srv)
        setup = Reader(srv.port)
        assert setup.send(("MSET", *[x for a in ACCOUNTS for x in (a, START)]))[0] == b"+OK\r\n"
        setup.close()
        for round_ in range(1, ROUNDS + 1):
            acked_before, reads_before = len(ledger.acked), ledger.reads
            aborted_before = len(ledger.aborted)
            jobs = ([(blind_transfers, n, srv.port, random.Random(rng.random())) for n in range(BLIND)]
                    + [(cas_transfers, n, srv.port, random.Random(rng.random())) for n in range(CAS)]
                    + [(noise, srv.port, random.Random(rng.random())) for _ in range(NOISE)]
                    + [(reader, srv.port) for _ in range(READERS)])
            threads = [threading.Thread(target=guarded(fn, ledger), args=(*args, ledger)) for fn, *args in jobs]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.4, 1.2))
            srv.kill()  # SIGKILL, mid-traffic
            for t in threads:
                t.join(15)
            torn = round_ % 2 == 0
            if torn:
                tear_log_tail(srv.data_dir, rng)
            assert not any(t.is_alive() for t in threads), "a client thread hung after the kill"
            per_round.append((len(ledger.acked) - acked_before, len(ledger.aborted) - aborted_before,
                              ledger.reads - reads_before))
            srv.start(wait=False)
            wait_serving(srv)
            failures += verify(srv.port, ledger, round_, torn)
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()
    print(f"seed {SEED}: (acknowledged EXECs, null EXECs, reads) per round {per_round}")
    assert not ledger.problems, ledger.problems[:5]
    assert not failures, f"seed {SEED}: " + "; ".join(failures[:8])
    assert all(acked > 20 and reads > 5 for acked, _, reads in per_round), per_round
    assert sum(aborted for _, aborted, _ in per_round) > 0, "no WATCH conflict: the CAS path went untested"
