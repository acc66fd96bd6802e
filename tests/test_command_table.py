"""COMMAND and its subcommands: the command table as clients see it.

Functional tests: shapes compared byte for byte with redis-server 7.0.15 for
commands whose table entries match Redis's, consistency of every entry with
the table, and the clients that read it (redis-cli's start-up and help,
redis-py's ``command()``).
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

import hiredis
import pytest
import redis

import store.commands  # noqa: F401 - registers every command
import triggers.commands  # noqa: F401 - FJORD.TRIGGER, which `fjord serve` registers too
import triggers.viewcommands  # noqa: F401 - FJORD.VIEW, likewise
from store.commands import table

# Commands Fjord describes exactly as Redis 7.0.15 does (flags, categories,
# tips, key specs, docs minus arguments).
SAME_AS_REDIS = ["get", "ping", "echo", "hello", "auth", "select", "quit", "reset", "client|id",
                 "client|setname", "client|getname", "client|list", "client|info", "client|kill",
                 "client|help", "client|no-evict", "command|info", "command|docs", "command|count",
                 "command|getkeys", "command|list", "command|help", "command|getkeysandflags"]


def _parse(reply: bytes):
    reader = hiredis.Reader()
    reader.feed(reply)
    return reader.gets()


def _without(docs, keys=(b"arguments", b"history")):
    """A COMMAND DOCS reply minus what Fjord does not record (argument
    lists, history); RESP2 flat maps become lists of pairs."""
    if isinstance(docs, dict):
        return {k: _without(v, keys) for k, v in docs.items() if k not in keys}
    if isinstance(docs, list) and len(docs) % 2 == 0 and all(isinstance(k, bytes) for k in docs[::2]):
        return [(k, _without(v, keys)) for k, v in zip(docs[::2], docs[1::2]) if k not in keys]
    return docs


@pytest.mark.parametrize("name", SAME_AS_REDIS)
def test_command_info_matches_redis(diff, name):
    diff("COMMAND", "INFO", name)
    diff.both("HELLO", "3")
    diff("COMMAND", "INFO", name)


@pytest.mark.parametrize("name", SAME_AS_REDIS)
def test_command_docs_match_redis(diff, name):
    got, want = diff.both("COMMAND", "DOCS", name)
    assert _without(_parse(got)) == _without(_parse(want))
    diff.both("HELLO", "3")
    got, want = diff.both("COMMAND", "DOCS", name)
    assert got[:1] == want[:1] == b"%"
    assert _without(_parse(got)) == _without(_parse(want))


@pytest.mark.parametrize("args", [
    ("COMMAND", "INFO", "nosuch"), ("COMMAND", "INFO", "client|nosuch"), ("COMMAND", "INFO", "a|b|c"),
    ("COMMAND", "INFO", "GET", "nosuch", "Ping"), ("COMMAND", "DOCS", "nosuch"),
    ("COMMAND", "GETKEYS"), ("COMMAND", "GETKEYS", "get"), ("COMMAND", "GETKEYS", "get", "a"),
    ("COMMAND", "GETKEYS", "get", "a", "b"), ("COMMAND", "GETKEYS", "ping", "x"),
    ("COMMAND", "GETKEYS", "nosuch", "x"), ("COMMAND", "GETKEYS", "client", "kill"),
    ("COMMAND", "GETKEYS", "client", "nosuch"), ("COMMAND", "GETKEYS", "mset", "a", "b", "c", "d"),
    ("COMMAND", "GETKEYS", "mset", "a", "b", "c"), ("COMMAND", "GETKEYSANDFLAGS", "get", "a"),
    ("COMMAND", "LIST", "x"), ("COMMAND", "LIST", "FILTERBY"), ("COMMAND", "LIST", "FILTERBY", "foo", "bar"),
    ("COMMAND", "LIST", "FILTERBY", "MODULE", "x"), ("COMMAND", "LIST", "FILTERBY", "ACLCAT", "nosuch"),
    ("COMMAND", "LIST", "FILTERBY", "PATTERN", "nosuch*"), ("COMMAND", "LIST", "FILTERBY", "PATTERN", "x", "y"),
    ("COMMAND", "LIST", "FILTERBY", "PATTERN", "Client|Ge?name"),
    ("COMMAND", "COUNT", "x"), ("COMMAND", "FOO"), ("COMMAND", "HELP"), ("COMMAND", "HELP", "x"),
])
def test_command_subcommands_match_redis(diff, args):
    diff(*args)


def test_every_command_is_described_from_the_table(r):
    commands = table.all_commands()
    assert r.command_count() == len(commands)
    described = r.command()
    assert set(described) == {c.name for c in commands}
    for cmd in commands:
        d = described[cmd.name]
        assert d["arity"] == cmd.arity
        assert (d["first_key_pos"], d["last_key_pos"], d["step_count"]) == (
            cmd.first_key, cmd.last_key, cmd.key_step)
        assert [c for c in d["acl_categories"]] == list(cmd.acl_categories)
        assert len(d["subcommands"]) == len(table.unique(cmd.subcommands))
    names = r.command_list()
    assert len(names) == len(commands) + sum(len(table.unique(c.subcommands)) for c in commands)


def test_command_docs_for_everything(fjord):
    raw = redis.Redis(port=fjord.port, protocol=3)
    docs = raw.execute_command("COMMAND DOCS")
    if isinstance(docs, list):  # redis-py parses COMMAND replies itself; read it raw
        docs = dict(zip(docs[::2], docs[1::2]))
    raw.close()
    names = {c.name.encode() for c in table.all_commands()}
    assert set(docs) == names
    for name, doc in docs.items():
        doc = doc if isinstance(doc, dict) else dict(zip(doc[::2], doc[1::2]))
        assert {b"summary", b"since", b"group"} <= set(doc), name
        for sub, subdoc in (doc.get(b"subcommands") or {}).items():
            assert sub.startswith(name + b"|")  # redis-cli splits on the pipe


def test_command_list_filters(fjord):
    r = redis.Redis(port=fjord.port, decode_responses=True)
    assert set(r.command_list(category="connection")) >= {"ping", "hello", "client|id", "command"}
    assert "client" not in r.command_list(category="connection")  # a pure container is only @slow
    assert r.command_list(pattern="CLIENT|*") == sorted(r.command_list(pattern="client|*"))
    assert r.command_list(module="x") == []
    r.close()


def test_command_getkeys_redis_py(r):
    assert r.command_getkeys("SET", "a", "b") == ["a"]
    assert r.command_getkeys("MSET", "a", "1", "b", "2") == ["a", "b"]


def test_redis_cli_command_docs(fjord):
    out = subprocess.run(["redis-cli", "-p", str(fjord.port), "COMMAND", "DOCS", "get"], capture_output=True,
                         text=True, timeout=10).stdout
    assert out.splitlines()[:3] == ["get", "summary", "Get the value of a key"]
    out = subprocess.run(["redis-cli", "-p", str(fjord.port), "COMMAND", "INFO", "get"], capture_output=True,
                         text=True, timeout=10).stdout
    assert out.splitlines()[:3] == ["get", "2", "readonly"]


def _pty_session(port: int, lines: list[bytes], timeout: float = 10) -> bytes:
    """Run redis-cli interactively (it reads COMMAND DOCS on start) on a pty."""
    pid, fd = pty.fork()
    if pid == 0:  # child; a dumb terminal keeps linenoise from querying the cursor
        os.execvpe("redis-cli", ["redis-cli", "-p", str(port)], {**os.environ, "TERM": "dumb"})
    out = b""
    deadline = time.monotonic() + timeout
    try:
        for line in lines + [b"quit\n"]:
            time.sleep(0.3)
            os.write(fd, line)
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0) if not os.waitpid(pid, os.WNOHANG)[0] else None
        os.close(fd)
    return out


def test_redis_cli_interactive_start_and_help(fjord):
    out = _pty_session(fjord.port, [b"PING\n", b"help CLIENT SETINFO\n", b"help @connection\n"])
    assert b"PONG" in out
    # CLIENT SETINFO is not in redis-cli 7.0's built-in help: this came from COMMAND DOCS
    assert b"Sets information specific to the client or connection." in out
    assert b"Handshake with Redis" in out
