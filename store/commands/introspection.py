"""COMMAND and its subcommands: the command table described to clients.

Everything here is read from ``table.COMMANDS``; nothing is written per
command. Replies have Redis 7's shapes, which clients parse: COMMAND INFO's
ten fields (name, arity, flags, first key, last key, step, ACL categories,
tips, key specs, subcommands) and COMMAND DOCS's map of name to
summary/since/group/complexity (redis-cli 7 reads it at start-up for its
help and hints).

Derived, not recorded: key specs come from the (first, last, step) triple,
with flags ``RO access`` for read-only commands and ``RW update`` for writes
(Redis records finer ones, e.g. ``OW update`` for SET, ``RM delete`` for DEL).
"""

from __future__ import annotations

from .. import errors
from ..glob import glob_match
from ..resp import ReplyError, RespMap, RespSet
from ..session import Session
from .table import COMMANDS, Command, all_commands, container, subcommand, unique

#: Redis's command flags in the order COMMAND shows them.
FLAG_ORDER = ("write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript", "blocking",
              "loading", "stale", "skip_monitor", "skip_slowlog", "asking", "fast", "no_auth",
              "no_mandatory_keys", "no_async_loading", "no_multi", "movablekeys", "allow_busy")


def lookup(name: bytes) -> Command | None:
    """A command by name, or a subcommand by ``parent|sub``, any case."""
    parts = name.lower().split(b"|")
    if len(parts) > 2:
        return None
    cmd = COMMANDS.get(parts[0])
    if cmd is None or len(parts) == 1:
        return cmd
    return cmd.subcommands.get(parts[1])


def _key_flags(cmd: Command) -> list[str]:
    if cmd.key_flags:
        return list(cmd.key_flags)
    if "write" in cmd.flags:
        return ["RW", "update"]
    return ["RO", "access"]


def _key_specs(cmd: Command) -> RespSet:
    kw = cmd.keyword_keys
    if kw is not None:
        return RespSet([RespMap([
            (b"flags", RespSet(_key_flags(cmd))),
            (b"begin_search", RespMap([(b"type", b"keyword"), (b"spec", RespMap([
                (b"keyword", kw.keyword), (b"startfrom", kw.startfrom)]))])),
            (b"find_keys", RespMap([(b"type", b"range"), (b"spec", RespMap([
                (b"lastkey", -1), (b"keystep", 1), (b"limit", kw.limit)]))])),
        ])])
    if not cmd.first_key:
        return RespSet()
    last = cmd.last_key - cmd.first_key if cmd.last_key >= 0 else cmd.last_key
    return RespSet([RespMap([
        (b"flags", RespSet(_key_flags(cmd))),
        (b"begin_search", RespMap([(b"type", b"index"), (b"spec", RespMap([(b"index", cmd.first_key)]))])),
        (b"find_keys", RespMap([(b"type", b"range"), (b"spec", RespMap([
            (b"lastkey", last), (b"keystep", cmd.key_step), (b"limit", 0)]))])),
    ])])


def command_info(cmd: Command | None):
    """One COMMAND INFO entry (None for an unknown name)."""
    if cmd is None:
        return None
    subs = unique(cmd.subcommands)
    return [
        cmd.fullname.encode(),
        cmd.arity,
        RespSet([f for f in FLAG_ORDER if f in cmd.flags]),
        cmd.first_key,
        cmd.last_key,
        cmd.key_step,
        RespSet(list(cmd.acl_categories)),
        RespSet([t.encode() for t in cmd.tips]),
        _key_specs(cmd),
        [command_info(sub) for sub in subs] if subs else RespSet(),
    ]


def command_docs(cmd: Command) -> RespMap:
    """One COMMAND DOCS entry. summary, since and group are always there:
    redis-cli reads them without checking."""
    group = cmd.parent.group if cmd.parent else cmd.group
    doc = [(b"summary", cmd.summary.encode()), (b"since", cmd.since.encode()), (b"group", group.encode())]
    if cmd.complexity:
        doc.append((b"complexity", cmd.complexity.encode()))
    subs = unique(cmd.subcommands)
    if subs:
        doc.append((b"subcommands", RespMap([(s.fullname.encode(), command_docs(s)) for s in subs])))
    return RespMap(doc)


def _everything() -> list[Command]:
    """Every command, each followed by its subcommands (COMMAND LIST order)."""
    out = []
    for cmd in all_commands():
        out.append(cmd)
        out.extend(unique(cmd.subcommands))
    return out


# ------------------------------------------------------------------ handlers


def command_all(s: Session, args: list[bytes]):
    return [command_info(c) for c in all_commands()]


