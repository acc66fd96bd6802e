"""redis-py's ``Lock`` (its release/extend/reacquire are Lua scripts run
with EVALSHA) against Fjord: acquire, extend, reacquire, release, and a
blocking acquire by a second client that waits for the first."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from redis.exceptions import LockError, LockNotOwnedError


def test_acquire_extend_release(r):
    lock = r.lock("res", timeout=5)
    assert lock.acquire(blocking=False)
    assert r.get("res") == lock.local.token
    assert 0 < r.pttl("res") <= 5000
    assert lock.extend(10)
    assert 10000 < r.pttl("res") <= 15000
    assert lock.extend(3, replace_ttl=True)
    assert r.pttl("res") <= 3000
    assert lock.reacquire()
    assert 3000 < r.pttl("res") <= 5000
    assert lock.owned() and lock.locked()
    lock.release()
    assert r.get("res") is None
    assert not lock.locked()


def test_a_second_owner_is_refused(r, fjord):
    other = fjord.client()
    mine = r.lock("res", timeout=5)
    theirs = other.lock("res", timeout=5)
    assert mine.acquire(blocking=False)
    assert not theirs.acquire(blocking=False)
    theirs.local.token = b"not-the-owner"
    with pytest.raises(LockNotOwnedError):
        theirs.release()
    theirs.local.token = b"not-the-owner"  # release() forgot it
    with pytest.raises(LockNotOwnedError):
        theirs.extend(5)
    assert r.get("res") == mine.local.token
    mine.release()
    with pytest.raises(LockError):
        mine.release()
    other.close()


def test_blocking_acquire_across_two_clients(r, fjord):
    other = fjord.client()
    first = r.lock("job", timeout=10)
    assert first.acquire()
    got = {}

    def wait_for_it():
        second = other.lock("job", timeout=10, blocking_timeout=5, sleep=0.02)
        t0 = time.monotonic()
        got["ok"] = second.acquire()
        got["waited"] = time.monotonic() - t0
        got["token"] = second.local.token
        second.release()

    t = threading.Thread(target=wait_for_it)
    t.start()
    time.sleep(0.3)
    assert "ok" not in got  # still waiting: the lock is held
    first.release()
    t.join(5)
    assert got["ok"] and got["waited"] >= 0.25
    assert r.get("job") is None
    other.close()


def test_lock_expires_and_can_be_taken_over(r, fjord):
    other = fjord.client()
    first = r.lock("short", timeout=0.2)
    assert first.acquire()
    second = other.lock("short", timeout=5, blocking_timeout=2, sleep=0.02)
    assert second.acquire()
    with pytest.raises(LockNotOwnedError):
        first.release()
    second.release()
    other.close()


def test_lock_scripts_survive_script_flush(r):
    lock = r.lock("res", timeout=5)
    assert lock.acquire(blocking=False)
    r.script_flush()  # EVALSHA gets NOSCRIPT; redis-py loads the script again
    assert lock.extend(1)
    lock.release()
    assert r.get("res") is None


@pytest.mark.parametrize("client_kw", [{"protocol": 3}], ids=["resp3"])
def test_lock_over_resp3(fjord, client_kw):
    try:
        c = redis.Redis(port=fjord.port, **client_kw)
        c.ping()
    except (TypeError, redis.ConnectionError) as exc:  # an older redis-py
        pytest.skip(f"redis-py without RESP3: {exc}")
    lock = c.lock("res3", timeout=5)
    assert lock.acquire(blocking=False)
    assert lock.extend(5)
    lock.release()
    assert c.get("res3") is None
    c.close()
