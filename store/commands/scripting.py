"""Scripting (Redis's "scripting" group): EVAL, EVALSHA, EVAL_RO,
EVALSHA_RO, SCRIPT LOAD/EXISTS/FLUSH/KILL/HELP, FUNCTION LOAD/DELETE/FLUSH/
KILL/LIST/STATS/HELP, FCALL, FCALL_RO.

The interpreter and the rules are in store/scripting/. A script's
``redis.call``s run with the caller's session, so their events become the
one record the connection stages after the command (like EXEC): a script is
atomic on the log, and its effects, not its text, are what replay sees.
"""

from __future__ import annotations

import time

from .. import errors
from ..glob import glob_match
from ..resp import OK, ReplyError, RespMap, RespSet
from ..scripting import functions as fn_events
from ..scripting.runtime import engine_for, sha1hex
from ..session import Session
from .args import parse_int
from .table import command, container, subcommand

_EVAL_FLAGS = "noscript skip_monitor no_mandatory_keys stale movablekeys"
NOSCRIPT = "NOSCRIPT No matching script. Please use EVAL."
_SCRIPT_FLAGS = {b"no-writes", b"allow-oom", b"allow-stale", b"no-cluster", b"allow-cross-slot-keys"}


def _numkeys(args: list[bytes], bad: str = errors.NOT_INTEGER) -> int:
    a = args[2]
    if len(a) == 1 and a.isdigit():  # the common case, without the regex
        n = a[0] - 48
    else:
        n = parse_int(a, bad)
    if n > len(args) - 3:
        raise ReplyError("ERR Number of keys can't be greater than number of args")
    if n < 0:
        raise ReplyError("ERR Number of keys can't be negative")
    return n


def _shebang(body: bytes) -> tuple[bytes, bool | None]:
    """(code to compile, no-writes flag) of an EVAL body; the flag is None
    without a ``#!lua`` line (Redis's compatibility mode)."""
    if not body.startswith(b"#!"):
        return body, None
    nl = body.find(b"\n")
    first = body[2:] if nl < 0 else body[2:nl]
    parts = first.split()
    if not parts or parts[0] != b"lua":
        raise ReplyError(f"ERR Unexpected engine in script shebang: {(parts or [b''])[0].decode('utf-8', 'replace')}")
    no_writes = False
    for part in parts[1:]:
        if not part.startswith(b"flags="):
            raise ReplyError(f"ERR Unknown lua shebang option: {part.decode('utf-8', 'surrogateescape')}")
        for flag in part[6:].split(b","):
            if flag not in _SCRIPT_FLAGS:
                raise ReplyError(f"ERR Unexpected flag in script shebang: {flag.decode('utf-8', 'surrogateescape')}")
            no_writes = no_writes or flag == b"no-writes"
    return (b"" if nl < 0 else body[nl:]), no_writes


class _Script:
    """A cached script: its function, its shebang flag, and its name in
    error messages (the sha1), computed once for every EVALSHA."""

    __slots__ = ("fn", "no_writes", "name", "read_only")

    def __init__(self, fn, no_writes, name: str):
        self.fn = fn
        self.no_writes = no_writes
        self.name = name
        #: ``#!lua flags=no-writes``: read-only even under EVAL/EVALSHA
        self.read_only = no_writes is True


def _load(s: Session, body: bytes) -> tuple[bytes, _Script]:
    engine = engine_for(s.server)
    sha = sha1hex(body).encode()
    script = engine.scripts.get(sha)
    if script is None:
        code, no_writes = _shebang(body)
        script = _Script(engine.compile(code), no_writes, sha.decode())
        engine.scripts[sha] = script
    return sha, script


def _run(s: Session, script: _Script, args: list[bytes], readonly: bool):
    nkeys = _numkeys(args)
    if readonly and script.no_writes is False:
        raise ReplyError("ERR Can not execute a script with write flag using *_ro command.")
    engine = engine_for(s.server)
    return engine.run(s, script.fn, script.name, args[3:], nkeys, readonly or script.read_only)


@command("eval", -3, _EVAL_FLAGS, (0, 0, 0), group="scripting", since="2.6.0",
         summary="Execute a Lua script server side", complexity="Depends on the script that is executed.",
         numkeys=2)
def eval_(s: Session, args: list[bytes]):
    _sha, script = _load(s, args[1])
    return _run(s, script, args, False)


@command("eval_ro", -3, _EVAL_FLAGS + " readonly", (0, 0, 0), group="scripting", since="7.0.0",
         summary="Execute a read-only Lua script server side",
         complexity="Depends on the script that is executed.", numkeys=2)
def eval_ro(s: Session, args: list[bytes]):
    _sha, script = _load(s, args[1])
    return _run(s, script, args, True)


