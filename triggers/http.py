"""The HTTP admin API: trigger management as JSON, ``/metrics``, ``/healthz``.

An aiohttp application on ``admin-bind``:``admin-port`` (port 0, the
default, means off), run as a ``Server`` extension so it starts once the
replay is done and stops with the server. Every trigger route calls the same
operations as the ``FJORD.TRIGGER`` command (triggers/control.py): a write
runs on an internal session, is committed like a client's, and the HTTP
answer waits until it is durable, so "201 Created" means what "+OK" means.

When the server has a ``requirepass``, every route but ``/healthz`` wants
``Authorization: Bearer <requirepass>`` (401 otherwise; Prometheus sends it
with ``authorization: {credentials: ...}``). While the server is loading
(a rebuild after a failed append), trigger routes answer 503 ``LOADING``.

Routes (JSON bodies and answers; errors as ``{"error": "ERR ..."}``):

- ``GET /healthz``                      200 ``{"status": "ok"}``, 503 while loading
- ``GET /metrics``                      Prometheus text (prometheus-client)
- ``GET /triggers``                     every subscription (secrets hidden)
- ``POST /triggers``                    create one from a JSON definition -> 201
- ``GET /triggers/{name}``              definition and delivery statistics
- ``DELETE /triggers/{name}``           delete it
- ``POST /triggers/{name}/pause``       stop delivering (the position is kept)
- ``POST /triggers/{name}/resume``      deliver again from where it stopped
- ``POST /triggers/{name}/redrive``     send the dead letters again -> ``{"redriven": n}``
- ``GET /triggers/{name}/dlq?count=n``  the oldest ``n`` dead letters (default 10)

Other features add their own routes and metrics before the server starts:
``admin_for(server).add_routes([...])`` and ``.add_collector(collector)``
(a prometheus-client collector: an object whose ``collect()`` yields metric
families).
"""

from __future__ import annotations

import hmac
import logging
import time
import weakref
from typing import TYPE_CHECKING, Iterable

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from . import control
from .control import ControlError

if TYPE_CHECKING:
    from store.server import Server

log = logging.getLogger("fjord.admin")

_admins: "weakref.WeakKeyDictionary[Server, AdminServer]" = weakref.WeakKeyDictionary()


def admin_for(server: "Server") -> "AdminServer":
    """The server's admin API (made on first use, once per server)."""
    admin = _admins.get(server)
    if admin is None:
        admin = _admins[server] = AdminServer(server)
    return admin


def attach(server: "Server") -> "AdminServer | None":
    """Add the admin API to the server's extensions when ``admin-port`` is
    set (the program's entry point calls this before ``server.start``)."""
    if not server.config["admin-port"]:
        return None
    admin = admin_for(server)
    if admin not in server.extensions:
        server.extensions.append(admin)
    return admin


