"""Crash test for streams: SIGKILL mid-traffic, restart, compare with what
clients were told.

Producers XADD explicit, increasing ids to one stream; consumers of one
group XREADGROUP ``>`` and XACK what they got; a claimer XAUTOCLAIMs
(JUSTID) to its own consumer. At a random moment the server is SIGKILLed
and restarted on the same data directory, and then:

- every acknowledged XADD, and every entry any reply showed, is there; no
  entry is there that nobody sent;
- the group's last delivered id is at least every id a reply delivered;
- an id whose XACK was acknowledged is not pending; an id delivered (or
  claimed) and never sent to XACK is pending, held by a consumer that was
  told it got it (or whose claim was in flight), with a delivery count of
  at least 1; every consumer that received something exists.

Several rounds on the same directory, each verified state becoming the
baseline of the next. The RNG is seeded (``FJORD_XCRASH_SEED`` overrides).
``FJORD_XCRASH_ARGS="--durability async"`` runs it where acknowledged
writes may be lost: that is how it was shown to fail.
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from crashkit import guarded
from test_durability import wait_serving

SEED = int(os.environ.get("FJORD_XCRASH_SEED", "20261127"))
ROUNDS = 3
PRODUCERS = 3
CONSUMERS = 3
KEY = "jobs"
GROUP = "workers"


def _client(port: int) -> redis.Redis:
    """No retries: a client must fail when the server dies, not reconnect to
    its successor and go on writing while the test verifies."""
    return redis.Redis(port=port, socket_timeout=10, retry=Retry(NoBackoff(), 0))


@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: ids sent to XADD / acknowledged / shown by any reply
    sent: set = field(default_factory=set)
    added: set = field(default_factory=set)
    shown: set = field(default_factory=set)
    #: id -> consumers that were told they hold it, or whose claim was in flight
    holders: dict = field(default_factory=dict)
    #: ids sent to XACK / whose XACK was acknowledged
    ack_sent: set = field(default_factory=set)
    #: consumers with a read or claim in flight (it may have landed)
    inflight: set = field(default_factory=set)
    acked: set = field(default_factory=set)
    problems: list = field(default_factory=list)
    ops: int = 0


def producer(n: int, port: int, ledger: Ledger, base_ms: int) -> None:
    c = _client(port)
    i = 0
    try:
        while True:
            i += 1
            sid = f"{base_ms + i}-{n}"
            with ledger.lock:
                ledger.sent.add(sid)
            try:
                got = c.xadd(KEY, {"p": str(n), "i": str(i)}, id=sid).decode()
            except redis.ResponseError as exc:  # another producer got ahead: fine, skip
                if "equal or smaller" not in str(exc):
                    raise
                continue
            with ledger.lock:
                ledger.added.add(got)
                ledger.ops += 1
    except (redis.ConnectionError, redis.TimeoutError):
        return
    finally:
        c.close()


def consumer(name: str, port: int, ledger: Ledger, rng: random.Random) -> None:
    c = _client(port)
    try:
        while True:
            with ledger.lock:
                ledger.inflight.add(name)
            reply = c.xreadgroup(GROUP, name, {KEY: ">"}, count=rng.randint(1, 5), block=50)
            got = [sid.decode() for _k, entries in (reply or []) for sid, _f in entries]
            with ledger.lock:
                ledger.inflight.discard(name)
                for sid in got:
                    ledger.shown.add(sid)
                    ledger.holders.setdefault(sid, set()).add(name)
                ledger.ops += 1
            take = [sid for sid in got if rng.random() < 0.7]
            if take:
                with ledger.lock:
                    ledger.ack_sent.update(take)
                n = c.xack(KEY, GROUP, *take)
                with ledger.lock:
                    ledger.acked.update(take)
                    if n > len(take):
                        ledger.problems.append(f"XACK of {take} acknowledged {n}")
    except (redis.ConnectionError, redis.TimeoutError):
        return
    finally:
        c.close()


def claimer(port: int, ledger: Ledger) -> None:
    c = _client(port)
    try:
        while True:
            with ledger.lock:  # the claim may land even if its reply never comes
                pending = [sid for sid in ledger.shown if sid not in ledger.ack_sent]
                for sid in pending:
                    ledger.holders.setdefault(sid, set()).add("claimer")
                ledger.inflight.add("claimer")
            ids = c.xautoclaim(KEY, GROUP, "claimer", 0, "0-0", count=3, justid=True)  # redis-py: ids only
            with ledger.lock:
                ledger.inflight.discard("claimer")
                for sid in ids:
                    ledger.holders.setdefault(sid.decode(), set()).add("claimer")
                ledger.ops += 1
            time.sleep(0.01)
    except (redis.ConnectionError, redis.TimeoutError):
        return
    finally:
        c.close()


def verify(port: int, ledger: Ledger, round_: int) -> list[str]:
    c = redis.Redis(port=port)
    bad = []
    ids = {sid.decode() for sid, _f in c.xrange(KEY)}
    for sid in (ledger.added | ledger.shown) - ids:
        bad.append(f"round {round_}: {sid} was acknowledged or shown, and is gone")
    for sid in ids - ledger.sent:
        bad.append(f"round {round_}: {sid} is there, and nobody sent it")
    group = next(g for g in c.xinfo_groups(KEY) if g["name"] == GROUP.encode())
    last = tuple(map(int, group["last-delivered-id"].split(b"-")))
    for sid in ledger.shown:
        if tuple(map(int, sid.split("-"))) > last:
            bad.append(f"round {round_}: {sid} was delivered, but the group's last id is {last}")
    pending = {p["message_id"].decode(): (p["consumer"].decode(), p["times_delivered"])
               for p in c.xpending_range(KEY, GROUP, "-", "+", 1_000_000)}
    for sid in ledger.acked:
        if sid in pending:
            bad.append(f"round {round_}: {sid} was acknowledged by XACK and is still pending")
    for sid in ledger.shown - ledger.ack_sent:
        if sid not in pending:
            bad.append(f"round {round_}: {sid} was delivered, never acked, and is not pending")
    for sid, (owner, count) in pending.items():
        if owner not in ledger.holders.get(sid, ()) and not (owner in ledger.inflight and sid not in ledger.shown):
            bad.append(f"round {round_}: {sid} is pending for {owner}, who was never given it")
        if count < 1:
            bad.append(f"round {round_}: {sid} has delivery count {count}")
    consumers = {x["name"].decode() for x in c.xinfo_consumers(KEY, GROUP)}
    for sid in ledger.shown:
        for name in ledger.holders.get(sid, ()):
            if name != "claimer" and name not in consumers:
                bad.append(f"round {round_}: consumer {name} got {sid} and does not exist")
    # what survived is the new baseline (a delivery whose reply was lost included)
    for sid, (owner, _count) in pending.items():
        ledger.holders.setdefault(sid, set()).add(owner)
        ledger.shown.add(sid)
    ledger.inflight.clear()
    c.close()
    return bad


def test_streams_survive_sigkill(new_fjord):
    rng = random.Random(SEED)
    srv = new_fjord(*os.environ.get("FJORD_XCRASH_ARGS", "").split())
    c = srv.client()
    c.xgroup_create(KEY, GROUP, id="0", mkstream=True)
    c.close()
    ledger = Ledger()
    for round_ in range(ROUNDS):
        base_ms = (round_ + 1) * 10_000_000
        threads = [threading.Thread(target=guarded(producer, ledger), args=(n, srv.port, ledger, base_ms))
                   for n in range(PRODUCERS)]
        threads += [threading.Thread(target=guarded(consumer, ledger),
                                     args=(f"c{n}", srv.port, ledger, random.Random(rng.random())))
                    for n in range(CONSUMERS)]
        threads.append(threading.Thread(target=guarded(claimer, ledger), args=(srv.port, ledger)))
        for t in threads:
            t.start()
        time.sleep(0.4 + rng.random() * 0.8)
        srv.kill()
        for t in threads:
            t.join(20)
        srv.start()
        assert not ledger.problems, ledger.problems
        wait_serving(srv)
        bad = verify(srv.port, ledger, round_)
        assert not bad, bad[:20]
        assert ledger.ops > 20 * (round_ + 1), f"too little traffic: {ledger.ops} operations"
