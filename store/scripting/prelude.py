"""The Lua side of the engine: sandbox, the ``redis`` table, the runner
and the Lua -> RESP encoder, as one chunk run once per interpreter.

Why in Lua: a script's reply is encoded to RESP bytes here, in the
interpreter, so an EVALSHA crosses the Python/Lua border twice (call and
return) however big its reply, instead of once per table element.
The Python callables the chunk receives stay in its locals (upvalues):
scripts cannot reach them, nor any Python object.
"""

PRELUDE = r"""
local pycall, pypcall, pyerr, pyhook, pyfns, pylib, pyregister, version, version_num = ...
local G = _G
local type, tostring, tonumber, select, pairs, next, error, unpack, rawget, rawset, setmetatable, loadstring, setfenv, load =
      type, tostring, tonumber, select, pairs, next, error, unpack, rawget, rawset, setmetatable, loadstring, setfenv, load
local orig_pcall, xpcall = pcall, xpcall
local getinfo, sethook = debug.getinfo, debug.sethook
local format, gsub, len, concat = string.format, string.gsub, string.len, table.concat

-- What scripts see is V, a new table of the allowed globals: the real
-- globals stay as they are (lupa reads some of them, outside any pcall).
local V = {}
for _, name in ipairs({'assert', 'collectgarbage', 'coroutine', 'error', 'gcinfo', 'getmetatable', 'ipairs',
                       'next', 'pairs', 'rawequal', 'rawget', 'select', 'setmetatable', 'tonumber',
                       'tostring', 'type', 'unpack', 'xpcall', '_VERSION'}) do
  V[name] = G[name]
end

-- ------------------------------------------------------------- read-only tables
local readonly = {}
local function deny() error('Attempt to modify a readonly table', 2) end
local function proxy(t)
  local p = setmetatable({}, {__index = t, __newindex = deny, __metatable = false})
  readonly[p] = true
  return p
end
V.rawset = function(t, k, v)
  if readonly[t] then error('Attempt to modify a readonly table', 0) end
  return rawset(t, k, v)
end
V.pcall = function(f, ...)
  local r = {orig_pcall(f, ...)}
  if not r[1] then
    local e = r[2]
    if type(e) == 'table' and type(rawget(e, 'err')) == 'string' then r[2] = rawget(e, 'err')
    elseif type(e) == 'userdata' then
      local m, lib = pyerr(e)
      if m and lib then
        local i = getinfo(2, 'Sl')
        m = (i and i.currentline > 0) and (i.source:sub(2) .. ':' .. i.currentline .. ': ' .. m) or m
      end
      r[2] = m or e
    end
  end
  return unpack(r, 1, table.maxn(r))
end

-- ------------------------------------------------------------- the redis table
local resp = 2
local redis = {}
-- Python callables, not Lua functions: a call to them is never a tail call
-- that would take the script's frame (and line) off the stack.
redis.call = pycall
redis.pcall = pypcall
redis.error_reply = function(e)
  if type(e) ~= 'string' then error('wrong number or type of arguments', 2) end
  if e:sub(1, 1) == '-' then e = e:sub(2) end
  return {err = e}
end
redis.status_reply = function(s)
  if type(s) ~= 'string' then error('wrong number or type of arguments', 2) end
  return {ok = s}
end
-- these check their arguments in Python too: errors keep the script's line
redis.sha1hex, redis.log, redis.setresp, redis.set_repl = pyfns.sha1hex, pyfns.log, pyfns.setresp, pyfns.set_repl
local getresp = pyfns.getresp
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.replicate_commands = function() return true end
redis.breakpoint = function() return false end
redis.debug = function() end
redis.REDIS_VERSION, redis.REDIS_VERSION_NUM = version, version_num

-- libraries bridged to Python (cjson, cmsgpack, bit, struct: see libs.py);
-- their functions are the Python callables themselves
local libs = {}
for _, lib in ipairs({'cjson', 'cmsgpack', 'bit', 'struct'}) do
  local t = {}
  for name, f in pairs(pylib(lib)) do t[name] = f end
  libs[lib] = t
end
libs.cjson.null = pyfns.null

-- ------------------------------------------------------------- environments
local function missing(t, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end
setmetatable(V, {__index = missing})
for name, t in pairs({string = string, math = math, table = table, coroutine = coroutine}) do V[name] = proxy(t) end
-- metatables a script may see: never a Python object's (lupa's, shared by
-- every Python object), a read-only view of the strings' one
local string_mt = proxy({__index = V.string})
local getmetatable = getmetatable
V.getmetatable = function(o)
  local t = type(o)
  if t == 'userdata' then return nil end
  if t == 'string' then return string_mt end
  return getmetatable(o)
end
for name, t in pairs(libs) do V[name] = proxy(t) end
V.redis = proxy(redis)
local env = proxy(V)
V._G = env
-- precompiled chunks are refused: crafted bytecode can corrupt the interpreter
local function safe_load(s, name)
  if type(s) == 'string' and s:byte(1) == 27 then return nil, 'loading precompiled chunks is not allowed' end
  local f, e = loadstring(s, name)
  if f then setfenv(f, env) end
  return f, e
end
V.loadstring = safe_load
V.load = function(fn, name)
  if type(fn) ~= 'function' then return safe_load(fn, name) end
  local parts = {}
  while true do
    local piece = fn()
    if piece == nil or piece == '' then break end
    parts[#parts + 1] = piece
  end
  return safe_load(concat(parts), name)
end

-- the environment library code runs in at FUNCTION LOAD: its redis table
-- only registers functions
local registered
local load_redis = {}
local FLAGS = {['no-writes'] = true, ['allow-oom'] = true, ['allow-stale'] = true,
               ['no-cluster'] = true, ['allow-cross-slot-keys'] = true}
load_redis.register_function = function(...)
  local name, cb, flags, desc
  local n = select('#', ...)
  if n == 1 and type((...)) == 'table' then
    local t = ...
    for k, _ in pairs(t) do
      if k ~= 'function_name' and k ~= 'callback' and k ~= 'flags' and k ~= 'description' then
        error({err = 'ERR unknown argument given to redis.register_function'})
      end
    end
    name, cb, flags, desc = t.function_name, t.callback, t.flags, t.description
  elseif n == 2 then
    name, cb = ...
  else
    error({err = 'ERR wrong number of arguments to redis.register_function'})
  end
  if type(name) ~= 'string' then error({err = 'ERR function_name argument given to redis.register_function must be a string'}) end
  if type(cb) ~= 'function' then error({err = 'ERR callback argument given to redis.register_function must be a function'}) end
  if desc ~= nil and type(desc) ~= 'string' then error({err = 'ERR description argument given to redis.register_function must be a string'}) end
  local fl = {}
  if flags ~= nil then
    if type(flags) ~= 'table' then error({err = 'ERR flags argument to redis.register_function must be a table representing function flags'}) end
    for _, f in ipairs(flags) do
      if type(f) ~= 'string' or not FLAGS[f] then error({err = 'ERR unknown flag given'}) end
      fl[#fl + 1] = f
    end
  end
  local e = pyregister(name, cb, desc, fl)
  if e ~= nil then error({err = e}) end
end
load_redis.log = redis.log
load_redis.LOG_DEBUG, load_redis.LOG_VERBOSE, load_redis.LOG_NOTICE, load_redis.LOG_WARNING = 0, 1, 2, 3
load_redis.REDIS_VERSION, load_redis.REDIS_VERSION_NUM = version, version_num
setmetatable(load_redis, {__index = missing, __newindex = deny, __metatable = false})
local loading = false
local LG = setmetatable({}, {__index = function(t, k)
  if k == 'redis' then return loading and load_redis or V.redis end
  if k == '_G' then return t end
  local v = rawget(V, k)
  if v == nil then error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2) end
  return v
end, __newindex = deny, __metatable = false})
readonly[LG] = true

-- ------------------------------------------------------------- Lua -> RESP
local enc
local function double(out, n, v, c3)
  local s = format('%.17g', v)
  if s == 'inf' or s == '-inf' or s == 'nan' or s == '-nan' then s = gsub(s, '^%-nan$', 'nan') end
  if c3 then out[n + 1] = ',' .. s .. '\r\n' return n + 1 end
  out[n + 1] = '$' .. len(s) .. '\r\n' .. s .. '\r\n'
  return n + 1
end
enc = function(v, out, n, c3)
  local t = type(v)
  if t == 'string' then
    out[n + 1] = '$' .. len(v) .. '\r\n'; out[n + 2] = v; out[n + 3] = '\r\n'
    return n + 3
  elseif t == 'number' then
    out[n + 1] = format(':%d\r\n', v)
    return n + 1
  elseif t == 'boolean' then
    if resp == 2 then
      out[n + 1] = v and ':1\r\n' or (c3 and '_\r\n' or '$-1\r\n')
    elseif c3 then
      out[n + 1] = v and '#t\r\n' or '#f\r\n'
    else
      out[n + 1] = v and ':1\r\n' or ':0\r\n'
    end
    return n + 1
  elseif t == 'table' then
    local f = rawget(v, 'err')
    if type(f) == 'string' then out[n + 1] = '-' .. gsub(f, '[\r\n]', ' ') .. '\r\n' return n + 1 end
    f = rawget(v, 'ok')
    if type(f) == 'string' then out[n + 1] = '+' .. gsub(f, '[\r\n]', ' ') .. '\r\n' return n + 1 end
    f = rawget(v, 'double')
    if type(f) == 'number' then return double(out, n, f, c3) end
    f = rawget(v, 'big_number')
    if type(f) == 'string' then
      if c3 then out[n + 1] = '(' .. f .. '\r\n' return n + 1 end
      return enc(f, out, n, c3)
    end
    f = rawget(v, 'map')
    if type(f) == 'table' then
      local head, count = n + 1, 0
      n = head
      for k, x in pairs(f) do
        n = enc(k, out, n, c3); n = enc(x, out, n, c3); count = count + 1
      end
      out[head] = c3 and ('%' .. count .. '\r\n') or ('*' .. 2 * count .. '\r\n')
      return n
    end
    f = rawget(v, 'set')
    if type(f) == 'table' then
      local head, count = n + 1, 0
      n = head
      for k, _ in pairs(f) do n = enc(k, out, n, c3); count = count + 1 end
      out[head] = (c3 and '~' or '*') .. count .. '\r\n'
      return n
    end
    f = rawget(v, 'verbatim_string')
    if type(f) == 'table' and type(rawget(f, 'string')) == 'string' and type(rawget(f, 'format')) == 'string' then
      local s = rawget(f, 'string')
      if c3 then
        out[n + 1] = '=' .. (len(s) + 4) .. '\r\n' .. rawget(f, 'format') .. ':'; out[n + 2] = s; out[n + 3] = '\r\n'
        return n + 3
      end
      return enc(s, out, n, c3)
    end
    local head, i = n + 1, 1
    n = head
    while true do
      local x = rawget(v, i)
      if x == nil then break end
      n = enc(x, out, n, c3)
      i = i + 1
    end
    out[head] = '*' .. (i - 1) .. '\r\n'
    return n
  end
  out[n + 1] = c3 and '_\r\n' or '$-1\r\n'
  return n + 1
end

-- ------------------------------------------------------------- running
local current, cur_keys, cur_args
local function call_current() return current(cur_keys, cur_args) end
local function handler(e)
  local source, line
  for lvl = 2, 60 do
    local i = getinfo(lvl, 'Sl')
    if not i then break end
    if i.source == '@user_script' or i.source == '@user_function' then
      source, line = i.source, i.currentline
      break
    end
  end
  if type(e) == 'userdata' then
    local m, lib = pyerr(e)
    if m then
      if lib then m = 'ERR ' .. (source and (source:sub(2) .. ':' .. line .. ': ') or '') .. m end
      return {m, source, line}
    end
  end
  if type(e) == 'table' then
    local m = rawget(e, 'err')
    if type(m) == 'string' then return {m, source, line} end
    return {'ERR ' .. tostring(m), source, line}
  end
  return {'ERR ' .. tostring(e), source, line}
end

-- run(f, client_resp3, as_function, nkeys, ...): always four values: true, RESP bytes | 1, a string
-- | 2, a number | 3, nil or false | false, message, source, line
local function run(f, c3, as_function, nkeys, ...)
  local keys, args = {...}, {}
  local n = #keys
  for i = nkeys + 1, n do args[i - nkeys] = keys[i]; keys[i] = nil end
  if as_function then
    current, cur_keys, cur_args = f, keys, args
  else
    V.KEYS = keys; V.ARGV = args
    current, cur_keys, cur_args = f, nil, nil
  end
  local ok, v = xpcall(call_current, handler)
  current, cur_keys, cur_args = nil, nil, nil
  if not ok then return false, v[1], v[2], v[3] end
  local t = type(v)
  -- the common replies go back as they are, for Python to encode
  if t == 'string' then return 1, v, nil, nil end
  if t == 'number' and v == v and v > -9.2e18 and v < 9.2e18 then return 2, v, nil, nil end
  if not v then return 3, v, nil, nil end
  resp = getresp()
  local out = {}
  local done, m = orig_pcall(enc, v, out, 0, c3)
  if not done then return false, 'ERR reply too deeply nested to convert: ' .. tostring(m), nil, nil end
  return true, concat(out, '', 1, m), nil, nil
end

-- compile(body, chunkname): function | nil, message
local function compile(body, chunkname)
  if body:byte(1) == 27 then return nil, 'loading precompiled chunks is not allowed' end
  local f, e = loadstring(body, chunkname)
  if not f then return nil, e end
  setfenv(f, env)
  return f, nil
end

-- load_library(body): runs library code in the loader environment
local function load_library(body)
  if body:byte(1) == 27 then return false, 'compile', 'loading precompiled chunks is not allowed' end
  local f, e = loadstring(body, '@user_function')
  if not f then return false, 'compile', e end
  setfenv(f, LG)
  loading = true
  local ok, v = xpcall(f, handler)
  loading = false
  if not ok then return false, 'run', v[1] end
  return true, nil, nil
end

-- the count hook: the Python side says whether to kill the script
local function hook()
  local killed = pyhook()
  if killed then
    sethook(hook, '', 1)
    -- only in the script's own code: never in the runner or the error
    -- handler, and again at each instruction, so pcall cannot swallow it
    local i = getinfo(2, 'S')
    if i and (i.source == '@user_script' or i.source == '@user_function') then
      error({err = killed})
    end
  end
end
local function arm(count) sethook(hook, '', count) end
local function disarm() sethook() end

return run, compile, load_library, arm, disarm, env
"""
