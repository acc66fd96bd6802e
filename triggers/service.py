"""``TriggerService``: runs a ``Runner`` (triggers/dispatcher.py) for every
subscription in the registry, and answers the management surfaces.

Two ways to run it, one code path:

- **inside ``fjord serve``** (``triggers yes``, the default): ``attach(server)``
  adds the service to ``Server.extensions``; it starts once the replay is
  done and reads the server's own log and ``keyspace.meta``.
- **as its own process** (``fjord triggers run --dir D``, with the server on
  ``triggers no``): the log is opened read-only and tailed (``FileLog
  .refresh``), and the registry is rebuilt from the newest snapshot's
  metadata plus the log's ``fjord-meta-*`` events (``registry.MetaFollower``).

The service compares the registry with its runners a few times a second:
a new subscription gets a runner, a deleted one loses it (its checkpoint
is removed, its dead letters kept under a ``.deleted-<time>`` name), a
changed one is updated (pause/resume) or restarted. Files live in
``<dir>/triggers/``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from typing import Callable

from . import registry
from .checkpoint import Checkpoint, triggers_dir
from .deadletter import DeadLetters
from .dispatcher import Runner
from .subscription import Subscription

log = logging.getLogger("fjord.triggers")

#: how often the registry is compared with the running runners (seconds)
RECONCILE_SECONDS = 0.1


def default_sink_factory(fjord_url: str | None = None) -> Callable[[Subscription], object]:
    def make(sub: Subscription):
        from .sinks import make_sink

        return make_sink(sub, fjord_url=fjord_url)
    return make


class TriggerService:
    """Runners for every subscription of one log; see the module doc."""

    def __init__(self, *, data_dir: str | None = None, sink_factory: Callable | None = None,
                 databases: int = 16, position_writer: Callable[[str, int, int], None] | None = None):
        self.data_dir = data_dir
        self._given_data_dir = data_dir
        self.sink_factory = sink_factory
        self.databases = databases
        #: logs a runner's position (default inside a server: ``_publish_position``)
        self.position_writer = position_writer
        self.server = None
        self.log = None
        self.meta: dict | None = None
        self.runners: dict[str, Runner] = {}
        self._stored: dict[str, dict] = {}
        self._task: asyncio.Task | None = None
        self._follower_task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self.consumers = None

    # ------------------------------------------------------------ lifecycle

    async def start(self, server) -> None:
        """``Server.extensions`` hook: run over the server's own log."""
        self.server = server
        # re-read at every start: a promoted file-log replica's dir becomes
        # the old writer's (store/replication.py), where the checkpoints are
        self.data_dir = self._given_data_dir or server.config["dir"]
        self.databases = server.config["databases"]
        if self.sink_factory is None:
            host = server.config["bind"].split()[0]
            if host in ("0.0.0.0", "::", "*"):
                host = "127.0.0.1"
            self.sink_factory = default_sink_factory(f"redis://{host}:{server.port}")
        await self._begin(server.log, server.keyspace.meta)

    async def start_on(self, log_, meta: dict) -> None:
        """Run over any log and registry (``fjord triggers run``, tests)."""
        if self.sink_factory is None:
            self.sink_factory = default_sink_factory()
        await self._begin(log_, meta)

    async def _begin(self, log_, meta: dict) -> None:
        self.log = log_
        self.meta = meta
        from streams.filelog import FileLog

        if isinstance(log_, FileLog) and self.data_dir:
            from store.retention import ConsumerRegistry

            self.consumers = ConsumerRegistry(self.data_dir)
        await self.reconcile()
        if not getattr(self.server, "is_replica", False):  # a replica's registry is not its to clean
            await asyncio.to_thread(self._release_orphans)
        self._task = asyncio.get_running_loop().create_task(self._reconcile_loop())

    async def stop(self) -> None:
        for t in (self._task, self._follower_task):
            if t is not None:
                t.cancel()
                try:
                    await t
                except (asyncio.CancelledError, Exception):  # noqa: BLE001
                    pass
        self._task = self._follower_task = None
        await self._stop_all()

    async def _stop_all(self) -> None:
        """Stop every runner, keeping its checkpoint."""
        runners, self.runners = self.runners, {}
        self._stored.clear()
        await asyncio.gather(*(r.stop() for r in runners.values()), return_exceptions=True)

    @property
    def directory(self) -> str:
        return triggers_dir(self.data_dir or ".")

    @property
    def snapshot_dir(self) -> str | None:
        return os.path.join(self.data_dir, "snapshots") if self.data_dir else None

    # ------------------------------------------------------------ registry

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(RECONCILE_SECONDS)
            try:
                await self.reconcile()
            except Exception:  # noqa: BLE001 - keep serving the other triggers
                log.exception("trigger service: reconciling the registry failed")

    async def reconcile(self) -> None:
        """Make the runners match the registry."""
        if self.server is not None and self.server.loading:
            return  # the keyspace (and with it the registry) is being rebuilt: it is not the truth now
        if self.server is not None and getattr(self.server, "is_replica", False):
            await self._stop_all()  # only the writer delivers (a promoted replica starts then)
            return
        async with self._lock:
            wanted = {sub.name: sub for sub in registry.all_subscriptions(self.meta)}
            for name in [n for n in self.runners if n not in wanted]:
                runner = self.runners[name]
                await runner.stop(save=False)
                await asyncio.to_thread(self._forget, runner)
                del self.runners[name]
                self._stored.pop(name, None)
                log.info("trigger %s deleted", name)
            for name, sub in wanted.items():
                stored = sub.to_json()
                if self._stored.get(name) == stored:
                    continue
                runner = self.runners.get(name)
                old = self._stored.get(name)
                if runner is not None and old is not None and \
                        {k: v for k, v in old.items() if k != "paused"} == \
                        {k: v for k, v in stored.items() if k != "paused"}:
                    runner.update(sub)
                else:
                    if runner is not None:
                        await runner.stop()
                        if old is not None and old.get("created") != stored.get("created"):
                            await asyncio.to_thread(self._forget, runner)
                    runner = self._make_runner(sub)
                    self.runners[name] = runner
                    await runner.start()
                    log.info("trigger %s: delivering from offset %d", name, runner._start_offset)
                self._stored[name] = stored

    def _release_orphans(self) -> None:
        """Triggers deleted while no dispatcher ran still hold the log
        (retention) and have a checkpoint: let both go."""
        if self.consumers is None:
            return
        from .checkpoint import consumer_name

        live = {consumer_name(name) for name in self.runners}
        for hold in self.consumers.all():
            if hold.name.startswith("trigger-") and hold.name not in live:
                name = hold.name[len("trigger-"):]
                if registry.get(self.meta, name) is None:
                    Checkpoint(self.directory, name, self.consumers).remove_sync()
                    log.info("released the log hold of deleted trigger %s", name)

    def _make_runner(self, sub: Subscription) -> Runner:
        return Runner(sub, self.log, self.sink_factory, directory=self.directory, databases=self.databases,
                      snapshot_dir=self.snapshot_dir, consumers=self.consumers, on_disable=self._disabled,
                      publish_position=self.position_writer or (self._publish_position if self.server else None),
                      logged_position=registry.logged_position(self.meta, sub.name))

    def _publish_position(self, name: str, offset: int, created: int) -> None:
        """Log a runner's position as the writer (never while loading, on a
        replica, or while appends fail)."""
        server = self.server
        if server is None or server.committer is None or server.loading or server.write_error is not None \
                or getattr(server, "is_replica", False) or registry.get(self.meta, name) is None:
            return
        from store.session import Session

        session = Session(server, server.keyspace, 0, "triggers", "")
        registry.emit_position(session, name, offset, created)
        server.commit(session)

    @staticmethod
    def _forget(runner: Runner) -> None:
        runner.checkpoint.remove_sync()
        runner.dlq.retire_sync()

    def _disabled(self, name: str, reason: str) -> None:
        """A receiver disabled ``name`` (HTTP 410): pause it durably when
        this process owns the log; else it stays disabled in its checkpoint."""
        log.warning("trigger %s disabled: %s", name, reason)
        server = self.server
        if server is None or server.committer is None:
            return
        from store.session import Session

        session = Session(server, server.keyspace, 0, "triggers", "")
        if server.loading or server.write_error is not None or getattr(server, "is_replica", False):
            return
        if registry.emit_set_paused(session, name, True) and session.events:
            server.commit(session)

    # ------------------------------------------------------------ management

    def list(self) -> list[dict]:
        return [self.info(name) for name in sorted(self.runners)]

    def info(self, name: str) -> dict:
        """Public definition plus delivery statistics (KeyError: unknown)."""
        runner = self.runners[name]
        out = runner.sub.public()
        out.update(runner.stats())
        return out

    async def dlq(self, name: str, count: int = 10) -> list[dict]:
        if name in self.runners:
            return await asyncio.to_thread(self.runners[name].dlq.read, count)
        return await asyncio.to_thread(DeadLetters(self.directory, name).read, count)

    async def redrive(self, name: str) -> int:
        return await self.runners[name].redrive()


