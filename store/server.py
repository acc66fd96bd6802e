"""The Redis-protocol server and its write path. The only module with sockets.

Write path, per read from a client socket:

1. hiredis parses every complete request in the buffer (inline commands are
   split here, as Redis does).
2. Each command runs against the keyspace; the events it emits are encoded
   into one record and staged on the ``GroupCommitter``.
3. The replies of the whole read are joined into one buffer. If any staged
   record is not yet durable, the buffer is held until the committer reports
   that the log is durable up to the last record staged before it (with
   ``durability sync``). That rule covers reads too: a reply that could show
   state a crash would take back waits, which is ARCHITECTURE.md invariant 3.
   When nothing is pending, replies go out at once.

A failed append (disk full, I/O error) loses every record not yet durable:
their replies become ``-MISCONF`` errors, the keyspace is rebuilt from the log
(the truth), and writes are refused for a moment, as Redis refuses writes
after an AOF error.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import resource
import socket
import time
from collections import deque

import hiredis

from streams.commit import GroupCommitter
from streams.events import encode_record
from streams.filelog import FileLog
from streams.log import Log
from streams.materializer import Materializer

from . import errors
from .commands import table
from .config import Config
from .keyspace import Keyspace
from .resp import OK, ReplyError, InlineError, encode, encode_error, split_inline
from .session import Session, now_ms

log = logging.getLogger("fjord.server")

FJORD_VERSION = "0.1.0"
#: The Redis release whose behaviour Fjord matches for the commands it has.
REDIS_VERSION = "7.0.15"
MAX_INLINE = 64 * 1024
_HEADER = re.compile(rb"\*(-?\d+)\r\n(?:\$(-?\d+)\r\n)?")


class Stats:
    """Counters for INFO stats."""

    def __init__(self) -> None:
        self.start_time = time.time()
        self.connections_received = 0
        self.commands_processed = 0
        self.rejected_connections = 0
        self.expired_keys = 0
        self.keyspace_hits = 0
        self.keyspace_misses = 0
        self.net_input_bytes = 0
        self.net_output_bytes = 0
        self.held_replies = 0
        self.protocol_errors = 0
        self.write_errors = 0


class Connection(asyncio.Protocol):
    """One client socket: parse, execute, reply in order, hold until durable."""

    def __init__(self, server: "Server"):
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.session: Session | None = None
        self.inline = bytearray()
        #: replies waiting for durability: (seq, bytes, number of replies)
        self.held: deque[tuple[int, bytes, int]] = deque()
        self.closed = False

    # ---------------------------------------------------------- lifecycle

    def connection_made(self, transport) -> None:
        self.transport = transport
        srv = self.server
        srv.stats.connections_received += 1
        if len(srv.clients) >= srv.config["maxclients"]:
            srv.stats.rejected_connections += 1
            transport.write(encode_error(errors.MAXCLIENTS))
            transport.close()
            self.closed = True
            return
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.session = Session(
            srv, srv.keyspace, next(srv.client_ids), _fmt_addr(peer), _fmt_addr(sock),
            authenticated=not srv.config["requirepass"],
        )
        srv.clients[self.session.id] = self

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.held.clear()
        if self.session is not None:
            self.server.clients.pop(self.session.id, None)

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    # ---------------------------------------------------------- input

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        srv = self.server
        srv.stats.net_input_bytes += len(data)
        reader = self.reader
        out: list[bytes] = []
        self.session.last_active = time.time()
        if self.inline or (data[0] != 42 and not reader.has_data()):  # 42 = '*'
            data = self._inline(data, out)
            if data is None:
                self._send(out)
                return
        if not reader.has_data() and not self._header_ok(data, out):
            self._send(out)
            self._protocol_close()
            return
        reader.feed(data)
        execute = self.execute
        session = self.session
        while True:
            try:
                args = reader.gets()
            except hiredis.ProtocolError as exc:
                out.append(encode_error(f"ERR Protocol error: {exc}"))
                self._send(out)
                self._protocol_close()
                return
            if args is False:
                break
            if type(args) is not list:
                out.append(encode_error("ERR Protocol error: expected '*', got something else"))
                self._send(out)
                self._protocol_close()
                return
            if not args:
                continue
            for a in args:
                if type(a) is not bytes:
                    out.append(encode_error("ERR Protocol error: expected '$', got something else"))
                    self._send(out)
                    self._protocol_close()
                    return
            out.append(execute(args))
            if session.close_after_reply or self.closed:
                break
        if reader.len() > srv.config["client-query-buffer-limit"]:
            log.warning("closing client %s: query buffer over the limit", session.addr)
            self._send(out)
            self._protocol_close()
            return
        self._send(out)

    def _header_ok(self, data: bytes, out: list) -> bool:
        """Reject absurd multibulk and bulk lengths before buffering them,
        with Redis's errors (hiredis would otherwise wait for the bytes)."""
        m = _HEADER.match(data)
        if m is None:
            return True
        authed = self.session.authenticated
        n = int(m.group(1))
        if n > 1024 * 1024 * 1024 or (not authed and n > 10):
            out.append(encode_error("ERR Protocol error: unauthenticated multibulk length" if not authed
                                    else "ERR Protocol error: invalid multibulk length"))
            return False
        if m.group(2) is not None:
            blen = int(m.group(2))
            if not authed and blen > 16384:
                out.append(encode_error("ERR Protocol error: unauthenticated bulk length"))
                return False
            if blen < 0 or blen > self.server.config["proto-max-bulk-len"]:
                out.append(encode_error("ERR Protocol error: invalid bulk length"))
                return False
        return True

    def _inline(self, data: bytes, out: list) -> bytes | None:
        """Handle inline commands (``PING\\r\\n``). Returns the bytes left
        over for the RESP parser, or None if everything was consumed."""
        buf = self.inline
        buf += data
        while buf:
            if buf[0] == 42:  # a RESP request follows
                rest = bytes(buf)
                buf.clear()
                return rest
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) > MAX_INLINE:
                    out.append(encode_error("ERR Protocol error: too big inline request"))
                    self._send(out)
                    self._protocol_close()
                    return None
                return None
            line = bytes(buf[:nl])
            del buf[: nl + 1]
            try:
                args = split_inline(line)
            except InlineError:
                out.append(encode_error("ERR Protocol error: unbalanced quotes in request"))
                self._send(out)
                self._protocol_close()
                return None
            if args:
                out.append(self.execute(args))
                if self.session.close_after_reply or self.closed:
                    buf.clear()
                    return None
        return None

    def _protocol_close(self) -> None:
        self.server.stats.protocol_errors += 1
        if self.held:
            self.session.close_after_reply = True  # send what is owed first
        else:
            self.close()

    # ---------------------------------------------------------- execution

    def execute(self, args: list[bytes]) -> bytes:
        """Run one command; return its encoded reply."""
        session = self.session
        srv = self.server
        srv.stats.commands_processed += 1
        try:
            cmd = table.COMMANDS.get(args[0])
            if cmd is None or cmd.subcommands or not cmd.arity_ok(len(args)):
                cmd = table.resolve(args)
            if not session.authenticated and not cmd.no_auth:
                raise ReplyError(errors.NOAUTH)
            if srv.loading and not cmd.allow_loading:
                raise ReplyError(errors.LOADING)
            if cmd.is_write:
                srv.check_writable()
            session.last_cmd = cmd.fullname
            reply = cmd.handler(session, args)
        except ReplyError as exc:
            reply = None
            data = encode_error(exc.message)
        except Exception as exc:  # a bug must cost one reply, not the server
            log.exception("command %r failed", args[0])
            reply = None
            data = encode_error(f"ERR internal error in '{args[0].decode('utf-8', 'replace')}': {exc}")
        else:
            data = None
        if session.events:
            srv.commit(session)
        if data is not None:
            return data
        t = type(reply)
        if t is bytes:
            return b"$%d\r\n%s\r\n" % (len(reply), reply)
        return encode(reply, session.resp3)

    # ---------------------------------------------------------- output

    def _send(self, out: list[bytes]) -> None:
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        committer = self.server.committer
        if self.held or (committer is not None and committer.pending and self.server.sync_replies):
            seq = committer.staged
            self.held.append((seq, data, len(out)))
            self.server.stats.held_replies += len(out)
            committer.wait(seq, self)
            return
        self._write(data)

    def _write(self, data: bytes) -> None:
        if self.closed:
            return
        self.server.stats.net_output_bytes += len(data)
        self.transport.write(data)
        if self.session.close_after_reply:
            self.close()

    def on_durable(self, durable: int) -> None:
        """The log is durable up to ``durable``: release the replies that
        were waiting for it, in order."""
        held = self.held
        ready = []
        while held and held[0][0] <= durable:
            ready.append(held.popleft()[1])
        if ready:
            self._write(ready[0] if len(ready) == 1 else b"".join(ready))

    def on_lost(self, lost_from: int, error: Exception) -> None:
        """Records from ``lost_from`` on never reached the log: every reply
        waiting on them becomes an error, so nothing unlogged is acknowledged."""
        held = self.held
        ready = []
        message = encode_error(errors.misconf_log(str(error)))
        while held:
            seq, data, n = held.popleft()
            ready.append(data if seq < lost_from else message * n)
        if ready:
            self._write(b"".join(ready))


