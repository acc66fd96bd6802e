"""``fjord log tail|read|history`` and the ``FJORD.HISTORY`` command.

The CLI is checked line for line against a log written here with known
times; then against a live server (the CLI opens the log read-only beside
it). FJORD.HISTORY runs on a private server, over real sockets.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys
import time

import pytest

from conftest import ROOT, RawClient
from streams.events import Event, encode_record
from streams.filelog import FileLog

T0 = 1764255845123  # 2025-11-27T15:04:05.123Z

RECORDS = [
    [Event("set", 0, b"user:1", {"value": b"alice", "expire_at": None})],
    [Event("set", 0, b"user:1", {"value": b"bob", "expire_at": T0 + 60_000})],
    [Event("hset", 2, b"h", {"fields": [[b"f", b"x y"], [b"g", b"\x00\xff\n\"\\"]]})],
    [Event("rename_from", 0, b"user:1", {"to": b"user 2"}), Event("rename_to", 0, b"user 2", {"from": b"user:1"})],
    [Event("flushall", None, None, {})],
    [Event("del", 0, b"user:1", {})],
]

EXPECTED = [
    '0 2025-11-27T15:04:05.123Z db0 set user:1 value="alice" expire_at=nil',
    "1 2025-11-27T15:04:05.124Z db0 set user:1 value=\"bob\" expire_at=1764255905123",
    '2 2025-11-27T15:04:05.125Z db2 hset h fields=[["f" "x y"] ["g" "\\x00\\xff\\n\\"\\\\"]]',
    '3 2025-11-27T15:04:05.126Z db0 rename_from user:1 to="user 2"',
    '3 2025-11-27T15:04:05.126Z db0 rename_to "user 2" from="user:1"',
    "4 2025-11-27T15:04:05.127Z db* flushall -",
    "5 2025-11-27T15:04:05.128Z db0 del user:1",
]


def readline(proc: subprocess.Popen, timeout: float = 10.0) -> str:
    """The next line of ``proc``'s stdout; fails instead of hanging."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no output in time"
    return proc.stdout.readline()


def fjord_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "store", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=30, **kw)


@pytest.fixture(scope="module")
def known(tmp_path_factory) -> str:
    data_dir = str(tmp_path_factory.mktemp("known"))

    async def write():
        log = await FileLog.open(os.path.join(data_dir, "log"))
        await log.append([encode_record(T0 + i, evs) for i, evs in enumerate(RECORDS)])
        await log.close()

    asyncio.run(write())
    return data_dir


def lines(out: subprocess.CompletedProcess) -> list[str]:
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_read_prints_every_event(known):
    assert lines(fjord_cli("log", "read", "--from", "0", "--data-dir", known)) == EXPECTED
    assert lines(fjord_cli("log", "read", "--from", "2", "--to", "4", "--data-dir", known)) == EXPECTED[2:5]
    assert lines(fjord_cli("log", "read", "--from", "99", "--data-dir", known)) == []


def test_tail_prints_the_last_records(known):
    assert lines(fjord_cli("log", "tail", "-n", "2", "--data-dir", known)) == EXPECTED[-2:]
    assert lines(fjord_cli("log", "tail", "--data-dir", known)) == EXPECTED  # default 20


def test_json_prints_raw_records_with_offsets(known):
    out = lines(fjord_cli("log", "read", "--from", "2", "--to", "3", "--json", "--data-dir", known))
    assert [json.loads(x) for x in out] == [{
        "offset": 2, "v": 1, "time": T0 + 2,
        "events": [{"type": "hset", "db": 2, "key": "h",
                    "data": {"fields": [["f", "x y"], ["g", {"b64": "AP8KIlw="}]]}}],
    }]


def test_history_prints_one_keys_events(known):
    got = lines(fjord_cli("log", "history", "user:1", "--data-dir", known))
    assert got == [EXPECTED[0], EXPECTED[1], EXPECTED[3], EXPECTED[6]]
    assert lines(fjord_cli("log", "history", "user:1", "--count", "2", "--data-dir", known)) == [
        EXPECTED[3], EXPECTED[6]]
    assert lines(fjord_cli("log", "history", "h", "--db", "2", "--data-dir", known)) == [EXPECTED[2]]
    assert lines(fjord_cli("log", "history", "h", "--data-dir", known)) == []


def test_missing_log_is_a_clear_error(tmp_path):
    out = fjord_cli("log", "tail", "--data-dir", str(tmp_path / "nothing"))
    assert out.returncode == 1 and "no log in" in out.stderr


def test_tools_read_a_running_servers_log(new_fjord):
    srv = new_fjord()
    c = srv.client()
    c.set("a", "1")
    c.hset("h", "f", "v")
    got = lines(fjord_cli("log", "tail", "-n", "5", "--data-dir", srv.data_dir))
    assert [x.split(" ", 2)[2] for x in got] == ['db0 set a value="1" expire_at=nil', 'db0 hset h fields=[["f" "v"]]']
    follow = subprocess.Popen([sys.executable, "-m", "store", "log", "tail", "-n", "1", "--follow",
                               "--data-dir", srv.data_dir], cwd=ROOT, stdout=subprocess.PIPE, text=True, bufsize=1)
    try:
        assert readline(follow).startswith("1 ")
        c.set("b", "2")
        assert readline(follow).split(" ", 2)[2] == 'db0 set b value="2" expire_at=nil\n'
    finally:
        follow.kill()
        follow.wait()
    c.set("c", "3")  # the server still owns its log
    assert c.get("c") == b"3"


