"""Settings: one table feeds the CLI, the config file, the environment and
``CONFIG GET``/``CONFIG SET``.

Precedence, lowest first: defaults, config file (redis.conf style: one
``name value`` per line, ``#`` comments), environment (``FJORD_<NAME>`` with
dashes as underscores, e.g. ``FJORD_DATA_DIR``), command-line flags.

Names follow Redis where Redis has the setting (``port``, ``bind``,
``requirepass``, ``maxclients``, ``proto-max-bulk-len``, ``hz``, ``timeout``,
``databases``, ``dir``, ``appendfsync``...). Fjord's own names are used where
Redis has none (``durability``, ``log-segment-bytes``).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

from .notify import EventFlags, parse_flags


#: Redis's loglevel names mapped onto Python logging levels.
LOG_LEVELS = {"debug": logging.DEBUG, "verbose": logging.INFO, "notice": logging.INFO,
              "warning": logging.WARNING}


class ConfigError(ValueError):
    """A setting with a value it cannot take. The message is Redis's reason
    (``argument couldn't be parsed into an integer``); ``CONFIG SET`` wraps it
    in Redis's ``CONFIG SET failed (possibly related to argument ...)``."""


class UnknownSetting(KeyError):
    """``CONFIG SET`` of a name no setting answers to."""


INT64_MAX = 2**63 - 1
_INT = re.compile(r"-?(0|[1-9][0-9]*)\Z")
_MEMORY = re.compile(r"([0-9]+)(b|k|kb|m|mb|g|gb)?\Z", re.IGNORECASE)
_UNITS = {None: 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}


def _parse_bool(v: str) -> bool:
    lv = v.lower()
    if lv in ("yes", "true", "1", "on"):
        return True
    if lv in ("no", "false", "0", "off"):
        return False
    raise ConfigError("argument must be 'yes' or 'no'")


def _parse_memory(v: str) -> int:
    """Redis memory units: 1k = 1000, 1kb = 1024, and so on; no sign."""
    m = _MEMORY.match(v)
    if m is None:
        raise ConfigError("argument must be a memory value")
    return int(m.group(1)) * _UNITS[m.group(2) and m.group(2).lower()]


def _parse_int(v: str) -> int:
    """Integers as Redis's ``string2ll`` spells them: no '+', no spaces, no
    leading zeros."""
    if _INT.match(v) is None or v == "-0":
        raise ConfigError("argument couldn't be parsed into an integer")
    return int(v)


def _parse_hz(v: str) -> int:
    """Redis accepts any non-negative hz and clamps it to 1..500."""
    hz = _parse_int(v)
    if hz < 0 or hz > 2**31 - 1:
        raise ConfigError("argument must be between 0 and 2147483647 inclusive")
    return min(max(hz, 1), 500)


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(v: str) -> str:
        lv = v.lower()
        if lv not in choices:
            raise ConfigError("argument(s) must be one of the following: " + ", ".join(choices))
        return lv
    return parse


_durability = _one_of("sync", "async")


def _parse_notify_flags(v: str) -> EventFlags:
    """``notify-keyspace-events``: Redis's class letters, kept as bits and
    shown as Redis normalises them (``KEA`` reads back as ``AKE``)."""
    try:
        return EventFlags(parse_flags(v))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class Setting:
    """One configuration setting."""

    name: str
    default: Any
    parse: Callable[[str], Any]
    help: str
    mutable: bool = False
    minimum: int | None = None
    maximum: int | None = None
    flag: str | None = None  # command-line flag, if any

    def convert(self, raw: str) -> Any:
        value = self.parse(raw)
        if isinstance(value, int) and not isinstance(value, bool):
            lo = -INT64_MAX - 1 if self.minimum is None else self.minimum
            hi = INT64_MAX if self.maximum is None else self.maximum
            if not lo <= value <= hi:
                raise ConfigError(f"argument must be between {lo} and {hi} inclusive")
        return value

    def render(self, value: Any) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value)


INT_MAX = 2**31 - 1
UINT_MAX = 2**32 - 1