def _cached(s: Session, sha: bytes) -> _Script:
    scripts = engine_for(s.server).scripts
    script = scripts.get(sha)
    if script is None:
        script = scripts.get(sha.lower()) if len(sha) == 40 else None
        if script is None:
            raise ReplyError(NOSCRIPT)
    return script


def _evalsha_fast(s: Session, args: list[bytes]):
    """EVALSHA's hot path: the script cached under the sha as sent, one
    key count digit; anything else takes the general path (``_run``)."""
    server = s.server
    engine = server.__dict__.get("scripting") if server is not None else None
    if engine is not None:
        script = engine.scripts.get(args[1])
        n = args[2]
        if script is not None and len(n) == 1 and 48 <= n[0] <= 57 and n[0] - 48 <= len(args) - 3:
            return engine.run(s, script.fn, script.name, args[3:], n[0] - 48, script.read_only)
    return _run(s, _cached(s, args[1]), args, False)


@command("evalsha", -3, _EVAL_FLAGS, (0, 0, 0), group="scripting", since="2.6.0",
         summary="Execute a Lua script server side", complexity="Depends on the script that is executed.",
         numkeys=2)
def evalsha(s: Session, args: list[bytes]):
    return _evalsha_fast(s, args)


@command("evalsha_ro", -3, _EVAL_FLAGS + " readonly", (0, 0, 0), group="scripting", since="7.0.0",
         summary="Execute a read-only Lua script server side",
         complexity="Depends on the script that is executed.", numkeys=2)
def evalsha_ro(s: Session, args: list[bytes]):
    return _run(s, _cached(s, args[1]), args, True)


# ---------------------------------------------------------------- SCRIPT

script = container("script", group="scripting", since="2.6.0",
                   summary="A container for Lua scripts management commands")


@subcommand(script, "load", 3, "noscript stale",
            tips="request_policy:all_nodes response_policy:all_succeeded",
            since="2.6.0",
            summary="Load the specified Lua script into the script cache.",
            complexity="O(N) with N being the length in bytes of the script body.")
def script_load(s: Session, args: list[bytes]):
    sha, _script = _load(s, args[2])
    return sha


@subcommand(script, "exists", -3, "noscript",
            tips="request_policy:all_shards response_policy:agg_logical_and",
            since="2.6.0",
            summary="Check existence of scripts in the script cache.",
            complexity="O(N) with N being the number of scripts to check "
                       "(so checking a single script is an O(1) operation).")
def script_exists(s: Session, args: list[bytes]):
    scripts = engine_for(s.server).scripts
    return [1 if a.lower() in scripts else 0 for a in args[2:]]


@subcommand(script, "flush", -2, "noscript",
            tips="request_policy:all_nodes response_policy:all_succeeded",
            since="2.6.0", summary="Remove all the scripts from the script cache.",
            complexity="O(N) with N being the number of scripts in cache")
