"""``fjord views run``: views in their own process.

Two modes, the same view definitions:

- file log: ``fjord views run --views M --data-dir D`` reads the server's
  log read-only (the server runs without ``--views``), checkpoints under
  ``D/views/``, serves ``/views`` on ``--admin-port`` when given;
- Kafka: ``fjord views run --views M --kafka-bootstrap B --kafka-topic T
  --group G --checkpoint-dir C`` joins consumer group ``G``; start several
  for scale-out and fail-over (streams/views/kafka_runner.py).

It stops on SIGINT/SIGTERM after a last checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

log = logging.getLogger("fjord.views")


def add_parser(sub) -> None:
    p = sub.add_parser("views", help="run materialized views in their own process",
                       description="Run materialized views outside the server (see README 'Materialized views').")
    vsub = p.add_subparsers(dest="views_cmd", required=True)
    r = vsub.add_parser("run", help="fold the log into the views of --views until stopped")
    r.add_argument("--views", required=True, metavar="MODULE", help="module name or path to a .py file")
    r.add_argument("--data-dir", default="./data", metavar="PATH", help="the server's data directory (file log)")
    r.add_argument("--kafka-bootstrap", default="", metavar="HOST:PORT", help="run as a Kafka consumer-group worker")
    r.add_argument("--kafka-topic", default="", metavar="TOPIC", help="the Fjord topic (default fjord.default.log)")
    r.add_argument("--group", default="fjord-views", help="Kafka consumer group id (default fjord-views)")
    r.add_argument("--checkpoint-dir", default="", metavar="PATH",
                   help="where checkpoints live (default DATA_DIR/views; shared by a group's workers)")
    r.add_argument("--checkpoint-seconds", type=float, default=1.0, help="seconds between checkpoints")
    r.add_argument("--admin-port", type=int, default=0, help="HTTP /views and /metrics (file log mode)")
    r.add_argument("--databases", type=int, default=16)


def run(ns) -> int:
    from .viewhost import load_views

    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    try:
        views = load_views(ns.views)
    except Exception as exc:  # noqa: BLE001
        log.error("cannot load views from %s: %s: %s", ns.views, type(exc).__name__, exc)
        return 1
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    return runner(_kafka(ns, views) if ns.kafka_bootstrap else _file(ns, views))


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _kafka(ns, views) -> int:
    from streams.kafkalog import topic_for
    from streams.views.kafka_runner import KafkaViewWorker

    from .viewhost import ShadowImager, images_mode

    worker = KafkaViewWorker(
        ns.kafka_bootstrap, ns.kafka_topic or topic_for(), views, group_id=ns.group,
        checkpoint_dir=ns.checkpoint_dir or os.path.join(ns.data_dir, "views"),
        imager_factory=lambda: ShadowImager(ns.databases, images_mode(views) or "json"),
        checkpoint_seconds=ns.checkpoint_seconds,
    )
    await worker.start()
    log.info("view worker in group %s on %s: %s", ns.group, worker.topic, ", ".join(v.name for v in views))
    try:
        await _until_signalled()
    finally:
        await worker.stop()
    return 0


async def _file(ns, views) -> int:
    from streams.filelog import FileLog

    from .viewhost import ViewHost

    log_ = await FileLog.open(os.path.join(ns.data_dir, "log"), readonly=True)
    host = ViewHost(views, data_dir=ns.data_dir, databases=ns.databases,
                    checkpoint_seconds=ns.checkpoint_seconds)
    if ns.checkpoint_dir:
        from streams.views.state import CheckpointStore
        host.store = CheckpointStore(ns.checkpoint_dir)
    snapshots = os.path.join(ns.data_dir, "snapshots")
    await host.start_on(log_, snapshot_dir=snapshots if os.path.isdir(snapshots) else None)
    site = None
    if ns.admin_port:
        site = await _serve_http(host, ns.admin_port)
    log.info("views running over %s: %s", ns.data_dir, ", ".join(host.views))
    try:
        await _until_signalled()
    finally:
        await host.stop()
        if site is not None:
            await site.cleanup()
        await log_.close()
    return 0


async def _serve_http(host, port: int):
    """The /views routes and /metrics without a server (a minimal app)."""
    from aiohttp import web
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    from . import viewcommands

    class Shim:  # what viewcommands.add_http needs from a server
        config = {"admin-port": port}

    app = web.Application()
    registry = CollectorRegistry()

    class Admin:
        def add_routes(self, routes):
            app.add_routes(list(routes))

        def add_collector(self, c):
            registry.register(c)

    async def metrics(request):
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    viewcommands.add_http(Shim(), host, admin=Admin())
    app.add_routes([web.get("/metrics", metrics)])
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner
