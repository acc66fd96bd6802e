"""``cjson``, ``cmsgpack``, ``bit`` and ``struct`` for scripts, as Redis
offers them.

lupa ships bare Lua interpreters without these C modules, so each is a
small bridge to a well-kept Python library (json, msgpack, struct) that
follows Redis's behaviour on the cases the tests pin down. Each function is
handed to Lua as the Python callable itself; a failure raises ``LibError``,
which the prelude reports as ``user_script:<line>: <message>``. Several
results are a returned tuple, which lupa unpacks into Lua values.
"""

from __future__ import annotations

import json
import math
import struct as pystruct

import msgpack


class JsonNull:
    """``cjson.null``: a userdata to Lua, the same object back in Python."""

    __slots__ = ()

    def __str__(self) -> str:
        return "userdata: (nil)"


NULL = JsonNull()


class Libs:
    """The bridged libraries of one interpreter."""

    def __init__(self, lua):
        self.lua = lua
        self.table_from = lua.table_from
        self.lua_type = lua.globals().type
        self.null = NULL

    def lookup(self, name: bytes):
        """The table of functions of library ``name`` (called by the prelude)."""
        fns = getattr(self, "_" + name.decode())()
        return self.table_from({k.encode(): _guard(f) for k, f in fns.items()})

    @staticmethod
    def multi(values: list):
        """Several results: lupa unpacks a returned tuple into Lua values."""
        return tuple(values)

    # ------------------------------------------------------------ Lua <-> Python

    def to_py(self, v, depth: int = 0):
        """A Lua value as plain Python (tables: list when 1..n, else dict)."""
        if depth > 1000:
            raise ValueError("Cannot serialise, excessive nesting (1001)")
        if v is None or type(v) in (bool, int, float, bytes):
            return v
        if v is NULL:
            return None
        if self.lua_type(v) == b"table":
            items = list(v.items())
            n = len(items)
            if n and all(type(k) in (int, float) and k == int(k) and 1 <= k <= n for k, _ in items):
                out = [None] * n
                for k, x in items:
                    out[int(k) - 1] = self.to_py(x, depth + 1)
                return out
            return {k: self.to_py(x, depth + 1) for k, x in items}
        raise TypeError(f"Cannot serialise {self.lua_type(v).decode()}: type not supported")

    def to_lua(self, v):
        if isinstance(v, list):
            return self.table_from([self.to_lua(x) for x in v])
        if isinstance(v, dict):
            return self.table_from({_lua_key(k): self.to_lua(x) for k, x in v.items()})
        if v is None:
            return self.null
        if isinstance(v, str):
            return v.encode("utf-8", "surrogateescape")
        return v

    # ------------------------------------------------------------ cjson

    def _cjson(self):
        def encode(v=None, *_):
            return _json_encode(self.to_py(v)).encode("utf-8", "surrogateescape")

        def decode(s=None, *_):
            if type(s) is not bytes:
                raise ValueError("bad argument #1 to 'decode' (string expected)")
            try:
                doc = json.loads(s.decode("utf-8", "surrogateescape"))
            except ValueError as exc:
                raise ValueError(f"Expected value but found invalid token at character {exc.pos + 1}") from None
            return self.to_lua(doc)

        return {"encode": encode, "decode": decode}

    # ------------------------------------------------------------ cmsgpack

    def _cmsgpack(self):
        def pack(*values):
            if not values:
                raise ValueError("MessagePack pack needs input.")
            return b"".join(msgpack.packb(_msgpack_ready(self.to_py(v)), use_bin_type=False) for v in values)

        def unpack(s=None, *_):
            if type(s) is not bytes:
                raise ValueError("bad argument #1 to 'unpack' (string expected)")
            unpacker = msgpack.Unpacker(raw=True, strict_map_key=False)
            unpacker.feed(s)
            return self.multi([self.to_lua(x) for x in unpacker])

        return {"pack": pack, "unpack": unpack}

    # ------------------------------------------------------------ bit (LuaBitOp)

    def _bit(self):
        def tobit(x=0, *_):
            return _i32(x)

        def band(*xs):
            r = -1
            for x in xs:
                r &= _u32(x)
            return _i32(r)

        def bor(*xs):
            r = 0
            for x in xs:
                r |= _u32(x)
            return _i32(r)

        def bxor(*xs):
            r = 0
            for x in xs:
                r ^= _u32(x)
            return _i32(r)

        def rol(x, n):
            x, n = _u32(x), int(n) & 31
            return _i32((x << n) | (x >> (32 - n)))

        def ror(x, n):
            x, n = _u32(x), int(n) & 31
            return _i32((x >> n) | (x << (32 - n)))

        def tohex(x, n=8):
            n = int(n)
            digits = "0123456789ABCDEF" if n < 0 else "0123456789abcdef"
            n = min(abs(n), 8) or 8
            x = _u32(x)
            return "".join(digits[(x >> (4 * i)) & 15] for i in reversed(range(n))).encode()

        return {
            "tobit": tobit, "band": band, "bor": bor, "bxor": bxor,
            "bnot": lambda x: _i32(~_u32(x)),
            "lshift": lambda x, n: _i32(_u32(x) << (int(n) & 31)),
            "rshift": lambda x, n: _i32(_u32(x) >> (int(n) & 31)),
            "arshift": lambda x, n: _i32(_i32(x) >> (int(n) & 31)),
            "rol": rol, "ror": ror,
            "bswap": lambda x: _i32(int.from_bytes(_u32(x).to_bytes(4, "little"), "big")),
            "tohex": tohex,
        }

    # ------------------------------------------------------------ struct

    def _struct(self):
        def pack(fmt=None, *values):
            if type(fmt) is not bytes:
                raise ValueError("bad argument #1 to 'pack' (string expected)")
            out = bytearray()
            values = list(values)
            for endian, code, size in _struct_items(fmt):
                if code == "x":
                    out += b"\0" * size
                    continue
                if not values:
                    raise ValueError("bad argument to 'pack' (no value)")
                v = values.pop(0)
                if code == "s":
                    out += v + b"\0"
                elif code == "c":
                    v = v if size == 0 else v[:size].ljust(size, b"\0")
                    out += v
                elif code in "fd":
                    out += pystruct.pack(endian + code, float(v))
                else:
                    n = int(v) & ((1 << (8 * size)) - 1)
                    out += n.to_bytes(size, "big" if endian == ">" else "little")
            return bytes(out)

        def unpack(fmt=None, data=None, pos=1, *_):
            if type(fmt) is not bytes or type(data) is not bytes:
                raise ValueError("bad argument to 'unpack' (string expected)")
            i = int(pos) - 1
            out = []
            for endian, code, size in _struct_items(fmt):
                if code == "x":
                    i += size
                    continue
                if code == "s":
                    end = data.index(b"\0", i)
                    out.append(data[i:end])
                    i = end + 1
                    continue
                if i + size > len(data):
                    raise ValueError("data string too short")
                chunk = data[i:i + size]
                i += size
                if code == "c":
                    out.append(chunk)
                elif code in "fd":
                    out.append(pystruct.unpack(endian + code, chunk)[0])
                else:
                    out.append(int.from_bytes(chunk, "big" if endian == ">" else "little",
                                              signed=code.islower()))
            out.append(i + 1)
            return self.multi(out)

        def size(fmt=None, *_):
            total = 0
            for _e, code, n in _struct_items(fmt):
                if code == "s":
                    raise ValueError("options 'c0' - 's' have undefined sizes")
                total += n
            return total

        return {"pack": pack, "unpack": unpack, "size": size}


