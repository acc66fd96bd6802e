"""Roles: the writer, read replicas, and taking over the log (failover).

Writer side: claims an epoch at start when it has an address to advertise (or
the log already holds claims; store/fencing.py), learns its replicas from the
``REPLCONF`` they send, and answers ``WAIT numreplicas timeout`` with how many
of them acknowledged (``REPLCONF ACK <offset>``) the offset of the client's
writes.

Replica side (``fjord serve --replica --replica-of-dir DIR``): tails the
writer's log read-only (``FileLog.refresh``), applies records through the
same fenced ``Materializer`` as replay, and keeps a link to the writer named
by the newest claim: ``REPLCONF listening-port``, then ``REPLCONF ACK`` and
``PING`` every ``LINK_PERIOD_S``. A replica that cannot get a PONG for
``failover-timeout-ms`` tries to take over: it opens the log for writing
(which fails while the old writer holds the LOCK, even if only paused),
catches up to the log's end, appends a claim for the next epoch and becomes
the writer. Design and failure cases: docs/failover.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from streams.filelog import FileLog
from streams.log import Log, LogError
from streams.materializer import Materializer, remember_epoch

from . import fencing
from .session import now_ms

if TYPE_CHECKING:
    from .server import Connection, Server

log = logging.getLogger("fjord.replication")

#: how often a replica reports its offset and pings the writer
LINK_PERIOD_S = 0.1
#: how often a same-machine replica looks for new records when idle
POLL_S = 0.005
#: a PING unanswered this long counts as the writer lost
PING_TIMEOUT_S = 1.0


@dataclass
class ReplicaLink:
    """A replica as the writer sees it (one REPLCONF connection)."""

    conn_id: int
    ip: str
    port: int = 0
    offset: int = 0
    last_ack: float = field(default_factory=time.monotonic)


class Replication:
    """The node's role and everything that goes with it (``server.replication``)."""

    def __init__(self, server: "Server"):
        self.server = server
        #: writer side: REPLCONF connections by client id
        self.replicas: dict[int, ReplicaLink] = {}
        #: writer side: WAITing connections: (conn, delayed, target offset, numreplicas)
        self.waits: list[tuple] = []
        #: replica side
        self.materializer: Materializer | None = None
        self.link_up = False
        self.last_io = 0.0
        self.writer_lost_since: float | None = None
        self.promotions = 0
        self._promoting = False
        self._warned_unfenced = False
        #: (writer address, monotonic time) of the last PONG
        self._last_pong: tuple[tuple[str, int], float] | None = None
        self._told_held = False
        self._tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------ addresses

    @property
    def node_id(self) -> str:
        """Names this node in its claims (a prefix of INFO's run_id)."""
        return self.server.run_id[:16]

    @property
    def config(self):
        return self.server.config

    def own_addr(self) -> str:
        """The address this node advertises (claims, SENTINEL, REPLCONF)."""
        adv = self.config["advertise-addr"]
        if adv:
            return adv
        bind = self.config["bind"].split()[0]
        host = "127.0.0.1" if bind in ("0.0.0.0", "::", "*", "") else bind
        return f"{host}:{self.server.port}"

    def writer_addr(self) -> tuple[str, int] | None:
        """Where the writer is: the newest claim; this node if it writes
        and never claimed."""
        claim = fencing.current_claim(self.server.keyspace)
        if claim is not None:
            return claim.host_port
        if not self.server.is_replica:
            host, _, port = self.own_addr().rpartition(":")
            return host, int(port)
        return None

    @property
    def applied_offset(self) -> int:
        """Offset of the next record this node's state lacks."""
        if self.server.is_replica and self.materializer is not None:
            return self.materializer.offset
        log_ = self.server.log
        return log_.end_offset if log_ is not None else 0

    # ------------------------------------------------------------ start

    async def open_log(self) -> Log | None:
        """The log a replica starts on (None: the server opens its own)."""
        if not self.config["replica"]:
            return None
        self.server.is_replica = True
        if self.config["kafka-bootstrap"]:
            return None  # the server opens the topic; a replica only reads it
        src = self.config["replica-of-dir"]
        if not src:
            raise LogError("--replica needs --replica-of-dir (the writer's data directory on this machine)")
        path = os.path.join(src, "log")
        if not os.path.isdir(path):
            raise LogError(f"--replica-of-dir {src}: no log in {path} (start the writer first)")
        return await FileLog.open(path, readonly=True)

    async def load_writer_snapshot(self, start: int, progress) -> int:
        """A same-machine replica starts from the writer's newest snapshot
        (its retention may have deleted the segments before it); returns
        the offset to replay from. Reads only: the writer owns that
        directory. Kafka replicas replay the topic."""
        src = self.config["replica-of-dir"]
        if not src or not isinstance(self.server.log, FileLog):
            return start
        from .snapshotter import load_latest, snapshot_dir

        info, keys, seconds = await load_latest(self.server.keyspace, snapshot_dir(src),
                                                self.server.loading_end_offset, progress=progress)
        if info is None:
            return start
        log.info("loaded the writer's snapshot at offset %d (%d keys) in %.3f s", info.offset, keys, seconds)
        return info.offset

    async def started(self) -> None:
        """After the replay: a writer claims (if it should); a replica
        starts tailing and linking. Clients get -LOADING meanwhile."""
        srv = self.server
        if srv.is_replica:
            self._start_replica()
            return
        claim = fencing.current_claim(srv.keyspace)
        exclusive = fencing.is_exclusive(srv.log)
        if not exclusive and claim is not None and claim.addr != self.own_addr():
            # A shared log another node writes: follow it, take over only
            # through failover (so a deposed writer restarted stays deposed).
            log.info("the log's writer is %s (epoch %d): starting as its replica", claim.addr, claim.epoch)
            srv.is_replica = True
            srv.saver.enabled = False
            self._start_replica()
            return
        if self.config["advertise-addr"] or claim is not None:
            srv.loading = True
            try:
                await self.claim()
            finally:
                srv.loading = False

    def _start_replica(self) -> None:
        srv = self.server
        self.materializer = Materializer(srv.log, srv.keyspace, srv.replay_stats.next_offset,
                                         fencing.fence_for(srv.keyspace))
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._tail()), loop.create_task(self._link())]
        srv._tasks.extend(self._tasks)

    async def claim(self) -> int:
        """Append a claim for the next epoch and write under it."""
        srv = self.server
        epoch = fencing.current_epoch(srv.keyspace) + 1
        addr = self.own_addr()
        first = await srv.log.append([fencing.claim_payload(now_ms(), epoch, self.node_id, addr)])
        # On a shared log the old writer's last records may have landed
        # between our catching up and our claim: they count (they precede
        # it), so apply everything up to and including the claim.
        applied = self.materializer.offset if self.materializer is not None else srv.replay_stats.next_offset
        mat = Materializer(srv.log, srv.keyspace, applied, fencing.fence_for(srv.keyspace))
        await mat.catch_up(first + 1)
        remember_epoch(srv.log, mat.offset, mat.fence.epoch)
        won = fencing.current_claim(srv.keyspace)
        if won is None or won.node != self.node_id or won.epoch != epoch:
            raise fencing.FencedError(f"FENCED the claim for epoch {epoch} lost to {won}")
        if not fencing.is_exclusive(srv.log):
            srv.log = fencing.ConfirmingLog(srv.log, epoch, first + 1)
        srv.epoch = epoch
        log.info("claimed epoch %d at offset %d as %s (%s)", epoch, first, self.node_id, addr)
        return epoch

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()

    # ------------------------------------------------------------ replica: tail

    async def _tail(self) -> None:
        """Apply the writer's records as they land, forever."""
        srv = self.server
        idle = POLL_S
        while srv.is_replica or self._promoting:  # a failed takeover goes back to tailing
            if self._promoting:
                await asyncio.sleep(0.01)
                continue
            try:
                mat = self.materializer
                log_ = srv.log
                end = await log_.refresh() if isinstance(log_, FileLog) else log_.end_offset
                if end > mat.offset:
                    await mat.catch_up(end)
                    remember_epoch(log_, mat.offset, mat.fence.epoch)
                    self.last_io = time.monotonic()
                    if srv.blocking.ready:
                        srv.blocking.serve()
                    idle = POLL_S
                elif isinstance(log_, FileLog):
                    await asyncio.sleep(idle)
                    idle = min(idle * 2, 0.05)
                else:
                    await log_.wait_for(mat.offset, 1.0)
            except asyncio.CancelledError:
                raise
            except LogError as exc:
                log.error("replica lost its place in the log (%s); reloading it", exc)
                await self._reload()
            except Exception:  # noqa: BLE001 - keep serving reads, retry
                log.exception("replica apply failed; retrying")
                await asyncio.sleep(0.5)

    async def _reload(self) -> None:
        """Start over: reopen the writer's log and replay it whole."""
        srv = self.server
        srv.loading = True
        srv.keyspace.reset()
        try:
            start = srv.log.start_offset
            if isinstance(srv.log, FileLog):
                await srv.log.close()
                srv.log = await self.open_log()
                srv.loading_end_offset = srv.log.end_offset
                start = await self.load_writer_snapshot(srv.log.start_offset, None)
            self.materializer = Materializer(srv.log, srv.keyspace, start, fencing.fence_for(srv.keyspace))
            await self.materializer.catch_up()
        except Exception:  # noqa: BLE001
            log.exception("replica reload failed; retrying")
            await asyncio.sleep(0.5)
        finally:
            srv.loading = False
        if srv.extensions_started and isinstance(srv.log, FileLog):
            await srv.restart_extensions()  # views read the log object that was just replaced

    # ------------------------------------------------------------ replica: link

    async def _link(self) -> None:
        """Report the applied offset to the writer and watch that it lives."""
        srv = self.server
        while srv.is_replica:
            addr = self.writer_addr()
            if addr is not None and f"{addr[0]}:{addr[1]}" != self.own_addr():
                try:
                    await self._talk(addr)
                except asyncio.CancelledError:
                    raise
                except (OSError, asyncio.TimeoutError, ConnectionError, EOFError) as exc:
                    log.debug("link to the writer at %s:%d down: %s", addr[0], addr[1], exc)
            self.link_up = False
            if self.writer_lost_since is None:  # lost since the last word we had from this writer
                heard = self._last_pong
                self.writer_lost_since = heard[1] if heard is not None and heard[0] == addr else time.monotonic()
            timeout_ms = self.config["failover-timeout-ms"]
            if timeout_ms and (time.monotonic() - self.writer_lost_since) * 1000 >= timeout_ms:
                if await self.try_promote():
                    return
            await asyncio.sleep(LINK_PERIOD_S)

    async def _talk(self, addr: tuple[str, int]) -> None:
        # a PING unanswered for half the failover timeout (at most a second) means lost
        patience = min(PING_TIMEOUT_S, max(0.05, self.config["failover-timeout-ms"] / 2000)) \
            if self.config["failover-timeout-ms"] else PING_TIMEOUT_S
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*addr), patience)
        try:
            password = self.config["requirepass"]
            if password:  # every node of a deployment shares one password
                writer.write(_resp(b"AUTH", password.encode()))
                await asyncio.wait_for(_read_line(reader), patience)
            port = self.own_addr().rpartition(":")[2]
            writer.write(_resp(b"REPLCONF", b"listening-port", port.encode()))
            await asyncio.wait_for(_read_line(reader), patience)
            while self.server.is_replica and self.writer_addr() == addr:
                writer.write(_resp(b"REPLCONF", b"ACK", b"%d" % self.applied_offset) + _resp(b"PING"))
                await asyncio.wait_for(_read_line(reader), patience)  # the PONG
                self.link_up = True
                self.writer_lost_since = None
                self._last_pong = (addr, time.monotonic())
                self._told_held = False
                self.last_io = time.monotonic()
                await asyncio.sleep(LINK_PERIOD_S)
        finally:
            writer.close()

    # ------------------------------------------------------------ failover

    async def try_promote(self) -> bool:
        """Take over the log if nobody holds it; True if this node now writes."""
        self._promoting = True
        try:
            return await self._try_promote()
        finally:
            self._promoting = False

    async def _try_promote(self) -> bool:
        srv = self.server
        if not isinstance(srv.log, FileLog):
            return await self._promote_shared()
        src = self.config["replica-of-dir"]
        try:
            rw = await FileLog.open(os.path.join(src, "log"), segment_bytes=srv.config["log-segment-bytes"])
        except LogError as exc:
            if not self._told_held:
                log.info("writer unreachable but its log is still held (%s); staying a replica", exc)
                self._told_held = True
            return False
        self._told_held = False
        log.warning("writer lost for %d ms: taking over the log in %s", srv.config["failover-timeout-ms"], src)
        srv.loading = True
        old = srv.log
        try:
            await old.close()
            srv.log = rw
            self.materializer.log = rw
            await self.materializer.catch_up()  # what the old writer wrote after our last look
            srv.is_replica = False
            await self.claim()
        except Exception:
            log.exception("taking over the log failed; staying a replica")
            srv.is_replica = True
            await rw.close()
            srv.log = await self.open_log()
            self.materializer.log = srv.log
            srv.loading = False
            return False
        return await self._promoted()

    async def _promote_shared(self) -> bool:
        """Take over a shared log (Kafka): catch up to its end, claim the
        next epoch; the claim that comes first in the log wins, so a
        writer that is only slow finds it and steps down (store/fencing.py)."""
        srv = self.server
        if fencing.current_claim(srv.keyspace) is None:
            # an unfenced writer (no --advertise-addr) could never learn it
            # was deposed: taking over would make two writers
            if not self._warned_unfenced:
                log.warning("the writer claimed no epoch (start it with --advertise-addr): no failover")
                self._warned_unfenced = True
            return False
        log.warning("writer lost for %d ms: claiming the log", srv.config["failover-timeout-ms"])
        srv.loading = True
        lost = fencing.current_epoch(srv.keyspace)
        try:
            refresh = getattr(srv.log, "refresh", None)
            if refresh is not None:
                await refresh()
            await self.materializer.catch_up()
            if fencing.current_epoch(srv.keyspace) != lost:
                # another replica took over while we caught up: follow it
                # (claiming above it would depose a writer that is fine)
                log.info("epoch %d was claimed meanwhile: staying a replica", fencing.current_epoch(srv.keyspace))
                srv.loading = False
                self.writer_lost_since = None
                return False
            srv.is_replica = False
            await self.claim()
        except Exception as exc:  # noqa: BLE001 - lost the race, or the log is down
            log.warning("claiming the log failed (%s); staying a replica", exc)
            srv.is_replica = True
            srv.epoch = None
            inner = getattr(srv.log, "inner", None)
            if inner is not None:
                srv.log = inner
            # our own claim, if it lost, is skipped by the fence like any other
            self.materializer = Materializer(srv.log, srv.keyspace, srv.log.start_offset,
                                             fencing.EpochFence(0 if srv.log.start_offset == 0 else None))
            srv.keyspace.reset()
            await self.materializer.catch_up()
            srv.loading = False
            self.writer_lost_since = None  # give the winner a full failover timeout
            return False
        return await self._promoted()

    async def _promoted(self) -> bool:
        """The claim is won (file lock or epoch claim): this node writes now."""
        srv = self.server
        srv.committer = srv.new_committer()
        self.promotions += 1
        self.link_up = False
        srv.loading = False
        log.warning("promoted: this node is the writer (epoch %d)", srv.epoch)
        await self._writer_up()
        return True

    async def _writer_up(self) -> None:
        """A promoted replica runs what a writer runs, without a restart:
        snapshots, retention (file log) and the extensions (the trigger
        dispatcher starts delivering; views restart on the new log object).
        On the file log the node now owns the old writer's data directory,
        so ``dir`` becomes it: snapshots, retention holds and trigger
        checkpoints continue there."""
        srv = self.server
        try:
            if isinstance(srv.log, FileLog) and self.config["replica-of-dir"]:
                srv.config.set("dir", self.config["replica-of-dir"])
            inner = srv.log.inner if isinstance(srv.log, fencing.ConfirmingLog) else srv.log
            srv.saver.enabled = inner.shared
            if srv.saver.enabled:
                from .snapshotter import bind_to_log
                try:
                    await bind_to_log(srv.saver.directory, inner)
                    await asyncio.get_running_loop().run_in_executor(None, srv.saver.refresh)
                except Exception as exc:  # noqa: BLE001 - a writer without snapshots still writes
                    log.error("promoted, but no snapshots will be taken: %s", exc)
                    srv.saver.enabled = False
            srv.start_writer_services()
            await srv.restart_extensions()
        except Exception:  # noqa: BLE001 - the node writes; say what it lacks
            log.exception("promoted, but starting the writer's services failed")

    async def resync(self) -> None:
        """Rebuild a replica's state from the log (after a stray emit)."""
        if self.server.is_replica:
            await self._reload()

    def step_down(self, reason: str) -> None:
        """A newer claim deposed this writer (shared logs only): refuse
        writes from now on and follow the log as a replica once the
        server's rebuild is done; clients find the new writer through
        SENTINEL (and redis-py's Sentinel client reconnects on -READONLY)."""
        srv = self.server
        if srv.is_replica:
            return
        log.error("stepping down: %s", reason)
        srv.is_replica = True
        srv.epoch = None
        srv._tasks.append(asyncio.get_running_loop().create_task(self._follow_after_rebuild()))

    async def _follow_after_rebuild(self) -> None:
        srv = self.server
        # the trigger dispatcher stops delivering now, not at its next reconcile
        await srv.stop_extensions()
        srv.stop_writer_services()
        while srv.loading or srv.replay_stats is None:
            await asyncio.sleep(0.01)
        inner = getattr(srv.log, "inner", None)
        if inner is not None:
            srv.log = inner
        self._start_replica()
        committer, srv.committer = srv.committer, None  # a replica cannot append
        if committer is not None:
            try:
                await committer.close()
            except Exception:  # noqa: BLE001 - its records were refused already
                log.debug("closing the deposed writer's committer", exc_info=True)
        await srv.start_extensions()

    # ------------------------------------------------------------ writer: REPLCONF / WAIT

    def replconf(self, conn_id: int, ip: str, option: bytes, value: bytes) -> bool:
        """Record what a replica tells us; True if the reply is +OK (ACK has none)."""
        link = self.replicas.get(conn_id)
        if link is None:
            link = self.replicas[conn_id] = ReplicaLink(conn_id, ip)
        if option == b"listening-port":
            link.port = int(value)
        elif option == b"ip-address":
            link.ip = value.decode("utf-8", "replace")
        elif option == b"ack":
            link.offset = int(value)
            link.last_ack = time.monotonic()
            if self.waits:
                self._check_waits()
            return False
        return True

    def live_replicas(self) -> list[ReplicaLink]:
        clients = self.server.clients
        for cid in [c for c in self.replicas if c not in clients]:
            del self.replicas[cid]
        return [r for r in self.replicas.values() if r.port]

    def acked(self, target: int) -> int:
        return sum(1 for r in self.live_replicas() if r.offset >= target)

    def write_target(self, conn: "Connection | None") -> int:
        """The log offset the client's writes end at (as Redis's WAIT uses
        the client's own replication offset): after its last record."""
        last = getattr(conn.session, "last_offset", None) if conn is not None else None
        if last is not None and last >= 0:
            return last + 1
        if last is not None:
            return 0  # no writes yet: every linked replica counts
        srv = self.server
        c = srv.committer
        return srv.log.end_offset + (c.staged - c.durable if c is not None else 0)

    def wait(self, conn: "Connection", numreplicas: int, timeout_ms: int, delayed_cls):
        target = self.write_target(conn)
        n = self.acked(target)
        if n >= numreplicas or conn is None:
            return n
        delayed = delayed_cls(n, None)
        entry = [conn, delayed, target, numreplicas, None]
        if timeout_ms:
            entry[4] = asyncio.get_running_loop().call_later(timeout_ms / 1000, self._wait_timeout, entry)
        self.waits.append(entry)
        return delayed

    def _release(self, entry, count: int) -> None:
        conn, delayed = entry[0], entry[1]
        if entry in self.waits:
            self.waits.remove(entry)
        if entry[4] is not None:
            entry[4].cancel()
        if self.server.blocking.clients.get(conn) is delayed:
            delayed.reply = count
            self.server.blocking.unblock(conn, False)

    def _wait_timeout(self, entry) -> None:
        entry[4] = None
        self._release(entry, self.acked(entry[2]))

    def _check_waits(self) -> None:
        for entry in list(self.waits):
            conn = entry[0]
            if conn.closed or self.server.blocking.clients.get(conn) is not entry[1]:
                self.waits.remove(entry)
                if entry[4] is not None:
                    entry[4].cancel()
                continue
            n = self.acked(entry[2])
            if n >= entry[3]:
                self._release(entry, n)

    # ------------------------------------------------------------ INFO / ROLE

    def info_fields(self) -> list[tuple[str, object]]:
        srv = self.server
        claim = fencing.current_claim(srv.keyspace)
        end = srv.log.end_offset if srv.log is not None else 0
        if srv.is_replica:
            addr = self.writer_addr() or ("", 0)
            applied = self.applied_offset
            return [
                ("role", "slave"),
                ("master_host", addr[0]),
                ("master_port", addr[1]),
                ("master_link_status", "up" if self.link_up else "down"),
                ("master_last_io_seconds_ago", int(time.monotonic() - self.last_io) if self.last_io else -1),
                ("master_sync_in_progress", 0),
                ("slave_read_repl_offset", end),
                ("slave_repl_offset", applied),
                ("slave_priority", 100),
                ("slave_read_only", 1),
                ("replica_announced", 1),
                ("connected_slaves", 0),
                ("master_failover_state", "no-failover"),
                ("master_replid", srv.run_id),
                ("master_repl_offset", applied),
                ("fjord_replica_lag_records", max(end - applied, 0)),
                ("fjord_epoch", claim.epoch if claim else 0),
            ]
        replicas = self.live_replicas()
        now = time.monotonic()
        fields: list[tuple[str, object]] = [("role", "master"), ("connected_slaves", len(replicas))]
        for i, r in enumerate(replicas):
            fields.append((f"slave{i}", f"ip={r.ip},port={r.port},state=online,offset={r.offset},"
                                        f"lag={int(now - r.last_ack)}"))
        fields += [
            ("master_failover_state", "no-failover"),
            ("master_replid", srv.run_id),
            ("master_repl_offset", end),
            ("fjord_epoch", srv.epoch or 0),
            ("fjord_promotions", self.promotions),
        ]
        return fields

    def role(self) -> list:
        srv = self.server
        if srv.is_replica:
            host, port = self.writer_addr() or ("", 0)
            return [b"slave", host.encode(), port, b"connected" if self.link_up else b"connect",
                    self.applied_offset]
        end = srv.log.end_offset if srv.log is not None else 0
        return [b"master", end,
                [[r.ip.encode(), str(r.port).encode(), str(r.offset).encode()] for r in self.live_replicas()]]


def _resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    line = await reader.readline()
    if not line:
        raise EOFError("the writer closed the link")
    if line.startswith(b"-") and not line.startswith(b"-LOADING"):  # loading: alive, busy
        raise ConnectionError(line.decode("utf-8", "replace").strip())
    return line
