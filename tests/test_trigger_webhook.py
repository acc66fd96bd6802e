"""Webhook sink: real aiohttp receivers on loopback (ALLOW-PRIVATE), batches
built by hand, the signature checked with the standardwebhooks verifier;
and the SSRF guard at creation and at connection time."""

from __future__ import annotations

import asyncio
import base64
import time
from email.utils import formatdate

import orjson
import pytest
from aiohttp import web
from standardwebhooks import Webhook

from conftest import free_port
from triggers.delivery import Batch, ChangeRecord
from triggers.sinks import make_sink, validate_target
from triggers.sinks.formats import rfc3339
from triggers.sinks.webhook import parse_retry_after
from triggers.subscription import Subscription, TriggerError

SECRET = "whsec_" + base64.b64encode(b"fjord-test-secret-0123456789").decode()


class Receiver:
    """An aiohttp server on loopback; ``respond`` decides each answer."""

    def __init__(self):
        self.requests: list[tuple[dict, bytes]] = []
        self.respond = lambda request, body: web.Response(status=204)
        self.in_flight = self.max_in_flight = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            answer = self.respond(request, body)
            if asyncio.iscoroutine(answer):
                answer = await answer
            return answer
        finally:
            self.in_flight -= 1

    async def __aenter__(self):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()

    def bodies(self) -> list[dict]:
        return [orjson.loads(b) for _, b in self.requests]


def record(offset: int, key="user:1", type_="set", data=None, view="KEYS_ONLY", old=None, new=None, index=0):
    return ChangeRecord(id=f"{offset}-{index}", offset=offset, index=index, time_ms=1764255600123, db=0,
                        key=key, type=type_, data=data if data is not None else {"value": "v"},
                        view=view, old_image=old, new_image=new)


def batch(*recs, attempt=1) -> Batch:
    return Batch("hooks", f"{recs[0].id}.{recs[-1].id}", list(recs), attempt)


def sub(url: str, *words: str) -> Subscription:
    return Subscription.from_words([b"hooks", b"WEBHOOK", url.encode(), b"ALLOW-PRIVATE",
                                    *(w.encode() for w in words)])


# ------------------------------------------------------------------ delivery


async def test_batch_is_cloudevents_and_signed():
    async with Receiver() as rx:
        sink = make_sink(sub(rx.url, "SECRET", SECRET), source_host="node1")
        recs = [record(7, view="NEW_AND_OLD_IMAGES", old=None, new={"type": "string", "value": "v"}),
                record(7, key={"b64": "/w=="}, type_="del", index=1, view="NEW_AND_OLD_IMAGES",
                       old={"type": "string", "value": "x"}, new=None)]
        out = await sink.deliver(batch(*recs))
        await sink.close()
    assert out.ok and not out.failed_ids and out.error is None
    [(headers, body)] = rx.requests
    # the standardwebhooks package's own verifier accepts it
    doc = Webhook(SECRET).verify(body, headers)
    assert headers["webhook-id"] == "7-0.7-1"
    assert headers["Content-Type"] == "application/json"
    assert doc["subscription"] == "hooks" and doc["batch_id"] == "7-0.7-1"
    first, second = doc["records"]
    assert first == {
        "specversion": "1.0", "id": "7-0", "source": "fjord://node1/0", "type": "io.fjord.set",
        "time": "2025-11-27T15:00:00.123Z", "datacontenttype": "application/json", "subject": "user:1",
        "data": {"db": 0, "key": "user:1", "offset": 7, "index": 0, "view": "NEW_AND_OLD_IMAGES",
                 "data": {"value": "v"}, "old_image": None, "new_image": {"type": "string", "value": "v"}},
    }
    # a binary key has no subject (CloudEvents' subject is a string); data.key keeps the bytes
    assert "subject" not in second and second["data"]["key"] == {"b64": "/w=="}
    assert second["type"] == "io.fjord.del" and second["data"]["new_image"] is None
    # a tampered body fails verification
    with pytest.raises(Exception):
        Webhook(SECRET).verify(body.replace(b"user:1", b"user:2"), headers)


async def test_views_decide_which_images_are_sent():
    async with Receiver() as rx:
        sink = make_sink(sub(rx.url))
        img = {"type": "hash", "value": [["f", "1"]]}
        for view in ("KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE"):
            await sink.deliver(batch(record(1, type_="hset", view=view, old=img if view == "OLD_IMAGE" else None,
                                            new=img if view == "NEW_IMAGE" else None)))
        await sink.close()
    datas = [b["records"][0]["data"] for b in rx.bodies()]
    assert "old_image" not in datas[0] and "new_image" not in datas[0]
    assert datas[1]["new_image"] == img and "old_image" not in datas[1]
    assert datas[2]["old_image"] == img and "new_image" not in datas[2]
    assert "webhook-signature" not in rx.requests[0][0]  # no secret, no signature


