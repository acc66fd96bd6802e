"""The shapes a subscriber receives: CloudEvents for webhooks, DynamoDB
Streams records for functions.

Both are plain JSON-ready dicts built from ``ChangeRecord``; nothing here does
I/O, so the shapes are tested byte for byte and documented in the README.
Keys and values keep the event codec's rule: UTF-8 text as a JSON string,
other bytes as ``{"b64": "..."}``.

Images (``old_image`` / ``new_image``) appear only when the subscription's
view asks for them; then ``null`` means "the key did not exist" (before the
event for the old image, after it for the new one).

The ``cloudevents`` SDK is not used: the envelope is a handful of fixed
attributes, and building plain dicts for orjson keeps the webhook path at
tens of thousands of events per second.
"""

from __future__ import annotations

import socket
from datetime import datetime, timezone
from typing import Any

from triggers.delivery import Batch, ChangeRecord

#: event types after which the key is gone (DynamoDB's REMOVE)
REMOVING_TYPES = frozenset({"del", "expired", "evicted", "rename_from", "move_from", "flushdb", "flushall"})

_WANTS_OLD = frozenset({"OLD_IMAGE", "NEW_AND_OLD_IMAGES"})
_WANTS_NEW = frozenset({"NEW_IMAGE", "NEW_AND_OLD_IMAGES"})


def default_source_host() -> str:
    return socket.gethostname() or "localhost"


def rfc3339(time_ms: int) -> str:
    """Milliseconds since the epoch as RFC 3339 UTC: 2026-11-27T17:20:00.123Z."""
    dt = datetime.fromtimestamp(time_ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{time_ms % 1000:03d}Z"


def sequence_number(rec: ChangeRecord) -> str:
    """A DynamoDB-style SequenceNumber: digits only, sorting in log order."""
    return f"{rec.offset:020d}{rec.index:06d}"


def _images(rec: ChangeRecord, out: dict, old_name: str, new_name: str) -> None:
    if rec.view in _WANTS_OLD:
        out[old_name] = rec.old_image
    if rec.view in _WANTS_NEW:
        out[new_name] = rec.new_image


# ------------------------------------------------------------ CloudEvents


def cloudevent(rec: ChangeRecord, source_host: str) -> dict[str, Any]:
    """One change as a CloudEvents 1.0 event in structured JSON form."""
    data: dict[str, Any] = {"db": rec.db, "key": rec.key, "offset": rec.offset, "index": rec.index,
                            "view": rec.view, "data": rec.data}
    _images(rec, data, "old_image", "new_image")
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": rec.id,
        "source": f"fjord://{source_host}/{rec.db}" if rec.db is not None else f"fjord://{source_host}",
        "type": f"io.fjord.{rec.type}",
        "time": rfc3339(rec.time_ms),
        "datacontenttype": "application/json",
    }
    # CloudEvents' subject is a string: a binary key lives in data.key only.
    if type(rec.key) is str:
        event["subject"] = rec.key
    event["data"] = data
    return event


def webhook_body(batch: Batch, source_host: str) -> dict[str, Any]:
    """The JSON document one webhook POST carries."""
    return {
        "subscription": batch.subscription,
        "batch_id": batch.id,
        "records": [cloudevent(rec, source_host) for rec in batch.records],
    }


# ------------------------------------------------------------ DynamoDB Streams


def event_name(rec: ChangeRecord) -> str:
    """INSERT, MODIFY or REMOVE, from the images when the view has them,
    else from the event type (without the old image, a write to a key
    cannot tell "created" from "changed", so it is MODIFY)."""
    has_old, has_new = rec.view in _WANTS_OLD, rec.view in _WANTS_NEW
    if rec.type in REMOVING_TYPES or rec.key is None:
        return "REMOVE"
    if has_new and rec.new_image is None:
        return "REMOVE"
    if has_old and rec.old_image is None:
        return "INSERT"
    return "MODIFY"


def dynamodb_record(rec: ChangeRecord, source_arn: str) -> dict[str, Any]:
    """One change shaped like a DynamoDB Streams record (what Lambda gets)."""
    ddb: dict[str, Any] = {
        "Keys": {"db": rec.db, "key": rec.key} if rec.key is not None else {"db": rec.db},
        "SequenceNumber": sequence_number(rec),
        "ApproximateCreationDateTime": rec.time_ms / 1000,
        "StreamViewType": rec.view,
    }
    _images(rec, ddb, "OldImage", "NewImage")
    return {
        "eventID": rec.id,
        "eventName": event_name(rec),
        "eventVersion": "1.1",
        "eventSource": "fjord",
        "eventSourceARN": source_arn,
        "dynamodb": ddb,
        "fjord": {"type": rec.type, "db": rec.db, "offset": rec.offset, "index": rec.index,
                  "time_ms": rec.time_ms, "data": rec.data},
    }


def function_arn(subscription: str, source_host: str) -> str:
    """What stands for an AWS ARN: the trigger, on this server."""
    return f"fjord://{source_host}/triggers/{subscription}"


def function_event(batch: Batch, source_host: str) -> dict[str, Any]:
    """The argument a function handler is called with."""
    arn = function_arn(batch.subscription, source_host)
    return {"Records": [dynamodb_record(rec, arn) for rec in batch.records]}


def failed_ids_from_result(result: Any, batch: Batch) -> list[str] | None:
    """Record ids named by a ``batchItemFailures`` answer (by eventID or
    SequenceNumber, as Lambda handlers written for DynamoDB return), [] when
    the answer reports none, None when it is not a partial-failure answer.

    Raises ValueError for an identifier that names no record of the batch,
    which makes the whole batch fail (as Lambda does).
    """
    if not isinstance(result, dict) or "batchItemFailures" not in result:
        return None
    items = result["batchItemFailures"]
    if items is None:
        return []
    if not isinstance(items, list):
        raise ValueError("batchItemFailures must be a list")
    by_name = {}
    for rec in batch.records:
        by_name[rec.id] = rec.id
        by_name[sequence_number(rec)] = rec.id
    failed: list[str] = []
    for item in items:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if ident not in by_name:
            raise ValueError(f"batchItemFailures names no record of the batch: {ident!r}")
        if by_name[ident] not in failed:
            failed.append(by_name[ident])
    return failed
