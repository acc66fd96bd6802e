"""Helpers for the trigger engine's tests: a writer that owns a real log,
a Sink implemented by an in-process function, and an aiohttp receiver.

``LogWriter`` runs real command handlers on a real keyspace and appends
each command's events as one record to a real ``FileLog``, exactly what
the server's write path produces, so the dispatcher is tested on genuine
records without a server process in between.
"""

from __future__ import annotations

import asyncio
import time

from store.commands import table
from store.keyspace import Keyspace
from store.session import Session
from streams.events import encode_record
from triggers import registry
from triggers.delivery import Batch, Outcome
from triggers.subscription import Subscription


class LogWriter:
    """Commands on a keyspace, their events appended to ``log`` as records."""

    def __init__(self, log_, databases: int = 16):
        self.log = log_
        self.keyspace = Keyspace(databases)
        self.session = Session(None, self.keyspace)

    async def run(self, *args, origin: str | None = None):
        words = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        reply = table.resolve(words).handler(self.session, words)
        await self.flush(origin)
        return reply

    async def flush(self, origin: str | None = None) -> None:
        events, self.session.events = self.session.events, []
        if events:
            await self.log.append([encode_record(int(time.time() * 1000), events, origin)])

    async def create(self, words: list[str]) -> Subscription:
        sub = Subscription.from_words([w.encode() for w in words])
        registry.emit_create(self.session, sub)
        sub.created = self.log.end_offset
        # emit_create stored created=0 (no server): store the real one
        self.keyspace.meta[(registry.NS, sub.name)] = __import__("orjson").dumps(sub.to_json())
        self.session.events[-1].data["value"] = self.keyspace.meta[(registry.NS, sub.name)]
        await self.flush()
        return sub


class FunctionSink:
    """A real Sink whose delivery is a Python function of the batch:
    ``decide(batch) -> Outcome``; every batch is recorded."""

    def __init__(self, decide=None):
        self.decide = decide or (lambda batch: Outcome(True))
        self.batches: list[Batch] = []
        self.delivered: list = []  # records of batches answered ok (minus failed ids)

    async def deliver(self, batch: Batch) -> Outcome:
        self.batches.append(batch)
        outcome = self.decide(batch)
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
        if outcome.failed_ids:  # partial failure: every other record was delivered
            failed = set(outcome.failed_ids)
            self.delivered.extend(r for r in batch.records if r.id not in failed)
        elif outcome.ok:
            self.delivered.extend(batch.records)
        return outcome

    async def close(self) -> None:
        pass


async def wait_until(predicate, timeout: float = 10.0, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(step)
