"""Redis's conversion rules between command replies and Lua values.

Command replies -> Lua (what ``redis.call`` returns), by the script's
protocol (``redis.setresp``):

=====================  ====================  ==============================
reply                  RESP2 script          RESP3 script
=====================  ====================  ==============================
integer                number                number
bulk string            string                string
null (bulk or array)   false                 nil
array                  table (nulls: false)  table
status                 {ok=...}              {ok=...}
error                  raised / {err=...}    raised / {err=...}
map                    flat table            {map={k=v}}
set                    table                 {set={member=true}}
double                 string                {double=number}
boolean                1 / nil               true / false
verbatim               string                {verbatim_string={format,string}}
=====================  ====================  ==============================

The other way (a script's return value -> RESP) is done in Lua, in
``prelude.PRELUDE`` (``enc``), so a reply crosses into Python as one
string. Arguments given to ``redis.call`` become strings as Redis makes
them (numbers printed with ``%.17g``).
"""

from __future__ import annotations

from ..resp import NULL_ARRAY, Delayed, Push, Raw, ReplyError, RespMap, RespSet, Verbatim, encode, format_double

ARGS_MUST_BE = "ERR Lua redis lib command arguments must be strings or integers"


def arg_bytes(a) -> bytes | None:
    """One ``redis.call`` argument as the bytes Redis would send, or None
    if Redis refuses its type (tables, booleans, nil)."""
    t = type(a)
    if t is bytes:
        return a
    if t is int:
        if -(10**17) < a < 10**17:
            return b"%d" % a
        return b"%.17g" % a
    if t is float:
        return b"%.17g" % a
    return None


class ReplyToLua:
    """Turns command replies (store.resp values) into Lua values of one
    interpreter."""

    def __init__(self, lua):
        self.table_from = lua.table_from

    def __call__(self, r, resp3: bool):
        t = type(r)
        if t is bytes:
            return r
        if t is int:
            return r
        if r is None or r is NULL_ARRAY:
            return None if resp3 else False
        if t is Raw:
            return self.raw(bytes(r), resp3)
        if t is str:
            return self.table_from({b"ok": r.encode()})
        if t is list or t is tuple or t is Push or (t is RespSet and not resp3):
            return self.table_from([self(x, resp3) for x in r])
        if t is RespMap:
            if resp3:
                return self.table_from({b"map": self.table_from({_key(self(k, True)): self(v, True) for k, v in r})})
            flat = []
            for k, v in r:
                flat.append(self(k, False))
                flat.append(self(v, False))
            return self.table_from(flat)
        if t is RespSet:
            return self.table_from({b"set": self.table_from({_key(self(x, True)): True for x in r})})
        if t is bool:
            return r if resp3 else int(r)
        if t is float:
            if resp3:
                return self.table_from({b"double": r})
            return format_double(r)
        if t is Verbatim:
            if resp3:
                return self.table_from({b"verbatim_string": self.table_from({b"format": b"txt", b"string": bytes(r)})})
            return bytes(r)
        if t is Delayed:
            return self(r.reply, resp3)
        if isinstance(r, int):
            return int(r)
        if isinstance(r, ReplyError):
            raise r
        return self.raw(encode(r, resp3), resp3)

    # ------------------------------------------------------------ raw RESP

    def raw(self, data: bytes, resp3: bool):
        """A pre-encoded reply (``Raw``), parsed into Lua values."""
        value, _ = self._parse(data, 0, resp3)
        return value

    def _parse(self, data: bytes, pos: int, resp3: bool):
        end = data.index(b"\r\n", pos)
        kind, line = data[pos:pos + 1], data[pos + 1:end]
        pos = end + 2
        if kind == b"+":
            return self.table_from({b"ok": line}), pos
        if kind == b"-":
            raise ReplyError(line.decode("utf-8", "surrogateescape"))
        if kind == b":":
            return int(line), pos
        if kind in (b"$", b"="):
            n = int(line)
            if n < 0:
                return (None if resp3 else False), pos
            body = data[pos:pos + n]
            if kind == b"=":
                if resp3:
                    return self.table_from({b"verbatim_string": self.table_from(
                        {b"format": body[:3], b"string": body[4:]})}), pos + n + 2
                body = body[4:]
            return body, pos + n + 2
        if kind == b"_":
            return (None if resp3 else False), pos
        if kind == b",":
            return (self.table_from({b"double": float(line)}) if resp3 else line), pos
        if kind == b"#":
            return ((line == b"t") if resp3 else int(line == b"t")), pos
        if kind == b"(":
            return (self.table_from({b"big_number": line}) if resp3 else line), pos
        n = int(line)
        if kind in (b"*", b">", b"~"):
            if n < 0:
                return (None if resp3 else False), pos
            items = []
            for _ in range(n):
                v, pos = self._parse(data, pos, resp3)
                items.append(v)
            if kind == b"~" and resp3:
                return self.table_from({b"set": self.table_from({_key(x): True for x in items})}), pos
            return self.table_from(items), pos
        if kind == b"%":
            pairs = []
            for _ in range(n):
                k, pos = self._parse(data, pos, resp3)
                v, pos = self._parse(data, pos, resp3)
                pairs.append((k, v))
            if resp3:
                return self.table_from({b"map": self.table_from({_key(k): v for k, v in pairs})}), pos
            return self.table_from([x for kv in pairs for x in kv]), pos
        raise ValueError(f"cannot convert reply type {kind!r}")


def _key(k):
    """Lua tables cannot have nil keys; lupa tables are unhashable keys in
    a Python dict only by identity, which is what a Lua table key is too."""
    return k if k is not None else False
