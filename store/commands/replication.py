"""ROLE, REPLCONF and the SENTINEL subset (store/replication.py, store/sentinel.py).

WAIT lives in ``misc`` and asks ``server.replication`` how many replicas
acknowledged the client's writes.
"""

from __future__ import annotations

from .. import errors, sentinel
from ..resp import NULL_ARRAY, OK, Raw, ReplyError
from ..session import Session
from .args import parse_int
from .table import command, container, subcommand

NO_SUCH_MASTER = "ERR No such master with that name"


@command("role", 1, "noscript loading stale fast", group="server", since="2.8.12",
         summary="Return the role of the instance in the context of replication", complexity="O(1)")
def role(s: Session, args: list[bytes]):
    """``master offset [[ip port offset]...]`` or ``slave host port state offset``."""
    return s.server.replication.role()


@command("replconf", -1, "admin noscript loading stale allow_busy", group="server", since="3.0.0",
         summary="An internal command for configuring the replication stream", complexity="O(1)")
def replconf(s: Session, args: list[bytes]):
    """What a replica tells its writer: ``listening-port``, ``ip-address``,
    ``capa``; ``ACK <offset>`` (no reply) after it applied up to ``offset``."""
    if len(args) % 2 == 0:
        raise ReplyError(errors.SYNTAX)
    rep = s.server.replication
    ip = s.addr.rpartition(":")[0].strip("[]") or "127.0.0.1"
    reply = True
    for i in range(1, len(args), 2):
        option, value = args[i].lower(), args[i + 1]
        if option in (b"listening-port", b"ack"):
            reply = rep.replconf(s.id, ip, option, str(parse_int(value)).encode())
        elif option == b"ip-address":
            rep.replconf(s.id, ip, option, value)
        elif option in (b"capa", b"getack", b"rdb-only", b"rdb-filter-only"):
            pass
        else:
            raise ReplyError(f"ERR Unrecognized REPLCONF option: {args[i].decode('utf-8', 'replace')}")
    return OK if reply else Raw(b"")


SENTINEL = container("sentinel", group="sentinel", since="2.8.4", flags="admin noscript loading stale",
                     summary="Answers the Sentinel queries clients make to find the writer and its replicas")


def _known(s: Session, name: bytes) -> str:
    wanted = s.server.config["sentinel-master-name"]
    if name.decode("utf-8", "replace") != wanted:
        raise ReplyError(NO_SUCH_MASTER)
    return wanted


@subcommand(SENTINEL, "get-master-addr-by-name", 3, "admin noscript loading stale", since="2.8.4",
            summary="Returns the address of the writer, from the newest epoch claim on the log")
def sentinel_get_master_addr(s: Session, args: list[bytes]):
    if args[2].decode("utf-8", "replace") != s.server.config["sentinel-master-name"]:
        return NULL_ARRAY
    addr = sentinel.master_addr(s.server)
    if addr is None:
        return NULL_ARRAY
    return [addr[0].encode(), str(addr[1]).encode()]


@subcommand(SENTINEL, "masters", 2, "admin noscript loading stale", since="2.8.4",
            summary="Returns the state of the one master (the writer)")
def sentinel_masters(s: Session, args: list[bytes]):
    state = sentinel.master_state(s.server, s.server.config["sentinel-master-name"])
    return [state] if state is not None else []


@subcommand(SENTINEL, "master", 3, "admin noscript loading stale", since="2.8.4",
            summary="Returns the state of the master (the writer)")
def sentinel_master(s: Session, args: list[bytes]):
    state = sentinel.master_state(s.server, _known(s, args[2]))
    if state is None:
        raise ReplyError(NO_SUCH_MASTER)
    return state


@subcommand(SENTINEL, "replicas", 3, "admin noscript loading stale", since="5.0.0",
            summary="Returns the replicas this node knows of")
def sentinel_replicas(s: Session, args: list[bytes]):
    _known(s, args[2])
    return sentinel.replica_states(s.server)


@subcommand(SENTINEL, "slaves", 3, "admin noscript loading stale", since="2.8.0",
            summary="Returns the replicas this node knows of")
def sentinel_slaves(s: Session, args: list[bytes]):
    return sentinel_replicas(s, args)


@subcommand(SENTINEL, "sentinels", 3, "admin noscript loading stale", since="2.8.4",
            summary="Returns the other sentinels (none: every Fjord node answers for itself)")
def sentinel_sentinels(s: Session, args: list[bytes]):
    _known(s, args[2])
    return []


@subcommand(SENTINEL, "myid", 2, "admin noscript loading stale", since="6.2.0",
            summary="Returns this node's id")
def sentinel_myid(s: Session, args: list[bytes]):
    return s.server.replication.node_id.encode()
