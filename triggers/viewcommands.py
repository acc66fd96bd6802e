"""Reading views: ``FJORD.VIEW`` (RESP), HTTP JSON routes and /metrics.

RESP::

    FJORD.VIEW LIST                                   names of the views
    FJORD.VIEW INFO name                              definition, state, lag, rate, errors
    FJORD.VIEW GET name group [AFTER offset] [TIMEOUT ms]
    FJORD.VIEW RANGE name start stop [AFTER offset] [TIMEOUT ms]
    FJORD.VIEW REBUILD name                           drop the state, fold again from the start

``AFTER offset`` (read your writes): answer once the view reflects the
record at ``offset`` (``FJORD.OFFSET`` gives a connection's last one),
waiting up to ``TIMEOUT`` ms (default 5000; 0 waits forever) like a blocked
client; on timeout the reply is an error naming the view's position.

HTTP (admin API, ``admin-port``): ``GET /views``, ``GET /views/{name}``,
``GET /views/{name}/get?group=G[&after=N&timeout=ms]``,
``GET /views/{name}/range?start=0&stop=-1``, ``POST /views/{name}/rebuild``.
Byte strings come out as text when UTF-8, else ``{"b64": ...}``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from store import errors
from store.commands.args import parse_int
from store.commands.table import container, subcommand
from store.resp import Delayed, Raw, ReplyError, RespMap, encode_error
from store.session import Session

from .images import to_json

if TYPE_CHECKING:
    from .viewhost import ViewHost

log = logging.getLogger("fjord.views")

DEFAULT_TIMEOUT_MS = 5000
_answering: set = set()


def to_reply(v: Any) -> Any:
    """A view value as a RESP reply value."""
    t = type(v)
    if v is None or t is bytes or t is int or t is float or t is bool:
        return v
    if t is str:
        return v.encode()
    if t is dict:
        return RespMap((to_reply(k), to_reply(x)) for k, x in v.items())
    if t in (set, frozenset):
        return sorted(to_reply(x) for x in v)
    if isinstance(v, (list, tuple)):
        return [to_reply(x) for x in v]
    return str(v).encode()


def _host(s: Session) -> "ViewHost":
    host = getattr(s.server, "views", None) if s.server is not None else None
    if host is None:
        raise ReplyError("ERR no views are loaded (start the server with --views MODULE)")
    return host


def _runner(s: Session, name: bytes):
    host = _host(s)
    try:
        return host, host.runner(name.decode("utf-8", "replace"))
    except KeyError:
        raise ReplyError(f"ERR no such view '{name.decode('utf-8', 'replace')}'") from None


view_cmd = container("fjord.view", group="server", since="7.0.0",
                     summary="Reads materialized views (LIST, INFO, GET, RANGE, REBUILD)")


@subcommand(view_cmd, "list", 2, "readonly loading stale", summary="Names of the loaded views")
def view_list(s: Session, args: list[bytes]):
    return sorted(n.encode() for n in _host(s).views)


@subcommand(view_cmd, "info", 3, "readonly loading stale", summary="A view's definition, state, lag and errors")
def view_info(s: Session, args: list[bytes]):
    host, runner = _runner(s, args[2])
    return RespMap((k.encode(), to_reply(v)) for k, v in host.info(runner.view.name).items())


def _after(args: list[bytes], i: int) -> tuple[int | None, float | None]:
    after, timeout_ms = None, DEFAULT_TIMEOUT_MS
    while i < len(args):
        word = args[i].upper()
        if i + 1 >= len(args):
            raise ReplyError(errors.SYNTAX)
        if word == b"AFTER":
            after = parse_int(args[i + 1])
        elif word == b"TIMEOUT":
            timeout_ms = parse_int(args[i + 1])
            if timeout_ms < 0:
                raise ReplyError("ERR timeout is negative")
        else:
            raise ReplyError(errors.SYNTAX)
        i += 2
    return after, (timeout_ms / 1000 if timeout_ms else None)


def _answer(s: Session, runner, after: int | None, timeout: float | None, read):
    """``read()`` now, or once the view has passed ``after`` (a Delayed reply)."""
    if after is None or runner.next_offset > after:
        return to_reply(read())
    server = s.server
    conn = server.clients.get(s.id)
    if conn is None or s.in_exec or s.multi is not None:
        raise ReplyError("ERR FJORD.VIEW ... AFTER cannot wait inside MULTI or a script")
    delayed = Delayed([], None)

    async def wait() -> None:
        ok = await runner.wait_for(after, timeout)
        if ok:
            reply = to_reply(read())
        else:
            reply = Raw(encode_error(f"ERR TIMEOUT view '{runner.view.name}' has not reached offset {after} "
                                     f"(it has applied the log up to offset {runner.next_offset - 1})"))
        if server.blocking.clients.get(conn) is delayed:
            conn.unblock(reply)

    task = asyncio.get_running_loop().create_task(wait())
    _answering.add(task)
    task.add_done_callback(_answering.discard)
    return delayed


@subcommand(view_cmd, "get", -4, "readonly loading stale", summary="A view's value for one group")
def view_get(s: Session, args: list[bytes]):
    host, runner = _runner(s, args[2])
    after, timeout = _after(args, 4)
    group = args[3]
    return _answer(s, runner, after, timeout, lambda: runner.view.get(runner.state, group))


@subcommand(view_cmd, "range", -5, "readonly loading stale", summary="A view's entries by rank or group order")
def view_range(s: Session, args: list[bytes]):
    host, runner = _runner(s, args[2])
    start, stop = parse_int(args[3]), parse_int(args[4])
    after, timeout = _after(args, 5)
    return _answer(s, runner, after, timeout, lambda: runner.view.range(runner.state, start, stop))


@subcommand(view_cmd, "rebuild", 3, "admin loading stale", summary="Drop a view's state and fold the log again")
def view_rebuild(s: Session, args: list[bytes]):
    host, runner = _runner(s, args[2])
    task = asyncio.get_running_loop().create_task(host.rebuild(runner.view.name))
    _answering.add(task)
    task.add_done_callback(_answering.discard)
    return Raw(b"+OK\r\n")


# ------------------------------------------------------------------ HTTP + metrics


def add_http(server, host: "ViewHost", admin=None) -> None:
    """Routes and a Prometheus collector on the admin API, when it is on
    (``admin``: another app with ``add_routes``/``add_collector``)."""
    if not server.config["admin-port"]:
        return
    import orjson
    from aiohttp import web

    def _json(data, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")

    def find(request):
        name = request.match_info["name"]
        if name not in host.views or host.views[name].runner is None:
            raise web.HTTPNotFound(text=f'{{"error": "ERR no such view \'{name}\'"}}',
                                   content_type="application/json")
        return host.views[name].runner

    async def list_views(request):
        return _json([to_json(host.info(n)) for n in sorted(host.views)])

    async def info(request):
        return _json(to_json(host.info(find(request).view.name)))

    async def wait(request, runner):
        after = request.query.get("after")
        if after is not None:
            timeout_ms = int(request.query.get("timeout", DEFAULT_TIMEOUT_MS))
            if not await runner.wait_for(int(after), timeout_ms / 1000 if timeout_ms else None):
                raise web.HTTPGatewayTimeout(text='{"error": "ERR TIMEOUT"}', content_type="application/json")

    async def get(request):
        runner = find(request)
        await wait(request, runner)
        group = request.query.get("group", "").encode()
        return _json({"group": to_json(group), "value": to_json(_plain(runner.view.get(runner.state, group))),
                      "offset": runner.next_offset})

    async def range_(request):
        runner = find(request)
        await wait(request, runner)
        start, stop = int(request.query.get("start", 0)), int(request.query.get("stop", -1))
        return _json({"entries": to_json(_plain(runner.view.range(runner.state, start, stop))),
                      "offset": runner.next_offset})

    async def rebuild(request):
        name = find(request).view.name
        await host.rebuild(name)
        return _json({"rebuilding": name}, 202)

    if admin is None:
        from .http import admin_for
        admin = admin_for(server)
    admin.add_routes([
        web.get("/views", list_views), web.get("/views/{name}", info),
        web.get("/views/{name}/get", get), web.get("/views/{name}/range", range_),
        web.post("/views/{name}/rebuild", rebuild),
    ])
    admin.add_collector(ViewCollector(host))


def _plain(v: Any) -> Any:
    """Sets and tuples as lists, for JSON."""
    if isinstance(v, (set, frozenset)):
        return sorted(v)
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


#: (stats field, metric, help, counter?)
_METRICS = (
    ("lag_events", "fjord_view_lag_events", "records written but not yet applied by the view", False),
    ("lag_seconds", "fjord_view_lag_seconds", "age of the newest applied event while lagging", False),
    ("applied", "fjord_view_applied", "events applied", True),
    ("rate", "fjord_view_rate", "events applied per second (recent)", False),
    ("errors", "fjord_view_errors", "events whose apply failed", True),
    ("offset", "fjord_view_offset", "next log offset the view will apply", False),
)


class ViewCollector:
    """Per-view figures (label ``name``) for /metrics."""

    def __init__(self, host: "ViewHost"):
        self.host = host

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats = {n: hv.runner.stats() for n, hv in self.host.views.items() if hv.runner is not None}
        for field, metric, help_, counter in _METRICS:
            fam = (CounterMetricFamily if counter else GaugeMetricFamily)(metric, help_, labels=["name"])
            for name, st in sorted(stats.items()):
                fam.add_metric([name], st[field])
            yield fam


def _info_section(server) -> list[tuple[str, object]] | None:
    """INFO's ``# Views``: one line per view (lag, rate, errors)."""
    host = getattr(server, "views", None)
    if host is None:
        return None
    fields: list[tuple[str, object]] = [("views", len(host.views))]
    for name in sorted(host.views):
        runner = host.views[name].runner
        if runner is None:
            continue
        st = runner.stats()
        fields.append((f"view_{name}", ",".join(
            f"{k}={st[k]}" for k in ("state", "offset", "lag_events", "lag_seconds", "applied", "rate",
                                     "errors", "rebuilds", "progress"))))
    return fields


def _register_info() -> None:
    from store import info

    info.add_section("views", _info_section)


_register_info()
