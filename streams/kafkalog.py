"""``KafkaLog``: the ``Log`` on one partition of a Kafka topic (aiokafka).

Offsets are the partition's Kafka offsets; one Fjord record is one Kafka
message whose value is the record payload (streams/events.py), so any Kafka
consumer can read the change stream without Fjord's code.

Topic naming: one topic per Fjord dataset, ``fjord.<dataset>.log`` (dataset
``default`` unless told otherwise, see ``topic_for``); it is created on open
when missing, with one partition, ``cleanup.policy=delete`` and the configured
retention. Retention moves ``start_offset``; compaction would break replay.

Writing (one writer per partition, ARCHITECTURE.md invariant 5):

- ``append`` sends every payload of the batch to the producer as one ready
  batch, so the group committer's batch leaves as one produce request, and
  returns only when the broker acknowledged all of it (``acks=all``). A
  failure, or no answer within ``produce_timeout_ms``, raises
  ``LogWriteError``: the caller treats the batch as lost and rebuilds from
  the log. The end stays at the last acknowledged record, and our own
  acknowledged records are kept in memory (the tail cache), so that rebuild
  (snapshot + tail) needs no broker: reads keep being served while it is
  away. A produce that timed out may still land: before the next append
  (and in ``sync``) every send must have settled and the broker must say
  where the log ends; if it grew, ``append`` raises again so the writer
  rebuilds with those records. A client that got an error may thus see its
  write done; no client is acknowledged a write that is not on the log.
- Without idempotence (Tansu, or ``idempotence=False``) a produce retry can
  store a batch twice. Every message therefore carries a key
  ``<writer id>:<sequence>`` (writer id random per ``KafkaLog``, sequence
  counting its records); ``read`` turns a message whose key it already read
  at a lower offset into an empty record at its own offset, so a duplicate
  keeps offsets consecutive but applies nothing. (A reader that starts
  between an original and its copy cannot tell; copies land right after
  their originals, so that takes a snapshot taken in that instant.)

Reading uses consumers with manual assignment (no group, nothing committed):
a small pool of them for ``read``, and one that long-polls the partition for
the high-water mark while somebody waits in ``wait_for`` (other processes'
appends). ``end_offset`` is the high-water mark: our own acknowledged appends
move it, and so do the fetch responses; ListOffsets is only a lower bound
(Tansu answers it short). The aiokafka clients and their settings live in
streams/kafkaclients.py.

Opening: ``open_from_config(patient=True)`` is how a server starts when
the broker may not answer yet: it is already listening (-LOADING), and
this keeps trying, with backoff, saying why. ``identity()`` names the log
for snapshots (streams/logid.py): the cluster id the broker reports plus
the topic, whatever bootstrap address reached it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import AsyncIterator, Callable, Sequence

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from .events import Record, decode_record
from .kafkaclients import ConsumerPool, ensure_topic, make_consumer, make_producer
from .log import Log, LogError, LogWriteError
from .tailcache import TailCache

log = logging.getLogger("fjord.kafkalog")

#: Message keys remembered to recognise duplicates (a retried batch lands
#: right after its original, so the recent ones suffice).
DEDUP_KEYS = 100_000


def topic_for(dataset: str = "default") -> str:
    """The documented topic name of a dataset: ``fjord.<dataset>.log``."""
    return f"fjord.{dataset}.log"


async def open_from_config(config, *, patient: bool = False,
                           stopping: Callable[[], bool] = lambda: False,
                           on_error: Callable[[str], None] = lambda reason: None) -> "KafkaLog | None":
    """The ``KafkaLog`` the ``kafka-*`` settings describe (store/config.py).

    ``patient``: a broker that does not answer is not fatal (the server is
    already listening and answering -LOADING): keep trying, each attempt
    bounded, with backoff from 0.5 s to 10 s, logging and reporting through
    ``on_error`` why; return None once ``stopping()`` says the server shuts
    down. Otherwise the first failure raises ``LogError``."""
    # aiokafka logs every (re)assignment at INFO; the server's log is for people
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    bootstrap, topic = config["kafka-bootstrap"], config["kafka-topic"] or topic_for()
    attempt_s = max(config["kafka-produce-timeout-ms"] / 1000, 3.0)
    delay = 0.5
    while True:
        try:
            return await asyncio.wait_for(KafkaLog.open(
                bootstrap, topic, produce_timeout_ms=config["kafka-produce-timeout-ms"],
                idempotence=config["kafka-idempotence"], retention_ms=config["kafka-retention-ms"],
            ), attempt_s)
        except (LogError, KafkaError, OSError, asyncio.TimeoutError) as exc:
            if not patient:
                if isinstance(exc, LogError):
                    raise
                raise LogError(f"cannot open the log on Kafka {bootstrap} topic {topic}: {exc!r}") from exc
            reason = str(exc) if isinstance(exc, LogError) else \
                f"Kafka broker {bootstrap} did not answer within {attempt_s:g} s" \
                if isinstance(exc, asyncio.TimeoutError) else f"Kafka broker {bootstrap}: {exc!r}"
            on_error(reason)
            log.warning("waiting for the log: %s; retrying in %.1f s", reason, delay)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            if stopping():
                return None
            await asyncio.sleep(min(0.1, delay))
        if stopping():
            return None
        delay = min(delay * 2, 10.0)


class KafkaLog(Log):
    """A ``Log`` on partition ``partition`` of ``topic`` at ``bootstrap``.

    Open it with ``await KafkaLog.open(...)`` (creates the topic if needed,
    connects, finds the partition's start and end)."""

    shared = True

    def __init__(self, bootstrap: str, topic: str, partition: int = 0, *,
                 produce_timeout_ms: int = 5000, idempotence: bool = False,
                 retention_ms: int = -1, create: bool = True, client_id: str = "fjord"):
        self.bootstrap = bootstrap
        self.topic = topic
        self.partition = partition
        self.tp = TopicPartition(topic, partition)
        self.produce_timeout_ms = produce_timeout_ms
        self.idempotence = idempotence
        self.retention_ms = retention_ms
        self.create = create
        self.client_id = client_id
        self.writer_id = os.urandom(6).hex()
        self._seq = 0
        self._start = 0
        self._end = 0  # durable end: everything below is acknowledged
        self._producer: AIOKafkaProducer | None = None
        self._unsynced: list[tuple[asyncio.Future, list[bytes]]] = []  # sync=False batches not yet confirmed
        self._unsynced_records = 0
        self._outstanding: set[asyncio.Future] = set()  # every send not yet settled
        self._pool = ConsumerPool(bootstrap, client_id, self.tp, produce_timeout_ms)
        self._watcher: asyncio.Task | None = None
        self._closed = False
        self._suspect = False  # an append failed; sync() re-reads the end
        self._tail = TailCache()  # our latest acknowledged records (streams/tailcache.py)
        self._first_seen: dict[bytes, int] = {}  # message key -> lowest offset read
        self.appends = 0
        self.produce_errors = 0
        self.duplicates_skipped = 0

    # ------------------------------------------------------------ opening

    @classmethod
    async def open(cls, bootstrap: str, topic: str, partition: int = 0, **kw) -> "KafkaLog":
        lg = cls(bootstrap, topic, partition, **kw)
        try:
            if lg.create:
                await ensure_topic(bootstrap, topic, partition + 1, lg.retention_ms, lg.client_id)
            lg._producer = make_producer(bootstrap, lg.client_id, lg.idempotence, lg.produce_timeout_ms)
            await lg._producer.start()
            await lg.refresh()
        except KafkaError as exc:
            await lg.close()
            raise LogError(f"cannot open the log on Kafka {bootstrap} topic {topic}: {exc!r}") from exc
        except BaseException:
            await lg.close()
            raise
        return lg

    async def refresh(self, patient: bool = False) -> int:
        """Ask the broker for the partition's start and high-water mark.

        ListOffsets gives the start and a lower bound of the end; one fetch
        from there gives the high-water mark itself. ``patient`` retries
        until the broker answers (a rebuild must know the true end)."""
        while True:
            try:
                return await self._refresh_once()
            except (KafkaError, asyncio.TimeoutError) as exc:
                if not patient or self._closed:
                    raise LogError(f"Kafka broker {self.bootstrap} did not answer: {exc!r}") from exc
                log.warning("Kafka broker %s did not answer (%r); retrying", self.bootstrap, exc)
                await asyncio.sleep(0.5)

    async def _refresh_once(self) -> int:
        # A fresh consumer: a pooled one remembers the high-water mark of
        # its last fetch, which may be older than the question.
        c = make_consumer(self.bootstrap, self.client_id, self.produce_timeout_ms)
        await c.start()
        try:
            c.assign([self.tp])
            start = (await c.beginning_offsets([self.tp]))[self.tp]
            lower = (await c.end_offsets([self.tp]))[self.tp]
            c.seek(self.tp, max(lower, start))
            deadline = time.monotonic() + self.produce_timeout_ms / 1000
            hw = None
            while hw is None:
                await c.getmany(self.tp, timeout_ms=100, max_records=1)
                hw = c.highwater(self.tp)
                if hw is None and time.monotonic() > deadline:
                    raise asyncio.TimeoutError("no fetch response")
        finally:
            await c.stop()
        self._start = start
        self._advance(max(lower, hw))
        self._tail.expected = self._end
        return self._end

    def _advance(self, end: int) -> None:
        if end > self._end:
            self._end = end
            self._notify_end()

    async def identity(self) -> str:
        """``kafka:<cluster id>/<topic>`` (streams/logid.py): the cluster id
        from a metadata response, so every bootstrap address of one cluster
        names the same log."""
        from aiokafka.protocol.metadata import MetadataRequest
        if self._producer is None:
            raise LogError("the Kafka log is closed")
        client = self._producer.client
        for attempt in range(3):  # the broker just answered: a failure here is a hiccup
            try:
                resp = await asyncio.wait_for(client.send(client.get_random_node(), MetadataRequest([self.topic])),
                                              max(self.produce_timeout_ms / 1000, 5.0))
                return f"kafka:{getattr(resp, 'cluster_id', None) or ''}/{self.topic}"
            except (KafkaError, asyncio.TimeoutError) as exc:
                if attempt == 2:
                    raise LogError(f"Kafka broker {self.bootstrap} did not say its cluster id: {exc!r}") from exc
                await asyncio.sleep(0.5)

    # ------------------------------------------------------------ Log

    @property
    def start_offset(self) -> int:
        return self._start

    @property
    def end_offset(self) -> int:
        return self._end

    async def append(self, payloads: Sequence[bytes], *, sync: bool = True) -> int:
        if not payloads:
            if sync:
                await self.sync()
            return self._end + self._unsynced_records
        if self._producer is None:
            raise LogWriteError("the Kafka log is closed")
        if self._suspect:
            await self._check_after_failure()
        try:
            sent = await self._send(payloads)
        except KafkaError as exc:
            self._suspect = True
            self.produce_errors += 1
            raise LogWriteError(f"Kafka produce failed: {exc!r}") from exc
        self.appends += 1
        if not sync:
            first = self._end + self._unsynced_records
            self._unsynced.extend(sent)
            self._unsynced_records += len(payloads)
            return first
        pending, self._unsynced, self._unsynced_records = self._unsynced, [], 0
        bases = await self._confirm(pending + sent)
        return bases[len(pending)]

    async def _send(self, payloads: Sequence[bytes]) -> list[tuple[asyncio.Future, list[bytes]]]:
        """Hand the payloads to the producer as ready-made batches (one
        unless they exceed ``max_batch_size``): one produce request, and no
        per-message futures. Each message's key is ``writer:seq``."""
        producer = self._producer
        sent = []
        writer = self.writer_id.encode()
        batch, members = producer.create_batch(), []
        for payload in payloads:
            self._seq += 1
            key = b"%s:%d" % (writer, self._seq)
            if batch.append(key=key, value=payload, timestamp=None) is None:
                if members:  # full: send it and start the next
                    sent.append((await producer.send_batch(batch, self.topic, partition=self.partition), members))
                    batch, members = producer.create_batch(), []
                if batch.append(key=key, value=payload, timestamp=None) is None:
                    raise LogWriteError(f"a record of {len(payload)} bytes does not fit a Kafka batch")
            members.append(payload)
        sent.append((await producer.send_batch(batch, self.topic, partition=self.partition), members))
        for fut, _ in sent:
            self._outstanding.add(fut)
            fut.add_done_callback(self._settled)
        return sent

    def _settled(self, fut: asyncio.Future) -> None:
        self._outstanding.discard(fut)
        if not fut.cancelled():
            fut.exception()  # retrieved: a failure nobody waits for any more is already reported

    async def _confirm(self, sent: list[tuple[asyncio.Future, list[bytes]]]) -> list[int]:
        """Wait (bounded) for the broker's acknowledgement of the batches in
        ``sent``; return each one's first offset."""
        if not sent:
            return []
        futures = [f for f, _ in sent]
        # asyncio.wait, not wait_for: a timeout must not cancel the sends,
        # whose outcome sync() waits for before anybody rebuilds
        done, waiting = await asyncio.wait(futures, timeout=self.produce_timeout_ms / 1000)
        if waiting:
            self._suspect = True
            self.produce_errors += 1
            raise LogWriteError(f"Kafka broker did not acknowledge within {self.produce_timeout_ms} ms "
                                f"(kafka-produce-timeout-ms)")
        for f in futures:
            exc = f.exception()
            if exc is not None:
                self._suspect = True
                self.produce_errors += 1
                raise LogWriteError(f"Kafka produce failed: {exc!r}") from exc
        bases = [f.result().offset for f in futures]
        self._tail.add(bases, [members for _, members in sent])
        self._advance(bases[-1] + len(sent[-1][1]))
        return bases

    async def sync(self) -> None:
        """Confirm every ``sync=False`` append. After a failed append, try
        (bounded) to learn what actually landed, so a rebuild sees it; if
        the broker does not answer, the end stays at the last acknowledged
        record and the next ``append`` tries again first."""
        pending, self._unsynced, self._unsynced_records = self._unsynced, [], 0
        if self._suspect:
            try:
                await self._settle()
            except LogError as exc:
                log.warning("%s; the log ends at the last acknowledged offset %d until it answers", exc, self._end)
            return
        await self._confirm(pending)

    async def _settle(self) -> None:
        """After a failed append: wait until every send has settled (landed
        or failed for good), then ask the broker where the log ends. Raises
        ``LogError`` when that takes longer than the produce timeout."""
        if self._outstanding:
            _, waiting = await asyncio.wait(list(self._outstanding), timeout=self.produce_timeout_ms / 1000)
            if waiting:
                raise LogError(f"Kafka broker {self.bootstrap} has not answered earlier produce requests")
        await self.refresh()
        self._suspect = False

    async def _check_after_failure(self) -> None:
        """Before appending after a failure: the broker must answer, and
        the records of the failed batch must not have landed after all (if
        they did, this writer's state lacks them: it must rebuild first)."""
        before = self._end
        try:
            await self._settle()
        except LogError as exc:
            raise LogWriteError(str(exc)) from exc
        if self._end != before:
            raise LogWriteError(f"records {before}..{self._end - 1} of a failed append reached the log "
                                f"after all; rebuilding from the log")

    async def read(self, start: int, end: int | None = None) -> AsyncIterator[Record]:
        end = self._end if end is None else min(end, self._end)
        start = max(start, 0)
        if start >= end:
            return
        if self._tail.covers(start, end):
            for offset, payload in self._tail.slice(start, end):
                yield decode_record(offset, payload)
            return
        c = await self._pool.borrow()
        try:
            c.seek(self.tp, start)
            pos = start
            quiet_since = time.monotonic()
            while pos < end:
                batch = await c.getmany(self.tp, timeout_ms=200, max_records=500)
                msgs = batch.get(self.tp, ())
                if not msgs:
                    if time.monotonic() - quiet_since > 10:
                        log.warning("reading %s at offset %d: no answer from the broker, still waiting",
                                    self.topic, pos)
                        quiet_since = time.monotonic()
                    continue
                quiet_since = time.monotonic()
                for m in msgs:
                    if m.offset < pos:
                        continue
                    if m.offset >= end:
                        pos = end
                        break
                    yield self._record(m)
                    pos = m.offset + 1
        finally:
            await self._pool.give_back(c)

    def _record(self, m) -> Record:
        """Decode one message. A message whose ``writer:seq`` key was first
        read at a lower offset is a produce retry that stored a batch twice:
        it becomes an empty record at its own offset, so offsets stay
        consecutive and nothing applies twice. The keys are remembered
        across reads (bounded), because a tailing reader may meet the copy
        in a later read than the original."""
        key = m.key
        if key:
            first = self._first_seen.get(key)
            if first is None or first > m.offset:
                self._first_seen[key] = m.offset
                if len(self._first_seen) > DEDUP_KEYS:
                    del self._first_seen[next(iter(self._first_seen))]
            elif first < m.offset:
                self.duplicates_skipped += 1
                return decode_record(m.offset, m.value)._replace(events=[])
        return decode_record(m.offset, m.value)

    async def wait_for(self, offset: int, timeout: float | None = None) -> bool:
        if self._end > offset:
            return True
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch())
        return await super().wait_for(offset, timeout)

    async def _watch(self) -> None:
        """Long-poll the partition so ``end_offset`` follows other writers."""
        c = make_consumer(self.bootstrap, self.client_id, self.produce_timeout_ms)
        await c.start()
        try:
            c.assign([self.tp])
            c.seek(self.tp, self._end)
            idle_since = time.monotonic()
            while not self._closed:
                if self.__dict__.get("_end_waiters"):
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > 10:
                    return  # nobody waits: stop fetching; the next wait_for restarts us
                batch = await c.getmany(self.tp, timeout_ms=500, max_records=1000)
                msgs = batch.get(self.tp, ())
                hw = c.highwater(self.tp)
                if not self._unsynced and not self._suspect:
                    # Our own sync=False records count only at sync(), as
                    # the contract says, even though the broker has them;
                    # after a failed append only _settle() may say where
                    # the log ends (it compares with the end before).
                    if msgs:
                        self._advance(msgs[-1].offset + 1)
                    if hw is not None:
                        self._advance(hw)
                if msgs:
                    c.seek(self.tp, self._end)
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - a waiter times out; the next wait_for restarts us
            log.exception("tailing %s failed", self.topic)
        finally:
            await c.stop()

    async def close(self) -> None:
        if self._closed:
            return
        try:
            if self._unsynced:
                try:
                    await self.sync()
                except LogError as exc:
                    log.error("closing the Kafka log: %s", exc)
        finally:
            self._closed = True
            if self._watcher is not None:
                self._watcher.cancel()
                await asyncio.gather(self._watcher, return_exceptions=True)
            await self._pool.close()
            if self._producer is not None:
                producer, self._producer = self._producer, None
                await producer.stop()

    def stats(self) -> dict:
        return {
            "log_backend": "kafka",
            "kafka_bootstrap": self.bootstrap,
            "kafka_topic": self.topic,
            "kafka_partition": self.partition,
            "kafka_start_offset": self._start,
            "kafka_end_offset": self._end,
            "kafka_produce_errors": self.produce_errors,
            "kafka_duplicates_skipped": self.duplicates_skipped,
        }
