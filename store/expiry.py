"""Active expiry: the background half of Redis's expiry (lazy is in Session).

Keys past their time must vanish even if nobody touches them, each through an
explicit ``expired`` event on the log, so a replay (or a replica) never has to
consult a clock. The cron runs ``hz`` times a second and gives this at most a
quarter of each period, as Redis's slow cycle does.

Redis samples random keys of its expires table; a Python dict has no random
access, so each database instead walks a snapshot of its volatile keys in
rotation (``list(db.expires)``, retaken when used up). Per cycle and database:

- steps of ``SAMPLE`` keys are checked, and those past their time expired;
- stepping goes on while a step finds more than ``ACCEPTABLE_STALE_PERCENT``
  of its keys expired (a burst of expirations is cleared at once), and at
  least until ``len(expires) / (hz * ROTATION_SECONDS)`` keys were visited, so
  a full rotation takes at most about ``ROTATION_SECONDS``;
- a snapshot is retaken at most once per cycle, and the next cycle starts at
  the database after the one that ran out of time, so none starves.

Hence, while the budget suffices, a key past its time lingers at most about
two rotations (it may join the snapshot one rotation late), and a burst is
cleared within a cycle or two. Rotation order is insertion order, which for
keys written with similar TTLs is roughly expiry order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from .session import now_ms

if TYPE_CHECKING:
    from .keyspace import Db
    from .server import Server
    from .session import Session

log = logging.getLogger("fjord.expiry")

SAMPLE = 20
ACCEPTABLE_STALE_PERCENT = 10
ROTATION_SECONDS = 30
#: share of each cron period active expiry may use (Redis: 25%)
CPU_SHARE = 0.25


class _Rotation:
    """A snapshot of one database's volatile keys and how far it was walked."""

    __slots__ = ("keys", "pos")

    def __init__(self, keys: list[bytes]):
        self.keys = keys
        self.pos = 0


class ActiveExpirer:
    """Walks each database's volatile keys in rotation (see the module doc)."""

    def __init__(self, server: "Server"):
        self.server = server
        self._rotation: dict[int, _Rotation] = {}
        self._next_db = 0

    def cycle(self, budget_s: float, hz: int = 10) -> int:
        """One active-expiry cycle; returns how many keys expired."""
        srv = self.server
        if srv.loading or srv.is_replica or srv.committer is None or srv.write_error:
            return 0
        deadline = time.perf_counter() + budget_s
        session = srv.system
        dbs = srv.keyspace.dbs
        expired = 0
        start = self._next_db % len(dbs)
        for i in range(len(dbs)):
            db = dbs[(start + i) % len(dbs)]
            if not db.expires:
                self._rotation.pop(db.index, None)
                continue
            n, out_of_time = self._expire_db(db, session, deadline, hz)
            expired += n
            if out_of_time:
                self._next_db = db.index + 1
                break
        if expired:
            srv.stats.expired_keys += expired
        if session.events:
            srv.commit(session)
            if srv.blocking.ready:  # an expired stream answers its XREADGROUP waiters
                srv.blocking.serve()
        return expired

    def _expire_db(self, db: "Db", session: "Session", deadline: float, hz: int) -> tuple[int, bool]:
        """Expire what one database's share of the cycle finds; returns
        (keys expired, whether time ran out)."""
        rot = self._rotation.get(db.index)
        if rot is None or rot.pos >= len(rot.keys):
            rot = self._rotation[db.index] = _Rotation(list(db.expires))
        quota = max(SAMPLE, -(-len(db.expires) // max(1, hz * ROTATION_SECONDS)))
        keys, expires = rot.keys, db.expires
        visited = expired = 0
        while rot.pos < len(keys):
            if time.perf_counter() >= deadline:
                return expired, True
            now = now_ms()
            step = keys[rot.pos:rot.pos + SAMPLE]
            rot.pos += len(step)
            found = 0
            for key in step:
                at = expires.get(key)
                if at is not None and at <= now:
                    session.emit("expired", key, {}, db.index)
                    found += 1
            visited += len(step)
            expired += found
            if visited >= quota and found * 100 <= len(step) * ACCEPTABLE_STALE_PERCENT:
                break
        return expired, False


async def run_cron(server: "Server") -> None:
    """The server's periodic tasks (``hz`` times a second)."""
    expirer = ActiveExpirer(server)
    while True:
        period = 1.0 / server.config["hz"]
        await asyncio.sleep(period)
        try:
            expirer.cycle(period * CPU_SHARE, server.config["hz"])
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
