"""The view API: what a view consumes, how it folds, how it is read.

A view is a fold over the change stream. Its input is ``Change``: one event
of one log record, with JSON-ready images of the key before (``old``) and
after (``new``) the event when the host keeps a shadow keyspace (see
triggers/viewhost.py; the Kafka runner gets them the same way). The view
owns no state itself: ``initial()`` makes a state object, ``apply(state,
change)`` changes it in place, and readers (``get``/``range``/``groups``)
look at it. That split is what lets the runner checkpoint the state together
with the log position it reflects (streams/views/state.py) and throw it away
to rebuild from the start when the definition changes (``fingerprint``).

States must be picklable (plain dicts, lists, numbers, bytes): checkpoints
pickle them.
"""

from __future__ import annotations

import fnmatch
import hashlib
import inspect
import re
from typing import Any, Iterable, NamedTuple

from ..events import Event

#: Keys under this prefix are written by views (write-back); views never
#: consume them, so a view's own output cannot feed it again.
RESERVED_PREFIX = b"__view:"


class Change(NamedTuple):
    """One event of one record, with the key's images around it.

    Field names match triggers/changefeed.py's ``Change`` so either can feed
    a view. ``old``/``new`` are ``{"type": ..., "value": ...}`` or None
    (no key, or a host without images). ``origin`` is the writer's tag
    (``view:<name>`` for a view's write-back).
    """

    offset: int
    index: int
    time_ms: int
    origin: str | None
    event: Event
    old: dict | None
    new: dict | None


def _as_bytes(v: str | bytes) -> bytes:
    return v.encode("utf-8") if isinstance(v, str) else bytes(v)