SETTINGS: list[Setting] = [
    Setting("bind", "127.0.0.1", str, "address to listen on", flag="--bind"),
    Setting("port", 6379, _parse_int, "TCP port to listen on", minimum=0, maximum=65535, flag="--port"),
    Setting("dir", "./data", str, "data directory holding the log and snapshots (the `dir` setting)", flag="--data-dir"),
    Setting("requirepass", "", str, "password clients must AUTH with (empty: none)", mutable=True,
            flag="--requirepass"),
    Setting("durability", "sync", _durability,
            "sync: reply only after the log is fsynced (like appendfsync always); "
            "async: reply at once, fsync every second (like appendfsync everysec)",
            mutable=True, flag="--durability"),
    Setting("maxclients", 10000, _parse_int, "maximum simultaneous clients", mutable=True, minimum=1,
            maximum=UINT_MAX, flag="--maxclients"),
    Setting("proto-max-bulk-len", 512 * 1024 * 1024, _parse_memory, "largest bulk string a client may send",
            mutable=True, minimum=1024 * 1024),
    Setting("client-query-buffer-limit", 1024 * 1024 * 1024, _parse_memory,
            "a client whose unparsed input exceeds this is disconnected", mutable=True, minimum=1024 * 1024),
    Setting("databases", 16, _parse_int, "number of databases", minimum=1, maximum=1 << 20,
            flag="--databases"),
    Setting("hz", 10, _parse_hz, "background task frequency (active expiry) per second, clamped to 1..500",
            mutable=True),
    Setting("timeout", 0, _parse_int, "close idle clients after this many seconds (0: never)", mutable=True,
            minimum=0, maximum=INT_MAX),
    Setting("notify-keyspace-events", EventFlags(0), _parse_notify_flags,
            "keyspace notifications to publish, as Redis's flags (K, E, g, $, l, s, h, z, x, e, t, m, d, n, A)",
            mutable=True),
    Setting("log-segment-bytes", 64 * 1024 * 1024, _parse_memory, "roll to a new log segment at this size",
            minimum=4096, flag="--log-segment-bytes"),
    Setting("snapshot-every-events", 100000, _parse_int,
            "run the snapshotter after this many log records since the newest snapshot (0: never)",
            mutable=True, minimum=0, flag="--snapshot-every-events"),
    Setting("snapshot-keep", 2, _parse_int, "snapshots to keep (the snapshotter deletes older ones)",
            mutable=True, minimum=1, maximum=1000, flag="--snapshot-keep"),
    Setting("snapshot-cpu-percent", 100, _parse_int,
            "CPU budget of the snapshotter (which runs SCHED_IDLE), percent of one core: below 100 it sleeps "
            "between slices of work, so a snapshot takes up to 100/N times longer (100: unpaced)",
            mutable=True, minimum=1, maximum=100, flag="--snapshot-cpu-percent"),
    Setting("log-retention-hours", 24, _parse_int,
            "delete log segments covered by the snapshots once older than this (0: as soon as covered)",
            mutable=True, minimum=0, flag="--log-retention-hours"),
    Setting("log-retention-bytes", 0, _parse_memory,
            "cap on the log's size: past it, covered segments are deleted even if a registered consumer "
            "still needs them (0: no cap)", mutable=True, minimum=0, flag="--log-retention-bytes"),
    Setting("loglevel", "notice", _one_of("debug", "verbose", "notice", "warning"),
            "debug, verbose, notice or warning", mutable=True, flag="--loglevel"),
    Setting("admin-port", 0, _parse_int,
            "port of the HTTP admin API (/triggers, /metrics, /healthz); 0: off",
            minimum=0, maximum=65535, flag="--admin-port"),
    Setting("admin-bind", "127.0.0.1", str, "address the HTTP admin API listens on", flag="--admin-bind"),
    Setting("triggers", "yes", _one_of("yes", "no"),
            "yes: run the trigger dispatcher inside the server; no: run it as 'fjord triggers run'",
            flag="--triggers"),
    Setting("replica", False, _parse_bool,
            "run as a read replica: apply the writer's log, serve reads, refuse writes (-READONLY)",
            flag="--replica"),
    Setting("replica-of-dir", "", str,
            "data directory of the writer whose log a --replica on the same machine tails",
            flag="--replica-of-dir"),
    Setting("advertise-addr", "", str,
            "host:port clients and replicas reach this node at; a writer with one claims an epoch "
            "on the log (needed for replicas, failover and SENTINEL)", flag="--advertise-addr"),
    Setting("failover-timeout-ms", 5000, _parse_int,
            "a replica that cannot reach the writer this long takes over the log (0: never)",
            mutable=True, minimum=0, flag="--failover-timeout-ms"),
    Setting("sentinel-master-name", "fjord", str,
            "the master name SENTINEL commands answer for", mutable=True, flag="--sentinel-master-name"),
    Setting("views", "", str,
            "materialized views to run: an importable module or a path to a .py file (empty: none)",
            flag="--views"),
    Setting("busy-reply-threshold", 5000, _parse_int,
            "ms a script may run before other clients get -BUSY and SCRIPT KILL may stop it "
            "(alias lua-time-limit; 0: no limit)", mutable=True, minimum=0, flag="--busy-reply-threshold"),
    Setting("repair", False, _parse_bool,
            "on start, truncate the log at the first corrupt record instead of refusing to start",
            flag="--repair"),
    Setting("kafka-bootstrap", "", str,
            "HOST:PORT[,...] of a Kafka-compatible broker: keep the log on a Kafka topic instead of "
            "the data directory (empty: the embedded file log)", flag="--kafka-bootstrap"),
    Setting("kafka-topic", "", str,
            "the Kafka topic of the log (empty: fjord.default.log); created if missing", flag="--kafka-topic"),
    Setting("kafka-produce-timeout-ms", 5000, _parse_int,
            "a write the broker has not acknowledged within this many ms fails with an error",
            minimum=100, maximum=INT_MAX, flag="--kafka-produce-timeout-ms"),
    Setting("kafka-idempotence", False, _parse_bool,
            "use Kafka's idempotent producer (real Kafka/Redpanda; Tansu has none)", flag="--kafka-idempotence"),
    Setting("kafka-retention-ms", -1, _parse_int,
            "retention.ms of a topic Fjord creates (-1: keep for ever)", minimum=-1,
            flag="--kafka-retention-ms"),
]

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}

