"""The operations behind every trigger management surface.

``FJORD.TRIGGER`` (triggers/commands.py), the HTTP admin API
(triggers/http.py) and, through RESP, the ``fjord triggers`` CLI all call
these functions, so a subscription made one way is exactly one made another.

- Writes (create, delete, pause, resume) take a ``Session`` and change the
  registry only through its events (``session.emit``): they are durable and
  replayed like data. A RESP command is committed by its connection;
  ``durable_write`` does the same for callers without one (HTTP) and waits
  until the record is durable.
- Reads come from the trigger service when it runs in this process
  (definitions plus delivery statistics), else from the registry alone
  (state ``external``: ``fjord triggers run`` delivers in another process).
- Errors are ``ControlError``: a clean ``ERR ...`` message (the RESP error)
  and the HTTP status it maps to.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any, Callable

from store.resp import ReplyError
from store.session import Session

from . import registry
from .subscription import Subscription, TriggerError

if TYPE_CHECKING:
    from store.server import Server

DEFAULT_DLQ_COUNT = 10
#: how long an HTTP write waits for its record to be durable
DURABLE_TIMEOUT_SECONDS = 30.0


class ControlError(Exception):
    """A refused management operation: ``message`` starts with ``ERR``."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


def no_such(name: str) -> ControlError:
    return ControlError(f"ERR no such trigger '{name}'", 404)


# ------------------------------------------------------------------ lookups


def service_of(server: "Server | None"):
    """The trigger service running in this server, or None (``triggers no``)."""
    if server is None or not server.extensions:
        return None
    from .service import TriggerService

    for ext in server.extensions:
        if isinstance(ext, TriggerService):
            return ext
    return None


def find(server: "Server", name: str) -> Subscription:
    sub = registry.get(server.keyspace.meta, name)
    if sub is None:
        raise no_such(name)
    return sub


def listing(server: "Server") -> list[dict[str, Any]]:
    """Every subscription's public definition with its statistics, by name."""
    service = service_of(server)
    return [_details(service, sub) for sub in registry.all_subscriptions(server.keyspace.meta)]


def details(server: "Server", name: str) -> dict[str, Any]:
    """One subscription's public definition (secret hidden) and statistics."""
    return _details(service_of(server), find(server, name))


def _details(service, sub: Subscription) -> dict[str, Any]:
    name = sub.name
    # The definition comes from the registry, so a reply reads its own
    # writes; the service applies changes a moment later (it polls), so its
    # runner contributes only the statistics.
    info = dict(sub.public())
    stats = None
    if service is not None:
        try:
            stats = service.info(name)
        except KeyError:  # created a moment ago: the service starts its runner within 0.1 s
            stats = None
    if stats is None:
        info["state"] = "paused" if sub.paused else ("starting" if service is not None else "external")
    else:
        for k, v in stats.items():
            if k not in info:
                info[k] = v
        if sub.paused:
            info["state"] = "paused"
        elif info.get("state") == "paused":
            info["state"] = "resuming"
    if "secret" in info and info["secret"]:
        info["secret"] = "********"
    return info


# ------------------------------------------------------------------ writes


def from_words(words: list[bytes], resolve: bool = True) -> Subscription:
    """``CREATE name WEBHOOK url ...`` words (after CREATE) -> Subscription.
    On the event loop pass ``resolve=False`` and finish with ``create_checked``."""
    try:
        return Subscription.from_words(words, resolve)
    except TriggerError as exc:
        raise ControlError(_err(exc)) from None


def from_json(doc: dict, resolve: bool = True) -> Subscription:
    try:
        return Subscription.from_json(doc, resolve)
    except TriggerError as exc:
        raise ControlError(_err(exc)) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ControlError(f"ERR invalid trigger definition: {exc}") from None


def _err(exc: Exception) -> str:
    msg = str(exc)
    return msg if msg.startswith("ERR") else f"ERR {msg}"


