"""Fjord's bottom layer: the event log and what rebuilds state from it.

Module map:

- ``events``       the effect event and record types, and their JSON codec
- ``log``          the ``Log`` interface and its errors
- ``segment``      record framing inside a log segment (bytes only, no I/O)
- ``filelog``      ``FileLog``, the embedded segmented, checksummed file log
- ``memlog``       ``MemoryLog``, an in-memory log for tests and tools
- ``kafkalog``     ``KafkaLog``, the log on a Kafka topic partition (aiokafka)
- ``kafkaclients`` the aiokafka producer, consumers and topic creation it uses
- ``tailcache``    ``TailCache``: a writer's latest acknowledged records in memory
- ``logid``        a log's identity (``file:<uuid>``, ``kafka:<cluster>/<topic>``), binding snapshots to it
- ``commit``       ``GroupCommitter``: one append + fsync per event-loop pass
- ``materializer`` ``Materializer``: replay records into anything with ``apply``

Nothing here knows about RESP, sockets or sinks.
"""