#: Redis's ``appendfsync`` answered from (and written to) ``durability``.
APPENDFSYNC = {"sync": "always", "async": "everysec"}
_DURABILITY = {v: k for k, v in APPENDFSYNC.items()}

#: Redis settings whose only value in Fjord is fixed. CONFIG GET answers them
#: (redis-benchmark and other tools ask for ``save`` and ``appendonly``) and
#: CONFIG SET accepts the value Fjord already has, nothing else.
FIXED = {
    "appendonly": ("yes", "Fjord always logs every write"),
    "save": ("", "Fjord takes no RDB snapshots: the log is the persistence"),
    "maxmemory": ("0", "Fjord does not evict keys"),
    "maxmemory-policy": ("noeviction", "Fjord does not evict keys"),
}

#: Settings CONFIG REWRITE never writes: one-shot start options.
_NOT_REWRITTEN = {"repair"}


class Config:
    """Current values of every setting, and the file they came from."""

    def __init__(self, values: dict[str, Any] | None = None):
        self.values = {s.name: s.default for s in SETTINGS}
        #: absolute path of the config file read at start (CONFIG REWRITE, INFO)
        self.file: str | None = None
        if values:
            for k, v in values.items():
                self.set(k, v)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def set(self, name: str, value: Any) -> None:
        setting = BY_NAME[name]
        self.values[name] = setting.convert(value) if isinstance(value, str) else value

    def load_file(self, path: str) -> None:
        with open(path) as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                words = shlex.split(line)
                name, rest = words[0].lower(), " ".join(words[1:])
                name = {"data-dir": "dir", "lua-time-limit": "busy-reply-threshold"}.get(name, name)
                if name == "appendfsync" and rest.lower() in _DURABILITY:
                    name, rest = "durability", _DURABILITY[rest.lower()]
                if name not in BY_NAME:
                    raise ConfigError(f"{path}:{lineno}: unknown setting {words[0]!r}")
                try:
                    self.set(name, rest)
                except ConfigError as exc:
                    raise ConfigError(f"{path}:{lineno}: {name}: {exc}") from None
        self.file = os.path.abspath(path)

    def load_env(self, environ: dict[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        for s in SETTINGS:
            envname = "FJORD_" + s.name.upper().replace("-", "_")
            if s.name == "dir" and "FJORD_DATA_DIR" in environ:
                envname = "FJORD_DATA_DIR"
            if envname in environ:
                try:
                    self.set(s.name, environ[envname])
                except ConfigError as exc:
                    raise ConfigError(f"{envname}: {exc}") from None

    # CONFIG GET / SET / REWRITE view -------------------------------------------

    def redis_items(self) -> list[tuple[str, str]]:
        """Every (name, value) CONFIG GET can answer, Redis names included."""
        items = [(s.name, s.render(self.values[s.name])) for s in SETTINGS]
        items[[n for n, _ in items].index("dir")] = ("dir", os.path.abspath(self.values["dir"]))
        items.append(("appendfsync", APPENDFSYNC[self.values["durability"]]))
        items.append(("lua-time-limit", str(self.values["busy-reply-threshold"])))
        items.extend((name, value) for name, (value, _) in FIXED.items())
        return items

    def redis_set(self, pairs: list[tuple[str, str]]) -> dict[str, Any]:
        """Apply CONFIG SET's (name, value) pairs all or nothing, with Redis's
        checks in Redis's order: every name first (unknown, immutable,
        duplicate), then every value. Returns {setting: old value} for the
        settings changed, so the caller can apply them live or roll back.

        Raises ``UnknownSetting(name)`` or ``ConfigError`` whose ``args`` are
        (name to report, reason)."""
        targets: list[tuple[str, str, str]] = []  # (setting or fixed name, name to report, raw)
        seen: set[str] = set()
        for given, raw in pairs:
            name = given.lower()
            if name == "appendfsync":
                target = "durability"
            elif name == "lua-time-limit":  # Redis's old name, an alias
                target = "busy-reply-threshold"
            elif name in BY_NAME or name in FIXED:
                target = name
            else:
                raise UnknownSetting(given)
            if target in BY_NAME and not BY_NAME[target].mutable:
                raise ConfigError(given, "can't set immutable config")
            if target in seen:
                raise ConfigError(given, "duplicate parameter")
            seen.add(target)
            targets.append((target, name, raw))
        new: dict[str, Any] = {}
        for target, name, raw in targets:
            if name == "appendfsync":
                mode = _DURABILITY.get(raw.lower())
                if mode is None:
                    raise ConfigError(name, "argument(s) must be one of the following: "
                                            + ", ".join(_DURABILITY))
                new[target] = mode
            elif target in FIXED:
                value, why = FIXED[target]
                if raw.lower() != value:
                    raise ConfigError(name, f"argument must be '{value}' ({why})")
            else:
                try:
                    new[target] = BY_NAME[target].convert(raw)
                except ConfigError as exc:
                    raise ConfigError(name, str(exc)) from None
        old = {name: self.values[name] for name in new}
        self.values.update(new)
        return old

    def rewrite(self) -> None:
        """CONFIG REWRITE: update the config file in place with the current
        values. Lines of settings keep their place, comments and unknown lines
        stay, settings not in the file are appended when they differ from
        their default. Written to a temporary file, fsynced, then renamed."""
        if self.file is None:
            raise ConfigError("The server is running without a config file")
        try:
            with open(self.file) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            lines = []
        out, done = [], set()
        for line in lines:
            words = line.split()
            name = words[0].lower() if words and not words[0].startswith("#") else None
            name = {"data-dir": "dir", "appendfsync": "durability"}.get(name, name)
            if name not in BY_NAME or name in _NOT_REWRITTEN:
                out.append(line)
            elif name not in done:
                spelled = words[0].lower()
                out.append(f"appendfsync {APPENDFSYNC[self.values[name]]}" if spelled == "appendfsync"
                           else self._line(name))
                done.add(name)
        extra = [self._line(s.name) for s in SETTINGS
                 if s.name not in done and s.name not in _NOT_REWRITTEN and self.values[s.name] != s.default]
        if extra:
            out += ["# Generated by CONFIG REWRITE", *extra]
        directory = os.path.dirname(self.file)
        fd, tmp = tempfile.mkstemp(prefix=".fjord-config-", dir=directory)
        try:
            with os.fdopen(fd, "w") as f:
                f.write("\n".join(out) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.file)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def _line(self, name: str) -> str:
        return f"{name} {shlex.quote(BY_NAME[name].render(self.values[name]))}"
