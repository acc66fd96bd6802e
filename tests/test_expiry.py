"""Active expiry (store/expiry.py): keys past their time vanish with nobody
touching them, each through an ``expired`` event on the log, so a restart
(a replay of the log) does not bring them back.

"Nobody touching them" matters: GET, KEYS, SCAN and friends expire lazily,
so these tests watch only DBSIZE, which counts keys without looking at them,
and the log itself.
"""

from __future__ import annotations

import time
from collections import Counter

import redis

from test_keys import logged_events


def wait_dbsize(client: redis.Redis, want: int, timeout: float) -> float:
    """Seconds until DBSIZE (which touches no key) reaches ``want``."""
    t0 = time.monotonic()
    while client.dbsize() != want:
        assert time.monotonic() - t0 < timeout, f"dbsize {client.dbsize()} != {want} after {timeout}s"
        time.sleep(0.01)
    return time.monotonic() - t0


def expired_keys(data_dir: str, db: int = 0) -> Counter:
    return Counter(e.key for e in logged_events(data_dir) if e.type == "expired" and e.db == db)


def test_keys_vanish_untouched_through_logged_expired_events(new_fjord):
    srv = new_fjord()
    c = srv.client()
    short = [f"short:{i}".encode() for i in range(200)]
    pipe = c.pipeline(transaction=False)
    for key in short:
        pipe.set(key, "v", px=50)
    pipe.mset({"forever": 1, "later": 2})
    pipe.expire("later", 1000)
    pipe.execute()
    wait_dbsize(c, 2, timeout=1.0)
    assert expired_keys(srv.data_dir) == Counter(short)  # each exactly once, nothing else
    assert c.ttl("later") > 990 and c.get("forever") == b"1"
    srv.restart()
    c = srv.client()
    assert c.dbsize() == 2  # at once: the replayed log already says they are gone
    assert sorted(c.keys("*")) == [b"forever", b"later"]


def test_a_burst_larger_than_one_sample_is_cleared_quickly(new_fjord):
    srv = new_fjord()
    c = srv.client()
    pipe = c.pipeline(transaction=False)
    for i in range(3000):
        pipe.set(f"k{i}", "v", px=30)
    pipe.execute()
    c.set("stay", "v", ex=1000)
    wait_dbsize(c, 1, timeout=3.0)
    assert len(expired_keys(srv.data_dir)) == 3000


def test_every_database_is_swept(new_fjord):
    srv = new_fjord()
    dbs = {db: redis.Redis(port=srv.port, db=db) for db in (0, 7, 15)}
    for db, c in dbs.items():
        for i in range(30):
            c.set(f"k{i}", db, px=40)
        c.set("keep", db)
    for c in dbs.values():
        wait_dbsize(c, 1, timeout=1.5)
    for db in dbs:
        assert sum(expired_keys(srv.data_dir, db).values()) == 30


def test_a_key_whose_time_passed_while_down_is_gone_after_restart(new_fjord):
    srv = new_fjord()
    c = srv.client()
    c.set("brief", "v", px=300)
    c.set("lazy", "v", px=300)
    c.set("stays", "v")
    srv.kill()
    time.sleep(0.4)
    srv.start()
    c = srv.client()
    assert c.get("lazy") is None  # lazily, if the cron has not got there first
    wait_dbsize(c, 1, timeout=1.0)  # "brief" actively, without being touched
    assert set(expired_keys(srv.data_dir)) == {b"brief", b"lazy"}
    srv.restart()
    assert srv.client().keys("*") == [b"stays"]
