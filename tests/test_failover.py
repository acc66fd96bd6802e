"""Fenced failover (ARCHITECTURE.md invariant 5), end to end.

Concurrent writers go through redis-py's Sentinel client (every Fjord node
answers SENTINEL); the writer is SIGKILLed, a replica takes over, and every
write that was acknowledged is on the new writer. A deposed writer that is
restarted, or was only paused (SIGSTOP/SIGCONT), never acknowledges a write
afterwards. Twice: on the embedded file log (the LOCK fences) and on a Kafka
topic (epoch claims in the log fence; tests/kafkakit.py's Tansu broker).
"""

from __future__ import annotations

import signal
import threading
import time

import pytest
import redis
from redis.sentinel import Sentinel

from conftest import FjordProcess, RawClient
from kafkakit import unique_topic

FAILOVER_MS = "400"


def until(predicate, timeout: float = 10.0, step: float = 0.02):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value or time.time() > deadline:
            return value
        time.sleep(step)


def role(node: FjordProcess) -> bytes | None:
    try:
        return redis.Redis(port=node.port, socket_timeout=1).execute_command("ROLE")[0]
    except redis.RedisError:
        return None


class Writers:
    """Threads writing unique keys through the Sentinel client; ``acked``
    holds every key whose SET got +OK."""

    def __init__(self, nodes: list[FjordProcess], threads: int = 4):
        self.sentinel = Sentinel([("127.0.0.1", n.port) for n in nodes], socket_timeout=0.5)
        self.acked: dict[str, str] = {}
        self.errors = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, tid: int) -> None:
        master = self.sentinel.master_for("fjord", socket_timeout=0.5)
        i = 0
        while not self.stop.is_set():
            key, value = f"w{tid}:{i}", str(i)
            i += 1
            try:
                if master.set(key, value):
                    with self.lock:
                        self.acked[key] = value
            except (redis.RedisError, OSError):
                with self.lock:
                    self.errors += 1
                time.sleep(0.02)

    def __enter__(self) -> "Writers":
        for t in self.threads:
            t.start()
        return self

    def count(self) -> int:
        with self.lock:
            return len(self.acked)

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)


def assert_all_present(node: FjordProcess, acked: dict[str, str]) -> None:
    c = redis.Redis(port=node.port)
    keys = list(acked)
    got = dict(zip(keys, c.mget(keys))) if keys else {}
    missing = [k for k in keys if got[k] != acked[k].encode()]
    assert not missing, f"{len(missing)} acknowledged writes missing, e.g. {missing[:5]}"


# ------------------------------------------------------------ the rule, in process


def test_epoch_fence_rule_every_reader_applies():
    from streams.events import Event, Record
    from streams.materializer import CLAIM, EpochFence

    def rec(epoch, claim=None):
        events = [Event(CLAIM, None, None, {"epoch": claim})] if claim else [Event("set", 0, b"k", {})]
        return Record(0, 0, events, None, epoch)

    fence = EpochFence(0)
    assert fence.admit(rec(None))  # an unfenced writer's records: epoch 0
    assert fence.admit(rec(1, claim=1))  # the first claim above the current epoch wins
    assert not fence.admit(rec(None))  # the old writer, after the claim: skipped
    assert not fence.admit(rec(1, claim=1))  # a second claim of the same epoch loses
    assert fence.admit(rec(1))
    assert fence.admit(rec(2, claim=2))
    assert not fence.admit(rec(1)) and fence.admit(rec(2))
    assert fence.skipped == 3
    unknown = EpochFence(None)  # a reader starting mid-log adopts the first epoch it sees
    assert unknown.admit(rec(5)) and unknown.epoch == 5 and not unknown.admit(rec(4))


async def test_confirming_log_fences_a_writer_overtaken_by_a_newer_claim():
    from store.fencing import ConfirmingLog, FencedError, claim_payload
    from streams.events import Event, encode_record
    from streams.memlog import MemoryLog

    shared = MemoryLog()
    old = ConfirmingLog(shared, 1, 0)
    write = encode_record(0, [Event("set", 0, b"k", {"value": b"v"})], epoch=1)
    assert await old.append([claim_payload(0, 1, "a", "h:1"), write]) == 0
    await shared.append([claim_payload(0, 2, "b", "h:2")])  # another node takes over
    with pytest.raises(FencedError, match="FENCED epoch 2"):
        await old.append([write])  # on the log, but never acknowledged
    with pytest.raises(FencedError):
        await old.append([write])  # and it stays deposed


# ------------------------------------------------------------ embedded file log


def file_writer(tmp_path) -> FjordProcess:
    w = FjordProcess(str(tmp_path / "writer"))
    w.args = ["--advertise-addr", f"127.0.0.1:{w.port}"]
    return w


