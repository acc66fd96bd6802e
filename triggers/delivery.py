"""What the dispatcher hands a sink, and what a sink answers.

This is the seam between the dispatcher (which reads the log, filters,
batches, orders per key, retries, bisects and dead-letters) and the sinks
(which only know how to carry one batch somewhere: an HTTP POST, a function
call in a worker process). Keeping it to plain data means a sink never sees
the log, the keyspace or a checkpoint, and the dispatcher never sees HTTP.

Everything in a ``ChangeRecord`` is JSON-ready: byte strings have already
been converted by the event codec's rule (UTF-8 text as a string, anything
else as ``{"b64": "..."}``), so a sink can ``orjson.dumps`` it as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One event of the change stream, as a subscriber sees it.

    ``id`` is stable across retries and restarts (``"<offset>-<index>"``: the
    log offset of the record and the event's index inside it), so receivers
    de-duplicate on it.
    """

    id: str
    offset: int
    index: int
    time_ms: int
    db: int | None
    key: Any              # JSON-ready key (str or {"b64": ...}); None for keyless events
    type: str             # Redis keyspace-notification name: set, del, hset, lpush, expired...
    data: Any             # the event's effect data, JSON-ready
    view: str             # KEYS_ONLY | NEW_IMAGE | OLD_IMAGE | NEW_AND_OLD_IMAGES
    old_image: Any = None  # {"type": "hash", "value": ...} before the event, when the view asks for it
    new_image: Any = None  # the same after the event; None when the key does not exist


@dataclass(slots=True)
class Batch:
    """Records of one subscription delivered together.

    ``id`` is stable for the same records (it is derived from the first and
    last record ids), so a retried batch carries the same id.
    """

    subscription: str
    id: str
    records: list[ChangeRecord]
    attempt: int = 1


@dataclass(slots=True)
class Outcome:
    """A sink's answer for one batch.

    - ``ok`` with no ``failed_ids``: every record was delivered.
    - ``failed_ids`` (partial batch failure, like Lambda's
      ``batchItemFailures``): the records with these ids failed, all others
      succeeded.
    - not ``ok`` and no ``failed_ids``: the whole batch failed.
    - ``retry_after``: seconds the receiver asked us to wait (429/503).
    - ``disable``: the receiver said the subscription is gone (HTTP 410);
      the dispatcher pauses the subscription and says why.
    """

    ok: bool
    failed_ids: list[str] = field(default_factory=list)
    retry_after: float | None = None
    disable: bool = False
    error: str | None = None


class Sink(Protocol):
    """Carries batches to one destination. Implementations never raise for
    a delivery failure: they return an ``Outcome`` that says what happened."""

    async def deliver(self, batch: Batch) -> Outcome: ...

    async def close(self) -> None: ...
