"""Connection commands (Redis's "connection" group): PING, ECHO, HELLO, AUTH,
SELECT, QUIT, RESET and CLIENT ...

These change only the calling client's session (protocol, database, name,
authentication), never the keyspace, so they emit no events. Fjord has one
user, ``default``, whose password is ``requirepass`` (none: any password
works for it, as with Redis's ``nopass``).
"""

from __future__ import annotations

import hmac
import time

from .. import errors, transactions
from ..resp import OK, PONG, Raw, ReplyError, RespMap, Verbatim
from ..session import Session
from .args import parse_int
from .table import command, container, subcommand

RESET = Raw(b"+RESET\r\n")
_INT_MAX = 2**31 - 1


# ------------------------------------------------------------------ auth


def _password_ok(s: Session, user: bytes, password: bytes) -> bool:
    """Check a user/password pair against the only user, ``default``."""
    if user != b"default":
        return False
    required = s.server.config["requirepass"] if s.server is not None else ""
    if not required:
        return True  # like Redis's "nopass" default user
    return hmac.compare_digest(password, required.encode())


def _authenticate(s: Session, user: bytes, password: bytes) -> None:
    if not _password_ok(s, user, password):
        raise ReplyError(errors.WRONGPASS)
    s.authenticated = True


def _password_required(s: Session) -> bool:
    return bool(s.server is not None and s.server.config["requirepass"])


# ------------------------------------------------------------------ commands


@command("ping", -1, "fast", group="connection", summary="Ping the server", complexity="O(1)",
         tips="request_policy:all_shards response_policy:all_succeeded")
def ping(s: Session, args: list[bytes]):
    if len(args) > 2:
        raise ReplyError(errors.wrong_arity("ping"))
    if s.pubsub is not None and not s.resp3:  # a RESP2 subscriber gets it as a message-shaped array
        return [b"pong", args[1] if len(args) == 2 else b""]
    return PONG if len(args) == 1 else args[1]


@command("echo", 2, "loading stale fast", group="connection", summary="Echo the given string",
         complexity="O(1)")
def echo(s: Session, args: list[bytes]):
    return args[1]


@command("hello", -1, "noscript loading stale fast no_auth allow_busy", group="connection", since="6.0.0",
         summary="Handshake with Redis", complexity="O(1)")
def hello(s: Session, args: list[bytes]):
    version = None
    if len(args) >= 2:
        version = parse_int(args[1], "ERR Protocol version is not an integer or out of range")
        if version not in (2, 3):
            raise ReplyError(errors.NOPROTO)
    user = password = name = None
    i = 2
    while i < len(args):
        opt = args[i].upper()
        more = len(args) - 1 - i
        if opt == b"AUTH" and more >= 2:
            user, password = args[i + 1], args[i + 2]
            i += 3
        elif opt == b"SETNAME" and more >= 1:
            name = args[i + 1]
            i += 2
        else:
            raise ReplyError(f"ERR Syntax error in HELLO option '{args[i].decode('utf-8', 'replace')}'")
    if user is not None:
        _authenticate(s, user, password)
    if not s.authenticated:
        raise ReplyError(errors.HELLO_NOAUTH)
    if name is not None:
        _check_name(name)
        s.name = name
    if version is not None:
        s.resp3 = version == 3
    from ..server import REDIS_VERSION
    return RespMap([
        (b"server", b"redis"),
        (b"version", REDIS_VERSION.encode()),
        (b"proto", 3 if s.resp3 else 2),
        (b"id", s.id),
        (b"mode", b"standalone"),
        (b"role", b"replica" if s.server is not None and s.server.is_replica else b"master"),
        (b"modules", []),
    ])


@command("auth", -2, "noscript loading stale fast no_auth allow_busy", group="connection",
         summary="Authenticate to the server",
         complexity="O(N) where N is the number of passwords defined for the user")