class View:
    """Base class of every view. Subclass it for a custom view.

    Class or constructor attributes:

    - ``name``: unique; names the checkpoint file and the RESP/HTTP handle.
    - ``match``: key glob patterns (fnmatch rules on bytes); default all.
    - ``db``: the database number consumed (None: every db).
    - ``events``: event types consumed (None: all of them).
    - ``version``: bump it to force a rebuild of a custom view (the source
      of ``apply`` is part of the fingerprint too, so most edits rebuild
      by themselves).
    - ``writeback``: also keep each group as a Redis key
      ``__view:<name>:<group>`` (see ``writeback_value``).
    """

    name: str = ""
    match: tuple[bytes, ...] = (b"*",)
    db: int | None = 0
    events: frozenset[str] | None = None
    version: int | str = 1
    writeback: bool = False
    #: what ``change.old``/``change.new`` hold: True (or "json"): JSON-ready
    #: images, both; "raw": ``new`` only, ``{"type", "value"}`` with the
    #: shadow keyspace's own value object (bytes, a dict for a hash...),
    #: valid only during ``apply`` and as of the end of the record (the
    #: built-in kinds use it: no conversion per event); False: none
    images: bool | str = True

    def __init__(self, name: str | None = None, *, match: Iterable[str | bytes] | str | bytes | None = None,
                 db: int | None | str = "unset", events: Iterable[str] | None = None,
                 version: int | str | None = None, writeback: bool | None = None):
        if name is not None:
            self.name = name
        if not self.name:
            raise ValueError("a view needs a name")
        if match is not None:
            if isinstance(match, (str, bytes)):
                match = [match]
            self.match = tuple(_as_bytes(m) for m in match)
        if db != "unset":
            self.db = db
        if events is not None:
            self.events = frozenset(events)
        if version is not None:
            self.version = version
        if writeback is not None:
            self.writeback = writeback

    # ------------------------------------------------------------ filter

    def wants(self, change: Change) -> bool:
        """Whether ``change`` concerns this view (db, key, type, origin)."""
        test = self.__dict__.get("_wants")
        if test is None:
            test = self.__dict__["_wants"] = self._make_filter()
        return test(change)

    def _make_filter(self):
        """One closure with everything precomputed: it runs for every event."""
        db, events, own = self.db, self.events, f"view:{self.name}"
        tests = [_compile(p) for p in self.match]
        single = tests[0] if len(tests) == 1 else None
        prefix = RESERVED_PREFIX

        def wants(change: Change) -> bool:
            ev = change[4]
            key = ev.key
            if key is None:
                return ev.type in ("flushdb", "flushall") and (events is None or ev.type in events)
            if db is not None and ev.db != db:
                return False
            if events is not None and ev.type not in events:
                return False
            if key.startswith(prefix) or change[3] == own:
                return False
            if single is not None:
                return single(key)
            for test in tests:
                if test(key):
                    return True
            return False

        return wants

    def matches(self, key: bytes) -> bool:
        return any(_compile(p)(key) for p in self.match)

    # ------------------------------------------------------------ fold

    def initial(self) -> Any:
        """A fresh, empty state."""
        return {}

    def apply(self, state: Any, change: Change) -> None:
        """Fold one change into ``state`` (in place)."""
        raise NotImplementedError

    # ------------------------------------------------------------ read

    def get(self, state: Any, group: bytes) -> Any:
        """The view's value for ``group`` (None when it has none)."""
        return state.get(group) if isinstance(state, dict) else None

    def groups(self, state: Any) -> list[bytes]:
        """Every group the view holds, sorted."""
        return sorted(state) if isinstance(state, dict) else []

    def range(self, state: Any, start: int, stop: int) -> list:
        """Entries ``start..stop`` (inclusive, negative from the end, as
        ZRANGE) of the view's natural order: ``[group, value]`` pairs by
        group unless a kind orders otherwise (leaderboards by score)."""
        groups = self.groups(state)
        return [[g, self.get(state, g)] for g in _slice(groups, start, stop)]

    def writeback_value(self, state: Any, group: bytes) -> tuple[str, Any] | None:
        """The Redis value to keep at ``__view:<name>:<group>``: ("string",
        bytes) / ("set", [members]) / ("zset", [[member, score]]) /
        ("list", [items]), or None to delete the key."""
        v = self.get(state, group)
        if v is None:
            return None
        if isinstance(v, (int, float)):
            return ("string", _num(v))
        return ("string", str(v).encode())

    # ------------------------------------------------------------ identity

    def definition(self) -> dict:
        """What the view computes, as JSON-ready data: part of the fingerprint."""
        cls = type(self)
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            source = cls.__qualname__
        return {"class": f"{cls.__module__}.{cls.__qualname__}", "source": source}

    def fingerprint(self) -> str:
        """A hash of everything that decides the view's contents; a
        checkpoint with another fingerprint is thrown away and rebuilt."""
        doc = {
            "definition": self.definition(), "match": [m.decode("latin-1") for m in self.match],
            "db": self.db, "events": sorted(self.events) if self.events is not None else None,
            "version": self.version,
        }
        return hashlib.sha256(repr(sorted(doc.items())).encode()).hexdigest()[:16]

    def describe(self) -> dict:
        """JSON-ready summary for FJORD.VIEW LIST/INFO and HTTP."""
        return {
            "name": self.name, "kind": self.kind(), "match": [m.decode("utf-8", "replace") for m in self.match],
            "db": self.db, "version": self.version, "writeback": self.writeback,
        }

    def kind(self) -> str:
        return type(self).__name__.lower()


def _compile(pattern: bytes):
    """A fast test for one glob: ``*`` and ``prefix*`` without a regex."""
    if pattern == b"*":
        return lambda key: True
    body = pattern[:-1]
    if pattern.endswith(b"*") and not any(c in body for c in b"*?[\\"):
        return lambda key: key.startswith(body)
    if not any(c in pattern for c in b"*?[\\"):
        return lambda key: key == pattern
    regex = re.compile(fnmatch.translate(pattern.decode("latin-1")).encode("latin-1"), re.DOTALL)
    return lambda key: regex.match(key) is not None


def _num(v: int | float) -> bytes:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e17:
        return b"%d" % int(v)
    return repr(v).encode() if isinstance(v, float) else b"%d" % v


def _slice(items: list, start: int, stop: int) -> list:
    """ZRANGE-style inclusive slice with negative indexes."""
    n = len(items)
    if start < 0:
        start = max(n + start, 0)
    if stop < 0:
        stop = n + stop
    if start > stop or start >= n:
        return []
    return items[start:stop + 1]


def as_view_list(obj: Any) -> list[View]:
    """Views found in a loaded module: a ``VIEWS`` list if it has one, else
    every ``View`` instance at its top level."""
    found = getattr(obj, "VIEWS", None)
    if found is None:
        found = [v for v in vars(obj).values() if isinstance(v, View)]
    views = list(found)
    names = [v.name for v in views]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"two views are named {sorted(dup)[0]!r}")
    return views