def script_flush(s: Session, args: list[bytes]):
    if len(args) > 3 or (len(args) == 3 and args[2].lower() not in (b"sync", b"async")):
        raise ReplyError("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
    engine_for(s.server).scripts.clear()
    return OK


@subcommand(script, "kill", 2, "noscript allow_busy",
            tips="request_policy:all_shards response_policy:one_succeeded",
            since="2.6.0",
            summary="Kill the script currently in execution.", complexity="O(1)")
def script_kill(s: Session, args: list[bytes]):
    engine_for(s.server).kill(functions=False)
    return OK


_SCRIPT_HELP = [
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
]


@subcommand(script, "help", 2, "loading stale", since="5.0.0",
            summary="Show helpful text about the different subcommands",
            complexity="O(1)")
def script_help(s: Session, args: list[bytes]):
    return list(_SCRIPT_HELP)


# ---------------------------------------------------------------- FUNCTION

function = container("function", group="scripting", since="7.0.0",
                     summary="A container for function commands")


def _functions(s: Session):
    engine = engine_for(s.server)
    engine.functions.sync(s.keyspace)
    return engine.functions


@subcommand(function, "load", -3, "write denyoom noscript",
            tips="request_policy:all_shards response_policy:all_succeeded",
            since="7.0.0",
            summary="Create a function with the given arguments (name, code, description)",
            complexity="O(1) (considering compilation time is redundant)")
def function_load(s: Session, args: list[bytes]):
    replace = False
    for a in args[2:-1]:
        if a.lower() != b"replace":
            raise ReplyError(f"ERR Unknown option given: {a.decode('utf-8', 'surrogateescape')}")
        replace = True
    fns = _functions(s)
    lib = fns.check_load(args[-1], replace)
    s.emit("function-load", None, {"library": lib.name, "code": lib.code}, db=0)
    fns.install(lib)
    return lib.name


@subcommand(function, "delete", 3, "write noscript",
            tips="request_policy:all_shards response_policy:all_succeeded",
            since="7.0.0", summary="Delete a function by name",
            complexity="O(1)")
def function_delete(s: Session, args: list[bytes]):
    fns = _functions(s)
    if args[2] not in fns.libraries:
        raise ReplyError("ERR Library not found")
    s.emit("function-delete", None, {"library": args[2]}, db=0)
    fns.remove(args[2])
    return OK


@subcommand(function, "flush", -2, "write noscript",
            tips="request_policy:all_shards response_policy:all_succeeded",
            since="7.0.0", summary="Deleting all functions",
            complexity="O(N) where N is the number of functions deleted")
def function_flush(s: Session, args: list[bytes]):
    if len(args) > 3 or (len(args) == 3 and args[2].lower() not in (b"sync", b"async")):
        raise ReplyError("ERR FUNCTION FLUSH only supports SYNC|ASYNC option")
    fns = _functions(s)
    s.emit("function-flush", None, {}, db=0)
    fns.remove(None)
    return OK


@subcommand(function, "kill", 2, "noscript allow_busy",
            tips="request_policy:all_shards response_policy:one_succeeded",
            since="7.0.0",
            summary="Kill the function currently in execution.", complexity="O(1)")
def function_kill(s: Session, args: list[bytes]):
    engine_for(s.server).kill(functions=True)
    return OK


@subcommand(function, "list", -2, "noscript",
            tips="nondeterministic_output_order",
            since="7.0.0", summary="List information about all the functions",
            complexity="O(N) where N is the number of functions")
def function_list(s: Session, args: list[bytes]):
    pattern, with_code = None, False
    i = 2
    while i < len(args):
        a = args[i].lower()
        if a == b"withcode" and not with_code:
            with_code = True
        elif a == b"libraryname" and pattern is None:
            if i + 1 >= len(args):
                raise ReplyError("ERR library name argument was not given")
            i += 1
            pattern = args[i]
        else:
            raise ReplyError(f"ERR Unknown argument {args[i].decode('utf-8', 'surrogateescape')}")
        i += 1
    out = []
    for lib in _functions(s).libraries.values():
        if pattern is not None and not glob_match(pattern, lib.name):
            continue
        funcs = [RespMap([(b"name", f.name), (b"description", f.description),
                          (b"flags", RespSet([x.decode() for x in f.flags]))])
                 for f in lib.functions.values()]
        entry = [(b"library_name", lib.name), (b"engine", b"LUA"), (b"functions", funcs)]
        if with_code:
            entry.append((b"library_code", lib.code))
        out.append(RespMap(entry))
    return out


@subcommand(function, "stats", 2, "noscript allow_busy",
            tips="nondeterministic_output request_policy:all_shards response_policy:special",
            since="7.0.0",
            summary="Return information about the function currently running (name, description, duration)",
            complexity="O(1)")
def function_stats(s: Session, args: list[bytes]):
    engine = engine_for(s.server)
    fns = _functions(s)
    run = engine.running
    running = None
    if run is not None and run.is_function:
        running = RespMap([(b"name", run.name.encode()), (b"command", list(run.argv)),
                           (b"duration_ms", int((time.monotonic() - run.started) * 1000))])
    return RespMap([
        (b"running_script", running),
        (b"engines", RespMap([(b"LUA", RespMap([(b"libraries_count", len(fns.libraries)),
                                                 (b"functions_count", len(fns.by_name))]))])),
    ])


_FUNCTION_HELP = [
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE "
    "command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
]


@subcommand(function, "help", 2, "loading stale", since="7.0.0",
            summary="Show helpful text about the different subcommands", complexity="O(1)")
def function_help(s: Session, args: list[bytes]):
    return list(_FUNCTION_HELP)


# ---------------------------------------------------------------- FCALL


def _fcall(s: Session, args: list[bytes], readonly: bool):
    fns = _functions(s)
    f = fns.by_name.get(args[1])
    if f is None:
        raise ReplyError("ERR Function not found")
    nkeys = _numkeys(args, "ERR Bad number of keys provided")
    no_writes = b"no-writes" in f.flags
    if readonly and not no_writes:
        raise ReplyError("ERR Can not execute a script with write flag using *_ro command.")
    return engine_for(s.server).run(s, f.fn, f.name.decode("utf-8", "surrogateescape"), args[3:], nkeys,
                                    readonly or no_writes, is_function=True, argv=args)


@command("fcall", -3, _EVAL_FLAGS, (0, 0, 0), group="scripting", since="7.0.0",
         summary="Invoke a function", complexity="Depends on the function that is executed.", numkeys=2)
def fcall(s: Session, args: list[bytes]):
    return _fcall(s, args, False)


@command("fcall_ro", -3, _EVAL_FLAGS + " readonly", (0, 0, 0), group="scripting", since="7.0.0",
         summary="Invoke a read-only function", complexity="Depends on the function that is executed.",
         numkeys=2)
def fcall_ro(s: Session, args: list[bytes]):
    return _fcall(s, args, True)


fn_events  # noqa: B018 - imported for its appliers (function-load, -delete, -flush)
