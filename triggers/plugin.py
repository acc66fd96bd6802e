"""How triggers and views join the ``fjord`` program.

``store`` sits below ``triggers`` and must not import it, so the program's
entry point (store/cli.py) finds this module through the ``fjord.plugins``
entry-point group declared in pyproject.toml and calls the three hooks below:
the subcommands it adds, running them, and what it attaches to a server.
"""

from __future__ import annotations

import argparse
import logging

#: subcommands this plugin runs (``run`` is called for these)
COMMANDS = ("triggers", "views")


def add_parsers(sub) -> None:
    from . import cli, viewcli
    cli.add_parser(sub)
    viewcli.add_parser(sub)


def run(ns: argparse.Namespace) -> int:
    if ns.cmd == "views":  # views in their own process (file log or Kafka consumer group)
        from . import viewcli
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return viewcli.run(ns)
    from . import cli  # a client of a running server, or the dispatcher process ('run')
    return cli.run(ns)


def attach(server) -> None:
    """FJORD.TRIGGER and INFO's "# Triggers" (even with ``triggers no``), the
    HTTP admin API (when admin-port is set), the trigger dispatcher (on a
    replica it idles until a promotion, docs/failover.md) and the views."""
    from . import commands, http, viewhost  # noqa: F401 - commands registers FJORD.TRIGGER
    http.attach(server)
    if server.config["triggers"] == "yes":
        from . import attach as attach_triggers
        attach_triggers(server)
    viewhost.attach(server)
