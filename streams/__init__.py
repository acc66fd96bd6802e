"""Fjord's bottom layer: the event log and what rebuilds state from it.

Module map:

- ``events``       the effect event and record types, and their JSON codec
- ``log``          the ``Log`` interface and its errors
- ``segment``      record framing inside a log segment (bytes only, no I/O)
- ``filelog``      ``FileLog``, the embedded segmented, checksummed file log
- ``memlog``       ``MemoryLog``, an in-memory log for tests and tools
- ``commit``       ``GroupCommitter``: one append + fsync per event-loop pass
- ``materializer`` ``Materializer``: replay records into anything with ``apply``

Nothing here knows about RESP, sockets or sinks.
"""
