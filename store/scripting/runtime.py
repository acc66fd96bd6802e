"""``ScriptEngine``: one Lua 5.1 interpreter per server, and running a
script or function in it against a client's session.

A script runs synchronously inside its command's handler. Each
``redis.call`` goes through the command table with the caller's session,
so the events the calls emit pile up in ``session.events`` and the
connection stages them as ONE log record when EVAL returns, exactly as
for EXEC: replay applies the script's effects whole and never runs Lua.
An error half-way keeps the writes before it (Redis's semantics): they are
in ``session.events`` already.

Long scripts: a count hook calls back every ``HOOK_EVERY`` Lua
instructions. Past ``busy-reply-threshold`` ms the server is marked busy
(other clients, those connecting meanwhile included, get -BUSY, see
store/scripting/busy.py, which serves them from inside the hook), SCRIPT
KILL / FUNCTION KILL can stop a script that has not written yet, and
SHUTDOWN NOSAVE stops any script, dropping its unlogged effects.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import TYPE_CHECKING, NoReturn

import lupa.lua51 as lua51

from .. import errors
from ..resp import Raw, ReplyError
from . import busy
from .convert import ARGS_MUST_BE, ReplyToLua, arg_bytes
from .libs import LibError, Libs
from .prelude import PRELUDE

if TYPE_CHECKING:
    from ..session import Session

log = logging.getLogger("fjord.scripting")

#: Lua instructions between two calls of the time-limit hook
HOOK_EVERY = 100_000
#: seconds library code may run at FUNCTION LOAD
LOAD_TIMEOUT = 0.5
REDIS_VERSION = "7.0.15"
REDIS_VERSION_NUM = 0x07000F

UNKNOWN_COMMAND = "ERR Unknown Redis command called from script"
WRONG_ARITY = "ERR Wrong number of args calling Redis command from script"
NO_ARGS = "ERR Please specify at least one argument for this redis lib call"
NOT_ALLOWED = "ERR This Redis command is not allowed from script"
WRITE_IN_RO = "ERR Write commands are not allowed from read-only scripts."
KILLED_SCRIPT = "ERR Script killed by user with SCRIPT KILL..."
KILLED_FUNCTION = KILLED_SCRIPT  # Redis says SCRIPT KILL for functions too

_LOG_LEVELS = {0: logging.DEBUG, 1: logging.INFO, 2: logging.INFO, 3: logging.WARNING}


def _deny_attributes(obj, name, is_setting):
    """Scripts never reach a Python object's attributes."""
    raise AttributeError("not accessible from Lua")


def sha1hex(body: bytes) -> str:
    return hashlib.sha1(body).hexdigest()


class Run:
    """The script running now: who runs it, since when, what it did."""

    __slots__ = ("session", "name", "is_function", "readonly", "started", "wrote", "killed",
                 "client_resp3", "resp3", "busy", "argv", "discard")

    def __init__(self, session: "Session", name: str, is_function: bool, readonly: bool):
        self.session = session
        self.name = name
        self.is_function = is_function
        self.readonly = readonly
        self.started = time.monotonic()
        self.wrote = False
        self.killed = False
        self.client_resp3 = session.resp3
        #: the script's protocol (redis.setresp), for the replies of its calls
        self.resp3 = False
        self.busy = False
        #: the FCALL's arguments (FUNCTION STATS)
        self.argv: list[bytes] = []
        #: SHUTDOWN NOSAVE stopped it: its effects never reach the log
        self.discard = False


