"""Server commands: INFO, CONFIG, DBSIZE, FLUSHDB/FLUSHALL, TIME, LASTSAVE, SAVE, BGSAVE, SHUTDOWN.

Settings live in ``store.config`` (one table for the CLI, the config file,
the environment and CONFIG GET/SET); this module turns CONFIG requests into
calls on it and applies the changes that need more than a new value in the
table (durability switches the group committer's mode, maxclients raises the
open-file limit, loglevel the logger's level). Settings read on every use
(requirepass, hz, timeout, proto-max-bulk-len, ...) take effect at once.
The INFO text is built in ``store.info``.
"""

from __future__ import annotations

import logging
import resource
import time

from .. import errors
from ..config import LOG_LEVELS, ConfigError, UnknownSetting
from ..glob import glob_match
from ..info import info_text, reset_rates
from ..resp import OK, Delayed, Raw, ReplyError, RespMap, Verbatim
from ..session import Session
from .table import command, container, subcommand

log = logging.getLogger("fjord.admin")



# ------------------------------------------------------------------ keyspace


def _flush_mode(args: list[bytes]) -> None:
    if len(args) == 2 and args[1].upper() not in (b"ASYNC", b"SYNC"):
        raise ReplyError(errors.SYNTAX)
    if len(args) > 2:
        raise ReplyError(errors.SYNTAX)


@command("flushdb", -1, "write", group="server", summary="Removes all keys from the current database.")
def flushdb(s: Session, args: list[bytes]):
    _flush_mode(args)
    s.emit("flushdb", None)
    return OK


@command("flushall", -1, "write", group="server", summary="Removes all keys from all databases.")
def flushall(s: Session, args: list[bytes]):
    _flush_mode(args)
    s.emit("flushall", None, db=None)
    return OK


@command("dbsize", 1, "readonly fast", group="server", summary="Returns the number of keys in the database.")
def dbsize(s: Session, args: list[bytes]):
    # Like Redis, keys past their expiry that nobody touched yet still count.
    return len(s.db.data)


# ------------------------------------------------------------------ clock