def auth(s: Session, args: list[bytes]):
    if len(args) > 3:
        raise ReplyError(errors.SYNTAX)
    if len(args) == 2:
        if not _password_required(s):
            raise ReplyError(errors.AUTH_NO_PASSWORD)
        _authenticate(s, b"default", args[1])
    else:
        _authenticate(s, args[1], args[2])
    return OK


@command("select", 2, "loading stale fast", group="connection",
         summary="Change the selected database for the current connection", complexity="O(1)")
def select(s: Session, args: list[bytes]):
    index = parse_int(args[1])
    if not -_INT_MAX - 1 <= index <= _INT_MAX:  # Redis reads it as a C int
        raise ReplyError(errors.out_of_range_between(-_INT_MAX - 1, _INT_MAX))
    s.select(index)
    return OK


@command("quit", -1, "noscript loading stale fast no_auth allow_busy", group="connection",
         summary="Close the connection", complexity="O(1)")
def quit_(s: Session, args: list[bytes]):
    s.close_after_reply = True
    return OK


@command("reset", 1, "noscript loading stale fast no_auth allow_busy", group="connection", since="6.2.0",
         summary="Reset the connection", complexity="O(1)")
def reset(s: Session, args: list[bytes]):
    """Back to a fresh connection's state: database 0, RESP2, no name, and
    unauthenticated if a password is set."""
    transactions.discard(s)
    s.select(0)
    if s.pubsub is not None and s.server is not None:
        s.server.pubsub.drop(s)
    s.resp3 = False
    s.name = b""
    s.origin = None
    s.authenticated = not _password_required(s)
    return RESET


# ------------------------------------------------------------------ CLIENT

client = container("client", group="connection", since="2.4.0",
                   summary="A container for client connection commands")

_CLIENT_TYPES = {b"normal": "normal", b"slave": "replica", b"replica": "replica", b"master": "master",
                 b"pubsub": "pubsub"}


def _check_name(name: bytes) -> None:
    """Names must split cleanly out of CLIENT LIST: printable ASCII, no space."""
    if any(c < 0x21 or c > 0x7E for c in name):
        raise ReplyError(errors.BAD_CLIENT_NAME)


def _client_type(s: Session) -> str:
    return "pubsub" if "P" in s.flags else "normal"


def _type_arg(name: bytes) -> str:
    t = _CLIENT_TYPES.get(name.lower())
    if t is None:
        raise ReplyError(f"ERR Unknown client type '{name.decode('utf-8', 'replace')}'")
    return t


def client_info_line(conn, now: float, argv_mem: int = 0) -> str:
    """One CLIENT LIST line, Redis 7.2's fields in Redis's order. Figures
    Fjord has no equivalent for (buffer sizes, memory) are plausible
    constants; ``oll``/``omem`` count replies held until durable."""
    s = conn.session
    qbuf = conn.requests.buffered() if conn.requests is not None else 0
    held = conn.held
    omem = sum(len(h[1]) for h in held)
    sock = conn.transport.get_extra_info("socket") if conn.transport is not None else None
    fd = sock.fileno() if sock is not None else -1
    qbuf_free = max(0, 20474 - qbuf)
    fields = (
        ("id", s.id), ("addr", s.addr), ("laddr", s.laddr), ("fd", fd), ("name", _text(s.name)),
        ("age", int(now - s.created)), ("idle", int(now - s.last_active)), ("flags", transactions.client_flags(s)),
        ("db", s.db_index), *_subscription_counts(s), ("multi", transactions.queued_count(s)),
        ("qbuf", qbuf), ("qbuf-free", qbuf_free), ("argv-mem", argv_mem), ("multi-mem", 0),
        ("rbs", 16384), ("rbp", 16384), ("obl", 0), ("oll", len(held)), ("omem", omem),
        ("tot-mem", 16384 + qbuf + qbuf_free + argv_mem + omem + 1024), ("events", "r"),
        ("cmd", s.last_cmd), ("user", "default"), ("redir", -1), ("resp", 3 if s.resp3 else 2),
        ("lib-name", _text(s.lib_name)), ("lib-ver", _text(s.lib_ver)),
    )
    return " ".join(f"{k}={v}" for k, v in fields)


