"""Crash test: concurrent clients, SIGKILL at random moments, restart, check.

Sixteen writer threads SET their own keys, SET shared keys and INCR shared
counters, while reader threads GET all of them. At a random moment the server
is SIGKILLed (no shutdown code runs), restarted on the same data directory,
and the keyspace is checked against what clients were told, several rounds
in a row:

- every acknowledged write is there: an own key holds at least the last
  acknowledged version (and never a version nobody sent); a counter is at
  least its acknowledged INCRs and at most those plus the ones in flight;
- nobody read the future: no value a reader (or an INCR reply) ever showed
  is missing or older after the restart;
- a shared key holds a write that was sent, and not one that a later
  acknowledged or observed write (sent after it was acknowledged) replaced.

The RNG is seeded (``FJORD_CRASH_SEED`` overrides), so a failure names its
seed. ``FJORD_CRASH_DURABILITY=async`` runs the same test against
``--durability async``, where acknowledged writes may be lost; that is how
the test was shown to fail (see ``test_crash`` below).
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field

import pytest

from conftest import FjordProcess, RawClient
from test_durability import wait_serving
from crashkit import guarded

SEED = int(os.environ.get("FJORD_CRASH_SEED", "20261127"))
DURABILITY = os.environ.get("FJORD_CRASH_DURABILITY", "sync")
ROUNDS = 8
WRITERS = 16
READERS = 4
OWN_KEYS = 3  # per writer
SHARED_KEYS = 4
COUNTERS = 4


def own_key(writer: int, i: int) -> bytes:
    return b"own:%d:%d" % (writer, i)


SHARED = [b"shared:%d" % i for i in range(SHARED_KEYS)]
COUNTER = [b"counter:%d" % i for i in range(COUNTERS)]
OWN = [own_key(w, i) for w in range(WRITERS) for i in range(OWN_KEYS)]


@dataclass
class Ledger:
    """What clients were told, per key, since the last verified restart.

    Own keys carry increasing integer versions (one writer each). Shared
    keys carry unique ``w<writer>:<seq>`` values whose send and ack times are
    kept. Counters keep the verified base plus acknowledged and in-flight
    INCRs. One lock keeps it simple; the server is the bottleneck anyway.
    """

    lock: threading.Lock = field(default_factory=threading.Lock)
    own_sent: dict[bytes, int] = field(default_factory=dict)
    own_acked: dict[bytes, int] = field(default_factory=dict)
    own_seen: dict[bytes, int] = field(default_factory=dict)
    #: shared value -> [send ns, ack ns or None]
    shared_writes: dict[bytes, list] = field(default_factory=dict)
    #: shared key -> latest send time of a write acknowledged or seen
    shared_floor: dict[bytes, int] = field(default_factory=dict)
    counter_base: dict[bytes, int] = field(default_factory=dict)
    counter_acked: dict[bytes, int] = field(default_factory=dict)
    counter_inflight: dict[bytes, int] = field(default_factory=dict)
    counter_seen: dict[bytes, int] = field(default_factory=dict)
    acked_ops: int = 0
    reads: int = 0
    problems: list[str] = field(default_factory=list)

    def see_shared(self, key: bytes, value: bytes) -> None:
        w = self.shared_writes.get(value)
        if w is None:
            self.problems.append(f"{key!r} holds {value!r}, which nobody wrote")
        else:
            self.shared_floor[key] = max(self.shared_floor.get(key, 0), w[0])


def writer(n: int, port: int, rng: random.Random, seq: list[int], ledger: Ledger) -> None:
    """Write until the server dies; the write in flight then stays unknown."""
    try:
        c = RawClient(port, timeout=10)
    except OSError:
        return
    try:
        while True:
            op = rng.random()
            seq[0] += 1
            if op < 0.5:
                key = own_key(n, rng.randrange(OWN_KEYS))
                with ledger.lock:
                    ledger.own_sent[key] = seq[0]
                reply = c.call("SET", key, seq[0])
                ok = reply == b"+OK\r\n"
                if ok:
                    with ledger.lock:
                        ledger.own_acked[key] = seq[0]
            elif op < 0.75:
                key = SHARED[rng.randrange(SHARED_KEYS)]
                value = b"w%d:%d" % (n, seq[0])
                with ledger.lock:
                    ledger.shared_writes[value] = [time.monotonic_ns(), None]
                reply = c.call("SET", key, value)
                ok = reply == b"+OK\r\n"
                if ok:
                    with ledger.lock:
                        w = ledger.shared_writes[value]
                        w[1] = time.monotonic_ns()
                        ledger.shared_floor[key] = max(ledger.shared_floor.get(key, 0), w[0])
            else:
                key = COUNTER[rng.randrange(COUNTERS)]
                with ledger.lock:
                    ledger.counter_inflight[key] = ledger.counter_inflight.get(key, 0) + 1
                reply = c.call("INCR", key)
                ok = reply.startswith(b":")
                if ok:
                    with ledger.lock:
                        ledger.counter_inflight[key] -= 1
                        ledger.counter_acked[key] = ledger.counter_acked.get(key, 0) + 1
                        ledger.counter_seen[key] = max(ledger.counter_seen.get(key, 0), int(reply[1:-2]))
            if not ok:
                with ledger.lock:
                    ledger.problems.append(f"writer {n}: unexpected reply {reply!r} to a write of {key!r}")
                return
            with ledger.lock:
                ledger.acked_ops += 1
    except OSError:  # ConnectionError included
        return  # the server was killed: whatever was in flight is in doubt
    finally:
        c.close()




def parse_bulk(reply: bytes) -> bytes | None:
    if reply == b"$-1\r\n":
        return None
    if not reply.startswith(b"$"):
        raise ValueError(reply)
    return reply[reply.index(b"\r\n") + 2 : -2]


def reader(port: int, rng: random.Random, ledger: Ledger) -> None:
    """GET random keys until the server dies; remember the newest value seen."""
    try:
        c = RawClient(port, timeout=10)
    except OSError:
        return
    try:
        while True:
            kind = rng.random()
            key = OWN[rng.randrange(len(OWN))] if kind < 0.5 else (
                SHARED[rng.randrange(SHARED_KEYS)] if kind < 0.75 else COUNTER[rng.randrange(COUNTERS)])
            reply = c.call("GET", key)
            try:
                value = parse_bulk(reply)
            except ValueError:
                with ledger.lock:
                    ledger.problems.append(f"reader: unexpected reply {reply!r} to GET {key!r}")
                return
            with ledger.lock:
                ledger.reads += 1
                if value is None:
                    continue
                if key in SHARED:
                    ledger.see_shared(key, value)
                elif key.startswith(b"own:"):
                    ledger.own_seen[key] = max(ledger.own_seen.get(key, 0), int(value))
                else:
                    ledger.counter_seen[key] = max(ledger.counter_seen.get(key, 0), int(value))
    except OSError:  # ConnectionError included
        return
    finally:
        c.close()


def verify_and_rebase(port: int, ledger: Ledger, round_: int) -> list[str]:
    """Check the restarted keyspace against the ledger, then take it as the
    new baseline (what survived is now durable and may be read)."""
    c = RawClient(port)
    bad = []
    now = time.monotonic_ns()
    for key in OWN:
        got = parse_bulk(c.call("GET", key))
        version = 0 if got is None else int(got)
        must = max(ledger.own_acked.get(key, 0), ledger.own_seen.get(key, 0))
        if version < must:
            bad.append(f"round {round_}: {key!r} is at version {version}, but {must} was "
                       f"{'acknowledged' if ledger.own_acked.get(key, 0) == must else 'read'}")
        if version > ledger.own_sent.get(key, 0):
            bad.append(f"round {round_}: {key!r} is at version {version}, never sent")
        ledger.own_acked[key] = ledger.own_seen[key] = version
    for key in SHARED:
        got = parse_bulk(c.call("GET", key))
        floor = ledger.shared_floor.get(key)
        if got is None:
            if floor is not None:
                bad.append(f"round {round_}: {key!r} is missing, but a write to it was acknowledged or read")
            continue
        w = ledger.shared_writes.get(got)
        if w is None:
            bad.append(f"round {round_}: {key!r} holds {got!r}, which nobody wrote")
            continue
        if floor is not None and w[1] is not None and w[1] < floor:
            bad.append(f"round {round_}: {key!r} holds {got!r}, replaced by a write acknowledged or "
                       f"read later: a newer acknowledged value was lost")
        if w[1] is None:
            w[1] = now  # it survived: durable (and visible) from now on
        ledger.shared_floor.pop(key, None)
    for key in COUNTER:
        got = parse_bulk(c.call("GET", key))
        value = 0 if got is None else int(got)
        base = ledger.counter_base.get(key, 0)
        acked = ledger.counter_acked.get(key, 0)
        inflight = ledger.counter_inflight.get(key, 0)
        if not base + acked <= value <= base + acked + inflight:
            bad.append(f"round {round_}: {key!r} = {value}, expected {base + acked}..{base + acked + inflight} "
                       f"({base} before, {acked} acknowledged INCRs, {inflight} in flight)")
        if value < ledger.counter_seen.get(key, 0):
            bad.append(f"round {round_}: {key!r} = {value}, but {ledger.counter_seen[key]} was seen")
        ledger.counter_base[key] = ledger.counter_seen[key] = value
        ledger.counter_acked[key] = ledger.counter_inflight[key] = 0
    c.close()
    return bad


@pytest.mark.slow
def test_crash(tmp_path):
    """Acknowledged and observed writes survive repeated SIGKILLs."""
    rng = random.Random(SEED)
    srv = FjordProcess(str(tmp_path / "data"), args=("--durability", DURABILITY))
    srv.log_path = str(tmp_path / "server.log")
    ledger = Ledger()
    seqs = [[w * 10**9] for w in range(WRITERS)]
    failures: list[str] = []
    per_round = []
    try:
        srv.start(wait=False)
        for round_ in range(1, ROUNDS + 1):
            wait_serving(srv)
            if round_ > 1:
                failures += verify_and_rebase(srv.port, ledger, round_ - 1)
            acked_before, reads_before = ledger.acked_ops, ledger.reads
            threads = [
                threading.Thread(target=guarded(writer, ledger),
                                 args=(n, srv.port, random.Random(rng.random()), seqs[n], ledger))
                for n in range(WRITERS)
            ] + [
                threading.Thread(target=guarded(reader, ledger),
                                 args=(srv.port, random.Random(rng.random()), ledger))
                for _ in range(READERS)
            ]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.3, 1.2))
            srv.kill()  # SIGKILL, mid-traffic
            for t in threads:
                t.join(15)
            assert not any(t.is_alive() for t in threads), "a client thread hung after the kill"
            per_round.append((ledger.acked_ops - acked_before, ledger.reads - reads_before))
            srv.start(wait=False)
        wait_serving(srv)
        failures += verify_and_rebase(srv.port, ledger, ROUNDS)
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()
    print(f"seed {SEED}, durability {DURABILITY}: (acknowledged writes, reads) per round {per_round}")
    assert not ledger.problems, ledger.problems[:5]
    assert not failures, f"seed {SEED}: " + "; ".join(failures[:8])
    assert all(acked > 20 and reads > 20 for acked, reads in per_round), per_round