def file_replica(tmp_path, writer: FjordProcess, name: str) -> FjordProcess:
    return FjordProcess(str(tmp_path / name), args=(
        "--replica", "--replica-of-dir", writer.data_dir, "--failover-timeout-ms", FAILOVER_MS))


@pytest.fixture
def procs():
    started: list[FjordProcess] = []
    yield started
    for p in started:
        if p.proc is not None and p.proc.poll() is None:
            p.proc.send_signal(signal.SIGCONT)
            p.proc.kill()
            p.proc.wait()


def test_file_log_failover_keeps_every_acknowledged_write(tmp_path, procs):
    w = file_writer(tmp_path).start()
    procs.append(w)
    replicas = [file_replica(tmp_path, w, f"replica{i}").start() for i in range(2)]
    procs.extend(replicas)
    assert until(lambda: redis.Redis(port=w.port).info("replication")["connected_slaves"] == 2)
    with Writers([w, *replicas]) as load:
        assert until(lambda: load.count() > 20)
        w.kill(signal.SIGKILL)
        before = load.count()
        # one replica wins the log's LOCK and claims epoch 2; writes resume there
        assert until(lambda: load.count() > before + 20, timeout=15), "writes did not resume"
    new = [r for r in replicas if role(r) == b"master"]
    assert len(new) == 1
    other = next(r for r in replicas if r is not new[0])
    assert role(other) == b"slave"
    assert_all_present(new[0], load.acked)
    assert until(lambda: redis.Redis(port=other.port).dbsize() == redis.Redis(port=new[0].port).dbsize())
    info = redis.Redis(port=new[0].port).info("replication")
    assert info["fjord_epoch"] == 2 and info["fjord_promotions"] == 1
    assert redis.Redis(port=other.port).info("replication")["master_port"] == new[0].port
    # the old writer restarted on its directory cannot get the log: no acks
    w.start(wait=False)
    assert w.proc.wait(timeout=20) == 1
    w.logfile.close()
    assert "in use by another process" in w.output()


def test_file_log_paused_writer_is_not_replaced_and_resumes(tmp_path, procs):
    w = file_writer(tmp_path).start()
    r = file_replica(tmp_path, w, "replica").start()
    procs += [w, r]
    wc = redis.Redis(port=w.port, socket_timeout=10)
    wc.set("before", "1")
    assert wc.wait(1, 5000) == 1
    w.proc.send_signal(signal.SIGSTOP)
    raw = RawClient(w.port)
    raw.send_raw(b"*3\r\n$3\r\nSET\r\n$6\r\nduring\r\n$1\r\n2\r\n")
    # the replica lost the writer but cannot take the log a live process holds
    assert until(lambda: "still held" in r.output())
    assert role(r) == b"slave"
    w.proc.send_signal(signal.SIGCONT)
    assert raw.read_reply() == b"+OK\r\n"  # still the one writer: its ack is good
    assert until(lambda: redis.Redis(port=r.port).get("during") == b"2")
    assert until(lambda: redis.Redis(port=r.port).info("replication")["master_link_status"] == "up")


def test_file_log_promotion_brings_up_the_whole_writer(tmp_path, procs, monkeypatch):
    """A promoted replica snapshots, runs retention and delivers triggers
    without a restart; before that it had no committer at all."""
    import os

    from streams.snapshot import list_snapshots

    monkeypatch.setenv("PYTHONPATH", os.path.dirname(os.path.abspath(__file__)))  # trigger_handlers
    w = file_writer(tmp_path).start()
    r = file_replica(tmp_path, w, "replica").start()
    procs += [w, r]
    wc, rc = redis.Redis(port=w.port, socket_timeout=10), redis.Redis(port=r.port, socket_timeout=10)
    wc.execute_command("FJORD.TRIGGER", "CREATE", "count", "FUNCTION", "trigger_handlers:write_back")
    wc.set("a", "1")
    assert until(lambda: wc.get("seen") == b"1")
    assert until(lambda: rc.get("seen") == b"1")
    # a replica cannot append: no committer, no retention, no delivery
    persistence = rc.info("persistence")
    assert "group_commit_records" not in persistence and "log_retention_runs" not in persistence

    w.kill(signal.SIGKILL)
    assert until(lambda: role(r) == b"master", timeout=15)
    # ROLE says master as soon as the claim is won; the writer's services start once the
    # promoted node has reloaded the log for writing (-LOADING meanwhile)
    assert until(lambda: "group_commit_records" in (p := rc.info("persistence")) and "log_retention_runs" in p,
                 timeout=15)
    assert rc.config_get("dir")["dir"] == os.path.abspath(w.data_dir)  # it owns the writer's directory now
    seen = int(rc.get("seen"))
    rc.set("b", "2")  # the in-process dispatcher delivers it (at least once)
    assert until(lambda: int(rc.get("seen") or 0) > seen, timeout=15), "no trigger delivery after promotion"
    before = {s.offset for s in list_snapshots(os.path.join(w.data_dir, "snapshots"))}
    rc.bgsave()
    assert until(lambda: {s.offset for s in list_snapshots(os.path.join(w.data_dir, "snapshots"))} - before,
                 timeout=15), "no snapshot after promotion"


