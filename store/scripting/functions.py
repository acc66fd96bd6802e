"""FUNCTION libraries: durable code, compiled on demand.

A library's code is state, so it is on the log: FUNCTION LOAD, DELETE and
FLUSH emit ``function-load`` {library, code}, ``function-delete``
{library} and ``function-flush`` events. Their appliers keep the code in
``Keyspace.meta`` under the namespace ``function``, which snapshots already
carry (store/snapshotting.py, the ``fjord-meta`` section), so libraries
survive restarts, replay and replicas like data, and FLUSHALL leaves them
alone as in Redis.

The compiled functions live in the engine (``Functions``), rebuilt from the
keyspace whenever a function event was applied since the last look (or on
first use, after a restart or a snapshot load).
"""

from __future__ import annotations

import re

from ..keyspace import Keyspace, applies
from ..resp import ReplyError
from streams.events import Event

NAMESPACE = "function"
#: bumped by every function event applied, in any keyspace of the process
GENERATION = 0

_NAME = re.compile(rb"[A-Za-z0-9_]+\Z")
BAD_NAME = ("ERR Library names can only contain letters, numbers, or underscores(_) and must be at "
            "least one character long")


def _text(v) -> str:
    return v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v


def _bytes(v) -> bytes:
    return v.encode("utf-8", "surrogateescape") if isinstance(v, str) else v


@applies("function-load")
def _apply_load(ks: Keyspace, e: Event) -> None:
    global GENERATION
    ks.meta[(NAMESPACE, _text(e.data["library"]))] = _bytes(e.data["code"])
    GENERATION += 1


@applies("function-delete")
def _apply_delete(ks: Keyspace, e: Event) -> None:
    global GENERATION
    ks.meta.pop((NAMESPACE, _text(e.data["library"])), None)
    GENERATION += 1


@applies("function-flush")
def _apply_flush(ks: Keyspace, e: Event) -> None:
    global GENERATION
    for k in [k for k in ks.meta if k[0] == NAMESPACE]:
        del ks.meta[k]
    GENERATION += 1


def library_codes(ks: Keyspace) -> dict[bytes, bytes]:
    """Library name -> code, as the log says."""
    return {name.encode(): code for (ns, name), code in ks.meta.items() if ns == NAMESPACE}


class Function:
    __slots__ = ("name", "fn", "description", "flags", "library")

    def __init__(self, name: bytes, fn, description: bytes | None, flags: list[bytes], library: bytes):
        self.name = name
        self.fn = fn
        self.description = description
        self.flags = flags
        self.library = library


class Library:
    __slots__ = ("name", "code", "functions")

    def __init__(self, name: bytes, code: bytes):
        self.name = name
        self.code = code
        self.functions: dict[bytes, Function] = {}


def parse_metadata(code: bytes) -> tuple[bytes, bytes]:
    """(library name, body to compile) from ``#!lua name=<lib>``; the
    shebang line is blanked so line numbers stay those of the code."""
    if not code.startswith(b"#!"):
        raise ReplyError("ERR Missing library metadata")
    nl = code.find(b"\n")
    first = code[2:] if nl < 0 else code[2:nl]
    body = b"" if nl < 0 else code[nl:]
    parts = first.split()
    engine = parts[0] if parts else b""
    if engine.lower() != b"lua":
        raise ReplyError(f"ERR Engine '{_text(engine)}' not found")
    name = None
    for part in parts[1:]:
        if part.startswith(b"name="):
            name = part[5:]
        else:
            raise ReplyError(f"ERR Invalid metadata value given: {_text(part)}")
    if name is None:
        raise ReplyError("ERR Library name was not given")
    if not _NAME.match(name):
        raise ReplyError(BAD_NAME)
    return name, body


class Functions:
    """The loaded libraries of one engine, by library and function name."""

    def __init__(self, engine):
        self.engine = engine
        self.libraries: dict[bytes, Library] = {}
        self.by_name: dict[bytes, Function] = {}
        self.generation: int | None = None
        self.keyspace = None
        #: ``keyspace.applied_events`` at the last sync
        self.applied = 0

    # ------------------------------------------------------------ sync with the log

    def sync(self, ks: Keyspace) -> None:
        """Match the libraries to the keyspace's (after replay, snapshots,
        another keyspace)."""
        if self.generation == GENERATION and self.keyspace is ks and ks.applied_events >= self.applied:
            return  # (fewer events applied than at the last look: the keyspace was reset and rebuilt)
        codes = library_codes(ks)
        keep = {n: lib for n, lib in self.libraries.items() if codes.get(n) == lib.code}
        self.libraries = keep
        for name, code in sorted(codes.items()):
            if name not in keep:
                try:
                    self.libraries[name] = self.build(code)[1]
                except ReplyError as exc:  # code on the log that no longer loads: skip it, say so
                    import logging
                    logging.getLogger("fjord.scripting").error("library %r does not load: %s", name, exc.message)
        self.by_name = {f.name: f for lib in self.libraries.values() for f in lib.functions.values()}
        self.generation = GENERATION
        self.keyspace = ks
        self.applied = ks.applied_events

    # ------------------------------------------------------------ loading

    def build(self, code: bytes) -> tuple[bytes, Library]:
        """Compile ``code`` and run it to register its functions (no
        conflict checks against other libraries)."""
        name, body = parse_metadata(code)
        lib = Library(name, code)
        engine = self.engine
        engine.registering = lib
        try:
            ok, stage, message = engine.load_library(body)
        finally:
            engine.registering = None
        if not ok:
            text = _text(message)
            if stage == b"compile":
                raise ReplyError("ERR Error compiling function: " + text)
            raise ReplyError("ERR Error registering functions: " + text)
        if not lib.functions:
            raise ReplyError("ERR No functions registered")
        return name, lib

    def registered(self, lib: Library, name, callback, description, flags):
        """``redis.register_function`` (via the engine): None, or an error."""
        if type(name) is not bytes or not _NAME.match(name):
            return BAD_NAME.encode()
        if name in lib.functions:
            return b"ERR Function already exists in the library"
        lib.functions[name] = Function(name, callback, description, list(flags.values()), lib.name)
        return None

    def check_load(self, code: bytes, replace: bool) -> Library:
        """FUNCTION LOAD's checks, before anything is emitted."""
        name, lib = self.build(code)
        old = self.libraries.get(name)
        if old is not None and not replace:
            raise ReplyError(f"ERR Library '{_text(name)}' already exists")
        for fname in lib.functions:
            other = self.by_name.get(fname)
            if other is not None and other.library != name:
                raise ReplyError(f"ERR Function {_text(fname)} already exists")
        return lib

    def install(self, lib: Library) -> None:
        """Take a library whose ``function-load`` was just emitted."""
        self.libraries[lib.name] = lib
        self.by_name = {f.name: f for x in self.libraries.values() for f in x.functions.values()}
        self.generation = GENERATION
        if self.keyspace is not None:
            self.applied = self.keyspace.applied_events

    def remove(self, name: bytes | None) -> None:
        """After ``function-delete`` (a name) or ``function-flush`` (None)."""
        if name is None:
            self.libraries = {}
        else:
            self.libraries.pop(name, None)
        self.by_name = {f.name: f for x in self.libraries.values() for f in x.functions.values()}
        self.generation = GENERATION
        if self.keyspace is not None:
            self.applied = self.keyspace.applied_events
