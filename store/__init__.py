"""Fjord's Redis-compatible server, above the log (``streams``).

Module map:

- ``cli``        the ``fjord`` command line (the program's entry point)
- ``config``     settings: defaults, config file, environment, CONFIG GET/SET
- ``server``     sockets, request parsing, the write path (the only I/O here)
- ``session``    one client's state as handlers see it; ``emit`` and lookups
- ``keyspace``   databases, values, expiry times, and ``apply(event)``
- ``expiry``     active expiry and other periodic work
- ``resp``       RESP2/RESP3 reply encoding and inline-command splitting
- ``errors``     Redis's error replies, word for word
- ``glob``       Redis glob patterns (KEYS, SCAN MATCH, PSUBSCRIBE)
- ``cursors``    snapshot cursors for the SCAN family, random picks (RANDOMKEY)
- ``info``       the text of INFO, section by section, from server state
- ``commands/``  command handlers, one module per group, and the command table
"""