def _fmt_addr(addr) -> str:
    if not addr:
        return ""
    if isinstance(addr, tuple):
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(addr)


class Server:
    """Owns the keyspace, the log, the committer and the listening socket."""

    def __init__(self, config: Config, log_: Log | None = None):
        self.config = config
        self.keyspace = Keyspace(config["databases"])
        self.log: Log | None = log_
        self.committer: GroupCommitter | None = None
        self.clients: dict[int, Connection] = {}
        self.client_ids = itertools.count(1)
        self.stats = Stats()
        self.loading = True
        self.loading_started = 0.0
        self.loading_end_offset = 0
        self.loading_offset = 0
        self.is_replica = False
        self.write_error: str | None = None
        self.write_error_until = 0.0
        self.last_save_time = int(time.time())
        self.replay_stats = None
        self.system = Session(self, self.keyspace, 0, "", "")
        self._server: asyncio.AbstractServer | None = None
        self._tasks: list[asyncio.Task] = []
        self._stopped = asyncio.Event()
        self.run_id = "%040x" % int.from_bytes(__import__("os").urandom(20), "big")

    @property
    def sync_replies(self) -> bool:
        return self.config["durability"] == "sync"

    # ---------------------------------------------------------- write path

    def commit(self, session: Session) -> None:
        """Stage the events the session's last command emitted as one record."""
        events = session.events
        session.events = []
        self.committer.stage(encode_record(now_ms(), events))

    def check_writable(self) -> None:
        if self.write_error is not None:
            if time.monotonic() < self.write_error_until or self.loading:
                raise ReplyError(errors.misconf_log(self.write_error))
            self.write_error = None

    def _on_log_failure(self, exc: Exception) -> None:
        self.stats.write_errors += 1
        self.write_error = str(exc)
        self.write_error_until = time.monotonic() + 1.0
        log.error("rebuilding the keyspace from the log after a failed append: %s", exc)
        self._tasks.append(asyncio.get_running_loop().create_task(self._rebuild()))

    async def _rebuild(self) -> None:
        self.loading = True
        self.keyspace.reset()
        await self._replay()

    async def _replay(self) -> None:
        self.loading = True
        self.loading_started = time.time()
        self.loading_end_offset = self.log.end_offset
        self.loading_offset = self.log.start_offset

        def progress(done: int, end: int) -> None:
            self.loading_offset = done

        mat = Materializer(self.log, self.keyspace, self.log.start_offset)
        stats = await mat.catch_up(progress=progress)
        self.replay_stats = stats
        self.loading = False
        log.info(
            "loaded %d records / %d events up to offset %d in %.3fs (%.0f events/s); %d keys",
            stats.records, stats.events, stats.next_offset, stats.seconds, stats.events_per_second,
            self.keyspace.key_count(),
        )

    # ---------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Open the log, start listening (answering -LOADING), replay."""
        raise_open_file_limit(self.config["maxclients"])
        if self.log is None:
            self.log = await FileLog.open(
                _log_dir(self.config["dir"]), repair=self.config["repair"],
                segment_bytes=self.config["log-segment-bytes"],
            )
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(self), self.config["bind"], self.config["port"],
            reuse_address=True, backlog=511,
        )
        for sock in self._server.sockets:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        log.info("Fjord %s listening on %s:%d, data in %s, durability %s",
                 FJORD_VERSION, self.config["bind"], self.port, self.config["dir"], self.config["durability"])
        await self._replay()
        self.committer = GroupCommitter(self.log, sync=self.sync_replies, on_failure=self._on_log_failure)
        from . import expiry
        self._tasks.append(loop.create_task(expiry.run_cron(self)))
        log.info("ready to accept connections")

    @property
    def port(self) -> int:
        if self._server and self._server.sockets:
            return self._server.sockets[0].getsockname()[1]
        return self.config["port"]

    def set_durability(self, mode: str) -> None:
        """CONFIG SET appendfsync/durability at run time."""
        if self.committer is not None and (mode == "sync") != self.committer.sync:
            old = self.committer
            self.committer = GroupCommitter(self.log, sync=mode == "sync", on_failure=self._on_log_failure)
            self._tasks.append(asyncio.get_running_loop().create_task(old.close()))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.clients.values()):
            conn.close()
        for t in self._tasks:
            t.cancel()
        if self.committer is not None:
            await self.committer.close()
        if self.log is not None:
            await self.log.close()
        self._stopped.set()

    def request_shutdown(self) -> None:
        asyncio.get_running_loop().create_task(self.stop())

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


def _log_dir(data_dir: str) -> str:
    import os
    return os.path.join(data_dir, "log")


def raise_open_file_limit(maxclients: int) -> None:
    """Raise RLIMIT_NOFILE to fit maxclients plus room for files, as Redis does."""
    want = maxclients + 32
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        log.warning("could not raise the open files limit to %d (soft %d, hard %d)", want, soft, hard)
        return
    if target < want:
        log.warning("open files limit is %d: at most about %d clients fit", target, target - 32)
