"""Lua scripting: EVAL/EVALSHA/SCRIPT, FUNCTION/FCALL, compared byte for
byte with redis-server 7.0.15 where the replies are deterministic; plus
atomic logging of a script's effects, durability of functions, and BUSY /
SCRIPT KILL with a small busy-reply-threshold."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from conftest import RawClient
from logtools import logged_records

# ---------------------------------------------------------------- conversions

#: Lua -> RESP: every rule of Redis's conversion, and its corner cases
RETURNS = [
    "return 1", "return -7", "return 3.99", "return -3.99", "return 3e30", "return 'str'", "return ''",
    "return true", "return false", "return nil", "return",
    "return {1, 2, 3, 'x', nil, 5}", "return {1.9, -2.7, true, false, {ok='st'}, {err='e1'}, {}}",
    "return {1, {2, {3, {}}}}", "return 0/0", "return 1/0", "return -1/0", "return 2^63", "return -2^63", "return {ok='fine'}", "return {err='plain'}", "return {err='-dash'}",
    "return {ok='a', err='b'}", "return {err=5}", "return {ok=5}",
    "return redis.status_reply('fine')", "return redis.error_reply('x y')", "return redis.error_reply('-x y')",
    "return {double=3.5}", "return {double=3}", "return {double=0.1}", "return {big_number='123'}",
    "return {map={a=1}}", "return {set={a=true}}", "return {verbatim_string={format='txt', string='hi'}}",
    "return {a=1, b=2}", "return {1, 2, x=3}", "return function() end",
    "return KEYS", "return ARGV", "return {#KEYS, #ARGV}",
    "return redis.sha1hex('')", "return redis.sha1hex('abc')",
    "return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}",
    "return {redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL}",
    "return redis.set_repl(redis.REPL_ALL)", "return redis.replicate_commands()",
    "return redis.breakpoint()", "return redis.debug('x')", "return _VERSION",
    "return string.rep('x', 3)", "return tostring(math.floor(2.5))", "return table.concat({'a', 'b'}, ',')",
    "return loadstring('return 1')()",
]
RESP3_RETURNS = [
    "redis.setresp(3) return {double=3.5}", "redis.setresp(3) return {double=0.1}",
    "redis.setresp(3) return {double=1/0}", "redis.setresp(3) return {double=-1/0}",
    "redis.setresp(3) return {double=1e300}", "redis.setresp(3) return {double=-0.0}",
    "redis.setresp(3) return {map={a=1}}", "redis.setresp(3) return {set={a=true}}",
    "redis.setresp(3) return {big_number='123'}", "redis.setresp(3) return true",
    "redis.setresp(3) return false", "redis.setresp(3) return nil",
    "redis.setresp(3) return {verbatim_string={format='txt', string='hi'}}",
]
#: RESP -> Lua: what redis.call gives a script, returned (so converted back)
CALLS = [
    "return redis.call('ping')", "return redis.call('ping').ok", "return redis.call('set', 'a', 1.5)",
    "return redis.call('get', 'a')", "return redis.call('get', 'nokey')",
    "return tostring(redis.call('get', 'nokey'))",
    "redis.call('set', 'a', 1e20) return redis.call('get', 'a')",
    "redis.call('set', 'a', 2^53) return redis.call('get', 'a')",
    "redis.call('set', 'a', 0.1) return redis.call('get', 'a')",
    "return redis.call('hset', 'h', 'f1', 'v1', 'f2', 'v2')", "return redis.call('hgetall', 'h')",
    "return redis.call('mget', 'a', 'nokey', 'h')", "return {redis.call('mget', 'nokey', 'a')}",
    "local t = redis.call('mget', 'nokey', 'a') return {#t, tostring(t[1])}",
    "return redis.call('lrange', 'nolist', 0, -1)", "return redis.call('rpush', 'l', 'a', 'b')",
    "return redis.call('lpop', 'nolist')", "return redis.call('zadd', 'z', 1.5, 'm')",
    "return redis.call('zscore', 'z', 'm')", "return redis.call('zrange', 'z', 0, -1, 'withscores')",
    "return redis.call('sadd', 's', 'x')", "return redis.call('smembers', 's')",
    "return redis.call('exists', 's')", "return redis.call('incrbyfloat', 'f', '1.5')",
    "return redis.call('select', '1')", "return redis.call('type', 's')",
    "return redis.pcall('incr', 'h')", "local e = redis.pcall('incr', 'h') return {type(e), e.err}",
    "local ok, e = pcall(redis.call, 'incr', 'h') return {tostring(ok), e}",
    "local ok, e = pcall(error, {err='X y'}) return e", "local ok, e = pcall(error, 'hi') return e",
    "local ok, e = pcall(function() return nosuch end) return e",
]
RESP3_CALLS = [
    "redis.setresp(3) return redis.call('hgetall', 'h')",
    "redis.setresp(3) return redis.call('hgetall', 'h').map.f1",
    "redis.setresp(3) local s = redis.call('zscore', 'z', 'm') return {type(s), s.double}",
    "redis.setresp(3) return redis.call('zscore', 'z', 'm')",
    "redis.setresp(3) return redis.call('smembers', 's')",
    "redis.setresp(3) local s = redis.call('smembers', 's') return {type(s.set), tostring(s.set.x)}",
    "redis.setresp(3) return tostring(redis.call('get', 'nokey'))",
    "redis.setresp(3) local t = redis.call('mget', 'nokey', 'a') return {tostring(t[1]), t[2]}",
]
#: errors: words and positions
ERRORS = [
    "x = 1", "return x", "error('boom')", "error({err='MY custom'})", "error(5)", "error()",
    "\n\nerror('line three')", "return redis.call('incr', 'a')", "\nlocal x = redis.call('incr', 'a')",
    "return redis.call('nosuch')", "return redis.call('get')", "return redis.call('get', {})",
    "return redis.call('ping', true)", "return redis.call()", "return redis.call('multi')",
    "return redis.call('eval', 'return 1', '0')", "return redis.call('blpop', 'l', 1)",
    "return redis.call('client', 'nosuch')", "return redis.call('wait', '0', '0')",
    "return os", "return io", "return require", "return loadfile", "return dofile", "return debug",
    "return print", "return getfenv", "return setfenv", "return newproxy", "return module",
    "redis.x = 1", "string.foo = 1", "rawset(_G, 'a', 1)", "_G.x = 1", "return redis.sha1hex()",
    "return redis.setresp(4)", "return redis.setresp()", "return redis.log()",
    "syntax error here", "return cjson.decode('bad')",
]
LIBS = [
    "return cjson.encode({1, 2, {a=1}})", "return cjson.decode('[1,2,{\"a\":1.5}]')[3].a",
    "return cjson.encode({a='x'})", "return cjson.decode('{\"a\":[1,2]}').a[2]",
    "return cjson.encode(cjson.decode('{\"a\":null}'))", "return cjson.encode({})",
    "return cjson.encode(3.5)", "return cjson.encode('a\"b')",
    "return cmsgpack.pack({1, 2, 3})", "return cmsgpack.unpack(cmsgpack.pack({1, 'a', {x=1}}))",
    "return {cmsgpack.unpack(cmsgpack.pack(1, 2))}", "return cmsgpack.pack('abc', 300, -1)",
    "return bit.band(0xff, 0x0f)", "return bit.tohex(255)",
    "return {bit.bor(1, 2), bit.bxor(3, 1), bit.lshift(1, 4), bit.rshift(256, 4), bit.bnot(0),"
    " bit.arshift(-256, 4), bit.tobit(2^32 + 5)}",
    "return struct.pack('>I2', 258)", "return {struct.unpack('>I2', 'ab')}", "return struct.size('>I2i4')",
    "return struct.pack('<i4', -2)", "return {struct.unpack('<i4', struct.pack('<i4', -2))}",
    "return type(cjson) .. type(bit) .. type(struct) .. type(cmsgpack)",
]


def _run_all(diff, scripts, *keys_and_args):
    for script in scripts:
        diff("EVAL", script, *keys_and_args)


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_lua_to_resp_conversions_match_redis(diff, resp3):
    if resp3:
        diff.resp3()
    _run_all(diff, RETURNS, 2, "k1", "k2", "a1", "a2", "a3")
    _run_all(diff, RESP3_RETURNS, 0)


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_resp_to_lua_conversions_match_redis(diff, resp3):
    if resp3:
        diff.resp3()
    _run_all(diff, CALLS, 0)
    _run_all(diff, RESP3_CALLS, 0)


def test_error_messages_match_redis(diff):
    diff("SET", "a", "notanumber")
    _run_all(diff, ERRORS, 0)


def test_libraries_match_redis(diff):
    _run_all(diff, LIBS, 0)


def test_eval_evalsha_script_commands_match_redis(diff):
    diff("SCRIPT", "FLUSH")
    body = "return {KEYS[1], ARGV[1]}"
    sha = diff("SCRIPT", "LOAD", body).split(b"\r\n")[1].decode()
    diff.run_all(
        ("EVALSHA", sha, 1, "k", "a"), ("EVALSHA", sha.upper(), 1, "k", "a"), ("EVALSHA_RO", sha, 1, "k", "a"),
        ("EVALSHA", "abc", 0), ("EVALSHA", "1" * 40, 0),
        ("SCRIPT", "EXISTS", sha, "abc"), ("SCRIPT", "EXISTS", sha.upper()),
        ("EVAL", "return 1", -1), ("EVAL", "return 1", 2, "a"), ("EVAL", "return 1", "x"),
        ("EVAL", "return 1"), ("EVALSHA", sha),
        ("EVAL_RO", "return redis.call('set', 'a', 'b')", 0), ("EVAL_RO", "return redis.call('get', 'a')", 0),
        ("EVAL", "#!lua flags=no-writes\nreturn redis.call('set','a','b')", 0),
        ("EVAL", "#!lua\nreturn 1", 0), ("EVAL", "#!lua flags=bogus\nreturn 1", 0),
        ("EVAL", "#!lua name=x\nreturn 1", 0), ("EVAL_RO", "#!lua\nreturn 1", 0),
        ("SCRIPT", "FLUSH", "bad"), ("SCRIPT", "FLUSH", "SYNC"), ("SCRIPT", "EXISTS", sha),
        ("SCRIPT", "LOAD"), ("SCRIPT", "BOGUS"), ("SCRIPT", "HELP"),
        ("SCRIPT", "KILL"), ("FUNCTION", "KILL"),
    )


def test_select_inside_a_script_does_not_change_the_callers_db(diff):
    diff("EVAL", "redis.call('select', 1) redis.call('set', 'in1', 'x') return redis.call('get', 'in1')", 0)
    diff("GET", "in1")
    diff("SELECT", "1")
    diff("GET", "in1")


# ---------------------------------------------------------------- functions

LIB = ("#!lua name=lib1\n"
       "redis.register_function('f1', function(keys, args) return {keys, args} end)\n")
LIB_RO = ("#!lua name=lib2\n"
          "redis.register_function{function_name='setter', callback=function(keys, args) "
          "return redis.call('set', keys[1], args[1]) end}\n"
          "redis.register_function{function_name='getter', callback=function(keys, args) "
          "return redis.call('get', keys[1]) end, flags={'no-writes'}, description='read one'}\n")


def test_functions_match_redis(diff):
    diff("FUNCTION", "FLUSH")
    diff.run_all(
        ("FUNCTION", "LOAD", LIB), ("FUNCTION", "LOAD", LIB),
        ("FUNCTION", "LIST"), ("FUNCTION", "LIST", "WITHCODE", "LIBRARYNAME", "lib*"),
        ("FUNCTION", "LIST", "LIBRARYNAME", "zz"), ("FUNCTION", "LIST", "bogus"),
        ("FCALL", "f1", 1, "k", "a"), ("FCALL", "f1", 0, "a"), ("FCALL_RO", "f1", 0),
        ("FCALL", "nosuch", 0), ("FCALL", "f1", 3, "k"), ("FCALL", "f1", -1), ("FCALL", "f1", "x"),
        ("FUNCTION", "LOAD", LIB_RO), ("FCALL", "setter", 1, "k", "v"), ("FCALL_RO", "setter", 1, "k", "v"),
        ("FCALL_RO", "getter", 1, "k"), ("FCALL", "getter", 1, "k"),
        ("FUNCTION", "STATS"),
        ("FUNCTION", "LOAD", "redis.register_function('f1', function() return 1 end)"),
        ("FUNCTION", "LOAD", "#!lua name=lib9\nredis.register_function('f1', function() return 1 end)"),
        ("FUNCTION", "LOAD", "#!lua name=lib3\nreturn 1"),
        ("FUNCTION", "LOAD", "#!lua name=lib3\nredis.call('ping')"),
        ("FUNCTION", "LOAD", "#!lua name=lib3\nsyntax error"),
        ("FUNCTION", "LOAD", "#!lua name=lib3 foo=bar\nredis.register_function('g', function() return 1 end)"),
        ("FUNCTION", "LOAD", "#!js name=lib3\nredis.register_function('g', function() return 1 end)"),
        ("FUNCTION", "LOAD", "#!lua name=lib-3\nredis.register_function('g', function() return 1 end)"),
        ("FUNCTION", "LOAD", "#!lua name=lib3\nredis.register_function('g-1', function() return 1 end)"),
        ("FUNCTION", "LOAD", "#!lua name=lib3\nredis.register_function('g', function() return 1 end, 5)"),
        ("FUNCTION", "LOAD", "#!lua name=lib3\nredis.register_function{function_name='g', "
                             "callback=function() return 1 end, flags={'bad'}}"),
        ("FUNCTION", "LOAD", "#!lua name=lib3\nx = 5"), ("FUNCTION", "LOAD", "#!lua name=lib3\nreturn y"),
        ("FUNCTION", "LOAD", "#!lua name=loopy\nwhile true do end"),
        ("FUNCTION", "DELETE", "nosuch"), ("FUNCTION", "DELETE", "lib2"), ("FCALL", "getter", 1, "k"),
        ("FUNCTION", "LOAD", "REPLACE", "#!lua name=lib1\nredis.register_function('f1', "
                                        "function(keys, args) error('oops') end)"),
        ("FCALL", "f1", 0), ("FUNCTION", "FLUSH", "bad"), ("FUNCTION", "FLUSH", "ASYNC"), ("FUNCTION", "LIST"),
        ("FCALL", "f1", 0),
    )
    diff.resp3()
    diff("FUNCTION", "LOAD", LIB)
    diff("FUNCTION", "LIST")
    diff("FUNCTION", "STATS")
    diff("FUNCTION", "FLUSH")


# ---------------------------------------------------------------- atomicity and the log


def test_script_effects_are_one_record_and_survive_restart(new_fjord):
    srv = new_fjord()
    c = srv.client()
    c.set("counter", 10)
    script = """
        local v = redis.call('incrby', KEYS[1], ARGV[1])
        redis.call('set', KEYS[2], 'at ' .. v)
        redis.call('expire', KEYS[2], 1000)
        redis.call('rpush', KEYS[3], math.random(1000000), v)
        return v
    """
    assert c.eval(script, 3, "counter", "label", "list", 5) == 15
    lst = c.lrange("list", 0, -1)
    records = logged_records(srv.data_dir)
    last = records[-1]
    assert [e.type for e in last.events] == ["incrby", "set", "expire", "rpush"]
    assert all(e.type != "eval" for r in records for e in r.events)  # the effects, never the text
    srv.restart()
    c = srv.client()
    assert c.get("counter") == b"15"
    assert c.get("label") == b"at 15"
    assert 0 < c.ttl("label") <= 1000
    assert c.lrange("list", 0, -1) == lst  # the random number as chosen, not re-run


def test_an_error_half_way_keeps_the_earlier_writes(new_fjord):
    srv = new_fjord()
    c = srv.client()
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        c.eval("redis.call('set', 'a', '1') redis.call('rpush', 'l', 'x') "
               "redis.call('incr', 'l') redis.call('set', 'b', '2')", 0)
    assert c.get("a") == b"1" and c.lrange("l", 0, -1) == [b"x"] and c.get("b") is None
    assert [e.type for e in logged_records(srv.data_dir)[-1].events] == ["set", "rpush"]
    srv.restart()
    c = srv.client()
    assert c.get("a") == b"1" and c.lrange("l", 0, -1) == [b"x"] and c.get("b") is None


def test_functions_survive_restart_and_snapshots(new_fjord):
    srv = new_fjord()
    c = srv.client()
    assert c.function_load(LIB) == b"lib1"
    c.function_load(LIB_RO)
    c.function_delete("lib1")
    assert c.fcall("setter", 1, "k", "v") == b"OK"
    c.execute_command("SAVE")  # lib2 in the snapshot, lib1 in the log's tail
    c.function_load(LIB)
    srv.restart()
    c = srv.client()
    assert c.fcall_ro("getter", 1, "k") == b"v"
    assert c.fcall("f1", 1, "x") == [[b"x"], []]
    assert sorted(lib[b"library_name"] for lib in c.execute_command("FUNCTION", "LIST")) == [b"lib1", b"lib2"]
    c.function_flush()
    srv.restart()
    assert srv.client().function_list() == []


def test_watch_sees_a_scripts_writes(r):
    other = redis.Redis(port=r.connection_pool.connection_kwargs["port"])
    with r.pipeline() as p:
        p.watch("w")
        other.eval("return redis.call('set', 'w', 'changed')", 0)
        p.multi()
        p.set("w", "mine")
        with pytest.raises(redis.WatchError):
            p.execute()
    assert r.get("w") == b"changed"
    other.close()


def test_scripts_run_inside_multi(r):
    with r.pipeline() as p:
        p.set("m", 1)
        p.eval("return redis.call('incr', 'm')", 0)
        assert p.execute() == [True, 2]


# ---------------------------------------------------------------- BUSY and SCRIPT KILL


def _busy_run(port, script, out):
    c = RawClient(port, timeout=30)
    try:
        out.append(c.call("EVAL", script, 0))
    finally:
        c.close()


def _wait_busy(client, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = client.call("PING")
        if reply.startswith(b"-BUSY"):
            return reply
        time.sleep(0.02)
    raise AssertionError("the server never answered -BUSY")


def test_busy_and_script_kill(new_fjord):
    srv = new_fjord("--busy-reply-threshold", "100")
    other = RawClient(srv.port)
    assert other.call("PING") == b"+PONG\r\n"
    assert other.call("CONFIG", "GET", "lua-time-limit") == b"*2\r\n$14\r\nlua-time-limit\r\n$3\r\n100\r\n"
    assert other.call("SCRIPT", "KILL") == b"-NOTBUSY No scripts in execution right now.\r\n"
    out: list[bytes] = []
    t = threading.Thread(target=_busy_run, args=(srv.port, "local i = 0 while true do i = i + 1 end", out))
    t.start()
    busy = _wait_busy(other)
    assert busy == b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"
    assert other.call("GET", "x") == busy
    assert other.call("FUNCTION", "KILL").startswith(b"-BUSY")
    assert other.call("SCRIPT", "KILL") == b"+OK\r\n"
    t.join(10)
    assert out and out[0].startswith(b"-ERR Script killed by user with SCRIPT KILL... script: ")
    assert other.call("PING") == b"+PONG\r\n"

    # a script that wrote cannot be killed; it ends on its own and its write counts
    out.clear()
    t = threading.Thread(target=_busy_run, args=(
        srv.port, "redis.call('set', 'w', '1') "
                  "local function now() local t = redis.call('time') return t[1] * 1000 + t[2] / 1000 end "
                  "local t0 = now() while now() - t0 < 1000 do end return 'done'", out))
    t.start()
    _wait_busy(other)
    reply = other.call("SCRIPT", "KILL")
    assert reply.startswith(b"-UNKILLABLE Sorry the script already executed write"), reply
    t.join(10)
    assert out == [b"$4\r\ndone\r\n"]
    assert other.call("GET", "w") == b"$1\r\n1\r\n"

    # a function: its own BUSY words, FUNCTION STATS shows it, FUNCTION KILL stops it
    other.call("FUNCTION", "LOAD", "#!lua name=spin\nredis.register_function('spin', function() while true do end end)")
    out.clear()
    t = threading.Thread(target=_fcall_run, args=(srv.port, out))
    t.start()
    busy = _wait_busy(other)
    assert busy == b"-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n"
    assert other.call("SCRIPT", "KILL") == busy
    assert b"$4\r\nspin\r\n$7\r\ncommand\r\n*3\r\n$5\r\nFCALL\r\n" in other.call("FUNCTION", "STATS")
    assert other.call("FUNCTION", "KILL") == b"+OK\r\n"
    t.join(10)
    assert out == [b"-ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:2.\r\n"]
    other.close()


def test_clients_connecting_during_a_busy_script_are_answered(new_fjord):
    srv = new_fjord("--busy-reply-threshold", "100")
    first = RawClient(srv.port)
    out: list[bytes] = []
    t = threading.Thread(target=_busy_run, args=(srv.port, "while true do end", out))
    t.start()
    busy = _wait_busy(first)
    late = RawClient(srv.port, timeout=5)  # connects after the script became busy
    assert late.call("GET", "x") == busy
    assert late.call("HELLO", "3", "SETNAME", "late").startswith(b"%")  # allow_busy: runs
    assert late.call("SCRIPT", "KILL") == b"+OK\r\n"
    t.join(10)
    assert out and out[0].startswith(b"-ERR Script killed by user with SCRIPT KILL")
    # after the script, the loop took the socket over: same session (RESP3, named)
    assert late.call("SET", "x", "1") == b"+OK\r\n"
    assert late.call("HGETALL", "nohash") == b"%0\r\n"
    assert late.call("CLIENT", "GETNAME") == b"$4\r\nlate\r\n"
    assert first.call("GET", "x") == b"$1\r\n1\r\n"
    late.close()
    first.close()


def test_shutdown_nosave_stops_a_busy_script_and_drops_its_writes(new_fjord):
    srv = new_fjord("--busy-reply-threshold", "100")
    other = RawClient(srv.port)
    assert other.call("SET", "before", "1") == b"+OK\r\n"
    out: list[bytes] = []
    t = threading.Thread(target=_busy_run_closed, args=(
        srv.port, "redis.call('set', 'w', '1') while true do end", out))
    t.start()
    busy = _wait_busy(other)
    assert other.call("SCRIPT", "KILL").startswith(b"-UNKILLABLE")
    assert other.call("SHUTDOWN") == busy  # only SHUTDOWN NOSAVE runs during a busy script
    with pytest.raises(ConnectionError):  # as Redis: no reply, the connection closes
        other.call("SHUTDOWN", "NOSAVE")
    assert srv.proc.wait(timeout=15) == 0
    t.join(10)
    assert out == [b"closed"]  # the script's caller gets no reply either
    other.close()
    srv.kill()
    srv.start()
    c = RawClient(srv.port)
    assert c.call("GET", "before") == b"$1\r\n1\r\n"
    assert c.call("GET", "w") == b"$-1\r\n"  # never acknowledged, never logged
    c.close()


def _busy_run_closed(port, script, out):
    c = RawClient(port, timeout=30)
    try:
        out.append(c.call("EVAL", script, 0))
    except ConnectionError:
        out.append(b"closed")
    finally:
        c.close()


def _fcall_run(port, out):
    c = RawClient(port, timeout=30)
    try:
        out.append(c.call("FCALL", "spin", 0))
    finally:
        c.close()


def test_sandbox_escapes_are_closed(r):
    """What Redis's read-only tables protect, and what an embedded Lua with
    Python objects adds: no Python object's metatable or attributes, no
    precompiled chunks, no change to shared library tables."""
    assert r.eval("return tostring(getmetatable(redis.call))", 0) == b"nil"
    for script in ("getmetatable('').__index.rep = nil", "coroutine.x = 1", "cjson.encode = nil",
                   "getmetatable(_G).__index = nil", "setmetatable(_G, {})"):
        with pytest.raises(redis.ResponseError):
            r.eval(script, 0)
    with pytest.raises(redis.ResponseError, match="not accessible from Lua"):
        r.eval("return redis.call.__class__", 0)
    assert r.eval("return loadstring(string.dump(function() return 1 end))", 0) is None
    with pytest.raises(redis.ResponseError, match="precompiled"):
        r.eval("\x1bLua", 0)
    assert r.eval("return ('x'):rep(2) .. string.rep('y', 2)", 0) == b"xxyy"
    assert r.eval("local f = loadstring('return KEYS[1]') return f()", 1, "k") == b"k"
