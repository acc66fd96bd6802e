"""The Redis-protocol server and its write path. The only module with sockets.

Write path, per read from a client socket:

1. ``RequestReader`` (store/request.py) splits the bytes into requests exactly
   as Redis does (hiredis for speed; Redis's own rules for inline commands
   and garbage, which gets Redis's protocol error and a close).
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
import resource
import socket
import time
from collections import deque

from streams.commit import GroupCommitter
from streams.events import encode_record
from streams.filelog import FileLog
from streams.log import Log
from streams.materializer import Materializer, remember_epoch

from . import errors, transactions
from .blocking import Blocking
from .commands import table
from .commands.history import KeyHistory
from .config import Config
from .cursors import CursorTable
from .keyspace import Keyspace
from .notify import Notifier
from .pubsub import PUBSUB_OUTPUT_LIMIT, SUBSCRIBER_COMMANDS, PubSub
from .pubsub import context_error as pubsub_context_error
from .request import ProtocolError, RequestReader
from .resp import Delayed, Raw, ReplyError, encode, encode_error
from .saving import Saver
from .session import Session

log = logging.getLogger("fjord.server")

FJORD_VERSION = "0.1.0"
#: The Redis release whose behaviour Fjord matches for the commands it has.
REDIS_VERSION = "7.0.15"


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
        self.session: Session | None = None
        self.requests: RequestReader | None = None
        #: replies waiting for durability: (seq, bytes, number of replies)
        self.held: deque[tuple[int, bytes, int]] = deque()
        self.closed = False
        #: while a command's reply is delayed (WAIT): the requests read since,
        #: to run after it (see "blocking" below); else None
        self.blocked: deque[list[bytes]] | None = None
        self.blocked_bytes = 0
        self.unblock_timer: asyncio.TimerHandle | None = None
        #: the replies of the read being executed (None between reads)
        self.out: list[bytes] | None = None

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
        self.requests = RequestReader(self.session, srv.config["proto-max-bulk-len"])
        srv.clients[self.session.id] = self

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.held.clear()
        self._end_block()
        if self.session is not None:
            self.server.clients.pop(self.session.id, None)
            transactions.forget(self.session)
            if self.session.pubsub is not None:
                self.server.pubsub.drop(self.session)

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    # ---------------------------------------------------------- input

    def data_received(self, data: bytes) -> None:
        """Run every request the bytes complete, in order; answer garbage
        with Redis's protocol error and close (``RequestReader`` parses)."""
        session = self.session
        if self.closed or session.close_after_reply:
            return  # Redis reads nothing more from a client it is closing
        self.server.stats.net_input_bytes += len(data)
        session.last_active = time.time()
        requests = self.requests
        requests.feed(data)
        execute = self.execute
        out: list[bytes] = []
        self.out = out  # pub/sub messages to this client join its replies here (see push)
        try:
            while not (session.close_after_reply or self.closed):
                batch = requests.read()
                if not batch:
                    break
                for args in batch:
                    out.append(execute(args))
                    if session.close_after_reply or self.closed:
                        break
                if not requests.more:
                    break
        except ProtocolError as exc:
            out.append(exc.reply())
            self._protocol_close()
        else:
            if (requests.partial or requests.slow is not None) and \
                    requests.buffered() > self.server.config["client-query-buffer-limit"]:
                log.warning("closing client %s: query buffer over the limit", session.addr)
                self._protocol_close()
        self.out = None
        self._send(out)
        if session.close_after_reply and not self.held:
            self.close()

    def _protocol_close(self) -> None:
        """Close once the replies owed, the error included, are written."""
        self.server.stats.protocol_errors += 1
        self.session.close_after_reply = True

    # ---------------------------------------------------------- execution

    def execute(self, args: list[bytes]) -> bytes:
        """Run one command; return its encoded reply (b"" while blocked)."""
        if self.blocked is not None:
            return self._queue(args)
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
            if srv.busy is not None and not cmd.allow_busy:
                raise ReplyError(srv.busy)  # a script runs past busy-reply-threshold (store/scripting)
            if cmd.is_write and srv.write_error is not None:
                srv.check_writable()
            if cmd.is_write and srv.is_replica:
                raise ReplyError(errors.READONLY)
            if session.pubsub is not None and not session.resp3 and cmd.fullname not in SUBSCRIBER_COMMANDS:
                raise ReplyError(pubsub_context_error(cmd.fullname))
            session.last_cmd = cmd.fullname
            if session.multi is not None and cmd.name not in transactions.RUN_IN_MULTI:
                return transactions.queue(session, cmd, args)
            reply = cmd.handler(session, args)
        except ReplyError as exc:
            reply = None
            data = encode_error(exc.message)
            if session.multi is not None or args[0].lower() == b"exec":  # refused in MULTI, or EXEC refused
                data = transactions.rejected(session, args, exc.message)
        except Exception as exc:  # a bug must cost one reply, not the server
            log.exception("command %r failed", args[0])
            reply = None
            data = encode_error(f"ERR internal error in '{args[0].decode('utf-8', 'replace')}': {exc}")
        else:
            data = None
        if session.events:
            srv.commit(session)
            if srv.blocking.ready:  # keys this command filled: serve their waiters now
                srv.blocking.serve()
        if data is not None:
            return data
        t = type(reply)
        if t is bytes:
            return b"$%d\r\n%s\r\n" % (len(reply), reply)
        if t is Raw:
            return reply
        if t is Delayed:
            return self._block(reply)
        return encode(reply, session.resp3)

    # ---------------------------------------------------------- blocking
    #
    # A command that answers later (WAIT) returns ``Delayed``: the reply is
    # sent when its timer fires, and, as Redis runs nothing from a blocked
    # client, the requests read meanwhile are queued (parsed) and run only
    # then, so replies stay in order and a later command sees the state of
    # after the wait. ``execute`` answers b"" for the blocking command and
    # for each one queued; ``_send`` drops those.

    def _block(self, delayed: Delayed) -> bytes:
        self.blocked = deque()
        self.blocked_bytes = 0
        if delayed.seconds is not None:
            self.unblock_timer = asyncio.get_running_loop().call_later(
                delayed.seconds, self.unblock, delayed.reply)
        self.server.blocking.block(self, delayed)  # store/blocking.py: wait lists, INFO, CLIENT UNBLOCK
        return b""

    def _queue(self, args: list[bytes]) -> bytes:
        self.blocked.append(args)
        self.blocked_bytes += sum(len(a) for a in args)
        if self.blocked_bytes > self.server.config["client-query-buffer-limit"]:
            log.warning("closing client %s: query buffer over the limit", self.session.addr)
            self.close()
        return b""

    def _end_block(self) -> deque | None:
        """Leave the blocked state; returns the requests queued in it."""
        queued, self.blocked = self.blocked, None
        self.server.blocking.discard(self)
        if self.unblock_timer is not None:
            self.unblock_timer.cancel()
            self.unblock_timer = None
        return queued

    def unblock(self, reply) -> None:
        """Send the blocked command's ``reply``, then run the requests
        queued behind it (up to the next one that blocks)."""
        if self.closed or self.blocked is None:
            return
        queued = self._end_block()
        session = self.session
        out = [encode(reply, session.resp3)]
        while queued and not (session.close_after_reply or self.closed):
            out.append(self.execute(queued.popleft()))
            if self.blocked is not None:  # blocked again: the rest waits behind it
                self.blocked.extend(queued)
                break
        self._send(out)
        if session.close_after_reply and not self.held:
            self.close()

    # ---------------------------------------------------------- output

    def _send(self, out: list[bytes], replies: int | None = None) -> None:
        """Write ``out`` (``replies`` replies: len(out) unless given), or
        hold it while records staged before it are not yet durable."""
        if self.blocked is not None:
            out = [r for r in out if r]  # a blocked or queued command's b""
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        committer = self.server.committer
        # committer.pending, spelled out: a property costs a Python call, and
        # this runs for every reply
        if self.held or (committer is not None and committer.sync and committer.staged != committer.durable):
            seq = committer.staged
            n = len(out) if replies is None else replies
            self.held.append((seq, data, n))
            self.server.stats.held_replies += n
            committer.wait(seq, self)
            return
        self._write(data)

    def push(self, data: bytes) -> None:
        """An out-of-band message (pub/sub): after the replies this client
        is owed so far, held like them until what was staged is durable.
        It counts as no reply, so if the log loses those records the
        message is dropped rather than turned into an error (``on_lost``);
        joined to the reply before it while the client runs commands."""
        if self.closed:
            return
        out = self.out
        if out:
            out[-1] += data
            return
        if self.transport.get_write_buffer_size() > PUBSUB_OUTPUT_LIMIT:
            log.warning("closing client %s: it reads its pub/sub messages too slowly", self.session.addr)
            self.closed = True
            self.transport.abort()  # unsent output is dropped, as Redis frees such a client
            return
        self._send([data], 0)

    def _write(self, data: bytes) -> None:
        if self.closed:
            return
        self.server.stats.net_output_bytes += len(data)
        self.transport.write(data)
        if self.session.close_after_reply and not self.held:  # close once nothing more is owed
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
        #: why the log could not be opened yet (Kafka broker unreachable at start), for INFO
        self.log_wait_error: str | None = None
        self.is_replica = False
        #: the epoch this writer claimed (store/fencing.py); None: never claimed
        self.epoch: int | None = None
        from .replication import Replication
        #: role, replicas, WAIT, failover (store/replication.py)
        self.replication = Replication(self)
        self.write_error: str | None = None
        self.write_error_until = 0.0
        self.replay_stats = None
        #: BGSAVE/SAVE/automatic snapshots: the snapshotter child (store/saving.py)
        self.saver = Saver(self)
        #: deletes log segments covered by snapshots (store/retention.py); set in start()
        self.retention = None
        self.system = Session(self, self.keyspace, 0, "", "")
        #: SCAN-family cursor snapshots and RANDOMKEY samples (store/cursors.py)
        self.cursors = CursorTable()
        #: recent record offsets per key, for FJORD.HISTORY (store/commands/history.py)
        self.key_history = KeyHistory()
        #: clients blocked (WAIT, BLPOP...) and the keys they wait on (store/blocking.py)
        self.blocking = Blocking(self)
        #: channel and pattern subscriptions (store/pubsub.py); keyspace
        #: notifications published from the events (store/notify.py)
        self.pubsub = PubSub(self)
        self.notifier = Notifier(self)
        self.notifier.configure(config["notify-keyspace-events"])
        #: services riding on the server (the trigger dispatcher): objects with
        #: ``async start(server)``, called once the replay is done, and
        #: ``async stop()``, called first thing in ``stop``
        self.extensions: list = []
        self.extensions_started = False
        self._saver_task: asyncio.Task | None = None
        #: the -BUSY error while a script runs past busy-reply-threshold, else
        #: None (store/scripting/busy.py serves the other clients meanwhile)
        self.busy: str | None = None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: list[asyncio.Task] = []
        self._stopped = asyncio.Event()
        self._shutdown_task: asyncio.Task | None = None
        self.run_id = "%040x" % int.from_bytes(__import__("os").urandom(20), "big")

    @property
    def last_save_time(self) -> int:
        """LASTSAVE: unix time of the newest snapshot (else of the start)."""
        return self.saver.last_save_time

    @property
    def sync_replies(self) -> bool:
        return self.config["durability"] == "sync"

    # ---------------------------------------------------------- write path

    def commit(self, session: Session) -> None:
        """Stage the events the session's last command emitted as one record."""
        events = session.events
        session.events = []
        committer = self.committer
        if committer is None:  # a replica: writes are refused before they run, so this is a bug
            self._stray_events(events)
            return
        # now_ms() inlined: this runs once per write
        seq = committer.stage(encode_record(time.time_ns() // 1_000_000, events, session.origin, self.epoch))
        # Records are appended in staging order and a failed batch rolls the
        # staged count back with the log's end, so the n-th record staged
        # after the last durable one lands at last_offset + n (FJORD.OFFSET).
        session.last_offset = committer.last_offset + seq - committer.durable
        if self.notifier.pending:  # after staging: subscribers get them once the record is durable
            self.notifier.flush()

    def _stray_events(self, events: list) -> None:
        """Events emitted where nothing may append (a replica). They were
        applied to the keyspace but can never reach the log: drop them and
        rebuild the replica's state from the log, which is the truth."""
        log.error("%d event(s) emitted without a writer (%s ...): dropped; reloading from the log",
                  len(events), events[0].type if events else "-")
        self.stats.write_errors += 1
        if self.is_replica and not self.loading:
            self._tasks.append(asyncio.get_running_loop().create_task(self.replication.resync()))

    def check_writable(self) -> None:
        """Refuse writes with -MISCONF for a while after a failed append (at
        least a second, see ``_rebuild``); then let the next write try the
        log again, as Redis retries its AOF."""
        if self.write_error is not None:
            if time.monotonic() < self.write_error_until or self.loading:
                raise ReplyError(errors.misconf_log(self.write_error))
            self.write_error = None

    def _on_log_failure(self, exc: Exception) -> None:
        """The committer lost every record not yet durable. The keyspace
        still shows their effects, so it is dropped here, synchronously:
        the rebuild task starts only on a later loop pass, and any command
        run in between would otherwise answer from state that no longer
        exists on the log (and, nothing being pending, unheld)."""
        self.stats.write_errors += 1
        from .fencing import FencedError
        if isinstance(exc, FencedError):  # a newer writer took over the log
            self.replication.step_down(str(exc))
        self.write_error = str(exc)
        self.write_error_until = time.monotonic() + 1.0
        log.error("rebuilding the keyspace from the log after a failed append: %s", exc)
        self.loading = True
        self.keyspace.reset()
        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.get_running_loop().create_task(self._rebuild()))

    async def _rebuild(self) -> None:
        """Replay the log into the (already reset) keyspace. Until it is
        done every command but the ``loading`` ones gets -LOADING."""
        self.loading = True
        t0 = time.monotonic()
        try:
            # With durability async, records written before the failed batch
            # are on the file but not yet fsynced, so not below end_offset:
            # make them durable first, or the replay would drop them from
            # memory while a restart brings them back.
            await self.log.sync()
        except Exception as exc:  # noqa: BLE001 - replay what is durable
            log.error("fsync before the rebuild failed: %s", exc)
        try:
            await self._replay()
        except Exception:
            log.critical("could not rebuild the keyspace from the log; answering -LOADING until restarted",
                         exc_info=True)
            return
        # Every failed append costs a rebuild, during which all clients get
        # -LOADING. While the disk stays full, keep refusing writes for twice
        # the rebuild time, so a big log spends at most a third of the time
        # loading instead of nearly all of it.
        now = time.monotonic()
        self.write_error_until = max(self.write_error_until, now + 2 * (now - t0))

    async def _replay(self) -> None:
        """Load the newest snapshot, then replay the log's tail, keeping the
        ``loading_*`` figures of INFO and the start-up progress display
        current (store/loading.py)."""
        from .loading import LoadingProgress

        self.loading = True
        self.loading_started = time.time()
        self.loading_end_offset = self.log.end_offset
        self.loading_offset = self.log.start_offset
        progress = LoadingProgress(self)
        try:
            start = self.log.start_offset
            if self.saver.enabled:  # the newest snapshot, then the log's tail from its offset
                from . import snapshotter
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, snapshotter.set_aside_future_snapshots,
                                           self.saver.directory, self.loading_end_offset)
                info, events, seconds = await snapshotter.load_latest(
                    self.keyspace, self.saver.directory, self.loading_end_offset, progress=progress.snapshot)
                await loop.run_in_executor(None, self.saver.refresh)
                if info is not None:
                    start = info.offset
                    log.info("loaded snapshot at offset %d with %d events in %.3f s (%.0f events/s)",
                             info.offset, events, seconds, events / seconds if seconds > 0 else 0)
            elif self.is_replica:  # the writer's newest snapshot, read only (store/replication.py)
                start = await self.replication.load_writer_snapshot(start, progress.snapshot)
            progress.log_started(start, self.loading_end_offset, self.loading_snapshot_done)
            from .fencing import fence_for
            mat = Materializer(self.log, self.keyspace, start, fence_for(self.keyspace))
            remember_epoch(self.log, start, mat.fence.epoch)  # lets mid-log readers skip a scan
            stats = await mat.catch_up(progress=progress.log)
            remember_epoch(self.log, stats.next_offset, mat.fence.epoch)
        finally:
            progress.close()
        self.loading_events_done = self.loading_snapshot_done + stats.events
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
            self.log = await self.replication.open_log()  # --replica of a writer on this machine
        if self.log is None and not self.config["kafka-bootstrap"]:
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
        if self.log is None:  # Kafka: listen first, answer -LOADING until the broker answers
            from streams.kafkalog import open_from_config
            self.loading_started = time.time()
            self.log = await open_from_config(self.config, patient=True,
                                              stopping=lambda: self._shutdown_task is not None,
                                              on_error=lambda reason: setattr(self, "log_wait_error", reason))
            if self.log is not None and self._shutdown_task is not None:  # stop() ran meanwhile
                await self.log.close()
                return
            if self.log is None:
                return  # SHUTDOWN or a signal while waiting for the broker
            self.log_wait_error = None
            self.loading_end_offset, self.loading_offset = self.log.end_offset, self.log.start_offset
        self.saver.enabled = self.log.shared \
            and not self.is_replica
        from .snapshotter import bind_to_log
        if self.saver.enabled:  # never load a snapshot another log made (store/snapshotter.py)
            await bind_to_log(self.saver.directory, self.log)
        try:
            await self._replay()
        except Exception:
            if self._shutdown_task is None:
                raise
            return  # SHUTDOWN or a signal during loading closed the log under the replay
        await self.replication.started()  # a writer claims its epoch; a replica starts tailing
        if not self.is_replica:  # a replica has no committer: nothing it does can reach the log
            self.committer = self.new_committer()
        from . import expiry
        self._tasks.append(loop.create_task(expiry.run_cron(self)))
        self.start_writer_services()
        await self.start_extensions()
        log.info("ready to accept connections")

    # ---------------------------------------------------------- roles
    #
    # A replica becomes the writer without a restart (store/replication.py
    # promotes it) and a deposed writer becomes a replica: what only a
    # writer runs is started and stopped here, on either change.

    def new_committer(self) -> GroupCommitter:
        return GroupCommitter(self.log, sync=self.sync_replies, on_failure=self._on_log_failure)

    def start_writer_services(self) -> None:
        """Snapshots (``snapshot-every-events``) and, on the file log,
        retention: a writer's jobs, at start or on promotion. A Kafka topic
        has the broker's own retention."""
        if self.is_replica:
            return
        loop = asyncio.get_running_loop()
        if self.saver.enabled and (self._saver_task is None or self._saver_task.done()):
            self._saver_task = loop.create_task(self.saver.auto())
            self._tasks.append(self._saver_task)
        if isinstance(self.log, FileLog) and not self.log.readonly and self.retention is None:
            from .retention import Retention
            self.retention = Retention(self)
            self._tasks.append(loop.create_task(self.retention.run()))

    def stop_writer_services(self) -> None:
        """A writer that steps down stops snapshotting (replicas do not)."""
        self.saver.enabled = False
        if self._saver_task is not None:
            self._saver_task.cancel()
            self._saver_task = None

    async def start_extensions(self) -> None:
        """Start every extension on the current log; each one checks the
        role itself (the trigger service delivers only on the writer)."""
        for ext in self.extensions:
            try:
                await ext.start(self)
            except Exception:  # noqa: BLE001 - one extension must not keep the server from serving
                if not self.extensions_started:
                    raise
                log.exception("starting %r failed", ext)
        self.extensions_started = True

    async def stop_extensions(self) -> None:
        for ext in self.extensions:
            try:
                await ext.stop()
            except Exception:  # noqa: BLE001 - a failing extension must not keep the log open
                log.exception("stopping %r failed", ext)

    async def restart_extensions(self) -> None:
        """The role changed, and with it maybe the log object (a promoted
        file-log replica reopens the log for writing): restart them on it."""
        await self.stop_extensions()
        await self.start_extensions()

    @property
    def port(self) -> int:
        if self._server and self._server.sockets:
            return self._server.sockets[0].getsockname()[1]
        return self.config["port"]

    def set_durability(self, mode: str) -> None:
        """CONFIG SET appendfsync/durability at run time."""
        if self.committer is not None:
            self.committer.set_sync(mode == "sync")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self.stop_extensions()
        for t in self._tasks:
            t.cancel()
        await self.saver.stop()
        if self.committer is not None:
            # Drain first: replies held for durability go out before the
            # sockets close (their writes are durable by then anyway).
            await self.committer.close()
        for conn in list(self.clients.values()):
            conn.close()
        if self.log is not None:
            await self.log.close()
        self._stopped.set()

    def request_shutdown(self) -> None:
        """Stop once, however many SHUTDOWNs and signals ask (the task is
        kept: the loop holds tasks only weakly)."""
        if self._shutdown_task is None:
            self._shutdown_task = asyncio.get_running_loop().create_task(self.stop())

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