def create(session: Session, sub: Subscription) -> None:
    try:
        registry.emit_create(session, sub)
    except TriggerError as exc:  # the name is taken
        raise ControlError(_err(exc), 409) from None


async def create_checked(server: "Server", sub: Subscription) -> None:
    """Create ``sub`` (parsed with ``resolve=False``) from the event loop:
    its webhook host is resolved and checked in a worker thread (a slow DNS
    server must not stall every client), then the definition is written
    with ``durable_write`` and this returns once it is durable. The name is
    checked before the lookup for a quick answer, and again when written."""
    if registry.get(server.keyspace.meta, sub.name) is not None:
        raise ControlError(f"ERR trigger '{sub.name}' already exists", 409)
    try:
        await sub.check_target()
    except TriggerError as exc:
        raise ControlError(_err(exc)) from None
    await durable_write(server, lambda s: create(s, sub))


def delete(session: Session, name: str) -> None:
    if not registry.emit_delete(session, name):
        raise no_such(name)


def set_paused(session: Session, name: str, paused: bool) -> None:
    if not registry.emit_set_paused(session, name, paused):
        raise no_such(name)


class _DurableWaiter:
    """Resolves a future when the committer says the record is durable."""

    def __init__(self, fut: asyncio.Future):
        self.fut = fut

    def on_durable(self, seq: int) -> None:
        if not self.fut.done():
            self.fut.set_result(None)

    def on_lost(self, seq: int, error: Exception) -> None:
        if not self.fut.done():
            self.fut.set_exception(ControlError(f"MISCONF the write did not reach the log: {error}", 503))


async def durable_write(server: "Server", write: Callable[[Session], Any]) -> Any:
    """Run ``write(session)`` on an internal session, with the checks a
    client's write gets (loading, failed log), commit its events as one
    record and return once that record is durable."""
    if server.loading or server.committer is None:
        raise ControlError("LOADING Fjord is loading the dataset in memory", 503)
    try:
        if server.write_error is not None:
            server.check_writable()
        if getattr(server, "is_replica", False):
            raise ControlError("READONLY You can't write against a read only replica.", 409)
        session = Session(server, server.keyspace, 0, "admin", "")
        result = write(session)
    except ReplyError as exc:
        raise ControlError(exc.message, 503 if exc.message.startswith(("MISCONF", "LOADING")) else 400) from None
    if session.events:
        server.commit(session)
        committer = server.committer
        fut = asyncio.get_running_loop().create_future()
        committer.wait(committer.staged, _DurableWaiter(fut))
        await asyncio.wait_for(fut, DURABLE_TIMEOUT_SECONDS)
    return result


# ------------------------------------------------------------------ dead letters


async def dead_letters(server: "Server", name: str, count: int) -> list[dict]:
    """The oldest ``count`` dead letters of a subscription."""
    find(server, name)
    service = service_of(server)
    if service is None:  # the dispatcher is another process: its dead letters are files in our dir
        from .checkpoint import triggers_dir
        from .deadletter import DeadLetters

        letters = DeadLetters(triggers_dir(server.config["dir"]), name)
        return await asyncio.to_thread(letters.read, count)
    return await _maybe_await(service.dlq(name, count))


async def redrive(server: "Server", name: str) -> int:
    """Deliver the dead letters again; returns how many were queued."""
    find(server, name)
    service = service_of(server)
    if service is None:
        raise ControlError("ERR the trigger dispatcher does not run in this server (triggers no): "
                           "redrive through the process that delivers", 409)
    try:
        return int(await _maybe_await(service.redrive(name)))
    except KeyError:  # defined a moment ago: have the service start its runner now
        pass
    reconcile = getattr(service, "reconcile", None)
    if reconcile is not None:
        await reconcile()
    try:
        return int(await _maybe_await(service.redrive(name)))
    except KeyError:
        raise ControlError(f"ERR trigger '{name}' is starting, try again", 409) from None


async def _maybe_await(value):
    return await value if inspect.isawaitable(value) else value
