"""Active expiry: the background half of Redis's expiry (lazy is in Session).

Every 1/hz seconds each database with volatile keys is sampled: 20 keys are
checked, those past their time are removed through explicit ``expired``
events, and the database is sampled again while more than a quarter of the
sample had expired, within a time budget (25% of the cycle, as Redis).

Python dicts have no random access, so instead of random sampling each
database walks a snapshot of its volatile keys in rotation, re-taking the
snapshot when it runs out. Every volatile key is visited once per rotation,
which bounds how long an expired key can linger.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from .session import now_ms

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("fjord.expiry")

SAMPLE = 20
REPEAT_THRESHOLD = SAMPLE // 4


class ActiveExpirer:
    """Walks each database's volatile keys in rotation."""

    def __init__(self, server: "Server"):
        self.server = server
        self._rotation: dict[int, list[bytes]] = {}
        self._pos: dict[int, int] = {}

    def cycle(self, budget_s: float) -> int:
        """One active-expiry cycle; returns how many keys expired."""
        srv = self.server
        if srv.loading or srv.is_replica or srv.committer is None or srv.write_error:
            return 0
        deadline = time.perf_counter() + budget_s
        session = srv.system
        expired = 0
        for db in srv.keyspace.dbs:
            if not db.expires:
                self._rotation.pop(db.index, None)
                continue
            while time.perf_counter() < deadline:
                n = self._sample(db, session)
                expired += n
                if n <= REPEAT_THRESHOLD:
                    break
        if session.events:
            srv.stats.expired_keys += sum(1 for e in session.events if e.type == "expired")
            srv.commit(session)
        return expired

    def _sample(self, db, session) -> int:
        keys = self._rotation.get(db.index)
        pos = self._pos.get(db.index, 0)
        if keys is None or pos >= len(keys):
            keys = list(db.expires)
            self._rotation[db.index] = keys
            pos = 0
        now = now_ms()
        n = 0
        end = min(pos + SAMPLE, len(keys))
        expires = db.expires
        for key in keys[pos:end]:
            at = expires.get(key)
            if at is not None and at <= now:
                session.emit("expired", key, {}, db.index)
                n += 1
        self._pos[db.index] = end
        return n


async def run_cron(server: "Server") -> None:
    """The server's periodic tasks (``hz`` times a second)."""
    expirer = ActiveExpirer(server)
    while True:
        period = 1.0 / server.config["hz"]
        await asyncio.sleep(period)
        try:
            expirer.cycle(period * 0.25)
            _close_idle_clients(server)
        except Exception:  # noqa: BLE001 - the cron must keep running
            log.exception("cron cycle failed")


def _close_idle_clients(server: "Server") -> None:
    timeout = server.config["timeout"]
    if not timeout:
        return
    cutoff = time.time() - timeout
    for conn in list(server.clients.values()):
        if conn.session is not None and conn.session.last_active < cutoff and not conn.held:
            conn.close()
