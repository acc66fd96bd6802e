"""Lua scripting: EVAL/EVALSHA scripts and FUNCTION libraries.

Module map:

- ``runtime``    ``ScriptEngine``: the Lua 5.1 interpreter (lupa), running a
                 script against a session, ``redis.call``, the time limit hook,
                 SCRIPT/FUNCTION KILL
- ``prelude``    the Lua side: sandbox (read-only globals, no os/io/require),
                 the ``redis`` table, the Lua -> RESP reply encoder
- ``convert``    command replies -> Lua values, ``redis.call`` arguments
- ``libs``       ``cjson``, ``cmsgpack``, ``bit``, ``struct`` bridged to Python
- ``functions``  FUNCTION libraries: durable events and appliers, loading
- ``busy``       answering other clients (-BUSY) while a slow script runs

The commands (EVAL, SCRIPT, FUNCTION, FCALL...) are in
store/commands/scripting.py. Scripts' effects are logged as the events their
calls emitted, one record per script: replay never runs Lua.
"""