async def test_retry_keeps_the_webhook_id_and_reuses_the_connection():
    async with Receiver() as rx:
        sink = make_sink(sub(rx.url, "SECRET", SECRET))
        b = batch(record(3), record(4))
        await sink.deliver(b)
        b.attempt = 2
        await sink.deliver(b)
        await sink.close()
    (h1, body1), (h2, body2) = rx.requests
    assert h1["webhook-id"] == h2["webhook-id"] == "3-0.4-0"
    assert (h1["fjord-attempt"], h2["fjord-attempt"]) == ("1", "2")
    assert body1 == body2
    Webhook(SECRET).verify(body2, h2)


async def test_410_disables_the_subscription():
    async with Receiver() as rx:
        rx.respond = lambda req, body: web.Response(status=410, text="unsubscribed")
        sink = make_sink(sub(rx.url))
        out = await sink.deliver(batch(record(1)))
        await sink.close()
    assert not out.ok and out.disable and out.error == "HTTP 410 Gone: unsubscribed"


async def test_429_and_503_honour_retry_after():
    answers = [web.Response(status=429, headers={"Retry-After": "7"}),
               web.Response(status=503, headers={"Retry-After": formatdate(time.time() + 30, usegmt=True)}),
               web.Response(status=503)]
    async with Receiver() as rx:
        rx.respond = lambda req, body: answers.pop(0)
        sink = make_sink(sub(rx.url))
        outs = [await sink.deliver(batch(record(i))) for i in range(3)]
        await sink.close()
    assert [o.ok or o.disable for o in outs] == [False] * 3
    assert outs[0].retry_after == 7 and outs[0].error.startswith("HTTP 429")
    assert 27 <= outs[1].retry_after <= 30
    assert outs[2].retry_after is None and outs[2].error.startswith("HTTP 503")


def test_parse_retry_after():
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 60) == 60
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 + 60) == 0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("99999999") == 3600  # capped


async def test_errors_timeouts_and_refused_connections_fail_the_batch():
    async def slow(req, body):
        await asyncio.sleep(0.8)
        return web.Response()

    async with Receiver() as rx:
        rx.respond = lambda req, body: web.Response(status=500, text="database on fire")
        sink = make_sink(sub(rx.url))
        out = await sink.deliver(batch(record(1)))
        assert not out.ok and not out.disable and out.error == "HTTP 500 Internal Server Error: database on fire"

        rx.respond = lambda req, body: web.Response(status=302, headers={"Location": "http://169.254.169.254/"})
        out = await sink.deliver(batch(record(2)))
        assert not out.ok and "redirects are not followed" in out.error
        await sink.close()

        rx.respond = slow
        sink = make_sink(sub(rx.url, "TIMEOUT", "200"))
        t0 = time.monotonic()
        out = await sink.deliver(batch(record(3)))
        assert time.monotonic() - t0 < 1.5
        assert not out.ok and out.error == "timeout: no answer within 200 ms"
        await sink.close()

    sink = make_sink(sub(f"http://127.0.0.1:{free_port()}/"))
    out = await sink.deliver(batch(record(4)))
    await sink.close()
    assert not out.ok and out.error.startswith("cannot connect")


async def test_partial_failure_from_the_receiver():
    async with Receiver() as rx:
        rx.respond = lambda req, body: web.json_response({"batchItemFailures": [{"itemIdentifier": "2-0"}]})
        sink = make_sink(sub(rx.url))
        out = await sink.deliver(batch(record(1), record(2), record(3)))
        rx.respond = lambda req, body: web.json_response({"batchItemFailures": [{"itemIdentifier": "9-9"}]})
        bad = await sink.deliver(batch(record(1)))
        rx.respond = lambda req, body: web.json_response({"received": 1})
        fine = await sink.deliver(batch(record(1)))
        await sink.close()
    assert not out.ok and out.failed_ids == ["2-0"]
    assert not bad.ok and not bad.failed_ids and "9-9" in bad.error
    assert fine.ok


async def test_concurrency_per_endpoint_is_bounded():
    async def held(req, body):
        await asyncio.sleep(0.1)
        return web.Response()

    async with Receiver() as rx:
        rx.respond = held
        sinks = [make_sink(sub(rx.url, "CONCURRENCY", "2")) for _ in range(2)]  # share the endpoint
        outs = await asyncio.gather(*(sinks[i % 2].deliver(batch(record(i))) for i in range(6)))
        for s in sinks:
            await s.close()
    assert all(o.ok for o in outs) and len(rx.requests) == 6
    assert rx.max_in_flight == 2


# ------------------------------------------------------------------ SSRF guard


