"""The aiokafka clients ``KafkaLog`` (streams/kafkalog.py) is built from.

Kept apart from the log's logic so that module reads as the ``Log``
contract: here are the topic's creation, the producer and consumer settings
and the pool of read consumers, with the reasons for each setting.
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from .log import LogError

#: Largest record we accept (the topic's max.message.bytes is raised to it).
MAX_RECORD_BYTES = 64 << 20
#: Idle read consumers kept for reuse.
READ_POOL = 4


async def ensure_topic(bootstrap: str, topic: str, partitions: int, retention_ms: int,
                       client_id: str) -> None:
    """Create ``topic`` unless it exists: ``cleanup.policy=delete`` (compaction
    would drop records replay needs), room for the largest record, and the
    configured retention. Replication factor 1: a cluster's default
    (``default.replication.factor``) is better set on the broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id)
    await admin.start()
    try:
        configs = {"cleanup.policy": "delete", "max.message.bytes": str(MAX_RECORD_BYTES)}
        if retention_ms != -1:
            configs["retention.ms"] = str(retention_ms)
        resp = await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs)])
        for name, code, *rest in getattr(resp, "topic_errors", []):
            if code not in (0, TopicAlreadyExistsError.errno):
                raise LogError(f"cannot create Kafka topic {name}: error {code} {rest[-1] if rest else ''}")
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


def make_producer(bootstrap: str, client_id: str, idempotence: bool, timeout_ms: int) -> AIOKafkaProducer:
    """``acks=all``; no linger (the group committer already batches);
    batches big enough for a whole group commit; and a request timeout equal
    to the produce timeout, so a batch the broker does not take in time fails
    instead of being retried for ever behind the writer's back."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, client_id=client_id, acks="all",
        enable_idempotence=idempotence, linger_ms=0,
        max_batch_size=1 << 20, max_request_size=MAX_RECORD_BYTES + 4096,
        request_timeout_ms=timeout_ms,
    )


def make_consumer(bootstrap: str, client_id: str, timeout_ms: int) -> AIOKafkaConsumer:
    """No group and nothing committed: the reader keeps its own position
    (manual assignment and seek). Short long-polls, so a tailing reader sees
    a new record within ~100 ms of its acknowledgement."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap, client_id=client_id, group_id=None,
        enable_auto_commit=False, auto_offset_reset="earliest",
        fetch_max_wait_ms=100, fetch_max_bytes=MAX_RECORD_BYTES * 2,
        max_partition_fetch_bytes=MAX_RECORD_BYTES * 2,
        request_timeout_ms=max(timeout_ms, 1000),
    )


class ConsumerPool:
    """Started consumers assigned to one partition, reused across reads
    (starting one costs a connection and a metadata round trip)."""

    def __init__(self, bootstrap: str, client_id: str, tp: TopicPartition, timeout_ms: int):
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.tp = tp
        self.timeout_ms = timeout_ms
        self._idle: list[AIOKafkaConsumer] = []
        self.closed = False

    async def borrow(self) -> AIOKafkaConsumer:
        if self._idle:
            c = self._idle.pop()
            c.resume(self.tp)
            return c
        c = make_consumer(self.bootstrap, self.client_id, self.timeout_ms)
        await c.start()
        c.assign([self.tp])
        return c

    async def give_back(self, c: AIOKafkaConsumer) -> None:
        if self.closed or len(self._idle) >= READ_POOL:
            await c.stop()
            return
        c.pause(self.tp)  # an idle consumer must not keep fetching
        self._idle.append(c)

    async def close(self) -> None:
        self.closed = True
        idle, self._idle = self._idle, []
        for c in idle:
            await c.stop()
