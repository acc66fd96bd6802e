"""Functional tests of the trigger management surfaces: FJORD.TRIGGER over
RESP2/RESP3, the HTTP admin API, ``/metrics``, INFO's ``# Triggers`` and the
``fjord triggers`` CLI, against one real ``fjord serve`` with its admin port
open and a real aiohttp webhook receiver on loopback (allow-listed).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import threading
import time

import aiohttp
import orjson
import pytest
import redis
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT, FjordProcess, RawClient, free_port

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123").decode()


class Receiver:
    """A webhook endpoint in its own thread and loop; ``fail_keys`` answer 500."""

    def __init__(self):
        self.port = free_port()
        self.records: list[dict] = []
        self.fail_keys: set[str] = set()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def hook(request: web.Request) -> web.Response:
            doc = await request.json()
            if any(ev.get("subject") in self.fail_keys for ev in doc["records"]):
                return web.Response(status=500, text="refused")
            self.records.extend((doc["subscription"], ev) for ev in doc["records"])
            return web.Response(status=200)

        async def start() -> None:
            app = web.Application()
            app.add_routes([web.post("/hook", hook)])
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
            self.ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def subjects(self, subscription: str) -> list[str]:
        """Keys delivered to ``subscription``, in arrival order."""
        return [ev.get("subject") for name, ev in list(self.records) if name == subscription]

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    admin_port = free_port()
    proc = FjordProcess(str(tmp_path_factory.mktemp("trigadmin") / "data"),
                        args=("--admin-port", str(admin_port)))
    proc.admin_port = admin_port
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def receiver():
    rec = Receiver()
    yield rec
    rec.close()


@pytest.fixture
def c(srv):
    client = srv.client(decode_responses=True, protocol=2)  # RESP2: flat arrays (RESP3 maps tested apart)
    yield client
    client.close()


def wait_until(predicate, timeout: float = 10.0, step: float = 0.02):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def flat_to_dict(flat: list) -> dict:
    return dict(zip(flat[::2], flat[1::2]))


def admin(srv, method: str, path: str, body=None, headers=None) -> tuple[int, object]:
    """One HTTP request to the admin API with aiohttp (like curl)."""
    async def go():
        async with aiohttp.ClientSession() as session:
            async with session.request(method, f"http://127.0.0.1:{srv.admin_port}{path}", headers=headers,
                                       data=None if body is None else orjson.dumps(body)) as resp:
                text = await resp.text()
                ctype = resp.headers.get("Content-Type", "")
                return resp.status, (json.loads(text) if "json" in ctype else text)
    return asyncio.run(go())


# ------------------------------------------------------------------ RESP


def test_create_list_info_hide_the_secret(srv, c, receiver):
    assert c.execute_command("FJORD.TRIGGER", "CREATE", "resp-a", "WEBHOOK", receiver.url, "MATCH", "a:*",
                             "b:*", "EVENTS", "set,hset", "VIEW", "NEW_IMAGE", "BATCH", "10", "SECRET", SECRET,
                             "ALLOW-PRIVATE") == "OK"
    info = flat_to_dict(c.execute_command("FJORD.TRIGGER", "INFO", "resp-a"))  # RESP2: flat array
    assert info["name"] == "resp-a" and info["sink"] == "webhook" and info["target"] == receiver.url
    assert info["match"] == ["a:*", "b:*"] and info["events"] == ["set", "hset"]
    assert info["view"] == "NEW_IMAGE" and info["batch_size"] == 10 and info["allow_private"] == 1
    assert info["secret"] == "********"
    names = [flat_to_dict(e)["name"] for e in c.execute_command("FJORD.TRIGGER", "LIST")]
    assert "resp-a" in names
    raw = RawClient(srv.port)
    try:
        for cmd in (("FJORD.TRIGGER", "INFO", "resp-a"), ("FJORD.TRIGGER", "LIST")):
            assert SECRET.encode() not in raw.call(*cmd)
        assert raw.call("HELLO", "3").startswith(b"%")
        reply = raw.call("FJORD.TRIGGER", "INFO", "resp-a")
        assert reply.startswith(b"%") and b"$6\r\nsecret\r\n$8\r\n********\r\n" in reply
        assert SECRET.encode() not in reply
    finally:
        raw.close()
    c3 = srv.client(protocol=3, decode_responses=True)
    try:
        info3 = c3.execute_command("FJORD.TRIGGER", "INFO", "resp-a")
        assert isinstance(info3, dict) and info3["secret"] == "********" and info3["view"] == "NEW_IMAGE"
    finally:
        c3.close()


def test_errors_are_clean(srv, c, receiver):
    c.execute_command("FJORD.TRIGGER", "CREATE", "resp-dup", "WEBHOOK", receiver.url, "ALLOW-PRIVATE",
                      "MATCH", "dup:*")
    cases = [
        (("CREATE", "resp-dup", "WEBHOOK", receiver.url, "ALLOW-PRIVATE"), "trigger 'resp-dup' already exists"),
        (("CREATE", "x1", "EMAIL", "a@b"), "unknown sink 'EMAIL'"),
        (("CREATE", "x1", "WEBHOOK", receiver.url, "ALLOW-PRIVATE", "BATCH", "zero"), "BATCH must be an integer"),
        (("CREATE", "x1", "WEBHOOK", receiver.url, "ALLOW-PRIVATE", "FROB"), "unknown trigger option 'FROB'"),
        (("CREATE", "x1", "WEBHOOK", receiver.url, "ALLOW-PRIVATE", "SECRET", "plain"), "SECRET"),
        (("CREATE", "x1", "WEBHOOK", receiver.url), "loopback"),  # the SSRF guard, without ALLOW-PRIVATE
        (("INFO", "nope"), "no such trigger 'nope'"),
        (("PAUSE", "nope"), "no such trigger 'nope'"),
        (("RESUME", "nope"), "no such trigger 'nope'"),
        (("DELETE", "nope"), "no such trigger 'nope'"),
        (("DLQ", "nope"), "no such trigger 'nope'"),
        (("REDRIVE", "nope"), "no such trigger 'nope'"),
        (("DLQ", "resp-dup", "COUNT", "0"), "value is out of range, must be positive"),
        (("DLQ", "resp-dup", "LIMIT", "3"), "syntax error"),
    ]
    for args, words in cases:
        with pytest.raises(redis.ResponseError) as exc:
            c.execute_command("FJORD.TRIGGER", *args)
        assert words in str(exc.value), (args, str(exc.value))
    raw = RawClient(srv.port)
    try:
        assert raw.call("FJORD.TRIGGER", "CREATE", "x", "WEBHOOK") == \
            b"-ERR wrong number of arguments for 'fjord.trigger|create' command\r\n"
        assert raw.call("FJORD.TRIGGER", "INFO") == \
            b"-ERR wrong number of arguments for 'fjord.trigger|info' command\r\n"
        assert raw.call("FJORD.TRIGGER", "FROB").startswith(b"-ERR unknown subcommand 'FROB'")
        assert raw.call("FJORD.TRIGGER", "CREATE", "x", "WEBHOOK", "ftp://x/y").startswith(b"-ERR ")
    finally:
        raw.close()
    assert "x1" not in [flat_to_dict(e)["name"] for e in c.execute_command("FJORD.TRIGGER", "LIST")]


def test_command_table_and_help(srv, c):
    raw = RawClient(srv.port)
    try:
        reply = raw.call("COMMAND", "INFO", "fjord.trigger")
    finally:
        raw.close()
    assert reply.startswith(b"*1\r\n*10\r\n$13\r\nfjord.trigger\r\n:-2\r\n")
    for sub, arity in (("create", -5), ("list", 2), ("info", 3), ("pause", 3), ("resume", 3), ("delete", 3),
                       ("dlq", -3), ("redrive", 3), ("help", 2)):
        name = f"fjord.trigger|{sub}".encode()
        assert b"$%d\r\n%s\r\n:%d\r\n" % (len(name), name, arity) in reply, sub
    assert any("CREATE" in line for line in c.execute_command("FJORD.TRIGGER", "HELP"))


def test_pause_resume_delete_survive_a_restart(tmp_path, receiver):
    proc = FjordProcess(str(tmp_path / "data"), args=("--admin-port", str(free_port())))
    proc.admin_port = int(proc.args[1])
    proc.start()
    try:
        c = proc.client(decode_responses=True, protocol=2)
        c.execute_command("FJORD.TRIGGER", "CREATE", "keep", "WEBHOOK", receiver.url, "ALLOW-PRIVATE",
                          "SECRET", SECRET)
        c.execute_command("FJORD.TRIGGER", "CREATE", "gone", "WEBHOOK", receiver.url, "ALLOW-PRIVATE")
        assert c.execute_command("FJORD.TRIGGER", "PAUSE", "keep") == "OK"
        assert c.execute_command("FJORD.TRIGGER", "DELETE", "gone") == "OK"
        assert admin(proc, "POST", "/triggers", {"name": "viahttp", "sink": "webhook", "target": receiver.url,
                                                 "allow_private": True})[0] == 201
        c.close()
        proc.restart()  # SIGKILL: every acknowledged definition is on the log
        c = proc.client(decode_responses=True, protocol=2)
        entries = [flat_to_dict(e) for e in c.execute_command("FJORD.TRIGGER", "LIST")]
        assert [e["name"] for e in entries] == ["keep", "viahttp"]
        assert entries[0]["paused"] == 1 and entries[0]["secret"] == "********"
        assert c.execute_command("FJORD.TRIGGER", "RESUME", "keep") == "OK"
        assert flat_to_dict(c.execute_command("FJORD.TRIGGER", "INFO", "keep"))["paused"] == 0
        c.close()
    finally:
        proc.stop()


def test_info_section(srv, c, receiver):
    c.execute_command("FJORD.TRIGGER", "CREATE", "info-a", "WEBHOOK", receiver.url, "ALLOW-PRIVATE")
    c.execute_command("FJORD.TRIGGER", "CREATE", "info:b", "WEBHOOK", receiver.url, "ALLOW-PRIVATE")
    raw = RawClient(srv.port)
    try:
        assert raw.call("INFO", "triggers").split(b"\r\n", 2)[1] == b"# Triggers"
        assert b"# Triggers" in raw.call("INFO")  # one of the default sections
        assert b"# Triggers" not in raw.call("INFO", "server")
    finally:
        raw.close()
    section = c.info("triggers")
    assert section["triggers"] >= 1 and section["trigger_dispatcher"] == "embedded"
    lines = [v for k, v in section.items() if k.startswith("trigger") and isinstance(v, dict)]
    line = next(v for v in lines if v["name"] == "info-a")
    assert line["sink"] == "webhook" and "state" in line
    assert next(v for v in lines if v["name"] == "info:b")["sink"] == "webhook"  # a ':' in a name parses


# ------------------------------------------------------------------ delivery statistics and dead letters


def test_stats_dead_letters_and_redrive(srv, c, receiver):
    receiver.fail_keys.add("dl:bad")
    c.execute_command("FJORD.TRIGGER", "CREATE", "dl", "WEBHOOK", receiver.url, "ALLOW-PRIVATE", "MATCH", "dl:*",
                      "RETRIES", "1", "BACKOFF", "10", "BATCH", "1", "NOBISECT")
    c.set("dl:good", "1")
    c.set("dl:bad", "2")
    wait_until(lambda: "dl:good" in receiver.subjects("dl"))

    def dead():
        return flat_to_dict(c.execute_command("FJORD.TRIGGER", "INFO", "dl")).get("dead_lettered", 0) >= 1
    wait_until(dead)
    info = flat_to_dict(c.execute_command("FJORD.TRIGGER", "INFO", "dl"))
    assert info["delivered"] >= 1 and info["failed"] >= 1 and info["last_error"]
    letters = c.execute_command("FJORD.TRIGGER", "DLQ", "dl", "COUNT", "5")
    assert len(letters) == 1
    assert "dl:bad" in json.dumps(letters)
    receiver.fail_keys.clear()
    assert c.execute_command("FJORD.TRIGGER", "REDRIVE", "dl") == 1
    wait_until(lambda: "dl:bad" in receiver.subjects("dl"))
    section = next(v for k, v in c.info("triggers").items() if isinstance(v, dict) and v["name"] == "dl")
    assert section["delivered"] >= 2 and section["dead_lettered"] >= 1
    with c.pipeline(transaction=True) as p:  # an answer that waits cannot run in MULTI
        p.execute_command("FJORD.TRIGGER", "DLQ", "dl")
        with pytest.raises(redis.ResponseError, match="cannot run inside MULTI"):
            p.execute()


# ------------------------------------------------------------------ HTTP


def test_http_crud(srv, c, receiver):
    status, body = admin(srv, "GET", "/healthz")
    assert status == 200 and body["status"] == "ok"
    definition = {"name": "http-a", "sink": "webhook", "target": receiver.url, "match": ["h:*"],
                  "allow_private": True, "secret": SECRET, "batch_size": 5}
    status, body = admin(srv, "POST", "/triggers", definition)
    assert status == 201, body
    assert body["name"] == "http-a" and body["secret"] == "********" and body["batch_size"] == 5
    # the same registry as FJORD.TRIGGER (and already durable: 201 came after the fsync)
    assert flat_to_dict(c.execute_command("FJORD.TRIGGER", "INFO", "http-a"))["match"] == ["h:*"]
    status, body = admin(srv, "POST", "/triggers", definition)
    assert status == 409 and body["error"] == "ERR trigger 'http-a' already exists"
    status, listing = admin(srv, "GET", "/triggers")
    assert status == 200 and "http-a" in [e["name"] for e in listing]
    assert SECRET not in json.dumps(listing)
    assert admin(srv, "POST", "/triggers/http-a/pause") == (200, {"name": "http-a", "paused": True})
    assert admin(srv, "GET", "/triggers/http-a")[1]["paused"] is True
    assert admin(srv, "POST", "/triggers/http-a/resume")[0] == 200
    status, letters = admin(srv, "GET", "/triggers/http-a/dlq?count=3")
    assert status == 200 and letters == []
    assert admin(srv, "POST", "/triggers/http-a/redrive") == (200, {"name": "http-a", "redriven": 0})
    assert admin(srv, "DELETE", "/triggers/http-a") == (200, {"deleted": "http-a"})
    assert admin(srv, "GET", "/triggers/http-a") == (404, {"error": "ERR no such trigger 'http-a'"})


def test_http_errors(srv, receiver):
    assert admin(srv, "DELETE", "/triggers/nope")[0] == 404
    assert admin(srv, "POST", "/triggers/nope/pause")[0] == 404
    status, body = admin(srv, "POST", "/triggers", {"name": "bad", "sink": "webhook", "target": receiver.url})
    assert status == 400 and "loopback" in body["error"]  # the SSRF guard, as over RESP
    status, body = admin(srv, "POST", "/triggers", {"name": "bad", "sink": "webhook", "target": receiver.url,
                                                    "allow_private": True, "frob": 1})
    assert status == 400 and body["error"].startswith("ERR ") and "frob" in body["error"]
    assert admin(srv, "POST", "/triggers", [1, 2])[0] == 400
    status, body = admin(srv, "GET", "/triggers/nope/dlq?count=0")
    assert status in (400, 404)
    assert admin(srv, "GET", "/nowhere")[0] == 404


def test_http_wants_the_password(tmp_path, receiver):
    port = free_port()
    proc = FjordProcess(str(tmp_path / "data"), args=("--admin-port", str(port), "--requirepass", "s3cret"))
    proc.admin_port = port
    proc.start(password="s3cret")
    try:
        assert admin(proc, "GET", "/triggers") == (401, {"error": "NOAUTH Authentication required."})
        assert admin(proc, "GET", "/metrics")[0] == 401
        assert admin(proc, "GET", "/triggers", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert admin(proc, "GET", "/triggers", headers={"Authorization": "Bearer s3cret"}) == (200, [])
        assert admin(proc, "GET", "/healthz")[0] == 200  # for load balancers
        done = fjord_cli(proc, "list", "-a", "s3cret", port=proc.port)
        assert done.returncode == 0 and done.stdout == "(no triggers)\n"
        assert fjord_cli(proc, "list", port=proc.port).returncode == 1  # NOAUTH, answered as an error
    finally:
        proc.stop()


def test_metrics(srv, c, receiver):
    c.execute_command("FJORD.TRIGGER", "CREATE", "met", "WEBHOOK", receiver.url, "ALLOW-PRIVATE",
                      "MATCH", "met:*")
    c.set("met:1", "x")
    wait_until(lambda: "met:1" in receiver.subjects("met"))

    def delivered():
        status, text = admin(srv, "GET", "/metrics")
        assert status == 200
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        for s in fams["fjord_trigger_delivered"].samples:
            if s.labels.get("name") == "met" and s.value >= 1:
                return fams
        return None
    fams = wait_until(delivered)
    assert fams["fjord_up"].samples[0].value == 1
    assert fams["fjord_log_end_offset"].samples[0].value > 0
    for name in ("fjord_trigger_lag_events", "fjord_trigger_lag_seconds", "fjord_trigger_retried",
                 "fjord_trigger_failed", "fjord_trigger_dead_lettered", "fjord_trigger_paused"):
        assert any(s.labels.get("name") == "met" for s in fams[name].samples), name


# ------------------------------------------------------------------ CLI


def fjord_cli(srv, *args: str, port: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "store", "triggers", *args[:1], "-p", str(port or srv.port), *args[1:]],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
        env={**os.environ, "PYTHONPATH": ROOT},
    )


def test_cli(srv, receiver):
    done = fjord_cli(srv, "create", "cli-a", "WEBHOOK", receiver.url, "ALLOW-PRIVATE", "MATCH", "cli:*",
                     "SECRET", SECRET)
    assert done.returncode == 0 and done.stdout == "created cli-a\n", done.stderr
    done = fjord_cli(srv, "list")
    assert done.returncode == 0
    header, *rows = done.stdout.splitlines()
    assert header.split()[:3] == ["name", "sink", "state"]
    assert any(row.split()[0] == "cli-a" for row in rows)
    done = fjord_cli(srv, "list", "--json")
    assert "cli-a" in [e["name"] for e in json.loads(done.stdout)] and SECRET not in done.stdout
    done = fjord_cli(srv, "info", "cli-a")
    info = json.loads(done.stdout)
    assert info["match"] == ["cli:*"] and info["secret"] == "********"
    assert fjord_cli(srv, "pause", "cli-a").stdout == "paused cli-a\n"
    assert json.loads(fjord_cli(srv, "info", "cli-a").stdout)["paused"] == 1
    assert fjord_cli(srv, "resume", "cli-a").stdout == "resumed cli-a\n"
    assert fjord_cli(srv, "dlq", "cli-a").stdout == ""
    assert fjord_cli(srv, "redrive", "cli-a").stdout == "redriven 0\n"
    assert fjord_cli(srv, "delete", "cli-a").stdout == "deleted cli-a\n"
    done = fjord_cli(srv, "info", "cli-a")
    assert done.returncode == 1 and done.stderr == "(error) ERR no such trigger 'cli-a'\n"
    done = fjord_cli(srv, "list", port=free_port())
    assert done.returncode == 2 and "cannot talk to" in done.stderr


def test_split_mode_cli_run(tmp_path, receiver):
    """``--triggers no`` on the server, ``fjord triggers run`` delivering:
    the server still manages definitions (state ``external``) and reads the
    runner's dead letters from the shared data directory."""
    data = str(tmp_path / "data")
    proc = FjordProcess(data, args=("--triggers", "no")).start()
    runner = None
    try:
        c = proc.client(decode_responses=True, protocol=2)
        assert fjord_cli(proc, "create", "split", "WEBHOOK", receiver.url, "ALLOW-PRIVATE", "MATCH", "split:*",
                         "RETRIES", "0", "NOBISECT", "BATCH", "1").returncode == 0
        assert flat_to_dict(c.execute_command("FJORD.TRIGGER", "INFO", "split"))["state"] == "external"
        assert c.info("triggers")["trigger_dispatcher"] == "external"
        runner = subprocess.Popen([sys.executable, "-m", "store", "triggers", "run", "--dir", data], cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        receiver.fail_keys.add("split:bad")
        c.set("split:1", "x")
        c.set("split:bad", "y")
        wait_until(lambda: "split:1" in receiver.subjects("split"))
        letters = wait_until(lambda: c.execute_command("FJORD.TRIGGER", "DLQ", "split"))
        assert "split:bad" in json.dumps(letters)
        with pytest.raises(redis.ResponseError, match="does not run in this server"):
            c.execute_command("FJORD.TRIGGER", "REDRIVE", "split")
        c.close()
    finally:
        receiver.fail_keys.discard("split:bad")
        if runner is not None:
            runner.terminate()
            runner.wait(10)
        proc.stop()


async def test_dispatcher_admin_api(tmp_path):
    """The admin API of a dispatcher running apart from the server (what
    ``fjord triggers run --admin-port`` serves): list, dead letters, redrive,
    /metrics, password."""
    from store.snapshotting import load_types
    from streams.filelog import FileLog
    from triggers import registry
    from triggers.http import start_dispatcher_admin
    from triggers.service import TriggerService, default_sink_factory

    data = str(tmp_path / "data")
    proc = FjordProcess(data, args=("--triggers", "no")).start()
    flog = follow = service = dispatcher_admin = None
    try:
        c = proc.client(decode_responses=True, protocol=2)
        dead_port = free_port()  # nothing listens: every delivery fails at once
        c.execute_command("FJORD.TRIGGER", "CREATE", "apart", "WEBHOOK", f"http://127.0.0.1:{dead_port}/x",
                          "ALLOW-PRIVATE", "RETRIES", "0", "SECRET", SECRET)
        c.set("k", "v")
        c.close()
        load_types()
        flog = await FileLog.open(os.path.join(data, "log"), readonly=True)
        follower = registry.MetaFollower(flog, None)
        follow = asyncio.get_running_loop().create_task(follower.follow())
        while ("trigger", "apart") not in follower.meta:
            await asyncio.sleep(0.01)
        service = TriggerService(data_dir=data, sink_factory=default_sink_factory())
        await service.start_on(flog, follower.meta)
        ns = argparse.Namespace(admin_port=free_port(), admin_bind="127.0.0.1", admin_password="pw")
        dispatcher_admin = await start_dispatcher_admin(service, ns)
        base = f"http://127.0.0.1:{dispatcher_admin.port}"
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer pw"}) as http:
            async def get(path, method="GET"):
                async with http.request(method, base + path) as resp:
                    return resp.status, await resp.text()

            for _ in range(500):
                status, text = await get("/triggers/apart/dlq")
                if status == 200 and json.loads(text):
                    break
                await asyncio.sleep(0.02)
            letters = json.loads(text)
            assert len(letters) == 1 and letters[0]["record"]["key"] == "k"
            for _ in range(500):  # the counter may follow the file by a moment
                status, text = await get("/triggers")
                if json.loads(text)[0]["dead_lettered"] == 1:
                    break
                await asyncio.sleep(0.02)
            assert status == 200 and SECRET not in text and json.loads(text)[0]["dead_lettered"] == 1
            assert await get("/triggers/nope") == (404, '{"error":"ERR no such trigger \'nope\'"}')
            status, text = await get("/triggers/apart/redrive", "POST")
            assert (status, json.loads(text)) == (200, {"name": "apart", "redriven": 1})
            status, text = await get("/metrics")
            fams = {f.name: f for f in text_string_to_metric_families(text)}
            assert [s.value for s in fams["fjord_trigger_failed"].samples if s.labels["name"] == "apart"][0] >= 1
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/triggers") as resp:
                assert resp.status == 401
    finally:
        if dispatcher_admin is not None:
            await dispatcher_admin.stop()
        if service is not None:
            await service.stop()
        if follow is not None:
            follow.cancel()
        if flog is not None:
            await flog.close()
        proc.stop()