def attach(server) -> TriggerService:
    """Run the trigger service inside ``server`` (store/cli.py ``serve``)."""
    service = TriggerService()
    server.extensions.append(service)
    return service


# ------------------------------------------------------------------ fjord triggers run


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", "--data-dir", dest="dir", default="./data", metavar="PATH",
                   help="data directory of the server (default: ./data)")
    p.add_argument("--databases", type=int, default=16, help="number of databases (default: 16)")
    p.add_argument("--fjord-url", default=None,
                   help="redis://host:port of the server, for functions that write back")
    p.add_argument("--loglevel", default="notice", help="debug, verbose, notice or warning")


def run_standalone(ns: argparse.Namespace) -> int:
    """``fjord triggers run``: deliver from a data directory until SIGTERM."""
    import signal

    from store.config import LOG_LEVELS

    logging.basicConfig(level=LOG_LEVELS.get(getattr(ns, "loglevel", "notice"), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> int:
        from store.snapshotting import load_types
        from streams.filelog import FileLog
        from streams.log import LogError

        load_types()
        data_dir = ns.dir
        try:
            flog = await FileLog.open(os.path.join(data_dir, "log"), readonly=True)
        except LogError as exc:
            log.error("%s", exc)
            return 1
        follower = registry.MetaFollower(flog, os.path.join(data_dir, "snapshots"))
        await asyncio.to_thread(follower.load_snapshot)
        service = TriggerService(data_dir=data_dir, databases=getattr(ns, "databases", 16),
                                 sink_factory=default_sink_factory(getattr(ns, "fjord_url", None)))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        # the registry must be current before runners start: catch up first
        catch_up = loop.create_task(follower.follow())
        target = flog.end_offset
        while not follower.caught_up(target) and not catch_up.done():
            await asyncio.sleep(0.01)
        await service.start_on(flog, follower.meta)
        service._follower_task = catch_up
        from .http import start_dispatcher_admin
        admin = await start_dispatcher_admin(service, ns)
        log.info("trigger dispatcher running over %s", data_dir)
        await stop.wait()
        if admin is not None:
            await admin.stop()
        await service.stop()
        await flog.close()
        return 0

    return asyncio.run(main())
