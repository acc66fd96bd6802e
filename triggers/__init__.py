"""Change-stream triggers (webhooks, functions) on top of the log.

Module map:

- ``delivery``     the seam with the sinks: ChangeRecord, Batch, Outcome, Sink
- ``images``       a key's value as JSON-ready data (NEW_IMAGE / OLD_IMAGE)
- ``changefeed``   the log's events in order, with before/after images (triggers and views)
- ``subscription`` Subscription: options, parsing, the event filter
- ``registry``     subscriptions stored as store metadata events (durable, replayed)
- ``dispatcher``   one Runner per subscription: batching, per-key order, retries, bisect
- ``checkpoint``, ``deadletter``, ``retry``  the runner's durable position, dead letters, backoff
- ``service``      TriggerService (all runners; in the server or ``fjord triggers run``)
- ``workgroup``    ``fjord triggers run --kafka-bootstrap``: workers sharing triggers as a Kafka consumer group
- ``sinks/``       webhook and function sinks
- ``control``, ``commands``, ``http``, ``cli``  management: FJORD.TRIGGER, HTTP admin, CLI
- ``viewhost``, ``viewcommands``, ``viewcli``  materialized views inside the server, FJORD.VIEW, ``fjord views``
- ``plugin``       how this package joins the ``fjord`` program (entry point ``fjord.plugins``)
"""


def attach(server):
    """Run the trigger service inside ``server``; returns it."""
    from .service import attach as _attach

    return _attach(server)