command = container("command", group="server", since="2.8.13", arity=-1, handler=command_all,
                    flags="loading stale", acl="connection", tips="nondeterministic_output_order",
                    summary="Get array of Redis command details",
                    complexity="O(N) where N is the total number of Redis commands")


@subcommand(command, "info", -2, "loading stale", since="2.8.13", acl="connection",
            tips="nondeterministic_output_order",
            summary="Get array of specific Redis command details, or all when no argument is given.",
            complexity="O(N) where N is the number of commands to look up")
def command_info_cmd(s: Session, args: list[bytes]):
    if len(args) == 2:
        return command_all(s, args)
    return [command_info(lookup(name)) for name in args[2:]]


@subcommand(command, "docs", -2, "loading stale", since="7.0.0", acl="connection",
            tips="nondeterministic_output_order", summary="Get array of specific Redis command documentation",
            complexity="O(N) where N is the number of commands to look up")
def command_docs_cmd(s: Session, args: list[bytes]):
    if len(args) == 2:
        cmds = all_commands()
    else:
        cmds = [c for c in (lookup(name) for name in args[2:]) if c is not None]
    return RespMap([(c.fullname.encode(), command_docs(c)) for c in cmds])


@subcommand(command, "count", 2, "loading stale", since="2.8.13", acl="connection",
            summary="Get total number of Redis commands", complexity="O(1)")
def command_count(s: Session, args: list[bytes]):
    return len(all_commands())


@subcommand(command, "list", -2, "loading stale", since="7.0.0", acl="connection",
            tips="nondeterministic_output_order", summary="Get an array of Redis command names",
            complexity="O(N) where N is the total number of Redis commands")
def command_list(s: Session, args: list[bytes]):
    kind = value = None
    i = 2
    while i < len(args):
        if args[i].lower() == b"filterby" and len(args) - 1 - i == 2:
            kind = args[i + 1].lower()
            if kind not in (b"module", b"aclcat", b"pattern"):
                raise ReplyError(errors.SYNTAX)
            value = args[i + 2]
            i += 3
        else:
            raise ReplyError(errors.SYNTAX)
    cmds = _everything()
    if kind == b"module":
        cmds = []  # Fjord has no modules
    elif kind == b"aclcat":
        cat = "@" + value.decode("utf-8", "replace").lower()
        cmds = [c for c in cmds if cat in c.acl_categories]
    elif kind == b"pattern":
        pattern = value.lower()
        cmds = [c for c in cmds if glob_match(pattern, c.fullname.encode())]
    return [c.fullname.encode() for c in cmds]


def _keys_of(args: list[bytes]) -> tuple[Command, list[int]]:
    """The command named in ``COMMAND GETKEYS <command> ...`` and the
    positions of its keys, with Redis's errors."""
    argv = args[2:]
    cmd = COMMANDS.get(argv[0].lower())
    if cmd is not None and cmd.subcommands and len(argv) > 1:
        cmd = cmd.subcommands.get(argv[1].lower())
    if cmd is None:
        raise ReplyError("ERR Invalid command specified")
    if not cmd.first_key and not cmd.numkeys_at and cmd.keyword_keys is None:
        raise ReplyError("ERR The command has no key arguments")
    if not cmd.arity_ok(len(argv)):
        raise ReplyError("ERR Invalid number of arguments specified for command")
    positions = [i for i in cmd.key_indexes(argv) if i < len(argv)]
    if not positions:
        raise ReplyError("ERR Invalid arguments specified for command")
    return cmd, positions


@subcommand(command, "getkeys", -4, "loading stale", since="2.8.13", acl="connection",
            summary="Extract keys given a full Redis command",
            complexity="O(N) where N is the number of arguments to the command")
def command_getkeys(s: Session, args: list[bytes]):
    _, positions = _keys_of(args)
    return [args[2 + i] for i in positions]


@subcommand(command, "getkeysandflags", -4, "loading stale", since="7.0.0", acl="connection",
            summary="Extract keys and access flags given a full Redis command",
            complexity="O(N) where N is the number of arguments to the command")
def command_getkeysandflags(s: Session, args: list[bytes]):
    cmd, positions = _keys_of(args)
    flags = _key_flags(cmd)
    return [[args[2 + i], RespSet(flags)] for i in positions]


_COMMAND_HELP = [
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full Redis command.",
    "HELP",
    "    Prints this help.",
]


@subcommand(command, "help", 2, "loading stale", since="5.0.0", complexity="O(1)", acl="connection",
            summary="Show helpful text about the different subcommands")
def command_help(s: Session, args: list[bytes]):
    return list(_COMMAND_HELP)