class ScriptEngine:
    """The interpreter, the script cache and the function libraries' code."""

    def __init__(self, server=None):
        # imported here: store.commands imports this module (EVAL...), so a
        # module-level import would be circular when this module comes first
        from ..commands import table
        self._commands = table.COMMANDS
        self._resolve = table.resolve
        self.server = server
        self.lua = lua51.LuaRuntime(encoding=None, unpack_returned_tuples=True, register_eval=False,
                                    register_builtins=False, attribute_filter=_deny_attributes)
        self.to_lua = ReplyToLua(self.lua)
        self.libs = Libs(self.lua)
        #: the library being loaded (FUNCTION LOAD), which register_function fills
        self.registering = None
        self.running: Run | None = None
        #: hook count currently set (lowered to 1 while a killed script unwinds)
        self._armed = 0
        #: while FUNCTION LOAD runs library code: the monotonic time it must end by
        self.load_deadline = 0.0
        #: busy-reply-threshold of the script running, in seconds
        self.threshold = 0.0
        (self._run, self._compile, self._load_library, self._arm, self._disarm,
         self.env) = self.lua.execute(
            PRELUDE, self._call, self._pcall, self._error_message, self._hook, self._helpers(), self.libs.lookup,
            self._register, REDIS_VERSION.encode(), REDIS_VERSION_NUM)
        #: the script cache: sha1 hex (bytes) -> compiled script (store/commands/scripting.py)
        self.scripts: dict[bytes, object] = {}
        from .functions import Functions
        self.functions = Functions(self)

    # ------------------------------------------------------------ compile

    def compile(self, body: bytes, chunkname: bytes = b"@user_script"):
        """A Lua function for ``body`` or ReplyError with Redis's message."""
        fn, err = self._compile(body, chunkname)
        if fn is None:
            raise ReplyError("ERR Error compiling script (new function): " + _text(err))
        return fn

    # ------------------------------------------------------------ run

    def load_library(self, body: bytes):
        """Run library code (FUNCTION LOAD) under Redis's 500 ms limit:
        (ok, stage, message)."""
        if self._armed != HOOK_EVERY:
            self._arm(HOOK_EVERY)
            self._armed = HOOK_EVERY
        self.load_deadline = time.monotonic() + LOAD_TIMEOUT
        try:
            return self._load_library(body)
        finally:
            self.load_deadline = 0.0
            if self._armed == 1:
                self._arm(HOOK_EVERY)
                self._armed = HOOK_EVERY

    def run(self, s: "Session", fn, name: str, args: list[bytes], nkeys: int, readonly: bool,
            is_function: bool = False, argv: list[bytes] | None = None):
        """Run ``fn`` for ``s``; the reply (bytes, int, Raw...) or ReplyError.

        The hot path of every EVALSHA/FCALL: one crossing into Lua (which
        crosses back once per ``redis.call``), no per-call Python objects
        beyond ``Run``."""
        if self.running is not None:  # not reachable from Lua (EVAL is noscript), but be sure
            raise ReplyError("ERR a script is already running")
        run = Run(s, name, is_function, readonly)
        if argv is not None:
            run.argv = argv
        srv = self.server
        if srv is not None:
            threshold = srv.config.values["busy-reply-threshold"]
            if threshold > 0:
                if self._armed != HOOK_EVERY:
                    self._arm(HOOK_EVERY)
                    self._armed = HOOK_EVERY
                self.threshold = threshold / 1000.0
            else:
                run.busy = True  # no limit: never busy
        else:
            run.busy = True
        saved_db, saved_in_exec = s.db_index, s.in_exec
        # in_exec: a blocking command (XREAD BLOCK...) answers at once, as in EXEC
        s.in_exec = True
        self.running = run
        try:
            ok, value, source, line = self._run(fn, s.resp3, is_function, nkeys, *args)
        finally:
            self.running = None
            if run.discard:  # SHUTDOWN NOSAVE: unacknowledged, never logged (Redis loses them too)
                s.events.clear()
            s.in_exec = saved_in_exec
            s.resp3 = run.client_resp3
            if s.db_index != saved_db:
                s.select(saved_db)
            if srv is not None and srv.busy is not None:
                srv.busy = None
            if self._armed == 1:  # a killed script unwound: back to the normal pace
                self._arm(HOOK_EVERY)
                self._armed = HOOK_EVERY
        if run.discard:  # SHUTDOWN NOSAVE: as Redis, the caller gets no reply, the connection closes
            s.close_after_reply = True
            return Raw(b"")
        if ok is True:  # (before ``== 1``: True == 1 in Python)
            return Raw(value)
        if ok == 1:
            return value
        if ok == 2:
            return int(value)  # Redis truncates a Lua number to an integer
        if ok == 3:  # nil or false: the null reply, or RESP3 false from a RESP3 script
            if value is None or not run.resp3:
                return None
            return Raw(b"#f\r\n" if run.client_resp3 else b":0\r\n")
        message = _text(value)
        if source is not None:
            raise ReplyError(f"{message} script: {name}, on {_text(source)}:{line}.")
        raise ReplyError(f"{message} script: {name}")

    # ------------------------------------------------------------ callbacks from Lua

    def _pcall(self, *args):
        """``redis.pcall``: the reply, or an error table ``{err=...}``."""
        try:
            return self._call(*args)
        except CallError as exc:
            return self.lua.table_from({b"err": exc.args[0]})

    @staticmethod
    def _error_message(value):
        """(message, raised by a library) of an error raised in Python by
        ``redis.*``, cjson..., else (None, None)."""
        t = type(value)
        if t is CallError:
            return value.args[0], False
        if t is LibError:
            return value.args[0], True
        return None, None

    def _call(self, *args):
        """``redis.call``: run one command for the script; the reply as a Lua
        value. Errors raise ``CallError``, which Lua sees as an error value
        (``_error_message`` reads it). Lua calls this bound method directly:
        one crossing, one Python frame per call."""
        run = self.running
        if run is None:
            _fail("ERR redis.call is only available while a script runs")
        if not args:
            _fail(NO_ARGS)
        argv = list(args)
        for a in argv:
            if type(a) is not bytes:  # numbers become strings as Redis prints them
                for i, a in enumerate(argv):
                    a = arg_bytes(a)
                    if a is None:
                        _fail(ARGS_MUST_BE)
                    argv[i] = a
                break
        cmd = self._commands.get(argv[0])
        if cmd is None or cmd.subcommands or not cmd.arity_ok(len(argv)):
            try:
                cmd = self._resolve(argv)
            except ReplyError as exc:
                m = exc.message
                _fail(WRONG_ARITY if m.startswith("ERR wrong number of arguments") else UNKNOWN_COMMAND)
        if "noscript" in cmd.flags:
            _fail(NOT_ALLOWED)
        s = run.session
        if cmd.is_write:
            if run.readonly:
                _fail(WRITE_IN_RO)
            srv = self.server
            if srv is not None:
                if srv.write_error is not None:
                    try:
                        srv.check_writable()
                    except ReplyError as exc:
                        _fail(exc.message)
                if srv.is_replica:  # EVAL is not a write command: its writes are checked here
                    _fail(errors.READONLY)
        s.resp3 = run.resp3
        try:
            reply = cmd.handler(s, argv)
            if s.events:
                run.wrote = True
            t = type(reply)
            if t is bytes or t is int:  # the common replies, as they are
                return reply
            return self.to_lua(reply, run.resp3)
        except ReplyError as exc:
            if s.events:
                run.wrote = True
            _fail(exc.message)
        except Exception as exc:  # noqa: BLE001 - a bug costs the call, not the server
            log.exception("command %r failed inside a script", argv[0])
            _fail(f"ERR internal error in '{argv[0].decode('utf-8', 'replace')}': {exc}")
        finally:
            s.resp3 = run.client_resp3

    # ------------------------------------------------------------ redis.* helpers

    def _helpers(self):
        """The ``redis`` functions written in Python (argument errors raised
        from Python keep the script's line in the message), and cjson.null."""
        from .libs import NULL

        def setresp(*args):
            if len(args) != 1:
                raise CallError(b"ERR redis.setresp() requires one argument.")
            v = args[0]
            if v != 2 and v != 3:
                raise CallError(b"ERR RESP version must be 2 or 3.")
            if self.running is not None:
                self.running.resp3 = v == 3

        def getresp():
            run = self.running
            return 3 if run is not None and run.resp3 else 2

        def log_(*args):
            if len(args) < 2:
                raise CallError(b"ERR redis.log() requires two arguments or more.")
            if type(args[0]) not in (int, float):
                raise CallError(b"ERR First argument must be a number (log level).")
            log.log(_LOG_LEVELS.get(args[0], logging.WARNING), "<script> %s",
                    " ".join(_text(a) if isinstance(a, bytes) else str(a) for a in args[1:]))

        def sha1hex_(*args):
            if len(args) != 1:
                raise CallError(b"ERR wrong number of arguments")
            a = args[0]
            return sha1hex(a if type(a) is bytes else str(a).encode()).encode()

        def set_repl(*args):
            if len(args) != 1:
                raise CallError(b"ERR redis.set_repl() requires one argument.")

        return self.lua.table_from({b"setresp": setresp, b"getresp": getresp, b"log": log_,
                                    b"sha1hex": sha1hex_, b"set_repl": set_repl, b"null": NULL})

    def _hook(self):
        """Every HOOK_EVERY instructions: the kill message, or None to go on."""
        run = self.running
        if run is None:
            if self.load_deadline and time.monotonic() > self.load_deadline:
                self._armed = 1
                return b"ERR FUNCTION LOAD timeout"  # library code at FUNCTION LOAD: 500 ms, as Redis
            return None
        if not run.killed and not run.busy:
            if time.monotonic() - run.started < self.threshold:
                return None
            run.busy = True
            srv = self.server
            if srv is not None:
                srv.busy = errors_busy(run.is_function)
                log.warning("slow script detected: still in execution after %d ms", self.threshold * 1000)
        if not run.killed and self.server is not None and self.server.busy:
            busy.serve_others(self.server, run.session)
        if run.killed:
            self._armed = 1
            return (KILLED_FUNCTION if run.is_function else KILLED_SCRIPT).encode()
        return None

    def kill(self, functions: bool) -> None:
        """SCRIPT KILL (``functions`` False) / FUNCTION KILL."""
        run = self.running
        if run is None or not run.busy:
            raise ReplyError("NOTBUSY No scripts in execution right now.")
        if run.is_function != functions:
            raise ReplyError(errors_busy(run.is_function))
        if run.wrote:
            raise ReplyError("UNKILLABLE Sorry the script already executed write commands against the "
                             "dataset. You can either wait the script termination or kill the server in "
                             "a hard way using the SHUTDOWN NOSAVE command.")
        run.killed = True

    def abort_for_shutdown(self) -> None:
        """SHUTDOWN NOSAVE while a script is busy: stop the script even if it
        wrote, and drop its effects (none reached the log: a script's events
        are staged only when it returns), as Redis exits without them."""
        run = self.running
        if run is not None:
            run.killed = True
            run.discard = True

    def _register(self, name, callback, description, flags):
        """``redis.register_function`` during FUNCTION LOAD: None or an error."""
        if self.registering is None:
            return b"ERR redis.register_function can only be called on FUNCTION LOAD command"
        return self.functions.registered(self.registering, name, callback, description, flags)


def errors_busy(functions: bool) -> str:
    """Redis's -BUSY (which says "script" for functions too)."""
    return ("BUSY Redis is busy running a script. You can only call %s KILL or SHUTDOWN NOSAVE."
            % ("FUNCTION" if functions else "SCRIPT"))


class CallError(Exception):
    """A command called by ``redis.call`` failed; args[0] is Redis's message (bytes)."""


def _fail(message: str) -> NoReturn:
    raise CallError(message.encode("utf-8", "surrogateescape"))


def _text(v) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "surrogateescape")
    return str(v)


def engine_for(server) -> ScriptEngine:
    """The server's engine, made on first use (a session without a server
    gets a private one)."""
    if server is None:
        global _DETACHED
        if _DETACHED is None:
            _DETACHED = ScriptEngine(None)
        return _DETACHED
    engine = server.__dict__.get("scripting")
    if engine is None:
        engine = server.scripting = ScriptEngine(server)
    return engine


_DETACHED: ScriptEngine | None = None
