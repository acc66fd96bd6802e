"""``Subscription``: what one trigger delivers, where, and how.

A subscription is plain data. It is created from the option words of
``FJORD.TRIGGER CREATE`` (``from_words``) or from the HTTP API's JSON
(``from_json``), stored in the log as JSON (``to_json``, secret included:
the log is the server's own), and shown to users by ``public()`` (secret
masked). ``matches(db, key, type)`` is the filter the dispatcher applies.

Option words (after ``name WEBHOOK url`` or ``name FUNCTION module:func``)::

    MATCH pattern [pattern ...]   key glob patterns (default: every key)
    DB n                          only this database (default: all)
    EVENTS type[,type...]         event types (set, hset, expired...) and/or
                                  notification classes ($ l h s z t x e g, A = all)
    VIEW KEYS_ONLY|NEW_IMAGE|OLD_IMAGE|NEW_AND_OLD_IMAGES
    START LATEST|TRIM_HORIZON|offset|TIME unix-ms
    BATCH n   WINDOW ms   RETRIES n   BACKOFF ms[,ms...]   MAXAGE seconds
    BISECT | NOBISECT   TIMEOUT ms   CONCURRENCY n   SECRET whsec_...
    ALLOW-PRIVATE   PAUSED   DLQ FILE|NONE
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields

from store import notify
from store.glob import glob_match

VIEWS = ("KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES")
SINKS = ("webhook", "function")
NAME = re.compile(r"^[A-Za-z0-9_.:@-]{1,100}$")
DEFAULT_BACKOFF_MS = (1000, 2000, 4000, 8000, 16000, 32000, 60000)
#: event classes a subscription may name (Redis's notification flags)
CLASS_CHARS = "g$lshzxetA"
_WORDS = {"MATCH", "DB", "EVENTS", "VIEW", "START", "BATCH", "WINDOW", "RETRIES", "BACKOFF", "MAXAGE",
          "BISECT", "NOBISECT", "TIMEOUT", "CONCURRENCY", "SECRET", "ALLOW-PRIVATE", "PAUSED", "DLQ"}


class TriggerError(ValueError):
    """A bad subscription; the message is a complete RESP error (``ERR ...``)."""


def _err(msg: str) -> TriggerError:
    return TriggerError(f"ERR {msg}")


def _as_trigger_error(exc: ValueError) -> TriggerError:
    if isinstance(exc, TriggerError):
        return exc
    msg = str(exc)
    return TriggerError(msg if msg.startswith("ERR ") else f"ERR {msg}")


def _int(word: bytes | str, what: str, lo: int = 0, hi: int = 2**63 - 1) -> int:
    text = word.decode("utf-8", "replace") if isinstance(word, bytes) else str(word)
    if not re.fullmatch(r"-?[0-9]+", text):
        raise _err(f"{what} must be an integer")
    n = int(text)
    if not lo <= n <= hi:
        raise _err(f"{what} must be between {lo} and {hi}")
    return n


def _event_classes(event_type: str) -> int:
    """Notification class bits of an event type (as store/notify.py maps them)."""
    if event_type == "set":
        return notify.STRING
    found = notify.EVENTS.get(event_type)
    if found is None:
        return notify.GENERIC
    bits = 0
    for cls, _ in found:
        bits |= cls
    return bits


@dataclass
class Subscription:
    """One trigger; see the module doc for the options."""

    name: str
    sink: str
    target: str
    match: list[str] = field(default_factory=list)
    db: int | None = None
    events: list[str] = field(default_factory=list)
    view: str = "KEYS_ONLY"
    start: str = "LATEST"          # LATEST | TRIM_HORIZON | "<offset>" | "time:<ms>"
    batch_size: int = 100
    window_ms: int = 0
    max_attempts: int = 6
    backoff_ms: list[int] = field(default_factory=lambda: list(DEFAULT_BACKOFF_MS))
    max_age_s: int = 86400
    bisect: bool = True
    dlq: str = "file"              # file | none (none: an exhausted event stops the key... see dispatcher)
    secret: str | None = None
    allow_private: bool = False
    timeout_ms: int = 10000
    concurrency: int = 4
    paused: bool = False
    created: int = 0               # log end offset when created: where LATEST starts

    # ------------------------------------------------------------ building

    @classmethod
    def from_words(cls, words: list[bytes], resolve: bool = True) -> "Subscription":
        """``name WEBHOOK url | FUNCTION module:func [options...]``.
        ``resolve=False``: see ``validate``."""
        w = [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in words]
        if len(w) < 3:
            raise _err("syntax: FJORD.TRIGGER CREATE name WEBHOOK url | FUNCTION module:function [options]")
        sink = w[1].lower()
        if sink not in SINKS:
            raise _err(f"unknown sink '{w[1]}' (WEBHOOK or FUNCTION)")
        sub = cls(name=w[0], sink=sink, target=w[2])
        i = 3

        def arg() -> str:
            nonlocal i
            if i >= len(w):
                raise _err(f"option {w[i - 1]} needs a value")
            i += 1
            return w[i - 1]

        while i < len(w):
            opt = w[i].upper()
            i += 1
            if opt == "MATCH":
                start = i
                while i < len(w) and w[i].upper() not in _WORDS:
                    sub.match.append(w[i])
                    i += 1
                if i == start:
                    raise _err("MATCH needs at least one pattern")
            elif opt == "DB":
                sub.db = _int(arg(), "DB", 0, 1 << 20)
            elif opt == "EVENTS":
                sub.events.extend(x for x in arg().split(",") if x)
            elif opt == "VIEW":
                sub.view = arg().upper()
            elif opt == "START":
                v = arg()
                if v.upper() == "TIME":
                    sub.start = f"time:{_int(arg(), 'START TIME')}"
                else:
                    sub.start = v.upper() if v.upper() in ("LATEST", "TRIM_HORIZON") else str(_int(v, "START"))
            elif opt == "BATCH":
                sub.batch_size = _int(arg(), "BATCH", 1, 10000)
            elif opt == "WINDOW":
                sub.window_ms = _int(arg(), "WINDOW", 0, 300000)
            elif opt == "RETRIES":
                sub.max_attempts = _int(arg(), "RETRIES", 0, 1000000) + 1
            elif opt == "BACKOFF":
                sub.backoff_ms = [_int(x, "BACKOFF", 0, 86400000) for x in arg().split(",") if x]
            elif opt == "MAXAGE":
                sub.max_age_s = _int(arg(), "MAXAGE", 1, 10 * 365 * 86400)
            elif opt == "BISECT":
                sub.bisect = True
            elif opt == "NOBISECT":
                sub.bisect = False
            elif opt == "TIMEOUT":
                sub.timeout_ms = _int(arg(), "TIMEOUT", 1, 3600000)
            elif opt == "CONCURRENCY":
                sub.concurrency = _int(arg(), "CONCURRENCY", 1, 1000)
            elif opt == "SECRET":
                sub.secret = arg()
            elif opt == "ALLOW-PRIVATE":
                sub.allow_private = True
            elif opt == "PAUSED":
                sub.paused = True
            elif opt == "DLQ":
                sub.dlq = arg().lower()
            else:
                raise _err(f"unknown trigger option '{w[i - 1]}'")
        sub.validate(resolve)
        return sub

    @classmethod
    def from_json(cls, doc: dict, resolve: bool = True) -> "Subscription":
        """From the HTTP API's JSON (or the stored form); ``resolve``: see ``validate``."""
        if not isinstance(doc, dict):
            raise _err("a trigger must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise _err(f"unknown trigger field(s): {', '.join(unknown)}")
        for req in ("name", "sink", "target"):
            if not isinstance(doc.get(req), str):
                raise _err(f"trigger field '{req}' is required (a string)")
        try:
            sub = cls(**doc)
        except TypeError as exc:
            raise _err(f"bad trigger: {exc}") from None
        sub.sink = sub.sink.lower()
        sub.view = str(sub.view).upper()
        if isinstance(sub.start, int) and not isinstance(sub.start, bool):
            sub.start = str(sub.start)
        sub.validate(resolve)
        return sub

    def validate(self, resolve: bool = True) -> None:
        """Check every field; raises TriggerError. A webhook's DNS host name
        is resolved here (blocking) unless ``resolve`` is False: the server
        passes False on its event loop and then awaits ``check_target``."""
        if not NAME.match(self.name or ""):
            raise _err("trigger names are 1 to 100 letters, digits or _.:@-")
        if self.sink not in SINKS:
            raise _err(f"unknown sink '{self.sink}' (webhook or function)")
        if not self.target:
            raise _err("a trigger needs a target (webhook URL or module:function)")
        if self.view not in VIEWS:
            raise _err(f"VIEW must be one of {', '.join(VIEWS)}")
        for ev in self.events:
            if len(ev) == 1 and ev not in CLASS_CHARS and not ev.isalpha():
                raise _err(f"unknown event class '{ev}' (use {CLASS_CHARS})")
            if not re.fullmatch(r"[a-z_$-]+|[A-Za-z$]", ev):
                raise _err(f"bad event type '{ev}'")
        start = self.start
        if not (start in ("LATEST", "TRIM_HORIZON") or re.fullmatch(r"[0-9]+|time:[0-9]+", str(start))):
            raise _err("START must be LATEST, TRIM_HORIZON, an offset or TIME unix-ms")
        if self.dlq not in ("file", "none"):
            raise _err("DLQ must be FILE or NONE")
        if self.secret is not None and not self.secret.startswith("whsec_"):
            raise _err("SECRET must be a Standard Webhooks secret (whsec_...)")
        for name in ("batch_size", "max_attempts", "timeout_ms", "concurrency", "max_age_s"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise _err(f"{name} must be a positive integer")
        if not isinstance(self.window_ms, int) or self.window_ms < 0:
            raise _err("window_ms must be a non-negative integer")
        if not self.backoff_ms or any(not isinstance(x, int) or x < 0 for x in self.backoff_ms):
            raise _err("BACKOFF must be a list of non-negative milliseconds")
        try:
            from . import sinks
        except ImportError:
            return
        check = getattr(sinks, "validate_target", None)
        if check is not None:
            try:
                check(self, resolve)
            except TriggerError:
                raise
            except ValueError as exc:
                raise _as_trigger_error(exc) from None

    def needs_resolution(self) -> bool:
        """Whether ``check_target`` has a DNS lookup to do (a webhook whose
        host is a name, without ALLOW-PRIVATE)."""
        from .sinks import validate_target

        return validate_target(self, resolve=False) is not None

    async def check_target(self) -> None:
        """The DNS part of ``validate``, resolved in a worker thread so the
        event loop keeps serving; raises TriggerError."""
        from .sinks import check_target_async

        try:
            await check_target_async(self)
        except ValueError as exc:
            raise _as_trigger_error(exc) from None

    # ------------------------------------------------------------ forms

    def to_json(self) -> dict:
        """The stored form (secret included)."""
        return asdict(self)

    def public(self) -> dict:
        """What users see: the secret masked."""
        doc = asdict(self)
        if doc.get("secret"):
            doc["secret"] = "********"
        return doc

    @property
    def needs_images(self) -> bool:
        return self.view != "KEYS_ONLY"

    # ------------------------------------------------------------ filter

    def _compiled(self):
        cache = self.__dict__.get("_filter")
        if cache is None:
            patterns = [p.encode() for p in self.match]
            types = {e for e in self.events if not (len(e) == 1 and e in CLASS_CHARS)}
            bits = 0
            for e in self.events:
                if len(e) == 1 and e in CLASS_CHARS:
                    bits |= notify.ALL if e == "A" else notify._CLASSES[e]
            cache = (patterns, types, bits)
            self.__dict__["_filter"] = cache
        return cache

    def matches(self, event) -> bool:
        """Whether ``event`` (a streams.events.Event) is delivered. Keyless
        events (flushdb, flushall, swapdb) pass when no MATCH is given;
        store metadata events (``fjord-meta-*``) never do."""
        etype = event.type
        if etype.startswith("fjord-"):
            return False
        if self.db is not None and event.db != self.db:
            return False
        patterns, types, bits = self._compiled()
        if patterns:
            key = event.key
            if key is None or not any(glob_match(p, key) for p in patterns):
                return False
        if types or bits:
            if etype in types:
                return True
            return bool(bits and _event_classes(etype) & bits)
        return True
