"""Trigger workers as a Kafka consumer group: ``fjord triggers run --kafka-bootstrap``.

Several worker processes share the subscriptions of one Fjord log on a
Kafka topic. Each runs the ordinary ``TriggerService`` (triggers/service.py)
over a ``KafkaLog``, restricted to the subscriptions it owns:

- **Membership** is an aiokafka consumer group, ``fjord-triggers.<topic>``.
  Every member sends a random worker id in its join metadata; the group's
  leader (our ``MembersAssignor``) assigns no partitions at all and hands
  every member the sorted list of worker ids instead (assignment
  ``user_data``). The broker's group protocol thus tells every worker who is
  alive, and rebalances when one joins, leaves or stops heartbeating
  (``session_timeout_ms``).
- **Ownership** is rendezvous hashing of the subscription name over those
  ids: each worker computes the same owner for every subscription, and a
  member joining or leaving moves only the subscriptions it gains or held.
- **Checkpoints** live on the broker, where every worker reads them: the
  position of subscription ``name`` (created at offset ``c``) is the
  committed offset of consumer group ``fjord-trigger.<topic>.<name>.<c>`` on
  the log's partition (a trigger deleted and created again gets a new
  group, so it starts afresh). A worker that takes a subscription over
  resumes from that offset; one SIGKILLed at most re-delivers what it did in
  its last checkpoint interval (at-least-once, same event ids), and nothing
  is skipped. Dead letters stay in the worker's own ``<--dir>/worker-<host name>``.

During a handover two workers may briefly both run a subscription (the old
owner stops at its next reconcile pass); that too only duplicates.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Mapping

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from . import registry
from .checkpoint import Checkpoint
from .service import TriggerService, default_sink_factory

log = logging.getLogger("fjord.triggers.workgroup")

#: how long the broker waits for a silent worker before giving its subscriptions away
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_MS = 1000


def owner(name: str, members: list[str]) -> str | None:
    """Rendezvous (highest random weight) hashing: the member owning ``name``."""
    if not members:
        return None
    return max(members, key=lambda m: hashlib.sha256(f"{m}\0{name}".encode()).digest())


class MembersAssignor(AbstractPartitionAssignor):
    """A group "assignor" that assigns no partitions: it tells every member
    the worker ids of all members (see the module doc). One instance per
    worker; ``members`` is what the last assignment said."""

    name = "fjord-members"
    version = 0

    def __init__(self, worker_id: str, on_change):
        self.worker_id = worker_id
        self.members: list[str] = []
        self.on_change = on_change

    def metadata(self, topics) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(self.version, sorted(topics), self.worker_id.encode())

    def assign(self, cluster, members: Mapping[str, ConsumerProtocolMemberMetadata]):
        ids = sorted({m.user_data.decode() for m in members.values() if m.user_data})
        data = orjson.dumps(ids)
        return {member_id: ConsumerProtocolMemberAssignment(self.version, [], data) for member_id in members}

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        try:
            members = orjson.loads(assignment.user_data or b"[]")
        except orjson.JSONDecodeError:
            members = []
        if members != self.members:
            self.members = members
            log.info("trigger workers: %d member(s) %s; this one is %s", len(members), members, self.worker_id)
            self.on_change()


class OffsetStore:
    """Subscription positions as committed consumer-group offsets on the
    log's partition. Called from threads (``Checkpoint`` methods run there),
    it does its Kafka work on the loop."""

    def __init__(self, bootstrap: str, topic: str, partition: int, loop: asyncio.AbstractEventLoop):
        self.bootstrap = bootstrap
        self.tp = TopicPartition(topic, partition)
        self.loop = loop
        self._consumers: dict[str, AIOKafkaConsumer] = {}

    def group(self, name: str, created: int) -> str:
        return f"fjord-trigger.{self.tp.topic}.{name}.{created}"

    async def _consumer(self, group: str) -> AIOKafkaConsumer:
        c = self._consumers.get(group)
        if c is None:
            c = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False,
                                 client_id="fjord-trigger-worker")
            await c.start()
            c.assign([self.tp])
            c.pause(self.tp)  # it only commits and reads commits; it must not fetch
            self._consumers[group] = c
        return c

    async def load(self, group: str) -> int | None:
        return await (await self._consumer(group)).committed(self.tp)

    async def save(self, group: str, offset: int) -> None:
        await (await self._consumer(group)).commit({self.tp: OffsetAndMetadata(offset, "")})

    def call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def close(self) -> None:
        consumers, self._consumers = self._consumers, {}
        for c in consumers.values():
            await c.stop()


class SharedCheckpoint(Checkpoint):
    """A ``Checkpoint`` whose offset is a committed group offset (every
    worker reads it) instead of a local file. ``disabled`` is not shared."""

    def __init__(self, store: OffsetStore, directory: str, name: str, created: int):
        super().__init__(directory, name)
        self.store = store
        self.group = store.group(name, created)
        self.created = created

    def load(self) -> dict | None:
        offset = self.store.call(self.store.load(self.group))
        return None if offset is None else {"offset": offset, "created": self.created, "disabled": None}

    def _save_locked(self, offset: int, created: int, disabled: str | None) -> None:
        if created != self.created or (self.saved is not None and self.saved[0] == offset):
            return
        self.store.call(self.store.save(self.group, offset))
        self.saved = (offset, created, disabled)

    def _remove_locked(self) -> None:
        self.saved = None  # the trigger was deleted: its group's offset is never read again


class GroupTriggerService(TriggerService):
    """``TriggerService`` over the subscriptions this worker owns."""

    def __init__(self, worker_id: str, store: OffsetStore, **kw):
        super().__init__(**kw)
        self.worker_id = worker_id
        self.store = store
        self.members: list[str] = []

    def owns(self, name: str) -> bool:
        return owner(name, self.members) == self.worker_id

    async def _begin(self, log_, meta) -> None:
        self.all_meta = meta
        await super()._begin(log_, OwnedMeta(meta, self.owns))

    async def reconcile(self) -> None:
        # Subscriptions that moved to another worker: stop them, saving
        # their position, before the service sees them gone (it would take
        # them for deleted and forget their checkpoint).
        for name in [n for n in self.runners if not self.owns(n) and registry.get(self.all_meta, n)]:
            runner = self.runners.pop(name)
            self._stored.pop(name, None)
            await runner.stop()
            log.info("trigger %s handed over to worker %s", name, owner(name, self.members))
        await super().reconcile()

    def _make_runner(self, sub):
        runner = super()._make_runner(sub)
        runner.checkpoint = SharedCheckpoint(self.store, self.directory, sub.name, sub.created)
        return runner


class OwnedMeta(Mapping):
    """``Keyspace.meta`` without the subscriptions another worker owns."""

    def __init__(self, meta: dict, owns):
        self.meta = meta
        self.owns = owns

    def _visible(self, key) -> bool:
        ns, name = key
        return ns != registry.NS or self.owns(name)

    def __getitem__(self, key):
        if not self._visible(key):
            raise KeyError(key)
        return self.meta[key]

    def get(self, key, default=None):
        return self.meta.get(key, default) if self._visible(key) else default

    def __iter__(self):
        return (k for k in list(self.meta) if self._visible(k))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, key) -> bool:
        return key in self.meta and self._visible(key)


def run(ns: argparse.Namespace) -> int:
    """``fjord triggers run --kafka-bootstrap``: one worker of the group, until SIGTERM."""
    import signal

    from store.config import LOG_LEVELS

    logging.basicConfig(level=LOG_LEVELS.get(getattr(ns, "loglevel", "notice"), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)

    async def main() -> int:
        from store.snapshotting import load_types
        from streams.kafkalog import open_from_config, topic_for
        from streams.log import LogError

        load_types()
        topic = ns.kafka_topic or topic_for()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        settings = {"kafka-bootstrap": ns.kafka_bootstrap, "kafka-topic": topic, "kafka-produce-timeout-ms": 5000,
                    "kafka-idempotence": False, "kafka-retention-ms": -1}
        try:  # like the server: wait (with backoff, saying why) until the broker answers
            klog = await open_from_config(settings, patient=True, stopping=stop.is_set)
        except LogError as exc:
            log.error("%s", exc)
            return 1
        if klog is None:
            return 0
        worker_id = uuid.uuid4().hex[:12]
        store = OffsetStore(ns.kafka_bootstrap, topic, klog.partition, loop)
        # dead letters per worker, stable across its restarts (a compose
        # service scaled out shares one volume; its containers' host names differ)
        data_dir = os.path.join(ns.dir or ".", f"worker-{socket.gethostname()}")
        service = GroupTriggerService(worker_id, store, data_dir=data_dir, databases=ns.databases,
                                      sink_factory=default_sink_factory(ns.fjord_url))
        assignor = MembersAssignor(worker_id, lambda: setattr(service, "members", list(assignor.members)))
        follower = registry.MetaFollower(klog, None)
        catch_up = loop.create_task(follower.follow())
        target = klog.end_offset
        while not follower.caught_up(target) and not catch_up.done():
            await asyncio.sleep(0.01)
        group = AIOKafkaConsumer(
            topic, bootstrap_servers=ns.kafka_bootstrap, group_id=f"fjord-triggers.{topic}",
            client_id="fjord-trigger-worker", enable_auto_commit=False,
            partition_assignment_strategy=(assignor,), session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_MS, rebalance_timeout_ms=SESSION_TIMEOUT_MS)
        await group.start()
        await service.start_on(klog, follower.meta)
        service._follower_task = catch_up
        from .http import start_dispatcher_admin
        admin = await start_dispatcher_admin(service, ns)  # --admin-port: /healthz, /metrics, /triggers
        log.info("trigger worker %s running over Kafka %s topic %s", worker_id, ns.kafka_bootstrap, topic)
        try:
            while not stop.is_set():  # polling keeps the membership alive (max_poll_interval_ms)
                try:
                    await group.getmany(timeout_ms=200)
                except KafkaError as exc:  # the group coordinator retries by itself; keep delivering
                    log.warning("trigger worker %s: consumer group: %r", worker_id, exc)
                    await asyncio.sleep(1)
        finally:
            if admin is not None:
                await admin.stop()
            await service.stop()
            await group.stop()  # leaves the group: the others take over at once
            await store.close()
            await klog.close()
        return 0

    return asyncio.run(main())
