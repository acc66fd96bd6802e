"""Webhook sink: one signed HTTP POST per batch.

Body: ``{"subscription", "batch_id", "records": [CloudEvents 1.0 events]}``
(see formats.py). Headers follow Standard Webhooks: ``webhook-id`` is the
batch id (the same on every retry, so receivers de-duplicate on it),
``webhook-timestamp`` the send time in seconds, and with a ``whsec_`` secret
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``,
computed by the ``standardwebhooks`` package so receivers can verify with it.

Answers: 2xx delivered (a JSON body with ``batchItemFailures`` reports a
partial failure, as a function can); 410 disables the subscription; 429 and
503 ask for a pause (``Retry-After`` in seconds or as an HTTP date); any other
status, a timeout, a refused or failed connection is a failed delivery the
dispatcher retries. Redirects are not followed (they could lead past the
SSRF guard).

Subscriptions that share an endpoint (scheme, host, port) and settings share
one aiohttp ClientSession (keep-alive connections) and one semaphore that
bounds the requests in flight to that endpoint.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
import weakref
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from standardwebhooks import Webhook

from triggers.delivery import Batch, Outcome

from . import formats
from .guard import GuardedResolver, address_refusal, is_ip_literal, ALLOW_HINT

DEFAULT_TIMEOUT_MS = 10_000
DEFAULT_CONCURRENCY = 4
#: a receiver cannot park a subscription for longer than this with Retry-After
MAX_RETRY_AFTER_S = 3600.0
#: how much of a response body is read (error text, batchItemFailures)
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "fjord-webhook/1"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(int(value)), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = time.time() if now is None else now
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER_S)


class _Endpoint:
    """A ClientSession and a concurrency bound shared by sinks of one endpoint."""

    def __init__(self, allow_private: bool, concurrency: int):
        resolver = None if allow_private else GuardedResolver()
        connector = aiohttp.TCPConnector(limit_per_host=concurrency, resolver=resolver)
        self.session = aiohttp.ClientSession(connector=connector, headers={"user-agent": USER_AGENT})
        self.semaphore = asyncio.Semaphore(concurrency)
        self.users = 0


#: per event loop (a ClientSession belongs to one loop), endpoint key -> _Endpoint
_ENDPOINTS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, _Endpoint]]" = \
    weakref.WeakKeyDictionary()


class WebhookSink:
    """Delivers batches of one subscription to its webhook URL."""

    def __init__(self, sub: Any, *, source_host: str | None = None):
        self.subscription = sub.name
        self.url: str = sub.target
        self.allow_private = bool(getattr(sub, "allow_private", False))
        self.timeout_s = (getattr(sub, "timeout_ms", None) or DEFAULT_TIMEOUT_MS) / 1000
        self.concurrency = max(1, int(getattr(sub, "concurrency", None) or DEFAULT_CONCURRENCY))
        secret = getattr(sub, "secret", None)
        self.signer = Webhook(secret) if secret else None
        self.source_host = source_host or formats.default_source_host()
        parts = urlsplit(self.url)
        self._key = (parts.scheme, parts.hostname, parts.port, self.allow_private, self.concurrency)
        # aiohttp skips the resolver for IP literals, so the guard checks them here.
        self._refused: str | None = None
        if not self.allow_private and parts.hostname and is_ip_literal(parts.hostname):
            why = address_refusal(parts.hostname)
            if why:
                self._refused = f"webhook host is a {why}: refused (SSRF guard); {ALLOW_HINT}"
        self._endpoint: _Endpoint | None = None

    def _acquire(self) -> _Endpoint:
        if self._endpoint is None:
            pool = _ENDPOINTS.setdefault(asyncio.get_running_loop(), {})
            endpoint = pool.get(self._key)
            if endpoint is None or endpoint.session.closed:
                endpoint = pool[self._key] = _Endpoint(self.allow_private, self.concurrency)
            endpoint.users += 1
            self._endpoint = endpoint
        return self._endpoint

    def headers(self, batch: Batch, body: bytes, now: float | None = None) -> dict[str, str]:
        """Standard Webhooks headers for ``body`` sent now."""
        ts = int(time.time() if now is None else now)
        h = {"content-type": "application/json", "webhook-id": batch.id, "webhook-timestamp": str(ts),
             "fjord-subscription": batch.subscription, "fjord-attempt": str(batch.attempt)}
        if self.signer is not None:
            h["webhook-signature"] = self.signer.sign(
                batch.id, datetime.fromtimestamp(ts, tz=timezone.utc), body.decode("utf-8"))
        return h

    async def deliver(self, batch: Batch) -> Outcome:
        if self._refused:
            return Outcome(ok=False, error=self._refused)
        body = orjson.dumps(formats.webhook_body(batch, self.source_host))
        endpoint = self._acquire()
        async with endpoint.semaphore:
            try:
                async with endpoint.session.post(
                    self.url, data=body, headers=self.headers(batch, body), allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                ) as resp:
                    text = await resp.content.read(MAX_RESPONSE_BYTES)
                    return self._outcome(resp, text, batch)
            except (asyncio.TimeoutError, TimeoutError):
                return Outcome(ok=False, error=f"timeout: no answer within {self.timeout_s * 1000:.0f} ms")
            except aiohttp.ClientConnectorError as exc:
                return Outcome(ok=False, error=f"cannot connect: {exc.os_error or exc}")
            except (aiohttp.ClientError, OSError) as exc:
                return Outcome(ok=False, error=f"request failed: {type(exc).__name__}: {exc}")

    def _outcome(self, resp: aiohttp.ClientResponse, text: bytes, batch: Batch) -> Outcome:
        status = resp.status
        if 200 <= status < 300:
            return self._success(resp, text, batch)
        detail = text[:200].decode("utf-8", "replace").strip()
        error = f"HTTP {status} {resp.reason or ''}".rstrip() + (f": {detail}" if detail else "")
        if status == 410:
            return Outcome(ok=False, disable=True, error=error)
        if status in (429, 503):
            return Outcome(ok=False, retry_after=parse_retry_after(resp.headers.get("retry-after")),
                           error=error)
        if 300 <= status < 400:
            error += " (redirects are not followed)"
        return Outcome(ok=False, error=error)

    @staticmethod
    def _success(resp: aiohttp.ClientResponse, text: bytes, batch: Batch) -> Outcome:
        if not text or "json" not in (resp.content_type or ""):
            return Outcome(ok=True)
        try:
            failed = formats.failed_ids_from_result(orjson.loads(text), batch)
        except orjson.JSONDecodeError:
            return Outcome(ok=True)
        except ValueError as exc:
            return Outcome(ok=False, error=f"bad partial-failure answer: {exc}")
        if failed:
            return Outcome(ok=False, failed_ids=failed, error=f"receiver reported {len(failed)} failed record(s)")
        return Outcome(ok=True)

    async def close(self) -> None:
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is None:
            return
        endpoint.users -= 1
        if endpoint.users <= 0:
            for loop, pool in list(_ENDPOINTS.items()):
                if pool.get(self._key) is endpoint:
                    del pool[self._key]
            await endpoint.session.close()
