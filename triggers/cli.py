"""``fjord triggers ...``: manage triggers of a running server from a shell.

Every subcommand but ``run`` sends one ``FJORD.TRIGGER`` command over RESP3
(so the server runs exactly the code a client's command runs) and prints
the answer: a table for ``list``, JSON for the rest (``--json`` for
``list`` too). ``run`` is the trigger dispatcher as its own process over a
data directory's log, for servers started with ``--triggers no``.

    fjord triggers list [-h HOST] [-p PORT] [-a PASSWORD] [--json]
    fjord triggers info NAME
    fjord triggers create NAME WEBHOOK URL | FUNCTION module:function [OPTION ...]
    fjord triggers pause|resume|delete|redrive NAME
    fjord triggers dlq NAME [-n COUNT]
    fjord triggers run --dir DATA_DIR

Exit status: 0 on success, 1 when the server answered an error (printed on
stderr as the server wrote it), 2 when it could not be reached.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

import hiredis
import orjson

#: subcommands that name one trigger and send it as FJORD.TRIGGER <WORD> NAME
_NAMED = ("info", "pause", "resume", "delete", "redrive")


class ServerError(Exception):
    """The server answered with an error reply."""


class RespConnection:
    """A minimal blocking RESP3 client (hiredis parses the replies)."""

    def __init__(self, host: str, port: int, password: str | None = None, timeout: float = 30.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.reader = hiredis.Reader(notEnoughData=None)
        hello = ["HELLO", "3"] + (["AUTH", "default", password] if password else [])
        self.call(*hello)

    def call(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(parts))
        while True:
            reply = self.reader.gets()
            if reply is not None:
                break
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.reader.feed(data)
        if isinstance(reply, hiredis.ReplyError):
            raise ServerError(str(reply))
        return reply

    def close(self) -> None:
        self.sock.close()


def plain(value):
    """A RESP3 reply as JSON-ready data: bytes become text (or ``{"b64"}``
    like the event codec when they are not UTF-8)."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            import base64
            return {"b64": base64.b64encode(value).decode()}
    return value


def add_parser(sub) -> None:
    p = sub.add_parser("triggers", help="manage change-stream triggers of a running server",
                       description="Manage the triggers (webhook and function subscriptions to the log) "
                                   "of a running Fjord server over RESP, or run the dispatcher as its "
                                   "own process ('run').")
    tsub = p.add_subparsers(dest="triggers_cmd", required=True)

    def connection(q):
        q.add_argument("--help", action="help", help="show this help and exit")
        q.add_argument("-h", "--host", default="127.0.0.1", help="server host (default: 127.0.0.1)")
        q.add_argument("-p", "--port", type=int, default=6379, help="server port (default: 6379)")
        q.add_argument("-a", "--password", default=None,
                       help="password (AUTH; default: $REDISCLI_AUTH, as redis-cli)")

    q = tsub.add_parser("list", help="every trigger, with state, lag and counters", add_help=False)
    connection(q)
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    for word, text in (("info", "a trigger's definition and statistics (JSON)"),
                       ("pause", "stop a trigger's deliveries (its position is kept)"),
                       ("resume", "deliver again from where it stopped"),
                       ("delete", "delete a trigger"),
                       ("redrive", "deliver the dead letters again")):
        q = tsub.add_parser(word, help=text, add_help=False)
        connection(q)
        q.add_argument("name")
    q = tsub.add_parser("dlq", help="show the oldest dead letters (JSON, one per line)", add_help=False)
    connection(q)
    q.add_argument("name")
    q.add_argument("-n", "--count", type=int, default=10, help="how many (default: 10)")
    q = tsub.add_parser("create", help="create a trigger (the words of FJORD.TRIGGER CREATE)", add_help=False,
                        description="fjord triggers create NAME WEBHOOK URL | FUNCTION module:function "
                                    "[MATCH pattern ...] [EVENTS types] [VIEW ...] [START ...] [BATCH n] "
                                    "[WINDOW ms] [RETRIES n] [SECRET whsec_...] [ALLOW-PRIVATE] ...")
    connection(q)
    q.add_argument("words", nargs=argparse.REMAINDER, help="NAME WEBHOOK URL [OPTION ...]")
    _add_run_parser(tsub)


def _add_run_parser(tsub) -> None:
    """The options of the engine's ``run_standalone`` (triggers/service.py),
    spelled here so the client subcommands start without importing the
    dispatcher and aiohttp."""
    q = tsub.add_parser("run", help="run the trigger dispatcher as its own process over a data directory",
                        description="Deliver triggers from a data directory's log in this process (start "
                                    "the server with --triggers no). Resumes from each trigger's checkpoint.")
    q.add_argument("--dir", "--data-dir", dest="dir", default="./data", metavar="PATH",
                   help="data directory of the server (default: ./data)")
    q.add_argument("--databases", type=int, default=16, help="number of databases (default: 16)")
    q.add_argument("--fjord-url", default=None,
                   help="redis://host:port of the server, for functions that write back")
    q.add_argument("--loglevel", default="notice", help="debug, verbose, notice or warning")
    q.add_argument("--admin-port", type=int, default=0, metavar="N",
                   help="serve this process's triggers, dead letters and /metrics over HTTP (default: 0 = off)")
    q.add_argument("--admin-bind", default="127.0.0.1", metavar="ADDR",
                   help="address of that admin API (default: 127.0.0.1)")
    q.add_argument("--admin-password", default="", metavar="PASSWORD",
                   help="require 'Authorization: Bearer PASSWORD' on the admin API")
    q.add_argument("--kafka-bootstrap", default="", metavar="HOST:PORT",
                   help="run as one worker of a consumer group over the log on this Kafka broker; workers "
                        "share the triggers and take over from each other (triggers/workgroup.py)")
    q.add_argument("--kafka-topic", default="", metavar="NAME", help="the log's topic (default: fjord.default.log)")


def run(ns: argparse.Namespace) -> int:
    """Run ``fjord triggers ...``; returns the exit status."""
    if ns.triggers_cmd == "run" and getattr(ns, "kafka_bootstrap", ""):
        from . import workgroup
        return workgroup.run(ns)
    if ns.triggers_cmd == "run":
        from . import service
        return service.run_standalone(ns)
    try:
        conn = RespConnection(ns.host, ns.port, ns.password or os.environ.get("REDISCLI_AUTH"))
    except ServerError as exc:  # NOAUTH, WRONGPASS: the server answered
        print(f"(error) {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"fjord triggers: cannot talk to {ns.host}:{ns.port}: {exc}", file=sys.stderr)
        return 2
    try:
        return _command(conn, ns)
    except ServerError as exc:
        print(f"(error) {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"fjord triggers: {exc}", file=sys.stderr)
        return 2
    finally:
        conn.close()


def _command(conn: RespConnection, ns: argparse.Namespace) -> int:
    cmd = ns.triggers_cmd
    out = sys.stdout
    if cmd == "list":
        entries = plain(conn.call("FJORD.TRIGGER", "LIST"))
        if ns.json:
            out.write(orjson.dumps(entries, option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            out.write(table(entries))
    elif cmd == "create":
        if len(ns.words) < 3:
            print("fjord triggers create: need NAME WEBHOOK URL or NAME FUNCTION module:function",
                  file=sys.stderr)
            return 2
        conn.call("FJORD.TRIGGER", "CREATE", *ns.words)
        out.write(f"created {ns.words[0]}\n")
    elif cmd == "dlq":
        for letter in plain(conn.call("FJORD.TRIGGER", "DLQ", ns.name, "COUNT", ns.count)):
            out.write(orjson.dumps(letter).decode() + "\n")
    elif cmd == "info":
        info = plain(conn.call("FJORD.TRIGGER", "INFO", ns.name))
        out.write(orjson.dumps(info, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif cmd == "redrive":
        n = conn.call("FJORD.TRIGGER", "REDRIVE", ns.name)
        out.write(f"redriven {n}\n")
    else:
        conn.call("FJORD.TRIGGER", cmd.upper(), ns.name)
        out.write({"pause": "paused", "resume": "resumed", "delete": "deleted"}[cmd] + f" {ns.name}\n")
    return 0


_COLUMNS = ("name", "sink", "state", "lag_events", "lag_seconds", "delivered", "retried", "failed",
            "dead_lettered", "target")


def table(entries: list[dict]) -> str:
    """A fixed-width table of the LIST answer (one line per trigger)."""
    if not entries:
        return "(no triggers)\n"
    rows = [list(_COLUMNS)]
    for e in entries:
        rows.append([_cell(e.get(c)) for c in _COLUMNS])
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n" for r in rows)


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)
