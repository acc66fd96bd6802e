"""Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET, CLIENT.

Functional tests: redis-py in RESP2 and RESP3, redis-cli, and byte-for-byte
comparisons with redis-server 7.0.15 where the reply is deterministic.
"""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
import redis

from conftest import RawClient

CLIENT_FIELDS = ["id", "addr", "laddr", "fd", "name", "age", "idle", "flags", "db", "sub", "psub", "ssub",
                 "multi", "qbuf", "qbuf-free", "argv-mem", "multi-mem", "rbs", "rbp", "obl", "oll", "omem",
                 "tot-mem", "events", "cmd", "user", "redir", "resp", "lib-name", "lib-ver"]


def cli(port: int, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run(["redis-cli", "-p", str(port), *args], input=stdin, capture_output=True, text=True,
                         timeout=10)
    return out.stdout


def fields(line: str) -> list[str]:
    return [kv.split("=", 1)[0] for kv in line.split(" ")]


def closed(sock: socket.socket) -> bool:
    sock.settimeout(2)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


# ---------------------------------------------------------------- PING / ECHO


@pytest.mark.parametrize("args", [("PING",), ("PING", "hello"), ("PING", "a", "b"), ("ECHO",), ("ECHO", "x"),
                                  ("ECHO", ""), ("ECHO", "x", "y"), ("ping", "\x00\xff")])
def test_ping_echo_match_redis(diff, args):
    diff(*args)
    diff.both("HELLO", "3")
    diff(*args)


@pytest.mark.parametrize("protocol", [2, 3])
def test_ping_echo_redis_py(fjord, protocol):
    r = redis.Redis(port=fjord.port, protocol=protocol)
    assert r.ping() is True
    assert r.echo(b"\x00bin\xff") == b"\x00bin\xff"
    r.close()


def test_ping_echo_redis_cli(fjord):
    assert cli(fjord.port, "PING") == "PONG\n"
    assert cli(fjord.port, "ECHO", "hello world") == "hello world\n"
    assert cli(fjord.port, "-3", "PING") == "PONG\n"


# ---------------------------------------------------------------- HELLO


@pytest.mark.parametrize("args", [
    ("HELLO", "x"), ("HELLO", "1"), ("HELLO", "4"), ("HELLO", "-1"), ("HELLO", "99999999999999999999"),
    ("HELLO", "2", "SETNAME"), ("HELLO", "2", "AUTH", "default"), ("HELLO", "2", "FOO"),
    ("HELLO", "3", "SETNAME", "a b"), ("HELLO", "2", "AUTH", "bob", "x"), ("HELLO", "4", "FOO"),
])
def test_hello_errors_match_redis(diff, args):
    diff(*args)


def test_hello_reply(diff):
    cid = int(diff.f.call("CLIENT", "ID")[1:-2])
    for proto, head in ((b"2", b"*14\r\n"), (b"3", b"%7\r\n")):
        got, want = diff.both("HELLO", proto)
        assert got.startswith(head)
        # identical but for the client id
        rid = int(diff.r.call("CLIENT", "ID")[1:-2])
        assert got == want.replace(b":%d\r\n" % rid, b":%d\r\n" % cid)
    got, want = diff.both("HELLO")  # HELLO alone: the current protocol (3 now)
    assert got.startswith(b"%7\r\n") and len(got) == len(want) - len(str(rid)) + len(str(cid))


def test_hello_setname_and_auth_without_password(fjord):
    c = RawClient(fjord.port)
    c.call("HELLO", "2", "AUTH", "default", "anything", "SETNAME", "conn1")
    assert c.call("CLIENT", "GETNAME") == b"$5\r\nconn1\r\n"
    c.close()


def test_hello_redis_py_resp3(fjord):
    r = redis.Redis(port=fjord.port, protocol=3)
    hello = r.execute_command("HELLO")
    assert hello[b"proto"] == 3 and hello[b"server"] == b"redis" and hello[b"version"] == b"7.0.15"
    assert hello[b"id"] == r.client_id()
    assert hello[b"mode"] == b"standalone" and hello[b"role"] == b"master" and hello[b"modules"] == []
    r.close()


def test_hello_redis_cli(fjord):
    out = cli(fjord.port, "-3", "HELLO", "3")
    assert "proto" in out and "7.0.15" in out


# ---------------------------------------------------------------- AUTH


@pytest.mark.parametrize("args", [("AUTH",), ("AUTH", "x"), ("AUTH", "a", "b", "c"), ("AUTH", "default", "x"),
                                  ("AUTH", "bob", "x")])
def test_auth_without_password_matches_redis(diff, args):
    diff(*args)


def test_auth_with_password(new_fjord):
    f = new_fjord("--requirepass", "s3cret", start=False).start(password="s3cret")
    c = RawClient(f.port)
    assert c.call("PING") == b"-NOAUTH Authentication required.\r\n"
    assert c.call("CLIENT", "ID") == b"-NOAUTH Authentication required.\r\n"
    assert c.call("HELLO", "3") == (
        b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH "
        b"<user> <pass> option can be used to authenticate the client and select the RESP protocol "
        b"version at the same time\r\n")
    assert c.call("AUTH", "bob", "s3cret").startswith(b"-WRONGPASS")
    assert c.call("AUTH", "default", "nope").startswith(b"-WRONGPASS")
    assert c.call("AUTH", "default", "s3cret") == b"+OK\r\n"
    assert c.call("PING") == b"+PONG\r\n"
    # RESET forgets the authentication, as Redis does
    assert c.call("RESET") == b"+RESET\r\n"
    assert c.call("PING") == b"-NOAUTH Authentication required.\r\n"
    assert c.call("QUIT") == b"+OK\r\n"
    c.close()
    r = redis.Redis(port=f.port, password="s3cret", protocol=3, db=2)
    assert r.set("k", "v") and r.get("k") == b"v"
    assert r.client_info()["db"] == 2
    r.close()


# ---------------------------------------------------------------- SELECT


@pytest.mark.parametrize("args", [("SELECT",), ("SELECT", "16"), ("SELECT", "-1"), ("SELECT", "x"),
                                  ("SELECT", "1.5"), ("SELECT", "2147483648"), ("SELECT", "15"),
                                  ("SELECT", "0"), ("SELECT", "1", "2"), ("SELECT", " 1")])
def test_select_matches_redis(diff, args):
    diff(*args)


def test_select_isolates_databases(r, fjord):
    r1 = redis.Redis(port=fjord.port, db=1)
    r.set("k", "zero")
    r1.set("k", "one")
    assert r.get("k") == b"zero" and r1.get("k") == b"one"
    assert r1.client_info()["db"] == 1
    r1.close()
    assert cli(fjord.port, "-n", "1", "GET", "k") == "one\n"
    assert cli(fjord.port, "-n", "1", "CLIENT", "INFO").split(" ")[8] == "db=1"


# ---------------------------------------------------------------- QUIT / RESET


def test_quit_replies_then_closes(fjord):
    s = socket.create_connection(("127.0.0.1", fjord.port), timeout=5)
    s.sendall(b"*1\r\n$4\r\nQUIT\r\n*1\r\n$4\r\nPING\r\n")
    assert s.recv(100) == b"+OK\r\n"
    assert closed(s)


def test_reset_restores_a_fresh_connection(fjord):
    c = RawClient(fjord.port)
    c.call("HELLO", "3", "SETNAME", "named")
    c.call("SELECT", "5")
    assert c.call("RESET") == b"+RESET\r\n"
    assert c.call("CLIENT", "GETNAME") == b"$-1\r\n"  # RESP2 again, name gone
    info = c.call("CLIENT", "INFO").decode()
    assert " db=0 " in info and " resp=2 " in info
    c.close()


def test_reset_matches_redis(diff):
    diff("RESET")
    diff("RESET", "x")


# ---------------------------------------------------------------- CLIENT


@pytest.mark.parametrize("args", [
    ("CLIENT",), ("CLIENT", "FOO"), ("CLIENT", "ID", "x"), ("CLIENT", "SETNAME"), ("CLIENT", "SETNAME", "a b"),
    ("CLIENT", "SETNAME", "a\nb"), ("CLIENT", "SETNAME", "é"), ("CLIENT", "SETNAME", "ok-name!"),
    ("CLIENT", "GETNAME"), ("CLIENT", "SETNAME", ""), ("CLIENT", "GETNAME"), ("CLIENT", "GETNAME", "x"),
    ("CLIENT", "LIST", "TYPE", "foo"), ("CLIENT", "LIST", "TYPE", "pubsub"), ("CLIENT", "LIST", "TYPE", "master"),
    ("CLIENT", "LIST", "TYPE", "replica"), ("CLIENT", "LIST", "TYPE", "slave"), ("CLIENT", "LIST", "ID"),
    ("CLIENT", "LIST", "ID", "1", "x"), ("CLIENT", "LIST", "ID", "0"), ("CLIENT", "LIST", "ID", "-1"),
    ("CLIENT", "LIST", "FOO"), ("CLIENT", "LIST", "TYPE", "normal", "ID", "1"), ("CLIENT", "INFO", "x"),
    ("CLIENT", "KILL"), ("CLIENT", "KILL", "1.2.3.4:5"), ("CLIENT", "KILL", "ID"), ("CLIENT", "KILL", "ID", "x"),
    ("CLIENT", "KILL", "ID", "0"), ("CLIENT", "KILL", "ID", "99999"), ("CLIENT", "KILL", "ID", "1", "ID", "2"),
    ("CLIENT", "KILL", "USER", "bob"), ("CLIENT", "KILL", "ADDR", "1.2.3.4:5"),
    ("CLIENT", "KILL", "LADDR", "1.2.3.4:5"), ("CLIENT", "KILL", "SKIPME", "maybe"),
    ("CLIENT", "KILL", "TYPE", "foo"), ("CLIENT", "KILL", "FOO", "bar"), ("CLIENT", "KILL", "ID", "1", "x"),
    ("CLIENT", "KILL", "TYPE", "pubsub"), ("CLIENT", "KILL", "USER", "default", "ID", "99999"),
    ("CLIENT", "NO-EVICT", "on"), ("CLIENT", "NO-EVICT", "off"), ("CLIENT", "NO-EVICT", "x"),
])
def test_client_matches_redis(diff, args):
    diff(*args)


def test_client_id_setname_getname(fjord):
    r = redis.Redis(port=fjord.port)
    cid = r.client_id()
    other = redis.Redis(port=fjord.port)
    assert other.client_id() > cid
    assert r.client_getname() is None
    assert r.client_setname("worker-1")
    assert r.client_getname() == "worker-1"
    with pytest.raises(redis.ResponseError, match="Client names cannot contain spaces"):
        r.client_setname("two words")
    r.close()
    other.close()


def test_client_list_and_info_fields(fjord):
    r = redis.Redis(port=fjord.port, client_name="lister", protocol=2)
    line = r.execute_command("CLIENT", "INFO").decode()
    assert line.endswith("\n")
    assert fields(line.rstrip("\n")) == CLIENT_FIELDS
    info = r.client_info()
    assert info["name"] == "lister" and info["cmd"] == "client|info" and info["user"] == "default"
    assert info["lib-name"] == "redis-py" and info["resp"] == "2"
    assert info["id"] == r.client_id()
    listing = r.execute_command("CLIENT", "LIST").decode()
    lines = listing.splitlines()
    assert all(fields(ln) == CLIENT_FIELDS for ln in lines)
    assert any(f"id={info['id']} " in ln and "name=lister" in ln for ln in lines)
    only = r.execute_command("CLIENT", "LIST", "ID", info["id"], 999999).decode()
    assert only.count("\n") == 1 and only.startswith(f"id={info['id']} ")
    assert r.execute_command("CLIENT", "LIST", "TYPE", "normal").decode().count("\n") == len(lines)
    r.close()


def test_client_info_resp3_is_verbatim(fjord):
    c = RawClient(fjord.port)
    c.call("HELLO", "3")
    reply = c.call("CLIENT", "INFO")
    assert reply.startswith(b"=") and b"\r\ntxt:id=" in reply and b" resp=3 " in reply
    c.close()


def test_client_setinfo(fjord):
    c = RawClient(fjord.port)
    assert c.call("CLIENT", "SETINFO", "LIB-NAME", "mylib") == b"+OK\r\n"
    assert c.call("CLIENT", "SETINFO", "lib-ver", "1.2.3") == b"+OK\r\n"
    info = c.call("CLIENT", "INFO").decode()
    assert "lib-name=mylib lib-ver=1.2.3\n" in info
    assert c.call("CLIENT", "SETINFO", "lib-name", "a b") == (
        b"-ERR lib-name cannot contain spaces, newlines or special characters.\r\n")
    assert c.call("CLIENT", "SETINFO", "color", "red") == b"-ERR Unrecognized option 'color'\r\n"
    assert c.call("CLIENT", "SETINFO", "lib-name") == (
        b"-ERR wrong number of arguments for 'client|setinfo' command\r\n")
    c.close()


def test_client_kill_old_and_new_forms(fjord):
    victim = RawClient(fjord.port)
    victim2 = RawClient(fjord.port)
    killer = RawClient(fjord.port)
    info = victim.call("CLIENT", "INFO").decode()
    addr = info.split(" addr=")[1].split(" ")[0]
    assert killer.call("CLIENT", "KILL", addr) == b"+OK\r\n"
    assert closed(victim.sock)
    assert killer.call("CLIENT", "KILL", addr) == b"-ERR No such client\r\n"
    vid = int(victim2.call("CLIENT", "ID")[1:-2])
    assert killer.call("CLIENT", "KILL", "ID", str(vid), "SKIPME", "yes") == b":1\r\n"
    assert closed(victim2.sock)
    # SKIPME yes (the default) spares the caller; MAXAGE spares young clients
    kid = killer.call("CLIENT", "ID")[1:-2].decode()
    assert killer.call("CLIENT", "KILL", "ID", kid) == b":0\r\n"
    assert killer.call("CLIENT", "KILL", "ID", kid, "MAXAGE", "1000", "SKIPME", "no") == b":0\r\n"
    assert killer.call("PING") == b"+PONG\r\n"
    # killing yourself: the reply comes, then the connection closes
    assert killer.call("CLIENT", "KILL", "ID", kid, "SKIPME", "no") == b":1\r\n"
    assert closed(killer.sock)


def test_client_kill_maxage(new_fjord):
    f = new_fjord()
    old = RawClient(f.port)
    old.call("PING")
    time.sleep(1.2)
    young = RawClient(f.port)
    assert young.call("CLIENT", "KILL", "MAXAGE", "1") == b":1\r\n"
    assert closed(old.sock)
    assert young.call("PING") == b"+PONG\r\n"
    young.close()


def test_client_redis_cli(fjord):
    assert cli(fjord.port, "CLIENT", "ID").strip().isdigit()
    out = cli(fjord.port, "CLIENT", "LIST")
    assert all(fields(ln) == CLIENT_FIELDS for ln in out.splitlines())
    assert cli(fjord.port, stdin="CLIENT SETNAME clitest\nCLIENT GETNAME\n") == "OK\nclitest\n"
    assert "CLIENT <subcommand>" in cli(fjord.port, "CLIENT", "HELP")


def test_connection_commands_served_before_auth_and_while_loading_flags(fjord):
    """The table flags decide what runs unauthenticated and while loading."""
    from store.commands import table
    import store.commands  # noqa: F401

    no_auth = {c.name for c in table.all_commands() if c.no_auth}
    assert {"hello", "auth", "quit", "reset"} <= no_auth and "ping" not in no_auth
    loading = {c.name for c in table.all_commands() if c.allow_loading}
    assert {"hello", "auth", "quit", "reset", "select", "echo"} <= loading and "ping" not in loading