@command("time", 1, "loading stale fast", group="server", summary="Returns the server time.", since="2.6.0")
def time_(s: Session, args: list[bytes]):
    us = time.time_ns() // 1000
    return [b"%d" % (us // 1_000_000), b"%d" % (us % 1_000_000)]


@command("lastsave", 1, "loading stale fast", group="server",
         summary="Returns the Unix timestamp of the last successful save to disk.")
def lastsave(s: Session, args: list[bytes]):
    return s.server.last_save_time


# ------------------------------------------------------------------ snapshots
#
# The serving process never snapshots: BGSAVE and SAVE start the snapshotter
# as a child process (store/saving.py), which replays the log from the newest
# snapshot and writes the next one.


@command("bgsave", -1, "admin noscript", group="server", summary="Asynchronously saves the database(s) to disk.")
def bgsave(s: Session, args: list[bytes]):
    schedule = False
    if len(args) == 2 and args[1].upper() == b"SCHEDULE":
        schedule = True
    elif len(args) > 1:
        raise ReplyError(errors.SYNTAX)
    saver = s.server.saver
    if not saver.enabled:
        raise ReplyError(errors.NO_SNAPSHOTS)
    if saver.in_progress:
        if schedule:
            saver.wait().add_done_callback(lambda _: saver.start())
            return "Background saving scheduled"
        raise ReplyError(errors.BGSAVE_IN_PROGRESS)
    saver.start()
    return "Background saving started"


@command("save", 1, "admin noscript no_multi", group="server",
         summary="Synchronously saves the database(s) to disk.")
def save(s: Session, args: list[bytes]):
    """Answers once the snapshotter child has written the snapshot; only
    this client waits (others are served meanwhile, unlike Redis)."""
    srv = s.server
    saver = srv.saver
    if not saver.enabled:
        raise ReplyError(errors.NO_SNAPSHOTS)
    if saver.in_progress:
        raise ReplyError(errors.BGSAVE_IN_PROGRESS)
    conn = srv.clients.get(s.id)
    saver.start()
    delayed = Delayed(OK, None)

    def done(fut) -> None:
        if conn is not None and srv.blocking.clients.get(conn) is delayed:
            conn.unblock(OK if fut.result() else ReplyError(errors.SAVE_FAILED))

    saver.wait().add_done_callback(done)
    return delayed


# ------------------------------------------------------------------ INFO


@command("info", -1, "loading stale", group="server",
         summary="Returns information and statistics about the server.")
def info(s: Session, args: list[bytes]):
    return Verbatim(info_text(s.server, args[1:]).encode())


# ------------------------------------------------------------------ SHUTDOWN

_SHUTDOWN_FLAGS = {b"NOSAVE", b"SAVE", b"NOW", b"FORCE", b"ABORT"}


@command("shutdown", -1, "admin noscript loading stale no_multi allow_busy", group="server",
         summary="Synchronously saves the database(s) to disk and shuts down the server.")
def shutdown(s: Session, args: list[bytes]):
    """Stop the server gracefully: whatever is staged is made durable, the
    log is closed, the process exits 0. Like Redis, no reply is sent: the
    connection just closes. Every flag is accepted; none changes anything,
    since the log is always durable (there is nothing to save)."""
    flags = {a.upper() for a in args[1:]}
    if not flags <= _SHUTDOWN_FLAGS or {b"NOSAVE", b"SAVE"} <= flags:
        raise ReplyError(errors.SYNTAX)
    if b"ABORT" in flags:
        if len(flags) > 1:
            raise ReplyError(errors.SYNTAX)
        raise ReplyError("ERR No shutdown in progress.")
    if s.server.busy is not None:  # a script runs past busy-reply-threshold: only NOSAVE stops it
        if b"NOSAVE" not in flags:
            raise ReplyError(s.server.busy)
        from ..scripting.runtime import engine_for
        engine_for(s.server).abort_for_shutdown()
    log.warning("User requested shutdown...")
    s.close_after_reply = True
    s.server.request_shutdown()
    return Raw(b"")


# ------------------------------------------------------------------ CONFIG

config = container("config", group="server", summary="A container for server configuration commands.",
                   since="2.0.0")

_HELP = [
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Rewrite the configuration file.",
    "HELP",
    "    Prints this help.",
]


@subcommand(config, "help", 2, "loading stale", summary="Returns helpful text about the different subcommands.",
            since="5.0.0")
def config_help(s: Session, args: list[bytes]):
    return _HELP


@subcommand(config, "get", -3, "admin noscript loading stale",
            summary="Returns the effective values of configuration parameters.", since="2.0.0")
def config_get(s: Session, args: list[bytes]):
    """Every setting matching any pattern (case-insensitive globs), each
    once. A pattern without glob characters names one setting, and the reply
    spells it as it was asked, as Redis does."""
    items = s.server.config.redis_items()
    values = dict(items)
    found: dict[str, tuple[bytes, bytes]] = {}
    for pattern in args[2:]:
        lower = pattern.lower()
        if not any(c in lower for c in b"*?[\\"):
            name = lower.decode("utf-8", "replace")
            if name in values and name not in found:
                found[name] = (pattern, values[name].encode())
            continue
        for name, value in items:
            if name not in found and glob_match(lower, name.encode()):
                found[name] = (name.encode(), value.encode())
    return RespMap(found.values())


@subcommand(config, "set", -4, "admin noscript loading stale",
            summary="Sets configuration parameters in-flight.", since="2.0.0")
def config_set(s: Session, args: list[bytes]):
    """Set one or more settings, all or nothing, and apply them live."""
    if len(args) % 2:
        raise ReplyError(errors.SYNTAX)
    pairs = [(args[i].decode("utf-8", "replace"), args[i + 1].decode("utf-8", "surrogateescape"))
             for i in range(2, len(args), 2)]
    cfg = s.server.config
    try:
        old = cfg.redis_set(pairs)
    except UnknownSetting as exc:
        raise ReplyError(f"ERR Unknown option or number of arguments for CONFIG SET - '{exc.args[0]}'") from None
    except ConfigError as exc:
        raise ReplyError(_set_failed(*exc.args)) from None
    try:
        _check_live(s.server, old)
    except ConfigError as exc:
        cfg.values.update(old)
        raise ReplyError(_set_failed(*exc.args)) from None
    _apply_live(s.server, old)
    return OK


def _set_failed(name: str, reason: str) -> str:
    return f"ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}"


def _check_live(server, old: dict) -> None:
    """Refuse new values the process cannot honour (before anything changes)."""
    if "maxclients" in old:
        want = server.config["maxclients"]
        fits = _clients_that_fit(want)
        if fits < want:
            raise ConfigError("maxclients", "The operating system is not able to handle the specified "
                                            f"number of clients, try with {fits}")


def _clients_that_fit(maxclients: int) -> int:
    """Raise the open-file limit for ``maxclients`` as far as allowed;
    return how many clients the limit then fits (32 descriptors spare)."""
    from ..server import raise_open_file_limit

    raise_open_file_limit(maxclients)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return maxclients if soft == resource.RLIM_INFINITY else min(maxclients, soft - 32)


def _apply_live(server, old: dict) -> None:
    cfg = server.config
    if "durability" in old and old["durability"] != cfg["durability"]:
        server.set_durability(cfg["durability"])
        log.warning("durability is now %s", cfg["durability"])
    if "loglevel" in old:
        logging.getLogger().setLevel(LOG_LEVELS[cfg["loglevel"]])
    if "notify-keyspace-events" in old:
        server.notifier.configure(cfg["notify-keyspace-events"])


@subcommand(config, "resetstat", 2, "admin noscript loading stale",
            summary="Resets the server's statistics.", since="2.0.0")
def config_resetstat(s: Session, args: list[bytes]):
    """Zero INFO's counters (the uptime and the log's own fsync figures stay)."""
    srv = s.server
    fresh = type(srv.stats)()
    fresh.start_time = srv.stats.start_time
    srv.stats = fresh
    committer = srv.committer
    if committer is not None:
        committer.batches = committer.records = committer.max_batch = 0
    reset_rates(srv)
    return OK


@subcommand(config, "rewrite", 2, "admin noscript loading stale",
            summary="Persists the effective configuration to file.", since="2.8.0")
def config_rewrite(s: Session, args: list[bytes]):
    try:
        s.server.config.rewrite()
    except ConfigError as exc:
        raise ReplyError(f"ERR {exc}") from None
    except OSError as exc:
        raise ReplyError(f"ERR Rewriting config file: {exc.strerror or exc}") from None
    log.warning("CONFIG REWRITE executed with success.")
    return OK