def _json(data, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(exc: ControlError) -> web.Response:
    return _json({"error": exc.message}, exc.status)


class AdminServer:
    """The aiohttp application and the Prometheus registry of one server."""

    def __init__(self, server: "Server"):
        self.server = server
        self.app = web.Application(middlewares=[self._guard, _errors_as_json])
        self.registry = CollectorRegistry()
        self.registry.register(ServerCollector(server))
        self.registry.register(TriggerCollector(lambda: control.listing(self.server)))
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.app.add_routes([
            web.get("/healthz", self.healthz),
            web.get("/metrics", self.metrics),
            web.get("/triggers", self.list_triggers),
            web.post("/triggers", self.create_trigger),
            web.get("/triggers/{name}", self.trigger_info),
            web.delete("/triggers/{name}", self.delete_trigger),
            web.post("/triggers/{name}/pause", self.pause),
            web.post("/triggers/{name}/resume", self.resume),
            web.post("/triggers/{name}/redrive", self.redrive),
            web.get("/triggers/{name}/dlq", self.dead_letters),
        ])

    # ------------------------------------------------------------ extension

    def add_routes(self, routes: Iterable[web.AbstractRouteDef]) -> None:
        """Add routes (``aiohttp.web.get(...)``...); only before start."""
        if self._runner is not None:
            raise RuntimeError("add admin routes before the server starts")
        self.app.add_routes(list(routes))

    def add_collector(self, collector) -> None:
        """Publish a prometheus-client collector's metrics at ``/metrics``."""
        self.registry.register(collector)

    async def start(self, server: "Server | None" = None) -> None:
        cfg = self.server.config
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, cfg["admin-bind"], cfg["admin-port"], reuse_address=True)
        await self._site.start()
        log.info("admin API listening on http://%s:%d", cfg["admin-bind"], self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self._site = None

    @property
    def port(self) -> int:
        """The bound port (``admin-port``, or the one chosen for port 0 in tests)."""
        if self._site is not None and self._site._server is not None and self._site._server.sockets:
            return self._site._server.sockets[0].getsockname()[1]
        return self.server.config["admin-port"]

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        """The server's password, and no answers from a keyspace being rebuilt."""
        if request.path != "/healthz":
            denied = check_password(request, self.server.config["requirepass"])
            if denied is not None:
                return denied
            if self.server.loading and request.path.startswith("/triggers"):
                return _json({"error": "LOADING Fjord is loading the dataset in memory"}, 503)
        return await handler(request)

    # ------------------------------------------------------------ basics

    async def healthz(self, request: web.Request) -> web.Response:
        srv = self.server
        if srv.loading:
            return _json({"status": "loading"}, 503)
        return _json({"status": "ok", "log_end_offset": srv.log.end_offset if srv.log else 0,
                      "write_error": srv.write_error})

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # ------------------------------------------------------------ triggers

    async def list_triggers(self, request: web.Request) -> web.Response:
        return _json(control.listing(self.server))

    async def create_trigger(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            return _json({"error": f"ERR the body is not JSON: {exc}"}, 400)
        if not isinstance(body, dict):
            return _json({"error": "ERR the body must be a JSON object"}, 400)
        sub = control.from_json(body, resolve=False)  # DNS is resolved off the loop:
        await control.create_checked(self.server, sub)
        return _json(control.details(self.server, sub.name), 201)

    async def trigger_info(self, request: web.Request) -> web.Response:
        return _json(control.details(self.server, request.match_info["name"]))

    async def delete_trigger(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        await control.durable_write(self.server, lambda s: control.delete(s, name))
        return _json({"deleted": name})

    async def pause(self, request: web.Request) -> web.Response:
        return await self._set_paused(request.match_info["name"], True)

    async def resume(self, request: web.Request) -> web.Response:
        return await self._set_paused(request.match_info["name"], False)

    async def _set_paused(self, name: str, paused: bool) -> web.Response:
        await control.durable_write(self.server, lambda s: control.set_paused(s, name, paused))
        return _json({"name": name, "paused": paused})

    async def redrive(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return _json({"name": name, "redriven": await control.redrive(self.server, name)})

    async def dead_letters(self, request: web.Request) -> web.Response:
        raw = request.query.get("count", str(control.DEFAULT_DLQ_COUNT))
        try:
            count = int(raw)
        except ValueError:
            count = 0
        if count <= 0:
            return _json({"error": "ERR count must be a positive integer"}, 400)
        return _json(await control.dead_letters(self.server, request.match_info["name"], count))


def check_password(request: web.Request, password: str) -> web.Response | None:
    """None when the request may go on, else the 401 to answer."""
    if not password:
        return None
    given = request.headers.get("Authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), password.encode()):
        return None
    return web.Response(body=orjson.dumps({"error": "NOAUTH Authentication required."}), status=401,
                        content_type="application/json", headers={"WWW-Authenticate": "Bearer"})


@web.middleware
async def _errors_as_json(request: web.Request, handler):
    """Management errors become JSON with their status; anything else a 500
    with the message (the server keeps serving)."""
    try:
        return await handler(request)
    except ControlError as exc:
        return _error(exc)
    except web.HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - one failed request, not the server
        log.exception("admin request %s %s failed", request.method, request.path)
        return _json({"error": f"ERR internal error: {exc}"}, 500)


# ------------------------------------------------------------------ metrics


class ServerCollector:
    """Basics of the server, read when ``/metrics`` is scraped."""

    def __init__(self, server: "Server"):
        self.server = weakref.proxy(server)

    def collect(self):
        srv = self.server
        st = srv.stats
        yield GaugeMetricFamily("fjord_up", "1 once the server has loaded its log", value=0 if srv.loading else 1)
        yield GaugeMetricFamily("fjord_uptime_seconds", "seconds since the server started",
                                value=time.time() - st.start_time)
        yield GaugeMetricFamily("fjord_connected_clients", "client connections", value=len(srv.clients))
        yield CounterMetricFamily("fjord_commands_processed", "commands run", value=st.commands_processed)
        yield CounterMetricFamily("fjord_connections_received", "connections accepted",
                                  value=st.connections_received)
        yield CounterMetricFamily("fjord_expired_keys", "keys deleted on expiry", value=st.expired_keys)
        yield CounterMetricFamily("fjord_log_write_errors", "failed log appends", value=st.write_errors)
        keys = GaugeMetricFamily("fjord_keys", "keys per database", labels=["db"])
        for db in srv.keyspace.dbs:
            if db.data:
                keys.add_metric([str(db.index)], len(db.data))
        yield keys
        if srv.log is not None:
            yield GaugeMetricFamily("fjord_log_start_offset", "oldest offset still in the log",
                                    value=srv.log.start_offset)
            yield GaugeMetricFamily("fjord_log_end_offset", "offset after the last durable record",
                                    value=srv.log.end_offset)


#: (stats field, metric name, help, counter?)
_TRIGGER_METRICS = (
    ("lag_events", "fjord_trigger_lag_events", "events written but not yet delivered", False),
    ("lag_seconds", "fjord_trigger_lag_seconds", "age of the oldest event not yet delivered", False),
    ("delivered", "fjord_trigger_delivered", "events delivered", True),
    ("retried", "fjord_trigger_retried", "deliveries retried", True),
    ("failed", "fjord_trigger_failed", "failed delivery attempts", True),
    ("dead_lettered", "fjord_trigger_dead_lettered", "events sent to the dead-letter queue", True),
)


class TriggerCollector:
    """Per-subscription delivery figures (label ``name``) of the entries
    ``listing()`` gives (the public definitions plus runner statistics)."""

    def __init__(self, listing):
        self.listing = listing

    def collect(self):
        entries = self.listing()
        families = []
        for field, name, doc, counter in _TRIGGER_METRICS:
            cls = CounterMetricFamily if counter else GaugeMetricFamily
            fam = cls(name, doc, labels=["name"])
            for e in entries:
                value = e.get(field)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    fam.add_metric([e["name"]], value)
            families.append(fam)
        paused = GaugeMetricFamily("fjord_trigger_paused", "1 while the subscription is paused or disabled",
                                   labels=["name"])
        for e in entries:
            paused.add_metric([e["name"]], 1 if e.get("paused") or e.get("state") in ("paused", "disabled") else 0)
        families.append(paused)
        families.append(GaugeMetricFamily("fjord_triggers", "subscriptions defined", value=len(entries)))
        return families


# ------------------------------------------------------------------ fjord triggers run


class DispatcherAdmin:
    """The admin API of a ``fjord triggers run`` process (``--admin-port``):
    its subscriptions with their statistics, dead letters, redrive and
    ``/metrics``. Definitions are written on the server (its FJORD.TRIGGER
    or admin API), which owns the log; so there is no POST /triggers here."""

    def __init__(self, service, bind: str, port: int, password: str = ""):
        self.service = service
        self.bind, self.requested_port, self.password = bind, port, password
        self.registry = CollectorRegistry()
        self.registry.register(TriggerCollector(self._entries))
        self.app = web.Application(middlewares=[self._guard, _errors_as_json])
        self.app.add_routes([
            web.get("/healthz", self.healthz),
            web.get("/metrics", self.metrics),
            web.get("/triggers", self.list_triggers),
            web.get("/triggers/{name}", self.info),
            web.get("/triggers/{name}/dlq", self.dead_letters),
            web.post("/triggers/{name}/redrive", self.redrive),
        ])
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    def _entries(self) -> list[dict]:
        return [_masked(e) for e in self.service.list()]

    def _info(self, name: str) -> dict:
        try:
            return _masked(self.service.info(name))
        except KeyError:
            raise control.no_such(name) from None

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        if request.path != "/healthz":
            denied = check_password(request, self.password)
            if denied is not None:
                return denied
        return await handler(request)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.bind, self.requested_port, reuse_address=True)
        await self._site.start()
        log.info("dispatcher admin API listening on http://%s:%d", self.bind, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def port(self) -> int:
        if self._site is not None and self._site._server is not None and self._site._server.sockets:
            return self._site._server.sockets[0].getsockname()[1]
        return self.requested_port

    async def healthz(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def list_triggers(self, request: web.Request) -> web.Response:
        return _json(self._entries())

    async def info(self, request: web.Request) -> web.Response:
        return _json(self._info(request.match_info["name"]))

    async def dead_letters(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._info(name)
        try:
            count = int(request.query.get("count", str(control.DEFAULT_DLQ_COUNT)))
        except ValueError:
            count = 0
        if count <= 0:
            return _json({"error": "ERR count must be a positive integer"}, 400)
        return _json(await self.service.dlq(name, count))

    async def redrive(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._info(name)
        return _json({"name": name, "redriven": int(await self.service.redrive(name))})


def _masked(entry: dict) -> dict:
    if entry.get("secret"):
        entry = {**entry, "secret": "********"}
    return entry


async def start_dispatcher_admin(service, ns) -> DispatcherAdmin | None:
    """Start the admin API of ``fjord triggers run`` when ``--admin-port`` is
    set (its options are parsed in triggers/cli.py)."""
    port = getattr(ns, "admin_port", 0)
    if not port:
        return None
    admin = DispatcherAdmin(service, getattr(ns, "admin_bind", "127.0.0.1"), port,
                            getattr(ns, "admin_password", ""))
    await admin.start()
    return admin
