"""The embedded view host: runs views inside ``fjord serve`` (or ``fjord views
run``) over the server's log, with key images from the change feed.

Each view gets a ``ViewRunner`` (streams/views/runner.py). One shared
``RecordFeed`` carries them all: the triggers change feed
(triggers/changefeed.py) read a record at a time, so every batch handed to a
runner ends on a record boundary and a checkpoint (state + offset, one
atomic file under ``<dir>/views/``) never splits a MULTI/EXEC. The feed
keeps one shadow keyspace for the images when any view needs them. A view
that must start over (new, changed, ``FJORD.VIEW REBUILD``) folds on a
private feed until it reaches the shared one's position, then joins it, so
the others keep running meanwhile.

Start-up: a view resumes from its checkpoint when its fingerprint matches;
otherwise (new view, changed definition, ``FJORD.VIEW REBUILD``) it starts
over from the log's start, or, when retention already deleted that, from the
newest snapshot: keyed views (aggregates, index, top-N) then begin from the
snapshot's keys, which gives the same state; a ``Latest`` feed simply
has no events from before the snapshot.

Write-back: a view with ``writeback=True`` keeps each touched group as an
ordinary Redis key ``__view:<name>:<group>``, written by a server session
whose records carry origin ``view:<name>``. Views never consume keys under
``__view:`` nor records of their own origin, so write-back cannot loop.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import os
import sys
from typing import TYPE_CHECKING

from streams.views.runner import ViewRunner
from streams.views.state import CheckpointStore
from streams.views.view import RESERVED_PREFIX, Change, View, as_view_list

from .changefeed import ChangeFeed, image_of, raw_image, record_changes  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from store.server import Server

log = logging.getLogger("fjord.viewhost")

#: how often each view's retention hold is refreshed
HOLD_SECONDS = 5.0


def load_views(spec: str) -> list[View]:
    """Views from ``spec``: an importable module name or a path to a .py
    file (a module's ``VIEWS`` list, else its top-level ``View`` objects)."""
    spec = spec.strip()
    if spec.endswith(".py") or os.sep in spec:
        path = os.path.abspath(spec)
        name = "fjord_views_" + os.path.splitext(os.path.basename(path))[0]
        mod_spec = importlib.util.spec_from_file_location(name, path)
        if mod_spec is None or mod_spec.loader is None:
            raise ImportError(f"cannot load views from {spec}")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module  # inspect.getsource (fingerprints) finds it there
        mod_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(spec)
    views = as_view_list(module)
    for v in views:
        if not v.name or any(c in v.name for c in " /\\\0:") or v.name.startswith("."):
            raise ValueError(f"bad view name {v.name!r} (no spaces, slashes or colons)")
    return views


def images_mode(views) -> str | None:
    """What a feed must compute for ``views``: None, "raw" or "json"."""
    modes = {v.images for v in views}
    if modes - {False, None, "raw"}:
        return "json"
    return "raw" if "raw" in modes else None


class RecordFeed(ChangeFeed):
    """The change feed read a whole record at a time (``batches()``, so a
    runner's position is always a record boundary), plus the synthetic
    changes that seed a keyed view from a snapshot."""

    def seed_changes(self, view: View) -> list[Change]:
        """Synthetic changes that give a keyed view the shadow's keys (a
        rebuild that starts from a snapshot; ``prepare()`` first)."""
        from streams.events import Event

        out = []
        at = self.position - 1
        for db in self.shadow.dbs:
            for key, value in db.data.items():
                image = raw_image(value) if view.images == "raw" else image_of(value)
                out.append(Change(at, 0, 0, None, Event("set", db.index, key, {}), None, image))
        return out


class HostedView:
    """One view and its runner; while rebuilding (or starting from a
    snapshot) also the private feed that brings it up to the shared one."""

    def __init__(self, host: "ViewHost", view: View):
        self.host = host
        self.view = view
        self.runner: ViewRunner | None = None
        self.task: asyncio.Task | None = None

    def make_runner(self, *, rebuild: bool = False) -> ViewRunner:
        host = self.host
        if rebuild:
            host.store.delete(self.view.name)
        log_ = host.log
        on_touched = host.write_back if self.view.writeback else None
        runner = ViewRunner(self.view, host.store, end_offset=lambda: log_.end_offset, on_touched=on_touched,
                            checkpoint_seconds=host.checkpoint_seconds)
        if rebuild:
            runner.rebuilds += 1
            runner.rebuild_reason = "requested"
        runner.target_offset = log_.end_offset
        self.runner = runner
        return runner

    def start_private(self) -> None:
        """Fold on a feed of its own until the shared feed's position."""
        host, runner = self.host, self.runner
        start = runner.next_offset
        seed = start < host.log.start_offset  # the records it needs are gone: start from a snapshot
        if seed:
            start = host.newest_snapshot_offset()
        feed = RecordFeed(host.log, start, images=images_mode([self.view]), databases=host.databases,
                          snapshot_dir=host.snapshot_dir)
        self.task = asyncio.get_running_loop().create_task(self._run_private(feed, seed))

    async def _run_private(self, feed: RecordFeed, seed: bool) -> None:
        runner, host = self.runner, self.host
        runner.running = True
        try:
            if seed:
                await feed.prepare()
                runner.state = self.view.initial()
                runner.feed(feed.position, feed.seed_changes(self.view))
                if not feed.images:
                    feed.shadow = None  # only the seed needed it
                log.info("view %s: started from the snapshot at offset %d", self.view.name, feed.position)
            if runner.next_offset < host.shared_position():
                async for next_offset, changes in feed.batches():
                    runner.feed(next_offset, changes)
                    runner.maybe_checkpoint()
                    if runner.next_offset >= host.shared_position():
                        break
            # Between two records of the shared feed: every record below its
            # position has gone to its views, the ones from it on will come
            # to this one too (records it already has are skipped by offset).
            host.shared.add(self)
            log.info("view %s: caught up at offset %d", self.view.name, runner.next_offset)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken view stops alone, visibly
            runner.errors += 1
            runner.last_error = f"stopped: {type(exc).__name__}: {exc}"
            runner.running = False
            log.exception("view %s stopped", self.view.name)
        finally:
            self.task = None

    async def stop(self) -> None:
        self.host.shared.discard(self)
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
            self.task = None
        if self.runner is not None:
            self.runner.running = False
            try:
                await self.runner.flush()
            except Exception:  # noqa: BLE001
                log.exception("view %s: final checkpoint failed", self.view.name)


class ViewHost:
    """Server extension (``Server.extensions``) running a set of views.

    One shared feed (one read of the log, one shadow keyspace when images
    are needed) carries every view that is caught up; a view that must
    start over gets a private feed until it reaches the shared position.
    """

    def __init__(self, views: list[View], *, data_dir: str, databases: int = 16,
                 checkpoint_seconds: float = 1.0):
        self.views = {v.name: HostedView(self, v) for v in views}
        self.data_dir = data_dir
        self.databases = databases
        self.checkpoint_seconds = checkpoint_seconds
        self.store = CheckpointStore(os.path.join(data_dir, "views"))
        self.snapshot_dir: str | None = None
        self.server: "Server | None" = None
        self.log = None
        self._writer = None
        self.shared: set[HostedView] = set()
        self.feed: RecordFeed | None = None
        self._task: asyncio.Task | None = None
        self._holder: asyncio.Task | None = None

    async def start(self, server: "Server") -> None:
        self.server = server
        from store.session import Session

        self._writer = Session(server, server.keyspace, 0, "view-writeback", "")
        await self.start_on(server.log, snapshot_dir=os.path.join(self.data_dir, "snapshots")
                            if server.saver.enabled else None)

    async def start_on(self, log_, *, snapshot_dir: str | None = None) -> None:
        """Run every view over ``log_`` (the server's, or a read-only one)."""
        self.log = log_
        self.snapshot_dir = snapshot_dir
        hosted = list(self.views.values())
        for hv in hosted:
            hv.make_runner()
        together = [hv for hv in hosted if hv.runner.next_offset >= log_.start_offset]
        start = min((hv.runner.next_offset for hv in together), default=log_.end_offset)
        self.feed = RecordFeed(log_, start, images=images_mode([hv.view for hv in hosted]),
                               databases=self.databases, snapshot_dir=snapshot_dir)
        for hv in together:
            hv.runner.running = True
            self.shared.add(hv)
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run_shared())
        for hv in hosted:
            if hv not in self.shared:
                hv.start_private()
        if snapshot_dir is not None:  # a file log with retention: keep what the views still need
            self._holder = loop.create_task(self._hold_log())

    def shared_position(self) -> int:
        return self.feed.position

    async def _run_shared(self) -> None:
        try:
            async for next_offset, changes in self.feed.batches():
                offset = next_offset - 1
                for hv in tuple(self.shared):
                    runner = hv.runner
                    if runner.next_offset <= offset:  # else restored further on: not yet
                        runner.feed(next_offset, changes)
                        runner.maybe_checkpoint()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the views' feed stopped")
            for hv in self.shared:
                hv.runner.running = False
                hv.runner.last_error = "stopped: the feed failed (see the server log)"
            raise

    async def stop(self) -> None:
        for task in (self._holder, self._task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001
                    pass
        for hv in list(self.views.values()):
            await hv.stop()

    async def _hold_log(self) -> None:
        """Register each view's checkpoint offset with the retention's
        consumer registry (store/retention.py), so the log it resumes from
        is not deleted under it; refreshed every few seconds."""
        from store.retention import ConsumerRegistry

        registry = ConsumerRegistry(self.data_dir)
        loop = asyncio.get_running_loop()
        held: dict[str, int] = {}
        while True:
            for name, hv in self.views.items():
                if hv.runner is None:
                    continue
                offset = hv.runner._saved_offset
                if held.get(name) != offset:
                    try:
                        await loop.run_in_executor(None, registry.hold, f"view:{name}", offset)
                        held[name] = offset
                    except (OSError, ValueError) as exc:
                        log.warning("view %s: cannot hold the log at %d: %s", name, offset, exc)
            await asyncio.sleep(HOLD_SECONDS)

    def newest_snapshot_offset(self) -> int:
        from streams import snapshot

        if self.snapshot_dir is None:
            return self.log.start_offset
        found = [s.offset for s in snapshot.list_snapshots(self.snapshot_dir) if s.offset <= self.log.end_offset]
        return max(found) if found else self.log.start_offset

    # ------------------------------------------------------------ queries

    def runner(self, name: str) -> ViewRunner:
        hv = self.views.get(name)
        if hv is None or hv.runner is None:
            raise KeyError(name)
        return hv.runner

    async def rebuild(self, name: str) -> None:
        hv = self.views[name]
        await hv.stop()
        hv.make_runner(rebuild=True)
        hv.start_private()

    def info(self, name: str) -> dict:
        hv = self.views[name]
        return {**hv.view.describe(), **(hv.runner.stats() if hv.runner else {})}

    # ------------------------------------------------------------ write-back

    def write_back(self, runner: ViewRunner, groups: set) -> None:
        """Keep ``__view:<name>:<group>`` equal to the view's value for each
        touched group, as one record with origin ``view:<name>``."""
        server, s = self.server, self._writer
        if server is None or s is None or server.loading or server.is_replica or server.write_error:
            return
        view = runner.view
        prefix = RESERVED_PREFIX + view.name.encode() + b":"
        s.origin = f"view:{view.name}"
        db = view.db or 0
        s.select(db)
        data = server.keyspace.dbs[db].data
        for group in sorted(groups):
            key = prefix + group
            value = view.writeback_value(runner.state, group)
            if key in data:
                s.emit("del", key, {})
            if value is None:
                continue
            kind, v = value
            if kind == "string":
                s.emit("set", key, {"value": v, "expire_at": None})
            elif kind == "set":
                s.emit("sadd", key, {"members": list(v)})
            elif kind == "zset":
                s.emit("zadd", key, {"members": [[float(score), m] for m, score in v]})
            elif kind == "list":
                s.emit("rpush", key, {"elements": list(v)})
        if s.events:
            server.commit(s)


def attach(server: "Server") -> ViewHost | None:
    """Add the view host to ``server`` when ``views`` names a module."""
    from . import viewcommands  # registers FJORD.VIEW (which says so when no views are loaded)

    spec = server.config["views"]
    if not spec:
        return None
    try:
        views = load_views(spec)
    except Exception as exc:  # noqa: BLE001 - a bad module stops start-up with its reason
        log.error("cannot load views from %s: %s: %s", spec, type(exc).__name__, exc)
        raise SystemExit(1) from exc
    host = ViewHost(views, data_dir=server.config["dir"], databases=server.config["databases"])
    server.views = host
    server.extensions.append(host)
    viewcommands.add_http(server, host)
    return host


class ShadowImager:
    """Images for the Kafka runner: a shadow keyspace advanced record by
    record (streams/ cannot build one: it knows no data types)."""

    def __init__(self, databases: int = 16, mode: str = "json"):
        from store.keyspace import Keyspace
        from store.snapshotting import load_types

        load_types()
        self.shadow = Keyspace(databases)
        self.mode = mode

    def changes(self, record) -> list[Change]:
        return record_changes(self.shadow, record, self.mode)
