"""Fjord's Redis-compatible server, above the log (``streams``).

Module map:

- ``cli``          the ``fjord`` command line (the program's entry point)
- ``config``       settings: defaults, config file, environment, CONFIG GET/SET
- ``server``       sockets and the write path (the only socket code here)
- ``request``      client bytes -> requests (hiredis fast path, Redis's grammar)
- ``resp``         RESP2/RESP3 reply encoding
- ``session``      one client's state as handlers see it; ``emit`` and lookups
- ``keyspace``     databases, values, expiry times, and ``apply(event)``
- ``expiry``       active expiry and other periodic work
- ``transactions`` MULTI/EXEC queues and WATCH tracking
- ``blocking``     clients blocked on keys (BLPOP...) or on time (WAIT)
- ``pubsub``       channel and pattern subscriptions, message delivery
- ``notify``       keyspace notifications generated from effect events
- ``info``         the text of INFO, section by section, from server state
- ``errors``       Redis's error replies, word for word
- ``glob``         Redis glob patterns (KEYS, SCAN MATCH, PSUBSCRIBE)
- ``cursors``      snapshot cursors for the SCAN family, random picks
- ``zset``         the sorted-set value (dict + SortedList) and its parsing
- ``xstream``      the stream value (entries, node layout) and stream appliers; ``xstream_groups``
                   consumer groups, PEL, lag rules
- ``longdouble``   INCRBYFLOAT/HINCRBYFLOAT arithmetic as x86-64 Redis does it
- ``lcs``          the LCS algorithm
- ``snapshotting`` keyspace <-> columnar msgpack sections (snapshot content)
- ``snapshotter``  ``fjord snapshot``: the child process that writes snapshots
- ``saving``       the server's side of snapshots: BGSAVE/SAVE, schedule, LASTSAVE
- ``loading``      start-up progress (INFO loading fields, progress bar)
- ``restore``      ``fjord restore``: point-in-time restore into a new data dir
- ``retention``    deleting log segments snapshots cover; consumer holds
- ``logcli``       ``fjord log tail/read/history``
- ``replication``  roles: the writer's replicas and WAIT, the replica's tail and link, failover
- ``fencing``      epoch claims; ``ConfirmingLog`` (a writer confirms its epoch on a shared log)
- ``sentinel``     SENTINEL answers from the newest claim (clients find the writer)
- ``commands/``    command handlers, one module per group, and the command table
"""
