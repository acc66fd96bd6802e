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

import os
import shlex
from dataclasses import dataclass
from typing import Any, Callable


class ConfigError(ValueError):
    """A setting with a value it cannot take."""


def _parse_bool(v: str) -> bool:
    lv = v.lower()
    if lv in ("yes", "true", "1", "on"):
        return True
    if lv in ("no", "false", "0", "off"):
        return False
    raise ConfigError(f"argument must be 'yes' or 'no'")


def _parse_memory(v: str) -> int:
    """Redis memory units: 1k = 1000, 1kb = 1024, and so on."""
    lv = v.lower()
    units = {"kb": 1024, "k": 1000, "mb": 1024**2, "m": 1000**2, "gb": 1024**3, "g": 1000**3, "b": 1}
    for suffix, mult in units.items():
        if lv.endswith(suffix) and lv[: -len(suffix)].lstrip("-").isdigit():
            return int(lv[: -len(suffix)]) * mult
    if lv.lstrip("-").isdigit():
        return int(lv)
    raise ConfigError("argument must be a memory value")


def _parse_int(v: str) -> int:
    try:
        return int(v)
    except ValueError:
        raise ConfigError("argument couldn't be parsed into an integer") from None


def _durability(v: str) -> str:
    if v not in ("sync", "async"):
        raise ConfigError("argument must be 'sync' or 'async'")
    return v


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
            if self.minimum is not None and value < self.minimum or self.maximum is not None and value > self.maximum:
                raise ConfigError(f"argument must be between {self.minimum} and {self.maximum} inclusive")
        return value

    def render(self, value: Any) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        return str(value)


SETTINGS: list[Setting] = [
    Setting("bind", "127.0.0.1", str, "address to listen on", flag="--bind"),
    Setting("port", 6379, _parse_int, "TCP port to listen on", minimum=0, maximum=65535, flag="--port"),
    Setting("dir", "./data", str, "data directory holding the log (alias of --data-dir)", flag="--data-dir"),
    Setting("requirepass", "", str, "password clients must AUTH with (empty: none)", mutable=True,
            flag="--requirepass"),
    Setting("durability", "sync", _durability,
            "sync: reply only after the log is fsynced (like appendfsync always); "
            "async: reply at once, fsync every second (like appendfsync everysec)",
            mutable=True, flag="--durability"),
    Setting("maxclients", 10000, _parse_int, "maximum simultaneous clients", mutable=True, minimum=1,
            flag="--maxclients"),
    Setting("proto-max-bulk-len", 512 * 1024 * 1024, _parse_memory, "largest bulk string a client may send",
            mutable=True, minimum=1024 * 1024),
    Setting("client-query-buffer-limit", 1024 * 1024 * 1024, _parse_memory,
            "a client whose unparsed input exceeds this is disconnected", mutable=True, minimum=1024 * 1024),
    Setting("databases", 16, _parse_int, "number of databases", minimum=1, maximum=1 << 20,
            flag="--databases"),
    Setting("hz", 10, _parse_int, "background task frequency (active expiry) per second", mutable=True,
            minimum=1, maximum=500),
    Setting("timeout", 0, _parse_int, "close idle clients after this many seconds (0: never)", mutable=True,
            minimum=0),
    Setting("log-segment-bytes", 64 * 1024 * 1024, _parse_memory, "roll to a new log segment at this size",
            minimum=4096, flag="--log-segment-bytes"),
    Setting("loglevel", "notice", str, "debug, verbose, notice or warning", mutable=True, flag="--loglevel"),
    Setting("repair", False, _parse_bool,
            "on start, truncate the log at the first corrupt record instead of refusing to start",
            flag="--repair"),
]

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}

#: Redis names answered by CONFIG GET/SET and mapped onto Fjord settings.
ALIASES = {"appendfsync": "durability"}


class Config:
    """Current values of every setting."""

    def __init__(self, values: dict[str, Any] | None = None):
        self.values = {s.name: s.default for s in SETTINGS}
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
                name = {"data-dir": "dir"}.get(name, name)
                if name not in BY_NAME:
                    raise ConfigError(f"{path}:{lineno}: unknown setting {words[0]!r}")
                try:
                    self.set(name, rest)
                except ConfigError as exc:
                    raise ConfigError(f"{path}:{lineno}: {name}: {exc}") from None

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

    # CONFIG GET / SET view ---------------------------------------------------

    def redis_items(self) -> list[tuple[str, str]]:
        """Every (name, value) CONFIG GET can answer, Redis names included."""
        items = [(s.name, s.render(self.values[s.name])) for s in SETTINGS]
        items.append(("appendfsync", "always" if self.values["durability"] == "sync" else "everysec"))
        items.append(("appendonly", "yes"))
        items.append(("save", ""))
        items.append(("maxmemory", "0"))
        items.append(("maxmemory-policy", "noeviction"))
        return items

    def redis_set(self, name: str, raw: str) -> str:
        """Apply CONFIG SET; returns the Fjord setting name changed."""
        name = name.lower()
        if name == "appendfsync":
            mapped = {"always": "sync", "everysec": "async"}.get(raw.lower())
            if mapped is None:
                raise ConfigError("argument(s) must be one of the following: always, everysec")
            self.values["durability"] = mapped
            return "durability"
        setting = BY_NAME.get(name)
        if setting is None or not setting.mutable:
            raise KeyError(name)
        self.values[name] = setting.convert(raw)
        return name
