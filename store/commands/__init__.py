"""Command handlers, one module per Redis command group.

Module map:

- ``table``      the command table (registry, arity, flags, keys, docs)
- ``args``       argument parsing with Redis's rules and error words
- ``strings``    GET, SET, INCR, APPEND, ... and the string event appliers
- ``keys``       DEL, EXPIRE, RENAME, SCAN, ... (generic key commands)
- ``connection`` PING, HELLO, AUTH, SELECT, CLIENT ..., QUIT, RESET
- ``admin``      INFO, CONFIG, DBSIZE, FLUSHDB/ALL, TIME, LASTSAVE, SHUTDOWN
- ``introspection`` COMMAND, COMMAND INFO/DOCS/COUNT/GETKEYS/LIST
- ``zsets``      ZADD, ZRANGE, ZPOPMIN, ZSCAN, ... (sorted sets)
- ``zsetalgebra`` ZUNION, ZINTER, ZDIFF, their STORE forms, ZINTERCARD
- ``hashes``     HSET, HGET, HINCRBYFLOAT, HRANDFIELD, HSCAN, ...
- ``sets``       SADD, SPOP, SINTER, SUNIONSTORE, SSCAN, ... (+ the scan helpers HSCAN uses)
- ``lists``      LPUSH, LPOP, LRANGE, LPOS, LMOVE, LMPOP, ... (+ pop helpers for the blocking family)
- ``misc``       SWAPDB, WAIT, MEMORY USAGE/STATS/DOCTOR/... (server commands of no data type)
- ``pubsub``     SUBSCRIBE, PSUBSCRIBE, PUBLISH, PUBSUB ... (registry and delivery: store/pubsub.py)
- ``transactions`` MULTI, EXEC, DISCARD, WATCH, UNWATCH (state in store/transactions.py)
- ``history``    FJORD.HISTORY (a key's recent events from the log; per-key offset index)
- ``blocking``   BLPOP, BRPOP, BLMOVE, BLMPOP, BZPOPMIN, BZMPOP, ... (wait lists in store/blocking.py)

Importing this package registers every command and applier.
"""

from . import (  # noqa: F401 - importing registers the commands and appliers
    admin,
    blocking,
    connection,
    hashes,
    history,
    introspection,
    keys,
    lists,
    misc,
    pubsub,
    sets,
    strings,
    transactions,
    zsetalgebra,
    zsets,
)
