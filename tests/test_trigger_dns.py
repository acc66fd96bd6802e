"""FJORD.TRIGGER CREATE resolves a webhook's DNS name off the event loop.

The server runs in a child process whose creation-time resolver
(``triggers.sinks.guard.resolver``) is replaced, before it starts, by one that
takes ``SLOW`` seconds for names under ``.slow.test`` (and the real one for
anything else): a stand-in for a slow DNS server. While a CREATE waits on it,
other clients must be served at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import ROOT, RawClient, free_port, wait_ready

SLOW = 1.5

BOOT = f"""
import sys, time
import triggers.sinks.guard as guard
real = guard.resolver
ANSWERS = {{"public.slow.test": ["93.184.216.34"], "inside.slow.test": ["10.0.0.5"]}}
def slow(host, port):
    if host.endswith(".slow.test"):
        time.sleep({SLOW})
        return ANSWERS[host]
    return real(host, port)
guard.resolver = slow
from store.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def slow_dns_server(tmp_path):
    port, admin = free_port(), free_port()
    with open(tmp_path / "fjord.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", BOOT, "serve", "--port", str(port), "--data-dir", str(tmp_path / "data"),
             "--admin-port", str(admin)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": ROOT})
        try:
            wait_ready(port, proc)
            yield port, admin
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def create(*words: str) -> bytes:
    args = [b"FJORD.TRIGGER", b"CREATE", *(w.encode() for w in words)]
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def test_other_clients_are_served_while_create_resolves(slow_dns_server):
    port, _ = slow_dns_server
    creator, other = RawClient(port), RawClient(port)
    try:
        started = time.monotonic()
        creator.send_raw(create("pub", "WEBHOOK", "http://public.slow.test/hook"))
        creator.send_raw(b"*1\r\n$4\r\nPING\r\n")  # queued behind the CREATE, as behind WAIT
        time.sleep(0.2)
        for _ in range(5):
            t0 = time.monotonic()
            assert other.call("PING") == b"+PONG\r\n"
            assert time.monotonic() - t0 < 0.5, "the server stalled while a CREATE resolved"
        assert time.monotonic() - started < SLOW, "the test resolver was not slow"
        assert creator.read_reply() == b"+OK\r\n"
        assert time.monotonic() - started >= SLOW - 0.1
        assert creator.read_reply() == b"+PONG\r\n"
        assert b"public.slow.test" in other.call("FJORD.TRIGGER", "INFO", "pub")

        # the SSRF refusal comes after the lookup too, and nothing is created
        reply = other.call(*("FJORD.TRIGGER", "CREATE", "priv", "WEBHOOK", "http://inside.slow.test/"))
        assert reply.startswith(b"-ERR webhook host 'inside.slow.test' (resolves to 10.0.0.5) is a private"), reply
        assert b"ALLOW-PRIVATE" in reply
        assert other.call("FJORD.TRIGGER", "INFO", "priv") == b"-ERR no such trigger 'priv'\r\n"
        # a taken name is refused before any lookup
        t0 = time.monotonic()
        reply = other.call("FJORD.TRIGGER", "CREATE", "pub", "WEBHOOK", "http://public.slow.test/")
        assert reply == b"-ERR trigger 'pub' already exists\r\n" and time.monotonic() - t0 < SLOW
    finally:
        creator.close()
        other.close()


def test_multi_refuses_a_create_that_must_resolve(slow_dns_server):
    port, _ = slow_dns_server
    c = RawClient(port)
    try:
        assert c.call("MULTI") == b"+OK\r\n"
        assert c.call("FJORD.TRIGGER", "CREATE", "m1", "WEBHOOK", "http://public.slow.test/") == b"+QUEUED\r\n"
        assert c.call("FJORD.TRIGGER", "CREATE", "m2", "WEBHOOK", "http://93.184.216.34/") == b"+QUEUED\r\n"
        reply = c.call("EXEC")
        assert reply.startswith(b"*2\r\n-ERR FJORD.TRIGGER CREATE of a webhook whose host is a DNS name"), reply
        assert reply.endswith(b"+OK\r\n")  # an IP literal needs no lookup
        assert c.call("FJORD.TRIGGER", "INFO", "m1") == b"-ERR no such trigger 'm1'\r\n"
    finally:
        c.close()


def test_http_create_resolves_off_the_loop(slow_dns_server):
    port, admin = slow_dns_server
    results: dict[str, object] = {}

    def post(name: str, url: str) -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{admin}/triggers", method="POST",
                                     data=json.dumps({"name": name, "sink": "webhook", "target": url}).encode())
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                results[name] = (resp.status, json.loads(resp.read()))
        except urllib.error.HTTPError as exc:
            results[name] = (exc.code, json.loads(exc.read()))

    threads = [threading.Thread(target=post, args=("hpub", "http://public.slow.test/")),
               threading.Thread(target=post, args=("hpriv", "http://inside.slow.test/"))]
    for t in threads:
        t.start()
    c = RawClient(port)
    try:
        time.sleep(0.2)
        t0 = time.monotonic()
        assert c.call("PING") == b"+PONG\r\n" and time.monotonic() - t0 < 0.5
        assert not results, "the lookups were not slow"
        for t in threads:
            t.join(10)
        assert results["hpub"][0] == 201 and results["hpub"][1]["name"] == "hpub"
        status, body = results["hpriv"]
        assert status == 400 and "resolves to 10.0.0.5" in body["error"], body
        assert c.call("FJORD.TRIGGER", "INFO", "hpriv") == b"-ERR no such trigger 'hpriv'\r\n"
    finally:
        c.close()