@pytest.mark.parametrize("url, why", [
    ("http://127.0.0.1:8080/hook", "loopback address 127.0.0.1"),
    ("http://localhost:8080/hook", "'localhost' (resolves to"),          # a DNS name resolving to loopback
    ("http://10.1.2.3/hook", "private address 10.1.2.3"),
    ("http://192.168.1.1/hook", "private address 192.168.1.1"),
    ("http://169.254.169.254/latest/meta-data", "link-local address 169.254.169.254"),
    ("http://[::1]/hook", "loopback address ::1"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback address 127.0.0.1"),
    ("http://0.0.0.0/hook", "unspecified address 0.0.0.0"),
    ("http://224.0.0.1/hook", "multicast address 224.0.0.1"),
    ("http://240.0.0.1/hook", "reserved address 240.0.0.1"),
    ("http://100.64.0.1/hook", "non-global address 100.64.0.1"),
])
def test_private_destinations_are_refused_at_creation(url, why):
    with pytest.raises(TriggerError) as err:
        Subscription.from_words([b"h", b"WEBHOOK", url.encode()])
    msg = str(err.value)
    assert msg.startswith("ERR webhook host ") and why in msg and "ALLOW-PRIVATE" in msg, msg
    # explicitly allowed, it is accepted
    Subscription.from_words([b"h", b"WEBHOOK", url.encode(), b"ALLOW-PRIVATE"])


@pytest.mark.parametrize("url, why", [
    ("ftp://example.com/x", "must start with http:// or https://"),
    ("file:///etc/passwd", "must start with http:// or https://"),
    ("http:///nohost", "has no host"),
    ("http://user:pw@example.com/", "must not carry credentials"),
    ("http://no-such-host.invalid/", "does not resolve"),
])
def test_malformed_webhook_urls_are_refused(url, why):
    with pytest.raises(TriggerError) as err:
        Subscription.from_words([b"h", b"WEBHOOK", url.encode()])
    assert why in str(err.value)


def test_public_address_and_secret_checks():
    Subscription.from_words([b"h", b"WEBHOOK", b"https://93.184.216.34/hook"])  # an IP literal: no DNS
    with pytest.raises(TriggerError, match="SECRET"):
        Subscription.from_words([b"h", b"WEBHOOK", b"https://93.184.216.34/", b"SECRET", b"whsec_c2hvcnQ="])


async def test_guard_also_applies_when_connecting():
    """A subscription stored before its name started resolving to a private
    address (DNS rebinding) is still refused when the sink connects."""
    async with Receiver() as rx:
        for host in ("localhost", "127.0.0.1"):
            stored = Subscription(name="h", sink="webhook", target=f"http://{host}:{rx.port}/hook")
            with pytest.raises(ValueError):
                validate_target(stored)
            sink = make_sink(stored)
            out = await sink.deliver(batch(record(1)))
            await sink.close()
            assert not out.ok and "refused" in out.error and "ALLOW-PRIVATE" in out.error, out.error
        assert rx.requests == []


def test_rfc3339():
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1764255600123) == "2025-11-27T15:00:00.123Z"


# ------------------------------------------------------------------ through a server


async def wait_for(cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_end_to_end_through_the_dispatcher(new_fjord):
    """Writes on a real server reach a real receiver as signed CloudEvents,
    with images of every data type, in log order."""
    server = new_fjord()
    client = server.client()
    async with Receiver() as rx:
        with pytest.raises(Exception, match="loopback"):
            client.execute_command("FJORD.TRIGGER", "CREATE", "e2e", "WEBHOOK", rx.url)
        client.execute_command("FJORD.TRIGGER", "CREATE", "e2e", "WEBHOOK", rx.url, "ALLOW-PRIVATE",
                               "SECRET", SECRET, "VIEW", "NEW_AND_OLD_IMAGES", "BATCH", "50")
        client.set("s", "1")
        client.rpush("l", "a", "b")
        client.hset("h", "f", "v")
        client.sadd("st", "x")
        client.zadd("z", {"m": 1.5})
        client.delete("s")
        await wait_for(lambda: sum(len(b["records"]) for b in rx.bodies()) >= 6)
        for headers, body in rx.requests:
            Webhook(SECRET).verify(body, headers)
        events = [e for b in rx.bodies() for e in b["records"]]
    client.close()
    assert [(e["type"], e["subject"]) for e in events] == [
        ("io.fjord.set", "s"), ("io.fjord.rpush", "l"), ("io.fjord.hset", "h"), ("io.fjord.sadd", "st"),
        ("io.fjord.zadd", "z"), ("io.fjord.del", "s")]
    images = [(e["data"]["old_image"], e["data"]["new_image"]) for e in events]
    assert images[0] == (None, {"type": "string", "value": "1"})
    assert images[1][1]["type"] == "list" and images[2][1]["type"] == "hash"
    assert images[3][1]["type"] == "set" and images[4][1]["type"] == "zset"
    assert images[5] == ({"type": "string", "value": "1"}, None)
    ids = [e["id"] for e in events]
    assert len(set(ids)) == 6 and all(e["source"].endswith("/0") for e in events)
