"""The same views as workers of a Kafka consumer group (aiokafka).

Start as many workers as you like with the same ``group_id``: Kafka hands
each partition of the Fjord topic to one of them, and moves it when a worker
joins, leaves or dies. Per partition a worker keeps one ``ViewRunner`` per
view, checkpointed (state + that partition's offset, one atomic file) under
``<checkpoint_dir>/p<partition>/``. Correctness never rests on the group's
committed offsets: on assignment a worker loads the checkpoint and seeks to
its offset, so a partition taken over from a killed worker resumes exactly
where that worker's last checkpoint stood (no double counting: the state in
the file is the state at that offset). The checkpoint directory must be
shared by the workers (one machine, or a shared volume); the group's offsets
are committed too, for lag tools only.

Images: streams/ knows no keyspace model, so a worker that must give views
``old``/``new`` images is handed an ``imager_factory`` from above
(triggers/viewhost.py ``ShadowImager``); it then reads the partition from
its start to rebuild the shadow keyspace, feeding the views only records at
or past their checkpoint.

A produce retry can store a batch twice on brokers without idempotence
(Tansu); as streams/kafkalog.py does, a message whose ``writer:seq`` key was
already seen applies nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Callable, Iterable, Protocol

from ..events import Record, decode_record
from ..materializer import EpochFence
from .runner import ViewRunner
from .state import CheckpointStore
from .view import Change, View

log = logging.getLogger("fjord.views.kafka")

#: message keys remembered per partition to drop produce-retry duplicates
DEDUP_KEYS = 100_000


class Imager(Protocol):
    """Turns records into changes, keeping whatever it needs for images."""

    def changes(self, record: Record) -> list[Change]: ...


class NoImages:
    """Changes without images (views with ``images = False``)."""

    def changes(self, record: Record) -> list[Change]:
        return [Change(record.offset, i, record.time_ms, record.origin, ev, None, None)
                for i, ev in enumerate(record.events)]


class PartitionViews:
    """The runners of one partition, fed from one position."""

    def __init__(self, partition: int, views: Iterable[View], store: CheckpointStore, imager: Imager,
                 end_offset: Callable[[], int], checkpoint_seconds: float):
        self.partition = partition
        self.imager = imager
        self.runners = [ViewRunner(v, store, end_offset=end_offset, checkpoint_seconds=checkpoint_seconds)
                        for v in views]
        self.seen: dict[bytes, int] = {}
        self.duplicates = 0
        #: a deposed writer's records count for nobody (docs/failover.md);
        #: epoch unknown until start_offset() says where reading starts
        self.fence = EpochFence(None)

    def start_offset(self, needs_history: bool) -> int:
        start = 0 if needs_history else min(r.next_offset for r in self.runners)
        self.fence = EpochFence(0 if start == 0 else None)
        return start

    def consume(self, messages) -> None:
        for m in messages:
            key = m.key
            if key:
                first = self.seen.get(key)
                if first is not None and first < m.offset:
                    self.duplicates += 1
                    for r in self.runners:
                        if r.next_offset <= m.offset:
                            r.feed(m.offset + 1, ())
                    continue
                self.seen[key] = m.offset
                if len(self.seen) > DEDUP_KEYS:
                    del self.seen[next(iter(self.seen))]
            record = decode_record(m.offset, m.value)
            changes = self.imager.changes(record) if self.fence.admit(record) else ()
            for r in self.runners:
                if r.next_offset <= m.offset:
                    r.feed(m.offset + 1, changes)

    def maybe_checkpoint(self) -> None:
        for r in self.runners:
            r.maybe_checkpoint()

    async def flush(self) -> None:
        for r in self.runners:
            await r.flush()


class KafkaViewWorker:
    """One member of the consumer group ``group_id`` running ``views``."""

    def __init__(self, bootstrap: str, topic: str, views: list[View], *, group_id: str, checkpoint_dir: str,
                 imager_factory: Callable[[], Imager] | None = None, checkpoint_seconds: float = 1.0,
                 client_id: str = "fjord-views"):
        self.bootstrap = bootstrap
        self.topic = topic
        self.views = views
        self.group_id = group_id
        self.checkpoint_dir = checkpoint_dir
        self.needs_images = any(v.images for v in views)
        if self.needs_images and imager_factory is None:
            raise ValueError("these views read images: give the worker an imager_factory")
        self.imager_factory = imager_factory or NoImages
        self.checkpoint_seconds = checkpoint_seconds
        self.client_id = client_id
        self.partitions: dict[int, PartitionViews] = {}
        self.consumer = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer
        from aiokafka.abc import ConsumerRebalanceListener

        worker = self

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked):
                await worker._revoke([tp.partition for tp in revoked])

            async def on_partitions_assigned(self, assigned):
                worker._assign([tp.partition for tp in assigned])

        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group_id, client_id=self.client_id,
            enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=100,
            session_timeout_ms=6000, heartbeat_interval_ms=1000, max_poll_records=5000,
        )
        await self.consumer.start()
        self.consumer.subscribe([self.topic], listener=Listener())
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def _assign(self, partitions: list[int]) -> None:
        from aiokafka import TopicPartition

        for p in partitions:
            if p in self.partitions:
                continue
            tp = TopicPartition(self.topic, p)
            store = CheckpointStore(os.path.join(self.checkpoint_dir, f"p{p}"))
            pv = PartitionViews(p, self.views, store, self.imager_factory(),
                                lambda tp=tp: self.consumer.highwater(tp) or 0, self.checkpoint_seconds)
            self.partitions[p] = pv
            start = pv.start_offset(self.needs_images)
            self.consumer.seek(tp, start)
            log.info("assigned partition %d of %s; views from offset %d", p, self.topic,
                     min(r.next_offset for r in pv.runners))

    async def _revoke(self, partitions: list[int]) -> None:
        for p in partitions:
            pv = self.partitions.pop(p, None)
            if pv is not None:
                await pv.flush()
                log.info("revoked partition %d", p)

    async def _loop(self) -> None:
        try:
            await self._consume()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("view worker stopped")
            raise

    async def _consume(self) -> None:
        from aiokafka import TopicPartition

        while True:
            batches = await self.consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, messages in batches.items():
                pv = self.partitions.get(tp.partition)
                if pv is not None:
                    pv.consume(messages)
            for p, pv in self.partitions.items():
                pv.maybe_checkpoint()
            if batches:
                offsets = {TopicPartition(self.topic, p): min(r._saved_offset for r in pv.runners)
                           for p, pv in self.partitions.items()}
                try:
                    await self.consumer.commit({tp: o for tp, o in offsets.items() if o > 0})
                except Exception as exc:  # noqa: BLE001 - committed offsets are only for lag tools
                    log.debug("commit failed: %s", exc)

    def runners(self, name: str) -> list[ViewRunner]:
        """This worker's runners of view ``name`` (one per owned partition)."""
        return [r for pv in self.partitions.values() for r in pv.runners if r.view.name == name]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        for pv in self.partitions.values():
            await pv.flush()
        if self.consumer is not None:
            await self.consumer.stop()