def _subscription_counts(s: Session) -> tuple:
    subs = s.pubsub
    if subs is None:
        return ("sub", 0), ("psub", 0), ("ssub", 0)
    return ("sub", len(subs.channels)), ("psub", len(subs.patterns)), ("ssub", len(subs.shard_channels))


def _text(b: bytes) -> str:
    return b.decode("latin-1")


def _connections(s: Session):
    return s.server.clients.values() if s.server is not None else ()


def _argv_mem(args: list[bytes]) -> int:
    return sum(len(a) for a in args)


@subcommand(client, "id", 2, "noscript loading stale", summary="Returns the client ID for the current connection",
            since="5.0.0", complexity="O(1)")
def client_id(s: Session, args: list[bytes]):
    return s.id


@subcommand(client, "setname", 3, "noscript loading stale", summary="Set the current connection name",
            since="2.6.9", complexity="O(1)")
def client_setname(s: Session, args: list[bytes]):
    _check_name(args[2])
    s.name = args[2]
    return OK


@subcommand(client, "getname", 2, "noscript loading stale", summary="Get the current connection name",
            since="2.6.9", complexity="O(1)")
def client_getname(s: Session, args: list[bytes]):
    return s.name or None


@subcommand(client, "setinfo", 4, "noscript loading stale", since="7.2.0", complexity="O(1)",
            summary="Sets information specific to the client or connection.")
def client_setinfo(s: Session, args: list[bytes]):
    attr = args[2].lower()
    if attr not in (b"lib-name", b"lib-ver"):
        raise ReplyError(f"ERR Unrecognized option '{args[2].decode('utf-8', 'replace')}'")
    if any(c < 0x21 or c > 0x7E for c in args[3]):
        raise ReplyError(f"ERR {args[2].decode('utf-8', 'replace')} cannot contain spaces, newlines or "
                         f"special characters.")
    if attr == b"lib-name":
        s.lib_name = args[3]
    else:
        s.lib_ver = args[3]
    return OK


@subcommand(client, "info", 2, "noscript loading stale", since="6.2.0", complexity="O(1)",
            summary="Returns information about the current client connection.", tips="nondeterministic_output")
def client_info(s: Session, args: list[bytes]):
    conn = s.server.clients.get(s.id) if s.server is not None else None
    if conn is None:
        return Verbatim(b"")
    return Verbatim((client_info_line(conn, time.time(), _argv_mem(args)) + "\n").encode("latin-1"))


@subcommand(client, "list", -2, "admin noscript loading stale", since="2.4.0",
            complexity="O(N) where N is the number of client connections",
            summary="Get the list of client connections", tips="nondeterministic_output")
def client_list(s: Session, args: list[bytes]):
    wanted_type = None
    ids = None
    if len(args) == 4 and args[2].lower() == b"type":
        wanted_type = _type_arg(args[3])
    elif len(args) > 3 and args[2].lower() == b"id":
        ids = [parse_int(a, "ERR Invalid client ID") for a in args[3:]]
    elif len(args) != 2:
        raise ReplyError(errors.SYNTAX)
    now = time.time()
    if ids is not None:
        clients = s.server.clients
        conns = [clients[i] for i in ids if i in clients]
    else:
        conns = [c for c in _connections(s) if wanted_type is None or _client_type(c.session) == wanted_type]
    lines = []
    for conn in conns:
        if conn.session is None:
            continue
        mem = _argv_mem(args) if conn.session is s else 0
        lines.append(client_info_line(conn, now, mem) + "\n")
    return Verbatim("".join(lines).encode("latin-1"))


@subcommand(client, "kill", -3, "admin noscript loading stale", since="2.4.0",
            complexity="O(N) where N is the number of client connections",
            summary="Kill the connection of a client")
