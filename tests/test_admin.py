"""Functional tests of the server commands: INFO, CONFIG, DBSIZE, FLUSHDB/ALL,
TIME, LASTSAVE, SHUTDOWN.

Errors and deterministic replies are compared byte for byte with a real
redis-server 7.0.15 (``diff``); INFO is read through redis-py's parser;
anything that changes a setting runs on a private server (``new_fjord``).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from conftest import RawClient
from redis._parsers.helpers import parse_info

from streams.events import Event, encode_record
from streams.filelog import FileLog

#: redis-py retries a dropped connection by default; SHUTDOWN drops it on purpose
NO_RETRY = Retry(NoBackoff(), 0)


# ------------------------------------------------------------------ DBSIZE, FLUSH*


def test_dbsize_and_flush_match_redis(diff):
    diff("DBSIZE")
    for i in range(5):
        diff("SET", f"k{i}", "v")
    diff("SET", "t", "v", "EX", "100")
    assert diff("DBSIZE") == b":6\r\n"
    diff("FLUSHDB", "ASYNC")
    diff("DBSIZE")
    diff("SET", "a", "1")
    diff("FLUSHALL", "sync")
    diff("DBSIZE")
    diff("SET", "a", "1")
    diff("FLUSHDB", "SYNC")
    diff("FLUSHALL")
    for bad in (("FLUSHDB", "foo"), ("FLUSHDB", "ASYNC", "SYNC"), ("FLUSHALL", "x"), ("FLUSHALL", "sync", "sync")):
        diff(*bad)


def test_wrong_arity_and_syntax_match_redis(diff):
    for args in [
        ("DBSIZE", "x"), ("TIME", "x"), ("LASTSAVE", "x"),
        ("CONFIG",), ("CONFIG", "GET"), ("CONFIG", "SET"), ("CONFIG", "SET", "hz"),
        ("CONFIG", "RESETSTAT", "x"), ("CONFIG", "REWRITE", "x"), ("CONFIG", "HELP", "x"),
        ("CONFIG", "foo"), ("CONFIG", "SET", "hz", "10", "timeout"),
        ("SHUTDOWN", "foo"), ("SHUTDOWN", "NOSAVE", "SAVE"), ("SHUTDOWN", "ABORT"),
        ("SHUTDOWN", "abort", "now"), ("SHUTDOWN", "FORCE", "ABORT"),
    ]:
        diff(*args)


def test_config_help_rewrite_and_unknown_info_section_match_redis(diff):
    diff("CONFIG", "HELP")
    diff("CONFIG", "help")
    # Neither server was started with a config file.
    assert diff("CONFIG", "REWRITE") == b"-ERR The server is running without a config file\r\n"
    assert diff("INFO", "nosuchsection") == b"$0\r\n\r\n"
    diff("INFO", "nosuchsection", "other")


# ------------------------------------------------------------------ CONFIG GET / SET errors


def test_config_get_matches_redis(diff):
    for pattern in ("maxclients", "MAXCLIENTS", "maxclient?", "h[z]", "timeout", "databases",
                    "proto-max-bulk-len", "client-query-buffer-limit", "maxmemory", "maxmemory-policy",
                    "save", "no-such-setting", "no-such-*"):
        diff("CONFIG", "GET", pattern)
    # the same setting asked twice (and in two spellings) is answered once
    diff("CONFIG", "GET", "timeout", "TIMEOUT", "timeout")
    diff("CONFIG", "GET", "TIMEOUT", "timeout")


def test_config_set_errors_match_redis(diff):
    for args in [
        ("foo", "bar"), ("maxclients", "x"), ("maxclients", "0"), ("maxclients", "-5"),
        ("maxclients", "1k"), ("hz", "x"), ("HZ", "012"), ("hz", "+12"), ("hz", " 12"),
        ("timeout", "-1"), ("timeout", "2147483648"), ("loglevel", "loud"),
        ("proto-max-bulk-len", "-1"), ("proto-max-bulk-len", "10"), ("proto-max-bulk-len", "1x"),
        ("timeout", "1", "TIMEOUT", "2"), ("hz", "1", "hz", "2", "foo", "1"), ("hz", "5", "foo", "1"),
        ("DATABASES", "1"), ("hz", "5", "maxclients", "x"), ("timeout", "7", "hz", "x"),
        ("a", "b", "c"),
    ]:
        diff("CONFIG", "SET", *args)
    # a failed CONFIG SET changes nothing, not even the settings before the bad one
    diff("CONFIG", "GET", "hz")
    diff("CONFIG", "GET", "timeout")


def test_config_set_values_match_redis(diff):
    try:
        assert diff("CONFIG", "SET", "hz", "0") == b"+OK\r\n"
        diff("CONFIG", "GET", "hz")  # clamped to 1, as Redis does
        diff("CONFIG", "SET", "hz", "1000")
        diff("CONFIG", "GET", "hz")  # clamped to 500
        diff("CONFIG", "SET", "proto-max-bulk-len", "2mb", "timeout", "0")
        diff("CONFIG", "GET", "proto-max-bulk-len")
        diff("CONFIG", "SET", "proto-max-bulk-len", "1g")
        diff("CONFIG", "GET", "proto-max-bulk-len")
        diff("CONFIG", "SET", "loglevel", "WARNING")
        diff("CONFIG", "GET", "loglevel")
    finally:
        diff("CONFIG", "SET", "hz", "10", "proto-max-bulk-len", "512mb", "loglevel", "notice")
    diff("CONFIG", "GET", "proto-max-bulk-len")


def test_config_set_fjord_specific_errors(r):
    with pytest.raises(redis.ResponseError, match=re.escape(
            "CONFIG SET failed (possibly related to argument 'appendfsync') - "
            "argument(s) must be one of the following: always, everysec")):
        r.config_set("appendfsync", "no")
    with pytest.raises(redis.ResponseError, match="argument 'appendonly'"):
        r.config_set("appendonly", "no")
    with pytest.raises(redis.ResponseError, match="can't set immutable config"):
        r.config_set("port", "1")
    with pytest.raises(redis.ResponseError, match="duplicate parameter"):
        r.execute_command("CONFIG", "SET", "appendfsync", "always", "durability", "sync")
    # Fjord's fixed answers for Redis settings it has no choice about
    assert r.config_set("appendonly", "yes") and r.config_set("save", "")
    assert r.config_get("appendonly") == {"appendonly": "yes"}
    assert r.config_get("appendfsync") == {"appendfsync": "always"}
    assert r.config_get("durability") == {"durability": "sync"}


def test_resp3_replies(fjord, redis_srv, diff):
    got, want = diff.both("HELLO", "3")
    assert got.startswith(b"%") and want.startswith(b"%")
    assert diff("CONFIG", "GET", "maxclients") == b"%1\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n"
    reply = diff.f.call("INFO", "server")
    assert reply.startswith(b"=") and b"\r\ntxt:# Server\r\nredis_version:7.0.15\r\n" in reply


# ------------------------------------------------------------------ INFO


def test_info_every_section_parses(r, fjord):
    everything = r.info("everything")
    for key in ("redis_version", "fjord_version", "run_id", "tcp_port", "connected_clients", "used_memory",
                "loading", "aof_enabled", "log_end_offset", "durability", "group_commit_batches",
                "total_commands_processed", "instantaneous_ops_per_sec", "role", "master_repl_offset",
                "used_cpu_sys", "cluster_enabled"):
        assert key in everything, key
    assert r.info().keys() <= everything.keys() | {"db0"}
    resp2 = fjord.client(protocol=2)  # a bulk string there, a verbatim string in RESP3
    assert resp2.info("everything").keys() == everything.keys()
    resp2.close()
    server = r.info("server")
    assert server["redis_version"] == "7.0.15" and server["redis_mode"] == "standalone"
    assert re.fullmatch(r"[0-9a-f]{40}", server["run_id"])
    assert server["tcp_port"] == fjord.port and server["process_id"] == fjord.proc.pid
    assert server["uptime_in_seconds"] >= 0 and server["hz"] == 10 and server["config_file"] == ""
    clients = r.info("clients")
    assert clients["connected_clients"] >= 1 and clients["maxclients"] == 10000 and clients["blocked_clients"] == 0
    memory = r.info("memory")
    assert memory["used_memory"] > 1_000_000 and memory["maxmemory"] == 0
    assert re.fullmatch(r"\d+\.\d\d[KMG]", memory["used_memory_human"])
    persistence = r.info("persistence")
    assert persistence["loading"] == 0 and persistence["aof_enabled"] == 1
    assert persistence["durability"] == "sync" and persistence["aof_last_write_status"] == "ok"
    assert persistence["log_start_offset"] <= persistence["log_end_offset"]
    assert persistence["durability_lag_records"] == 0
    replication = r.info("replication")
    assert replication["role"] == "master" and replication["connected_slaves"] == 0
    assert r.info("cpu")["used_cpu_user"] > 0
    # sections are case-insensitive, come in Redis's order, unknown ones are skipped
    raw = RawClient(fjord.port)
    reply = raw.call("INFO", "KEYSPACE", "nosuch", "Server")
    raw.close()
    assert re.match(rb"\$\d+\r\n# Server\r\nredis_version:", reply)
    assert reply.endswith(b"\r\n\r\n# Keyspace\r\n\r\n")


def test_info_values_move(r):
    before = r.info("everything")
    for _ in range(5):
        r.ping()
    r.set("a", "1")
    r.set("b", "2", ex=100)
    with r.pipeline(transaction=False) as p:
        for i in range(3):
            p.set(f"p{i}", i)
        p.execute()
    after = r.info("everything")
    assert after["total_commands_processed"] >= before["total_commands_processed"] + 9
    assert after["total_net_input_bytes"] > before["total_net_input_bytes"]
    assert after["total_net_output_bytes"] > before["total_net_output_bytes"]
    assert after["log_end_offset"] >= before["log_end_offset"] + 5
    assert after["group_commit_records"] >= before["group_commit_records"] + 5
    assert after["master_repl_offset"] == after["log_end_offset"]
    assert after["db0"] == {"keys": 5, "expires": 1, "avg_ttl": 0}
    assert r.info("keyspace") == {"db0": {"keys": 5, "expires": 1, "avg_ttl": 0}}
    r.flushall()
    assert r.info("keyspace") == {}


def test_info_instantaneous_ops(r):
    r.info("stats")
    with r.pipeline(transaction=False) as p:
        for _ in range(2000):
            p.ping()
        p.execute()
    time.sleep(0.1)
    assert r.info("stats")["instantaneous_ops_per_sec"] > 0


def test_config_resetstat(r):
    for _ in range(10):
        r.ping()
    assert r.info("stats")["total_commands_processed"] > 10
    assert r.config_resetstat()
    stats = r.info("stats")
    assert stats["total_commands_processed"] <= 2
    assert r.info("server")["uptime_in_seconds"] >= 0


# ------------------------------------------------------------------ TIME, LASTSAVE


def test_time_and_lastsave(r):
    readings = []
    for _ in range(20):
        sec, usec = r.time()
        assert 0 <= usec < 1_000_000
        readings.append(sec * 1_000_000 + usec)
    assert readings == sorted(readings)
    assert abs(readings[-1] / 1e6 - time.time()) < 2
    assert r.lastsave().timestamp() <= time.time() + 1


# ------------------------------------------------------------------ live CONFIG SET


def test_config_set_requirepass(new_fjord):
    srv = new_fjord()
    c = srv.client()
    c.set("k", "v")
    assert c.config_set("requirepass", "s3 cret")
    assert c.get("k") == b"v"  # a connection already in stays in
    raw = RawClient(srv.port)
    assert raw.call("GET", "k") == b"-NOAUTH Authentication required.\r\n"
    reply = raw.call("AUTH", "s3 cret")
    assert reply == b"+OK\r\n" and raw.call("GET", "k") == b"$1\r\nv\r\n"
    assert srv.client(password="s3 cret").config_get("requirepass") == {"requirepass": "s3 cret"}
    assert c.config_set("requirepass", "")
    assert srv.client().get("k") == b"v"


def test_config_set_appendfsync_switches_durability_live(new_fjord):
    srv = new_fjord()
    c = srv.client()
    assert c.info("persistence")["durability"] == "sync"
    assert c.config_set("appendfsync", "everysec")
    assert c.config_get("appendfsync") == {"appendfsync": "everysec"}
    assert c.info("persistence")["durability"] == "async"
    for i in range(200):
        c.set(f"async{i}", i)
    deadline = time.time() + 5
    while c.info("persistence")["durability_lag_records"] and time.time() < deadline:
        time.sleep(0.05)
    p = c.info("persistence")
    assert p["durability_lag_records"] == 0 and p["log_end_offset"] == p["log_written_offset"]
    assert c.config_set("appendfsync", "always")
    assert c.config_get("durability") == {"durability": "sync"}
    for i in range(200):
        c.set(f"sync{i}", i)
        if i % 50 == 0:  # acknowledged means durable again
            p = c.info("persistence")
            assert p["log_end_offset"] == p["log_written_offset"]
    assert c.config_set("durability", "async") and c.config_set("durability", "sync")
    c.set("last", "1")
    srv.restart()  # SIGKILL: only what was durable survives
    c = srv.client()
    assert c.dbsize() == 401
    assert c.get("async199") == b"199" and c.get("sync199") == b"199"


def test_config_set_limits_apply_live(new_fjord):
    srv = new_fjord()
    c = srv.client()
    assert c.config_set("maxclients", 2)
    second = RawClient(srv.port)
    assert second.call("PING") == b"+PONG\r\n"
    third = RawClient(srv.port)
    assert third.read_reply() == b"-ERR max number of clients reached\r\n"
    assert c.config_set("maxclients", 10000)
    second.close()
    third.close()

    assert c.config_set("proto-max-bulk-len", "1mb")
    raw = RawClient(srv.port)
    raw.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n")
    assert raw.read_reply() == b"-ERR Protocol error: invalid bulk length\r\n"

    assert c.config_set("hz", 100) and c.config_set("timeout", 1)
    idle = RawClient(srv.port)
    assert idle.call("PING") == b"+PONG\r\n"
    idle.sock.settimeout(5)
    t0 = time.time()
    assert idle.sock.recv(10) == b""  # closed by the server
    assert 0.8 < time.time() - t0 < 3


def test_config_rewrite(new_fjord, tmp_path):
    conf = tmp_path / "fjord.conf"
    conf.write_text("# my settings\nhz 15\nloglevel notice\n")
    srv = new_fjord("--config", str(conf))
    c = srv.client()
    assert c.info("server")["config_file"] == str(conf)
    assert c.config_get("hz") == {"hz": "15"}
    assert c.config_set("hz", 20) and c.config_set("maxclients", 500)
    assert c.config_rewrite()
    text = conf.read_text()
    assert text.startswith("# my settings\nhz 20\nloglevel notice\n")
    assert "maxclients 500\n" in text and "repair" not in text
    srv.restart()
    c = srv.client()
    assert c.config_get("hz") == {"hz": "20"} and c.config_get("maxclients") == {"maxclients": "500"}


# ------------------------------------------------------------------ tools


def test_redis_benchmark_reads_config(fjord):
    binary = shutil.which("redis-benchmark")
    if binary is None:
        pytest.skip("redis-benchmark is not installed")
    out = subprocess.run([binary, "-p", str(fjord.port), "-t", "get", "-n", "1000", "-q"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "WARNING" not in out.stdout + out.stderr
    assert "GET:" in out.stdout


# ------------------------------------------------------------------ SHUTDOWN


def test_shutdown_is_clean_and_keeps_data(new_fjord):
    srv = new_fjord()
    c = srv.client()
    for i in range(50):
        c.set(f"k{i}", i)
    raw = RawClient(srv.port)
    raw.send_raw(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n")
    assert raw.sock.recv(100) == b""  # no reply: the connection just closes
    assert srv.proc.wait(timeout=20) == 0
    assert "ready to exit" in srv.output()
    srv.logfile.close()
    srv.start()
    c = srv.client(retry=NO_RETRY)
    assert c.dbsize() == 50 and c.get("k49") == b"49"
    c.shutdown()  # redis-py's way: it expects the connection to drop
    assert srv.proc.wait(timeout=20) == 0


def test_shutdown_with_other_clients_connected(new_fjord):
    srv = new_fjord()
    others = [RawClient(srv.port) for _ in range(3)]
    for o in others:
        assert o.call("SET", "k", "v") == b"+OK\r\n"
    assert srv.client(retry=NO_RETRY).shutdown() is None
    assert srv.proc.wait(timeout=20) == 0
    for o in others:
        o.sock.settimeout(5)
        assert o.sock.recv(10) == b""
    assert os.path.isdir(os.path.join(srv.data_dir, "log"))


def _write_log(data_dir: str, records: int) -> None:
    """A log of ``records`` one-key SET records, written directly (fast)."""
    async def write() -> None:
        log = await FileLog.open(os.path.join(data_dir, "log"))
        payloads = [encode_record(1, [Event("set", 0, b"k%d" % (i % 1000), {"value": b"v%d" % i})])
                    for i in range(records)]
        for start in range(0, records, 20_000):
            await log.append(payloads[start:start + 20_000])
        await log.close()

    asyncio.run(write())


def test_info_and_shutdown_while_loading(new_fjord):
    srv = new_fjord(start=False)
    _write_log(srv.data_dir, 100_000)
    srv.start(wait=False)
    seen = None
    deadline = time.time() + 20
    while seen is None and time.time() < deadline:
        try:
            raw = RawClient(srv.port)
        except OSError:
            time.sleep(0.02)
            continue
        reply = raw.call("INFO", "persistence")
        info = parse_info(reply.split(b"\r\n", 1)[1].decode())
        if info["loading"]:
            seen = info
        else:
            pytest.skip("the log replayed before INFO could see it loading")
    assert seen is not None, "the server never answered"
    assert seen["loading_total_records"] == 100_000
    assert 0 <= seen["loading_loaded_records"] <= 100_000 and 0 <= seen["loading_loaded_perc"] <= 100
    assert seen["loading_start_time"] <= time.time() and seen["loading_eta_seconds"] >= 0
    assert raw.call("GET", "k1").startswith(b"-LOADING ")
    raw.send_raw(b"SHUTDOWN\r\n")
    assert raw.sock.recv(100) == b""
    assert srv.proc.wait(timeout=20) == 0
    srv.logfile.close()
    srv.start()
    c = srv.client()
    assert c.dbsize() == 1000 and c.get("k999") == b"v99999"
    assert c.info("persistence")["replay_records"] == 100_000
