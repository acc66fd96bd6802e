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
- ``origin``     FJORD.ORIGIN (tag this client's records; triggers skip records of their own origin)
- ``offset``     FJORD.OFFSET (log offset of this client's last write; read-your-writes for views)
- ``replication`` ROLE, REPLCONF, SENTINEL (roles and failover: store/replication.py)
- ``scripting``  EVAL, EVALSHA(_RO), SCRIPT ..., FUNCTION ..., FCALL(_RO) (engine: store/scripting/)
- ``blocking``   BLPOP, BRPOP, BLMOVE, BLMPOP, BZPOPMIN, BZMPOP, ... (wait lists in store/blocking.py)
- ``xstreams``   XADD, XRANGE, XREAD, XTRIM, XINFO, ... (streams; value in store/xstream.py)
- ``xgroups``    XGROUP, XREADGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM (imported by xstreams)

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
    offset,
    origin,
    pubsub,
    replication,
    scripting,  # EVAL, EVALSHA, SCRIPT, FUNCTION, FCALL (engine: store/scripting/)
    sets,
    strings,
    transactions,
    xstreams,
    zsetalgebra,
    zsets,
)
