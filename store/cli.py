"""The ``fjord`` command line: ``fjord serve`` starts the server.

This is the program's entry point, the one place allowed to wire the layers
together (today: store over streams; triggers join when they exist).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from .config import LOG_LEVELS, SETTINGS, Config, ConfigError



def _serve_parser(sub) -> None:
    p = sub.add_parser(
        "serve", help="run the Redis-compatible server",
        description="Run Fjord: a Redis-compatible server whose every write is an event on a durable log "
                    "in the data directory. Settings come from defaults, then --config FILE (redis.conf "
                    "style 'name value' lines), then FJORD_<NAME> environment variables (e.g. "
                    "FJORD_PORT, FJORD_DATA_DIR), then these flags.",
    )
    p.add_argument("--config", metavar="FILE", help="read settings from FILE (one 'name value' per line)")
    for s in SETTINGS:
        if not s.flag:
            continue
        if isinstance(s.default, bool):
            p.add_argument(s.flag, dest=s.name, action="store_const", const="yes", default=None,
                           help=s.help)
        else:
            metavar = {"dir": "PATH", "bind": "ADDR", "port": "N"}.get(s.name, "VALUE")
            p.add_argument(s.flag, dest=s.name, metavar=metavar, default=None,
                           help=f"{s.help} (default: {s.default!r})")


def build_config(ns: argparse.Namespace) -> Config:
    config = Config()
    if ns.config:
        config.load_file(ns.config)
    config.load_env()
    for s in SETTINGS:
        v = getattr(ns, s.name, None)
        if v is not None:
            try:
                config.set(s.name, v)
            except ConfigError as exc:
                raise ConfigError(f"{s.flag}: {exc}") from None
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fjord", description="Fjord: a durable, event-sourced Redis.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    _serve_parser(sub)
    from . import logcli, restore
    restore.add_parser(sub)
    logcli.add_parser(sub)
    from . import snapshotter
    snapshotter.add_parser(sub)
    plugins = load_plugins()
    for plugin in plugins:
        plugin.add_parsers(sub)
    ns = parser.parse_args(argv)
    if ns.cmd == "snapshot":  # the snapshotter process (offline tool or the server's child)
        return snapshotter.run(ns)
    if ns.cmd in ("restore", "log"):  # offline tools: no server config
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        return restore.run(ns) if ns.cmd == "restore" else logcli.run(ns)
    for plugin in plugins:
        if ns.cmd in plugin.COMMANDS:
            return plugin.run(ns)
    try:
        config = build_config(ns)
    except (ConfigError, OSError) as exc:
        print(f"fjord: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=LOG_LEVELS.get(config["loglevel"], logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if ns.cmd == "serve":
        return serve(config, plugins)
    return 2


def load_plugins() -> list:
    """The packages layered above ``store`` (triggers, views) join the program
    through the ``fjord.plugins`` entry-point group in pyproject.toml, so this
    module, below them, names none of them. Each plugin has ``COMMANDS``,
    ``add_parsers(sub)``, ``run(ns)`` and ``attach(server)``."""
    from importlib.metadata import entry_points
    return [ep.load() for ep in sorted(entry_points(group="fjord.plugins"), key=lambda ep: ep.name)]


def serve(config: Config, plugins: list) -> int:
    from streams.events import EventDecodeError
    from streams.log import LogError

    from . import commands  # noqa: F401 - registers every command
    from .server import Server

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        uvloop = None

    async def run() -> int:
        server = Server(config)
        for plugin in plugins:
            plugin.attach(server)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.request_shutdown)
        try:
            await server.start()
        except (LogError, EventDecodeError) as exc:  # a bad log stops start-up with its message
            logging.getLogger("fjord").error("%s", exc)
            return 1
        except OSError as exc:
            logging.getLogger("fjord").error("cannot start: %s", exc)
            return 1
        await server.wait_stopped()
        logging.getLogger("fjord").info("Fjord is now ready to exit, bye bye...")
        return 0

    if uvloop is not None:
        return uvloop.run(run())
    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
