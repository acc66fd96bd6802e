"""``FJORD.TRIGGER``: manage change-stream subscriptions over RESP.

::

    FJORD.TRIGGER CREATE name WEBHOOK url | FUNCTION module:function [option ...]
    FJORD.TRIGGER LIST
    FJORD.TRIGGER INFO name
    FJORD.TRIGGER PAUSE name | RESUME name | DELETE name
    FJORD.TRIGGER DLQ name [COUNT n]
    FJORD.TRIGGER REDRIVE name
    FJORD.TRIGGER HELP

CREATE's option words are parsed by ``Subscription.from_words`` (the same
parser the docs describe); the handlers here only map replies. A webhook
CREATE that must resolve a DNS name answers later (see ``trigger_create``). Definitions
are written through ``session.emit`` (durable, replayed), so the reply to a
CREATE is held until the definition is on the log, like any write's.

Replies follow ``XINFO``/``CONFIG GET``: a subscription is a map in RESP3
and a flat ``[field, value, ...]`` array in RESP2; nested values (match
patterns, backoff schedule) are arrays; secrets are never shown.

Importing this module registers the command and INFO's ``# Triggers``
section; ``fjord serve`` imports it (also with ``--triggers no``: the server
still owns the definitions when another process delivers).
"""

from __future__ import annotations

import asyncio
import logging

from store import errors
from store import info as _info
from store.commands.args import ArgCursor
from store.commands.table import container, subcommand
from store.resp import OK, Delayed, Raw, ReplyError, RespMap, encode_error
from store.session import Session

from . import control
from .control import ControlError

log = logging.getLogger("fjord.triggers")

_answering: set[asyncio.Task] = set()


def to_resp(value):
    """JSON-ready data as a reply: dicts become maps (flat arrays in RESP2),
    text becomes bulk strings, booleans 1/0 (as XINFO reports flags)."""
    if isinstance(value, dict):
        return RespMap([(str(k).encode(), to_resp(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return [to_resp(v) for v in value]
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    return value


def _name(arg: bytes) -> str:
    try:
        return arg.decode("utf-8")
    except UnicodeDecodeError:
        raise ReplyError("ERR trigger names are UTF-8 text") from None


def _run(fn, *args):
    try:
        return fn(*args)
    except ControlError as exc:
        raise ReplyError(exc.message) from None


TRIGGER = container("fjord.trigger", group="server", since="0.1.0",
                    summary="Manages change-stream triggers (webhooks, functions) fed by the log")


def _sub(name: str, arity: int, flags: str, summary: str, complexity: str = "O(1)"):
    return subcommand(TRIGGER, name, arity, flags, summary=summary, since="0.1.0", complexity=complexity)


@_sub("create", -5, "write denyoom noscript",
      "Creates a trigger: WEBHOOK url or FUNCTION module:function, then options")
def trigger_create(s: Session, args: list[bytes]):
    """A webhook whose host is a DNS name (without ALLOW-PRIVATE) must be
    resolved before it is accepted, and resolving blocks: the reply is
    ``Delayed`` while a worker thread resolves (other clients are served;
    this client's next commands wait, as behind WAIT), then the definition
    is written and made durable (``control.create_checked``) and the client
    gets OK or the SSRF error. Inside MULTI or a script a reply cannot wait,
    so such a CREATE is refused there (IP literals, ALLOW-PRIVATE and
    FUNCTION triggers need no lookup and are created at once, anywhere).
    If the client goes while the lookup runs, the trigger is still created."""
    sub = _run(control.from_words, args[2:], False)
    if not sub.needs_resolution():
        _run(control.create, s, sub)
        return OK
    if s.in_exec or s.multi is not None:
        raise ReplyError("ERR FJORD.TRIGGER CREATE of a webhook whose host is a DNS name cannot run inside "
                         "MULTI or a script (the name must be resolved first): run it on its own")
    return _later(s, "CREATE", control.create_checked(s.server, sub), lambda _: OK)


@_sub("list", 2, "readonly noscript", "Lists every trigger with its delivery statistics", "O(N)")
def trigger_list(s: Session, args: list[bytes]):
    return to_resp(_run(control.listing, s.server))


@_sub("info", 3, "readonly noscript", "Shows a trigger's definition (secret hidden) and statistics")
def trigger_info(s: Session, args: list[bytes]):
    return to_resp(_run(control.details, s.server, _name(args[2])))


@_sub("pause", 3, "write noscript", "Stops a trigger's deliveries; its position is kept")
def trigger_pause(s: Session, args: list[bytes]):
    _run(control.set_paused, s, _name(args[2]), True)
    return OK


@_sub("resume", 3, "write noscript", "Resumes a paused (or disabled) trigger where it stopped")
def trigger_resume(s: Session, args: list[bytes]):
    _run(control.set_paused, s, _name(args[2]), False)
    return OK


@_sub("delete", 3, "write noscript", "Deletes a trigger")
def trigger_delete(s: Session, args: list[bytes]):
    _run(control.delete, s, _name(args[2]))
    return OK


@_sub("dlq", -3, "readonly noscript", "Shows the oldest dead letters of a trigger", "O(N) where N is COUNT")
def trigger_dlq(s: Session, args: list[bytes]):
    name = _name(args[2])
    cur = ArgCursor(args, 3)
    count = control.DEFAULT_DLQ_COUNT
    while cur:
        if cur.next_upper() == b"COUNT":
            count = cur.next_int()
            if count <= 0:
                raise ReplyError(errors.OUT_OF_RANGE_POSITIVE)
        else:
            raise ReplyError(errors.SYNTAX)
    _run(control.find, s.server, name)
    return _later(s, "DLQ", control.dead_letters(s.server, name, count), to_resp)


@_sub("redrive", 3, "noscript", "Delivers a trigger's dead letters again; replies how many")
def trigger_redrive(s: Session, args: list[bytes]):
    name = _name(args[2])
    _run(control.find, s.server, name)
    return _later(s, "REDRIVE", control.redrive(s.server, name), int)


HELP_LINES = [
    "FJORD.TRIGGER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <name> WEBHOOK <url> | FUNCTION <module:function> [options]",
    "    Create a trigger. Options: MATCH <pattern> [<pattern> ...], DB <n>,",
    "    EVENTS <type|class>[,<type|class>...], VIEW KEYS_ONLY|NEW_IMAGE|OLD_IMAGE|NEW_AND_OLD_IMAGES,",
    "    START LATEST|TRIM_HORIZON|<offset>, BATCH <n>, WINDOW <ms>, RETRIES <n>,",
    "    SECRET whsec_..., ALLOW-PRIVATE (and the other options in the README).",
    "LIST",
    "    Every trigger with its state, lag and counters.",
    "INFO <name>",
    "    A trigger's definition (secret hidden) and delivery statistics.",
    "PAUSE <name> | RESUME <name>",
    "    Stop delivering (the position is kept) / deliver again from there.",
    "DELETE <name>",
    "    Delete the trigger (its dead letters stay on disk).",
    "DLQ <name> [COUNT <n>]",
    "    The oldest dead letters (default 10).",
    "REDRIVE <name>",
    "    Deliver the dead letters again; replies how many.",
    "HELP",
    "    Print this help.",
]


@_sub("help", 2, "loading stale", "Shows helpful text about the different subcommands", "O(1)")
def trigger_help(s: Session, args: list[bytes]):
    return list(HELP_LINES)


def _later(s: Session, what: str, coro, convert):
    """Answer once ``coro`` is done, without stalling the loop (as
    FJORD.HISTORY does): the reply is ``Delayed`` and sent by a task."""
    server = s.server
    conn = server.clients.get(s.id) if server is not None else None
    if conn is None or s.in_exec or s.multi is not None:
        coro.close()
        raise ReplyError(f"ERR FJORD.TRIGGER {what} cannot run inside MULTI or a script")
    delayed = Delayed([], None)

    async def answer() -> None:
        try:
            reply = convert(await coro)
        except ControlError as exc:
            reply = Raw(encode_error(exc.message))
        except Exception as exc:  # noqa: BLE001 - one failed request costs one reply
            log.warning("FJORD.TRIGGER %s failed: %s", what, exc)
            reply = Raw(encode_error(f"ERR {what} failed: {exc}"))
        if server.blocking.clients.get(conn) is delayed:
            conn.unblock(reply)

    task = asyncio.get_running_loop().create_task(answer())
    _answering.add(task)
    task.add_done_callback(_answering.discard)
    return delayed


# ------------------------------------------------------------------ INFO


def info_section(server) -> list[tuple[str, object]]:
    """INFO's ``# Triggers``: a count, where delivery runs, then one
    ``trigger<i>:name=<name>,field=value,...`` line per subscription, in
    name order (as Redis writes ``slave0:ip=...``: names may hold ``:``,
    which would break a ``trigger_<name>`` field); the last error's text is
    in FJORD.TRIGGER INFO."""
    entries = control.listing(server)
    fields: list[tuple[str, object]] = [
        ("triggers", len(entries)),
        ("trigger_dispatcher", "embedded" if control.service_of(server) is not None else "external"),
    ]
    for i, e in enumerate(entries):
        parts = [f"name={e['name']}", f"sink={e.get('sink', '')}", f"state={e.get('state', '')}"]
        for k in ("lag_events", "lag_seconds", "delivered", "retried", "failed", "dead_lettered",
                  "last_error_time"):
            v = e.get(k)
            if v is not None:
                parts.append(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}")
        fields.append((f"trigger{i}", ",".join(parts)))
    return fields


_info.add_section("triggers", info_section)
