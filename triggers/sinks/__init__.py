"""Sinks: where a trigger's batches go.

- webhook.py   WebhookSink: signed (Standard Webhooks) HTTP POST of CloudEvents batches
- function.py  FunctionSink: a pool of worker processes calling a ``module:function`` handler
- worker.py    the worker process (run as a script; talks length-prefixed JSON over pipes)
- formats.py   the shapes subscribers get: CloudEvents, DynamoDB-Streams records
- guard.py     SSRF guard: public addresses only unless ALLOW-PRIVATE
- context.py   for handlers: ``fjord_client()`` that writes back without re-triggering

The dispatcher only uses ``make_sink`` and the ``Sink`` protocol of
triggers/delivery.py; subscriptions call ``validate_target`` when created
(``check_target_async`` for the DNS part, off the event loop).
Imports are lazy so that loading a subscription does not load aiohttp.
"""

from __future__ import annotations

import keyword
from typing import Any

SINK_TYPES = ("webhook", "function")


def validate_function_target(target: str) -> None:
    """``module.path:function.attr``, each part a Python identifier. The
    module is not imported here: user code runs only in worker processes."""
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"function target must be module:function, got {target!r}")
    for part in (*module.split("."), *attr.split(".")):
        if not part.isidentifier() or keyword.iskeyword(part):
            raise ValueError(f"function target {target!r}: {part!r} is not a Python name")


def validate_secret(secret: str) -> None:
    """A Standard Webhooks secret: ``whsec_`` + the base64 of at least 16
    bytes (the spec suggests 24 to 64 random bytes)."""
    import base64
    import binascii

    if not secret.startswith("whsec_"):
        raise ValueError("SECRET must look like whsec_<base64>, e.g. whsec_" + base64.b64encode(b"0" * 24).decode())
    try:
        raw = base64.b64decode(secret[len("whsec_"):] + "==", validate=False)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) < 16:
        raise ValueError("SECRET must be whsec_ followed by the base64 of at least 16 random bytes")


def validate_target(sub: Any, resolve: bool = True) -> tuple[str, int] | None:
    """Raise ValueError (with a message fit for the user) unless ``sub``'s
    sink, target and secret can be used. Resolves webhook hosts (blocking)
    unless ``resolve`` is False: then the (host, port) still to resolve and
    check is returned (None if there is none), for ``check_target_async``."""
    kind = str(sub.sink).lower()
    if kind == "webhook":
        from .guard import check_url

        if getattr(sub, "secret", None):
            validate_secret(sub.secret)
        return check_url(sub.target, bool(getattr(sub, "allow_private", False)), resolve=resolve)
    elif kind == "function":
        validate_function_target(sub.target)
        return None
    else:
        raise ValueError(f"unknown sink {sub.sink!r}: use WEBHOOK url or FUNCTION module:function")


async def check_target_async(sub: Any) -> None:
    """The DNS part of ``validate_target``, off the event loop (a worker
    thread resolves; raises ValueError like ``validate_target``)."""
    if str(sub.sink).lower() == "webhook":
        from .guard import check_url_async

        await check_url_async(sub.target, bool(getattr(sub, "allow_private", False)))


def make_sink(sub: Any, *, fjord_url: str | None = None, source_host: str | None = None,
              loop_config: Any = None, **options: Any):
    """The Sink for ``sub`` (not connected yet: connections and workers start
    on first delivery). ``fjord_url`` (``redis://host:port``) is given to
    function workers; ``source_host`` names this server in CloudEvents'
    ``source`` (default: the host name). ``loop_config`` is accepted for
    callers written against the first draft of the design and ignored."""
    kind = str(sub.sink).lower()
    if kind == "webhook":
        from .webhook import WebhookSink

        return WebhookSink(sub, source_host=source_host)
    if kind == "function":
        from .function import FunctionSink

        return FunctionSink(sub, fjord_url=fjord_url, source_host=source_host, **options)
    raise ValueError(f"unknown sink {sub.sink!r}")
