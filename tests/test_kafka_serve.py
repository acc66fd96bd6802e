"""Functional tests: ``fjord serve --kafka-bootstrap`` against a real broker.

The log lives on a Kafka topic (Tansu, tests/kafkakit.py), so a node with an
empty data dir rebuilds everything from the topic; a write is acknowledged
only once the broker acknowledged it; with the broker stopped (SIGSTOP) a
write gets an error within the bounded wait, never an acknowledgement, and
service resumes by itself when the broker comes back.
"""

from __future__ import annotations

import shutil
import threading
import time

import pytest
import redis

from conftest import FjordProcess, wait_until
from kafkakit import unique_topic


def kafka_node(tmp_path, broker, topic: str, name: str = "node", *extra: str) -> FjordProcess:
    return FjordProcess(str(tmp_path / name), args=(
        "--kafka-bootstrap", broker.bootstrap, "--kafka-topic", topic, "--triggers", "no", *extra))



def test_empty_data_dir_rebuilds_from_the_topic_with_a_snapshot(tmp_path, broker):
    topic = unique_topic()
    node = kafka_node(tmp_path, broker, topic).start()
    try:
        r = redis.Redis(port=node.port)
        r.set("s", b"\xff\x00bytes")
        r.rpush("l", "a", "b", "c")
        r.hset("h", mapping={"f": "1", "g": "2"})
        r.incrby("n", 41)
        r.incr("n")
        r.set("ttl", "x", px=600_000)
        info = r.info("persistence")
        assert info["log_backend"] == "kafka" and info["kafka_topic"] == topic
        assert info["log_end_offset"] == 6
        # a snapshot in the data dir, read from the topic by the child process
        assert r.bgsave()
        wait_until(lambda: r.info("persistence")["snapshot_count"] >= 1
                   and not r.info("persistence")["rdb_bgsave_in_progress"], 20)
        assert r.info("persistence")["snapshot_offset"] == 6
        r.sadd("after", "m")  # past the snapshot: comes from the topic
        node.kill()
        node.start()  # same data dir: the snapshot, then the topic's tail
        r = redis.Redis(port=node.port)
        assert r.smembers("after") == {b"m"} and r.get("n") == b"42"
        assert r.info("persistence")["replay_records"] == 1
        node.kill()
        shutil.rmtree(node.data_dir, ignore_errors=True)  # nothing local left: everything from the topic
        node.start()
        r = redis.Redis(port=node.port)
        assert r.get("s") == b"\xff\x00bytes"
        assert r.lrange("l", 0, -1) == [b"a", b"b", b"c"]
        assert r.hgetall("h") == {b"f": b"1", b"g": b"2"}
        assert r.get("n") == b"42"
        assert 590_000 < r.pttl("ttl") <= 600_000
        assert r.smembers("after") == {b"m"}
        assert r.info("persistence")["replay_records"] == 7
        assert r.set("more", "1") and r.info("persistence")["log_end_offset"] == 8
    finally:
        node.stop()


def test_broker_outage_errors_then_recovers_and_loses_nothing_acked(tmp_path, broker):
    topic = unique_topic()
    node = kafka_node(tmp_path, broker, topic, "node", "--kafka-produce-timeout-ms", "800").start()
    acked: dict[bytes, bytes] = {}
    errors: list[str] = []
    stop = threading.Event()

    def writer(wid: int) -> None:
        c = redis.Redis(port=node.port, socket_timeout=30)
        i = 0
        while not stop.is_set():
            key, value = b"w%d:%d" % (wid, i), b"%d" % i
            i += 1
            try:
                if c.set(key, value):
                    acked[key] = value
            except redis.ResponseError as exc:
                errors.append(str(exc))
                time.sleep(0.05)

    try:
        threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        wait_until(lambda: len(acked) > 100, 10)
        broker.pause()
        paused_at = time.monotonic()
        try:
            probe = redis.Redis(port=node.port, socket_timeout=30)
            before = len(acked)
            with pytest.raises(redis.ResponseError) as exc_info:
                probe.set("during-outage", "x")
            waited = time.monotonic() - paused_at
            assert waited < 5, f"the error took {waited:.1f} s"
            assert exc_info.value.args[0].startswith(("MISCONF", "LOADING")), exc_info.value
            # reads keep being served (from what was acknowledged) while the broker is away
            some_key, some_value = next(iter(list(acked.items())))

            def read_ok():
                try:
                    return probe.get(some_key) == some_value
                except redis.ResponseError:  # -LOADING while the writer rebuilds
                    return False

            wait_until(read_ok, 5)
            time.sleep(1.0)
            assert len(acked) <= before + 50  # nothing acknowledged once the broker stopped answering
            frozen = len(acked)
            time.sleep(0.5)
            assert len(acked) == frozen
        finally:
            broker.resume()
        # service resumes by itself
        probe = redis.Redis(port=node.port, socket_timeout=30)

        def write_ok():
            try:
                return probe.set("after-outage", "y")
            except redis.ResponseError:
                return False

        wait_until(write_ok, 30, 0.2)
        wait_until(lambda: len(acked) > frozen + 50, 15)
        stop.set()
        for t in threads:
            t.join(30)
        assert errors, "the outage produced no error at all"
        # everything acknowledged is on the topic: rebuild from nothing
        node.kill()
        shutil.rmtree(node.data_dir, ignore_errors=True)
        node.start()
        r = redis.Redis(port=node.port)
        missing = [k for k, v in acked.items() if r.get(k) != v]
        assert missing == []
        assert r.get("after-outage") == b"y"
    finally:
        stop.set()
        broker.resume()
        node.stop()


def test_start_up_replays_the_topic_answering_loading_with_progress(tmp_path, broker):
    import asyncio
    import socket

    from streams.events import Event, encode_record
    from streams.kafkalog import KafkaLog

    topic = unique_topic()
    n = 60_000

    async def fill() -> None:
        lg = await KafkaLog.open(broker.bootstrap, topic)
        try:
            for base in range(0, n, 2000):
                await lg.append([encode_record(1, [Event("set", 0, b"key:%d" % i, {"value": b"v%d" % i})])
                                 for i in range(base, base + 2000)])
        finally:
            await lg.close()

    asyncio.run(fill())
    node = kafka_node(tmp_path, broker, topic)
    node.start(wait=False)
    try:
        deadline = time.monotonic() + 20
        while True:  # the port opens at once, before the topic is reached (tests/test_kafka_start.py)
            try:
                sock = socket.create_connection(("127.0.0.1", node.port), timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "the node never listened"
                time.sleep(0.005)
        with sock:
            sock.sendall(b"*2\r\n$3\r\nGET\r\n$5\r\nkey:1\r\n")
            first = sock.recv(200)
            info = b"loading_phase:connecting"
            while b"loading_phase:connecting" in info:  # until the broker answered
                sock.sendall(b"*2\r\n$4\r\nINFO\r\n$11\r\npersistence\r\n")
                info = b""
                while b"loading" not in info or not info.endswith(b"\r\n"):
                    info += sock.recv(1 << 16)
        assert first.startswith(b"-LOADING"), first
        assert b"loading:1" in info and b"loading_loaded_perc" in info and b"loading_total_records:60000" in info
        r = redis.Redis(port=node.port)
        wait_until(lambda: r.info("persistence")["loading"] == 0, 30, 0.1)
        assert r.dbsize() == n and r.get(f"key:{n - 1}") == b"v%d" % (n - 1)
        assert r.info("persistence")["replay_records"] == n
    finally:
        node.stop()
