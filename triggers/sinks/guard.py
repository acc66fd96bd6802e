"""SSRF guard: which network addresses a webhook may reach.

A trigger lets whoever can run ``FJORD.TRIGGER CREATE`` make the server send
HTTP requests. Without a guard that is a way to reach the server's own
loopback services, the cloud metadata endpoint (169.254.169.254) or the
private network behind it. So a webhook may only reach *global* unicast
addresses unless its subscription says ``ALLOW-PRIVATE``.

The check runs twice: at creation (``check_url``, a clear error for the
user) and again at every connection (``GuardedResolver``), because a DNS
name can change its answer after creation (DNS rebinding).

Creation-time resolution of a DNS name is blocking, so the server never
runs it on its event loop: ``check_url(..., resolve=False)`` does every
check that needs no DNS and returns the (host, port) still to resolve, and
``check_url_async`` resolves that in a worker thread (``resolver``, a
module attribute so that tests can put a slow one in its place).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

ALLOW_HINT = "use ALLOW-PRIVATE (allow_private) to allow it"


def address_refusal(address: str) -> str | None:
    """Why ``address`` (an IP literal) is not a public destination, or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for attr, what in (("is_loopback", "loopback"), ("is_unspecified", "unspecified"),
                       ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                       ("is_reserved", "reserved"), ("is_private", "private")):
        if getattr(ip, attr):
            return f"{what} address {ip}"
    if not ip.is_global:
        return f"non-global address {ip}"
    return None


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def resolve_all(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (blocking; for creation-time checks)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValueError(f"webhook host {host!r} does not resolve: {exc}") from None
    return sorted({info[4][0] for info in infos})


def check_url(url: str, allow_private: bool, resolve: bool = True) -> tuple[str, int] | None:
    """Raise ValueError unless ``url`` is an http(s) URL a webhook may call.

    With ``resolve=False`` a DNS host name is not looked up: the (host, port)
    still to check is returned (None when nothing is left to check), for
    ``check_addresses`` once resolved off the event loop."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid webhook URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"webhook URL must start with http:// or https://, got {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"webhook URL {url!r} has no host")
    if parts.username or parts.password:
        raise ValueError("webhook URL must not carry credentials; use SECRET to sign requests")
    if allow_private:
        return None
    port = port or (443 if parts.scheme == "https" else 80)
    if is_ip_literal(host):
        check_addresses(host, [host])
        return None
    if not resolve:
        return host, port
    check_addresses(host, resolver(host, port))
    return None


def check_addresses(host: str, addresses: list[str]) -> None:
    """Raise ValueError if any address ``host`` resolved to is refused."""
    for address in addresses:
        why = address_refusal(address)
        if why:
            shown = f"{host!r}" if address == host else f"{host!r} (resolves to {address})"
            raise ValueError(f"webhook host {shown} is a {why}: refused; {ALLOW_HINT}")


async def check_url_async(url: str, allow_private: bool) -> None:
    """``check_url`` without blocking the event loop: the DNS lookup runs in
    a worker thread while the loop serves other clients."""
    pending = check_url(url, allow_private, resolve=False)
    if pending is not None:
        host, port = pending
        check_addresses(host, await asyncio.to_thread(resolver, host, port))


#: the creation-time resolver (blocking; called in a worker thread by
#: ``check_url_async``). Tests may replace it; production uses ``resolve_all``.
resolver = resolve_all


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that drops addresses the guard refuses.

    If nothing is left the connection fails with an OSError that aiohttp
    reports as a connection error, which the webhook sink turns into a failed
    delivery (retried, then dead-lettered), never a request to the address.
    """

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if address_refusal(r["host"]) is None]
        if not allowed:
            shown = ", ".join(sorted({r["host"] for r in results}))
            raise OSError(f"webhook host {host!r} resolves to {shown}: refused (SSRF guard); {ALLOW_HINT}")
        return allowed

    async def close(self) -> None:
        await self._inner.close()