def client_kill(s: Session, args: list[bytes]):
    """CLIENT KILL addr (old form: OK or an error) or CLIENT KILL <filter>
    <value> ... (new form: the number of clients killed). Only the old form,
    or SKIPME no, lets a client kill itself; it is closed after the reply."""
    addr = laddr = wanted_type = None
    client_id = 0
    max_age = 0
    skipme = True
    if len(args) == 3:
        addr = args[2]
        skipme = False
    else:
        i = 2
        while i < len(args):
            opt = args[i].lower()
            if i + 1 >= len(args):
                raise ReplyError(errors.SYNTAX)
            val = args[i + 1]
            if opt == b"id":
                try:
                    client_id = parse_int(val)
                except ReplyError:
                    client_id = 0
                if client_id <= 0:
                    raise ReplyError("ERR client-id should be greater than 0")
            elif opt == b"type":
                wanted_type = _type_arg(val)
            elif opt == b"addr":
                addr = val
            elif opt == b"laddr":
                laddr = val
            elif opt == b"user":
                if val != b"default":
                    raise ReplyError(f"ERR No such user '{val.decode('utf-8', 'replace')}'")
            elif opt == b"skipme":
                if val.lower() == b"yes":
                    skipme = True
                elif val.lower() == b"no":
                    skipme = False
                else:
                    raise ReplyError(errors.SYNTAX)
            elif opt == b"maxage":
                max_age = parse_int(val)
            else:
                raise ReplyError(errors.SYNTAX)
            i += 2
    now = time.time()
    killed = 0
    for conn in list(_connections(s)):
        other = conn.session
        if other is None or conn.closed:
            continue
        if addr is not None and other.addr.encode() != addr:
            continue
        if laddr is not None and other.laddr.encode() != laddr:
            continue
        if wanted_type is not None and _client_type(other) != wanted_type:
            continue
        if client_id and other.id != client_id:
            continue
        if max_age and now - other.created <= max_age:
            continue
        if other is s:
            if skipme:
                continue
            s.close_after_reply = True
        else:
            other.killed = True
            conn.close()
        killed += 1
    if len(args) == 3:
        if not killed:
            raise ReplyError("ERR No such client")
        return OK
    return killed


@subcommand(client, "unblock", -3, "admin noscript loading stale", since="5.0.0",
            complexity="O(log N) where N is the number of client connections",
            summary="Unblock a client blocked in a blocking command from a different connection")
def client_unblock(s: Session, args: list[bytes]):
    """1 if the client was blocked (BLPOP..., WAIT) and now answers as if
    timed out, or with -UNBLOCKED for ERROR; else 0 (store/blocking.py)."""
    if len(args) > 4:
        raise ReplyError(f"ERR unknown subcommand or wrong number of arguments for "
                         f"'{args[1].decode('utf-8', 'surrogateescape')}'. Try CLIENT HELP.")
    error = False
    if len(args) == 4:
        reason = args[3].lower()
        if reason == b"error":
            error = True
        elif reason != b"timeout":
            raise ReplyError(errors.UNBLOCK_REASON)
    conn = s.server.clients.get(parse_int(args[2])) if s.server is not None else None
    return int(conn is not None and s.server.blocking.unblock(conn, error))


@subcommand(client, "no-evict", 3, "admin noscript loading stale", since="7.0.0", complexity="O(1)",
            summary="Set client eviction mode for the current connection")
def client_no_evict(s: Session, args: list[bytes]):
    """Accepted for compatibility: Fjord evicts no clients."""
    if args[2].lower() not in (b"on", b"off"):
        raise ReplyError(errors.SYNTAX)
    return OK


_CLIENT_HELP = [
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "    * ID <client-id>",
    "      Kill connections by client id.",
    "    * MAXAGE <maxage>",
    "      Kill connections older than the specified age.",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "    * ID <client-id> [<client-id> ...]",
    "      Return clients with the given ids.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are:",
    "    * LIB-NAME: the client lib name.",
    "    * LIB-VER: the client lib version.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "HELP",
    "    Prints this help.",
]


@subcommand(client, "help", 2, "loading stale", since="5.0.0", complexity="O(1)",
            summary="Show helpful text about the different subcommands")
def client_help(s: Session, args: list[bytes]):
    return list(_CLIENT_HELP)