_STRUCT_SIZES = {"b": 1, "B": 1, "h": 2, "H": 2, "i": 4, "I": 4, "l": 8, "L": 8, "T": 8, "f": 4, "d": 8,
                 "x": 1, "c": 1, "s": 0}


def _struct_items(fmt: bytes):
    """(endianness, code, size) of each item of a Lua ``struct`` format."""
    endian = "<"
    text = fmt.decode("latin-1")
    i = 0
    while i < len(text):
        ch = text[i]
        i += 1
        if ch in " !":
            while i < len(text) and text[i].isdigit():
                i += 1
            continue
        if ch in "<>=":
            endian = ">" if ch == ">" else "<"
            continue
        if ch not in _STRUCT_SIZES:
            raise ValueError(f"invalid format option '{ch}'")
        j = i
        while j < len(text) and text[j].isdigit():
            j += 1
        size = _STRUCT_SIZES[ch]
        if j > i and ch in "iIc":
            size = int(text[i:j])
        i = j
        yield endian, ch, size


class LibError(Exception):
    """A library function failed; Lua sees the message with the script's
    position in front, as a C library's ``luaL_error`` gives it."""


def _guard(fn):
    def call(*args):
        try:
            return fn(*args)
        except LibError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is the script's error
            raise LibError(str(exc).encode("utf-8", "surrogateescape")) from None
    return call


def _u32(x) -> int:
    return int(math.fmod(x, 2**32)) & 0xFFFFFFFF if isinstance(x, float) else int(x) & 0xFFFFFFFF


def _i32(x: int) -> int:
    x &= 0xFFFFFFFF
    return x - 2**32 if x >= 2**31 else x


def _lua_key(k):
    if isinstance(k, str):
        return k.encode("utf-8", "surrogateescape")
    return k


def _json_encode(v) -> str:
    """cjson's output: compact, integers without a fraction, ``{}`` for an
    empty table, ``/`` escaped as ``\\/``."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v == int(v) and abs(v) < 1e14:
            return str(int(v))
        return "%.14g" % v
    if isinstance(v, bytes):
        return json.dumps(v.decode("utf-8", "surrogateescape"), ensure_ascii=False).replace("/", "\\/")
    if isinstance(v, list):
        return "[" + ",".join(_json_encode(x) for x in v) + "]"
    if isinstance(v, dict):
        parts = []
        for k, x in v.items():
            if isinstance(k, float) and k == int(k):
                k = int(k)
            key = k.decode("utf-8", "surrogateescape") if isinstance(k, bytes) else str(k)
            parts.append(json.dumps(key, ensure_ascii=False) + ":" + _json_encode(x))
        return "{" + ",".join(parts) + "}"
    raise TypeError("Cannot serialise: type not supported")


def _msgpack_ready(v):
    if isinstance(v, float) and v == int(v) and abs(v) < 2**63:
        return int(v)
    if isinstance(v, list):
        return [_msgpack_ready(x) for x in v]
    if isinstance(v, dict):
        return {_msgpack_ready(k): _msgpack_ready(x) for k, x in v.items()}
    return v
