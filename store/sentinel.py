"""What a Sentinel would say, said by every Fjord node.

Fjord needs no separate Sentinel processes: the writer's address is in the
newest epoch claim on the log (store/fencing.py), which every node applies.
So every node answers the few ``SENTINEL`` subcommands Sentinel-aware
clients use (redis-py's ``Sentinel(...).master_for/slave_for``, Jedis's
``JedisSentinelPool``, ioredis's ``sentinels`` option): list all Fjord nodes
as the client's sentinels and it finds the writer after a failover.

The replies have the shape of Redis Sentinel 7.0's (maps in RESP3, flat
field/value lists in RESP2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import fencing
from .resp import RespMap

if TYPE_CHECKING:
    from .server import Server


def master_addr(srv: "Server") -> tuple[str, int] | None:
    return srv.replication.writer_addr()


def _fields(pairs: list[tuple[str, object]]) -> RespMap:
    """A map in RESP3, a flat field/value array in RESP2 (as Sentinel)."""
    return RespMap((k.encode(), v if isinstance(v, bytes) else str(v).encode()) for k, v in pairs)


def master_state(srv: "Server", name: str) -> RespMap | None:
    """``SENTINEL MASTER <name>``'s field list; None without a known writer."""
    addr = master_addr(srv)
    if addr is None:
        return None
    rep = srv.replication
    claim = fencing.current_claim(srv.keyspace)
    runid = srv.run_id if not srv.is_replica else (claim.node if claim else "")
    nreplicas = len(rep.live_replicas()) if not srv.is_replica else len(replica_states(srv))
    timeout = srv.config["failover-timeout-ms"]
    return _fields([
        ("name", name), ("ip", addr[0]), ("port", addr[1]), ("runid", runid), ("flags", "master"),
        ("link-pending-commands", 0), ("link-refcount", 1), ("last-ping-sent", 0),
        ("last-ok-ping-reply", 0), ("last-ping-reply", 0), ("down-after-milliseconds", timeout),
        ("info-refresh", 0), ("role-reported", "master"), ("role-reported-time", 0),
        ("config-epoch", claim.epoch if claim else 0), ("num-slaves", nreplicas),
        ("num-other-sentinels", 0), ("quorum", 1), ("failover-timeout", timeout), ("parallel-syncs", 1),
    ])


def replica_states(srv: "Server") -> list[RespMap]:
    """``SENTINEL REPLICAS <name>``: the replicas this node knows: the
    writer knows every replica linked to it, a replica knows itself."""
    rep = srv.replication
    addr = master_addr(srv) or ("", 0)
    if srv.is_replica:
        host, _, port = rep.own_addr().rpartition(":")
        known = [(host, int(port), rep.applied_offset, "ok" if rep.link_up else "err")]
    else:
        known = [(r.ip, r.port, r.offset, "ok") for r in rep.live_replicas()]
    return [
        _fields([
            ("name", f"{host}:{port}"), ("ip", host), ("port", port), ("runid", ""), ("flags", "slave"),
            ("link-pending-commands", 0), ("link-refcount", 1), ("last-ping-sent", 0),
            ("last-ok-ping-reply", 0), ("last-ping-reply", 0), ("down-after-milliseconds", 0),
            ("info-refresh", 0), ("role-reported", "slave"), ("role-reported-time", 0),
            ("master-link-down-time", 0), ("master-link-status", link), ("master-host", addr[0]),
            ("master-port", addr[1]), ("slave-priority", 100), ("slave-repl-offset", offset),
            ("replica-announced", 1),
        ])
        for host, port, offset, link in known
    ]