# ------------------------------------------------------------ Kafka topic


def kafka_args(broker, topic: str) -> tuple[str, ...]:
    return ("--kafka-bootstrap", broker.bootstrap, "--kafka-topic", topic, "--triggers", "no",
            "--failover-timeout-ms", FAILOVER_MS)


def kafka_node(tmp_path, broker, topic: str, name: str, *extra: str) -> FjordProcess:
    p = FjordProcess(str(tmp_path / name))
    p.args = [*kafka_args(broker, topic), "--advertise-addr", f"127.0.0.1:{p.port}", *extra]
    return p


def test_kafka_failover_keeps_acked_writes_and_a_restarted_writer_stays_deposed(tmp_path, broker, procs):
    topic = unique_topic()
    w = kafka_node(tmp_path, broker, topic, "writer").start()
    procs.append(w)
    replicas = [kafka_node(tmp_path, broker, topic, f"replica{i}", "--replica").start() for i in range(2)]
    procs.extend(replicas)
    assert until(lambda: redis.Redis(port=w.port).info("replication")["connected_slaves"] == 2)
    with Writers([w, *replicas]) as load:
        assert until(lambda: load.count() > 20)
        w.kill(signal.SIGKILL)
        before = load.count()
        assert until(lambda: load.count() > before + 20, timeout=20), "writes did not resume"
    # both replicas may claim epoch 2: the first claim on the topic wins
    assert until(lambda: sorted(role(x) for x in replicas) == [b"master", b"slave"])
    r = next(x for x in replicas if role(x) == b"master")
    other = next(x for x in replicas if x is not r)
    assert_all_present(r, load.acked)
    assert redis.Redis(port=r.port).info("replication")["fjord_epoch"] == 2
    assert until(lambda: redis.Redis(port=other.port).info("replication")["master_port"] == r.port)
    end = redis.Redis(port=r.port).info("replication")["master_repl_offset"]
    assert until(lambda: redis.Redis(port=other.port).info("replication")["slave_repl_offset"] >= end)
    assert_all_present(other, load.acked)
    # restarted, the old writer finds epoch 2 by another node: it follows it
    w.start()
    wc = RawClient(w.port)
    assert until(lambda: role(w) == b"slave")
    assert wc.call("SET", "zombie", "1").startswith(b"-READONLY")
    assert until(lambda: redis.Redis(port=w.port).dbsize() == redis.Redis(port=r.port).dbsize())
    assert redis.Redis(port=r.port).get("zombie") is None


def test_kafka_paused_writer_is_deposed_and_never_acks(tmp_path, broker, procs):
    topic = unique_topic()
    w = kafka_node(tmp_path, broker, topic, "writer").start()
    r = kafka_node(tmp_path, broker, topic, "replica", "--replica").start()
    procs += [w, r]
    wc = redis.Redis(port=w.port, socket_timeout=10)
    wc.set("before", "1")
    assert wc.wait(1, 5000) == 1
    raw = RawClient(w.port, timeout=30)
    w.proc.send_signal(signal.SIGSTOP)
    raw.send_raw(b"*3\r\n$3\r\nSET\r\n$6\r\nzombie\r\n$1\r\n1\r\n")
    assert until(lambda: role(r) == b"master", timeout=20), "the replica did not take over"
    rc = redis.Redis(port=r.port)
    rc.set("new-writer", "1")
    w.proc.send_signal(signal.SIGCONT)
    reply = raw.read_reply()
    assert reply.startswith(b"-") and b"FENCED" in reply, f"a deposed writer acknowledged a write: {reply!r}"
    assert until(lambda: role(w) == b"slave", timeout=20)
    # once it has rebuilt its state (-LOADING meanwhile) it refuses writes
    assert until(lambda: raw.call("SET", "zombie2", "1").startswith(b"-READONLY"), timeout=20)
    # every reader agrees: the zombie's record, though on the log, does not count
    time.sleep(0.3)
    assert rc.get("zombie") is None and rc.get("before") == b"1"
    assert until(lambda: redis.Redis(port=w.port).get("new-writer") == b"1")
    assert redis.Redis(port=w.port).get("zombie") is None
    # stepped down all the way: no committer left, so it cannot append at all
    assert until(lambda: "group_commit_records" not in redis.Redis(port=w.port).info("persistence"))
    assert "group_commit_records" in rc.info("persistence")  # the promoted replica has one