# ------------------------------------------------------------ FJORD.HISTORY


@pytest.fixture(scope="module")
def hist_srv(tmp_path_factory):
    from conftest import FjordProcess

    srv = FjordProcess(str(tmp_path_factory.mktemp("hist") / "data")).start()
    yield srv
    srv.kill()


def test_history_command_newest_first(hist_srv):
    c = hist_srv.client()
    c.set("k", "v1")
    c.set("k", "v2", px=100_000)
    c.append("k", "!")
    c.set("other", "x")
    got = c.execute_command("FJORD.HISTORY", "k")
    assert [e[2] for e in got] == [b"append", b"set", b"set"]
    offsets = [e[0] for e in got]
    assert offsets == sorted(offsets, reverse=True) and len(set(offsets)) == 3
    assert got[2][3] == [b"value", b"v1", b"expire_at", None]
    assert got[1][3][:2] == [b"value", b"v2"] and got[1][3][3] > time.time() * 1000
    assert abs(got[0][1] - time.time() * 1000) < 60_000
    assert c.execute_command("FJORD.HISTORY", "k", "COUNT", "1") == got[:1]
    assert c.execute_command("FJORD.HISTORY", "k", "count", "2") == got[:2]
    assert c.execute_command("FJORD.HISTORY", "missing") == []
    c.close()


def test_history_command_scopes_to_the_current_db(hist_srv):
    c = hist_srv.client(db=5)
    c.hset("dbkey", mapping={"f": "1", "g": "2"})
    c.rename("dbkey", "dbkey2")
    assert c.execute_command("FJORD.HISTORY", "dbkey")[0][2] == b"rename_from"
    (entry,) = c.execute_command("FJORD.HISTORY", "dbkey2")
    assert entry[2] == b"rename_to"
    assert hist_srv.client(db=0).execute_command("FJORD.HISTORY", "dbkey") == []
    assert c.execute_command("FJORD.HISTORY", "dbkey", "COUNT", "5")[-1][3] == [
        b"fields", [[b"f", b"1"], [b"g", b"2"]]]


def test_history_command_errors(hist_srv):
    raw = RawClient(hist_srv.port)
    try:
        assert raw.call("FJORD.HISTORY") == b"-ERR wrong number of arguments for 'fjord.history' command\r\n"
        assert raw.call("FJORD.HISTORY", "k", "COUNT") == b"-ERR syntax error\r\n"
        assert raw.call("FJORD.HISTORY", "k", "LIMIT", "1") == b"-ERR syntax error\r\n"
        assert raw.call("FJORD.HISTORY", "k", "COUNT", "x") == b"-ERR value is not an integer or out of range\r\n"
        assert raw.call("FJORD.HISTORY", "k", "COUNT", "0") == b"-ERR value is out of range, must be positive\r\n"
        assert raw.call("FJORD.HISTORY", "missing") == b"*0\r\n"
        # pipelined right after a write: the reply shows it (and waits for it to be durable)
        raw.send_raw(b"*3\r\n$3\r\nSET\r\n$2\r\npk\r\n$1\r\n1\r\n*2\r\n$13\r\nFJORD.HISTORY\r\n$2\r\npk\r\n"
                     b"*1\r\n$4\r\nPING\r\n")
        assert raw.read_reply() == b"+OK\r\n"
        reply = raw.read_reply()
        assert reply.startswith(b"*1\r\n*4\r\n:") and b"$3\r\nset\r\n" in reply
        assert raw.read_reply() == b"+PONG\r\n"
        assert raw.call("MULTI") == b"+OK\r\n"
        assert raw.call("FJORD.HISTORY", "pk") == b"+QUEUED\r\n"
        assert raw.call("EXEC") == b"*1\r\n-ERR FJORD.HISTORY cannot run inside MULTI or a script\r\n"
    finally:
        raw.close()


def test_history_survives_a_restart(hist_srv):
    """After a restart the past is indexed from the log (in a thread)."""
    c = hist_srv.client()
    c.set("r", "1")
    c.set("r", "2")
    before = c.execute_command("FJORD.HISTORY", "r")
    c.close()
    hist_srv.restart()
    c = hist_srv.client()
    deadline = time.time() + 5
    while c.execute_command("FJORD.HISTORY", "r") != before and time.time() < deadline:
        time.sleep(0.02)
    assert c.execute_command("FJORD.HISTORY", "r") == before
    c.set("r", "3")
    after = c.execute_command("FJORD.HISTORY", "r")
    assert after[1:] == before and after[0][3][:2] == [b"value", b"3"]
    c.close()
