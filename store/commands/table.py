"""The command table: one ``Command`` per Redis command, filled by decorators.

Every fact the server needs about a command lives here, once: its arity
(negative = at least), flags, key positions and documentation. Arity errors,
``COMMAND``, ``COMMAND INFO``/``DOCS``/``GETKEYS``, auth and loading checks all
read this table; handlers never re-check their own arity.

A handler is ``handler(session, args) -> reply`` where ``args`` is the full
argv (``args[0]`` is the command name). It mutates nothing directly: it emits
effect events through ``session.emit`` (which applies them to the keyspace)
and returns a reply value (see ``store.resp``) or raises ``ReplyError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .. import errors
from ..resp import ReplyError

Handler = Callable[..., object]


@dataclass(frozen=True)
class KeywordKeys:
    """Keys that follow a keyword, as XREAD's ``STREAMS k1 k2 id1 id2``
    (Redis's key spec: begin_search ``keyword``, find_keys ``range`` with
    lastkey -1, keystep 1). The first ``keyword`` (any case) at or after
    ``startfrom`` starts them; they are the first 1/``limit`` of the
    arguments after it (XREAD: half, the ids are the other half)."""

    keyword: bytes
    startfrom: int
    limit: int

    def indexes(self, args: list[bytes]) -> list[int]:
        for i in range(self.startfrom, len(args)):
            if args[i].upper() == self.keyword:
                first = i + 1
                return list(range(first, first + (len(args) - first) // max(self.limit, 1)))
        return []


#: lookup by the name as sent: both the lowercase and uppercase spellings are
#: keys, so the common case is one dict hit with no ``.lower()`` call.
COMMANDS: dict[bytes, "Command"] = {}


@dataclass(eq=False)
class Command:
    """One command (or subcommand) and everything Redis says about it."""

    name: str
    handler: Handler | None
    arity: int
    flags: frozenset[str]
    first_key: int = 0
    #: for commands like ZUNION/LMPOP: the position of the "numkeys"
    #: argument; that many keys follow it (Redis's "keynum" key spec)
    numkeys_at: int = 0
    last_key: int = 0
    key_step: int = 0
    #: keys found after a keyword (XREAD/XREADGROUP's STREAMS), else None
    keyword_keys: KeywordKeys | None = None
    #: the key spec flags where the default (RW update / RO access) is wrong
    key_flags: tuple[str, ...] = ()
    group: str = "generic"
    summary: str = ""
    since: str = "1.0.0"
    complexity: str = ""
    acl_categories: tuple[str, ...] = ()
    #: Redis's command tips (``nondeterministic_output``, ``request_policy:...``)
    tips: tuple[str, ...] = ()
    parent: "Command | None" = None
    subcommands: dict[bytes, "Command"] = field(default_factory=dict)
    # hot-path copies of flags
    is_write: bool = False
    no_auth: bool = False
    allow_loading: bool = False
    #: runs while a script is busy (SCRIPT KILL, SHUTDOWN...), others get -BUSY
    allow_busy: bool = False

    def __post_init__(self) -> None:
        #: "client|kill" for subcommands; computed once, read on every call
        self.fullname = f"{self.parent.name}|{self.name}" if self.parent else self.name

    def arity_ok(self, n: int) -> bool:
        a = self.arity
        return n == a if a > 0 else n >= -a

    def key_indexes(self, args: list[bytes]) -> list[int]:
        """Positions of key arguments in ``args`` (COMMAND GETKEYS)."""
        out: list[int] = []
        if self.first_key:
            last = self.last_key if self.last_key >= 0 else len(args) + self.last_key
            out = list(range(self.first_key, last + 1, self.key_step or 1))
        if self.numkeys_at and self.numkeys_at < len(args):
            try:
                n = int(args[self.numkeys_at])
            except ValueError:
                return out
            start = self.numkeys_at + 1
            out += range(start, min(start + max(n, 0), len(args)))
        if self.keyword_keys is not None:
            out += self.keyword_keys.indexes(args)
        return out

    def keys(self, args: list[bytes]) -> list[bytes]:
        return [args[i] for i in self.key_indexes(args) if i < len(args)]


#: Redis's ACL categories in the order Redis lists them (COMMAND shows a
#: command's categories in this order).
ACL_CATEGORIES = ("keyspace", "read", "write", "set", "sortedset", "list", "hash", "string", "bitmap",
                  "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow", "blocking",
                  "dangerous", "connection", "transaction", "scripting")
#: The category a command group implies (Redis has none for "server").
_GROUP_CATEGORY = {"generic": "keyspace", "keyspace": "keyspace", "sorted-set": "sortedset",
                   "transactions": "transaction",
                   # @pubsub comes from the "pubsub" flag (PUBSUB HELP has none)
                   "pubsub": ""}


def _categories(flags: frozenset[str], group: str, extra: str = "") -> tuple[str, ...]:
    """ACL categories implied by flags (as Redis derives them) and group,
    plus ``extra`` ones (``"connection"``) where Redis lists more."""
    cats: set[str] = set(extra.replace("@", "").split())
    if "write" in flags:
        cats.add("write")
    if "readonly" in flags:
        cats.add("read")
    cats.add(_GROUP_CATEGORY.get(group, group))
    cats.add("fast" if "fast" in flags else "slow")
    for flag in ("admin", "blocking", "pubsub"):
        if flag in flags:
            cats.add(flag)
    if "admin" in flags:
        cats.add("dangerous")
    return tuple("@" + c for c in ACL_CATEGORIES if c in cats)


def _make(name: str, handler, arity: int, flags: str, keys: tuple[int, int, int],
          group: str, summary: str, since: str, complexity: str, parent=None, tips: str = "",
          acl: str = "", numkeys: int = 0, keyword: tuple[str, int, int] | None = None,
          key_flags: str = "") -> Command:
    fl = frozenset(flags.split())
    first, last, step = keys
    return Command(
        name=name.lower(), handler=handler, arity=arity, flags=fl,
        first_key=first, last_key=last, key_step=step, numkeys_at=numkeys, group=group, summary=summary,
        since=since, complexity=complexity, acl_categories=_categories(fl, group, acl), parent=parent,
        tips=tuple(tips.split()),
        keyword_keys=KeywordKeys(keyword[0].upper().encode(), keyword[1], keyword[2]) if keyword else None,
        key_flags=tuple(key_flags.split()),
        is_write="write" in fl, no_auth="no_auth" in fl, allow_loading="loading" in fl,
        allow_busy="allow_busy" in fl,
    )


def _register(table: dict[bytes, Command], cmd: Command) -> None:
    lower = cmd.name.encode()
    if lower in table:
        raise ValueError(f"command {cmd.fullname} registered twice")
    table[lower] = cmd
    table[lower.upper()] = cmd


def command(name: str, arity: int, flags: str = "", keys: tuple[int, int, int] = (0, 0, 0), *,
            group: str = "generic", summary: str = "", since: str = "1.0.0", complexity: str = "",
            tips: str = "", acl: str = "", numkeys: int = 0, keyword: tuple[str, int, int] | None = None,
            key_flags: str = ""):
    """Register a top-level command handler. ``numkeys`` is the position of
    a "numkeys" argument followed by that many keys (ZUNION, LMPOP, ...);
    ``keyword`` = (keyword, startfrom, limit) describes keys after a keyword
    (see ``KeywordKeys``); ``key_flags`` overrides the key spec flags."""

    def deco(fn):
        _register(COMMANDS, _make(name, fn, arity, flags, keys, group, summary, since, complexity,
                                  tips=tips, acl=acl, numkeys=numkeys, keyword=keyword,
                                  key_flags=key_flags))
        return fn

    return deco


def container(name: str, *, group: str = "generic", summary: str = "", since: str = "1.0.0",
              flags: str = "", complexity: str = "Depends on subcommand.", arity: int = -2,
              handler: Handler | None = None, tips: str = "", acl: str = "") -> Command:
    """Register a command made of subcommands (CLIENT, CONFIG, COMMAND, OBJECT).

    ``handler`` (with ``arity`` -1) serves the bare command, as COMMAND
    alone lists every command; without one, a bare container is an arity
    error. A pure container belongs to no category but @slow, as in Redis.
    """
    cmd = _make(name, handler, arity, flags, (0, 0, 0), group, summary, since, complexity, tips=tips, acl=acl)
    if handler is None:
        cmd.acl_categories = ("@slow",)
    _register(COMMANDS, cmd)
    return cmd


def subcommand(parent: Command, name: str, arity: int, flags: str = "",
               keys: tuple[int, int, int] = (0, 0, 0), *, summary: str = "", since: str = "1.0.0",
               complexity: str = "", tips: str = "", acl: str = ""):
    """Register a subcommand of ``parent``; arity counts the whole argv."""

    def deco(fn):
        _register(parent.subcommands,
                  _make(name, fn, arity, flags, keys, parent.group, summary, since, complexity, parent,
                        tips=tips, acl=acl))
        return fn

    return deco


def resolve(args: list[bytes]) -> Command:
    """Find the command (or subcommand) for ``args`` and check its arity.

    Raises ``ReplyError`` with Redis's wording for unknown commands, unknown
    subcommands and wrong arity.
    """
    cmd = COMMANDS.get(args[0])
    if cmd is None:
        cmd = COMMANDS.get(args[0].lower())
        if cmd is None:
            raise ReplyError(errors.unknown_command(args[0], args[1:]))
    if cmd.subcommands and (len(args) >= 2 or cmd.handler is None):
        if len(args) < 2:
            raise ReplyError(errors.wrong_arity(cmd.name))
        sub = cmd.subcommands.get(args[1]) or cmd.subcommands.get(args[1].lower())
        if sub is None:
            raise ReplyError(errors.unknown_subcommand(args[1], cmd.name))
        cmd = sub
    if not cmd.arity_ok(len(args)):
        raise ReplyError(errors.wrong_arity(cmd.fullname))
    return cmd


def all_commands() -> list[Command]:
    """Every top-level command once, in name order."""
    seen = {id(c): c for c in COMMANDS.values()}
    return sorted(seen.values(), key=lambda c: c.name)


def unique(table: dict[bytes, Command]) -> list[Command]:
    seen = {id(c): c for c in table.values()}
    return sorted(seen.values(), key=lambda c: c.name)
