"""faust-streaming integration: Fjord's change stream as faust records.

For teams that already run faust. It is not the engine of Fjord's views
(a faust table with a changelog applies far fewer events per second than
the view runners; see bench/views.py), but a faust app can consume the
change stream correctly with three things from here:

- ``FjordCodec``: the record payload (streams/events.py, JSON) as a faust
  codec named ``"fjord"``;
- ``FjordRecord`` / ``FjordEvent``: faust ``Record`` models of a record and
  its events, with ``FjordEvent.key_bytes()``/``data_bytes()`` giving back
  the exact bytes (the codec's ``{"b64": ...}`` rule undone);
- ``fjord_topic(app, topic)``: the topic, typed, keyed by the writer's
  ``writer:seq`` message key (ignored by the example).

``make_example_app`` builds a runnable example: an agent counting events by
type for keys under a prefix into a faust table. Run it with::

    python -m streams.views.faust_adapter --broker kafka://HOST:PORT \\
        --topic fjord.default.log --prefix order: --out counts.json

(it writes the table as JSON to ``--out`` every half second).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Optional

import faust
import orjson
from faust.serializers import codecs

from ..events import SCHEMA_VERSION, _decode_value


class FjordCodec(codecs.Codec):
    """A Fjord record payload <-> the JSON document faust models load."""

    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _loads(self, s: bytes) -> Any:
        doc = orjson.loads(s)
        if not isinstance(doc, dict) or doc.get("v") != SCHEMA_VERSION:
            raise ValueError(f"not a Fjord record of schema version {SCHEMA_VERSION}")
        return doc


codecs.register("fjord", FjordCodec())


class FjordEvent(faust.Record, serializer="json"):
    """One effect on one key, as on the wire."""

    type: str
    db: Optional[int] = None
    key: Any = None
    data: Any = None

    def key_bytes(self) -> bytes | None:
        return None if self.key is None else _decode_value(self.key)

    def data_bytes(self) -> dict:
        """``data`` with every string back to the exact bytes."""
        return _decode_value(self.data or {})


class FjordRecord(faust.Record, serializer="fjord"):
    """One Fjord record (one atomic step): writer's time, origin, events."""

    v: int
    time: int
    events: list
    origin: Optional[str] = None

    def fjord_events(self) -> list[FjordEvent]:
        return [e if isinstance(e, FjordEvent) else FjordEvent(**e) for e in self.events]


def fjord_topic(app: faust.App, topic: str = "fjord.default.log") -> faust.TopicT:
    """Fjord's log topic as a faust topic of ``FjordRecord`` values."""
    return app.topic(topic, key_type=bytes, value_type=FjordRecord, value_serializer="fjord",
                     internal=False)


def make_example_app(broker: str, topic: str, prefix: str = "", app_id: str = "fjord-example",
                     out: str | None = None, store: str = "memory://") -> faust.App:
    """The example: count events by type for keys starting with ``prefix``."""
    # short group timeouts: a new group's first join waits out the rebalance timeout on some brokers
    app = faust.App(app_id, broker=broker, store=store, topic_partitions=1, web_enabled=False,
                    topic_replication_factor=1, consumer_auto_offset_reset="earliest",
                    broker_session_timeout=6, broker_rebalance_timeout=6, broker_heartbeat_interval=1)
    records = fjord_topic(app, topic)
    counts = app.Table("events-by-type", default=int, partitions=1)
    want = prefix.encode()

    @app.agent(records)
    async def count_events(stream):
        async for record in stream:
            for ev in record.fjord_events():
                key = ev.key_bytes()
                if key is not None and key.startswith(want):
                    counts[ev.type] += 1

    if out is not None:
        @app.timer(interval=0.5)
        async def dump():
            tmp = out + ".tmp"
            with open(tmp, "w") as f:
                json.dump(dict(counts.items()), f)
            os.replace(tmp, out)

    return app


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="faust example agent over Fjord's change stream")
    p.add_argument("--broker", required=True, help="kafka://host:port")
    p.add_argument("--topic", default="fjord.default.log")
    p.add_argument("--prefix", default="")
    p.add_argument("--app-id", default="fjord-example")
    p.add_argument("--out", default=None, help="write the table here as JSON every 0.5 s")
    p.add_argument("--data-dir", default=None, help="faust's data directory")
    ns = p.parse_args(argv)
    app = make_example_app(ns.broker, ns.topic, ns.prefix, ns.app_id, ns.out)
    if ns.data_dir:
        app.conf.datadir = ns.data_dir
    import sys
    sys.argv = [sys.argv[0], "worker", "--without-web", "-l", "warn"]
    app.main()


if __name__ == "__main__":
    main()
