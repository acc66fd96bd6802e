"""What a function handler can use to talk back to Fjord.

A worker process has ``FJORD_URL`` (the server) and ``FJORD_TRIGGER`` (its
subscription) in its environment. ``fjord_client()`` returns a redis-py
client whose every connection first sends ``FJORD.ORIGIN trigger:<name>``:
the server stamps that origin on the records the connection writes, and the
dispatcher of that subscription skips records with its own origin. That is
how a handler can write back (e.g. keep a counter of the changes it saw)
without triggering itself forever. Writes from other connections, or with
another origin, still reach every subscription whose filter they match.
"""

from __future__ import annotations

import os
from typing import Any


def trigger_name() -> str:
    """The subscription this worker serves."""
    name = os.environ.get("FJORD_TRIGGER")
    if not name:
        raise RuntimeError("FJORD_TRIGGER is not set: fjord_client() works inside a trigger function worker")
    return name


def fjord_url() -> str:
    url = os.environ.get("FJORD_URL")
    if not url:
        raise RuntimeError("FJORD_URL is not set: the trigger service does not know the server's address")
    return url


def origin() -> bytes:
    return b"trigger:" + trigger_name().encode("utf-8")


def fjord_client(**kwargs: Any):
    """A redis-py ``Redis`` on this worker's server, tagged with the trigger's origin."""
    import redis

    tag = origin()

    def on_connect(conn) -> None:
        conn.on_connect()
        conn.send_command("FJORD.ORIGIN", tag)
        conn.read_response()

    return redis.Redis.from_url(fjord_url(), redis_connect_func=on_connect, **kwargs)


def fjord_async_client(**kwargs: Any):
    """The same for async handlers: a ``redis.asyncio.Redis``."""
    import redis.asyncio

    tag = origin()

    async def on_connect(conn) -> None:
        await conn.on_connect()
        await conn.send_command("FJORD.ORIGIN", tag)
        await conn.read_response()

    return redis.asyncio.Redis.from_url(fjord_url(), redis_connect_func=on_connect, **kwargs)
