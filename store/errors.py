"""Redis's error replies, word for word, in one place."""

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
SYNTAX = "ERR syntax error"
NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
OVERFLOW = "ERR increment or decrement would overflow"
NO_SUCH_KEY = "ERR no such key"
DB_INDEX = "ERR DB index is out of range"
NOAUTH = "NOAUTH Authentication required."
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."
LOADING = "LOADING Fjord is loading the dataset in memory"
MAXCLIENTS = "ERR max number of clients reached"
STRING_TOO_LONG = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"


def wrong_arity(fullname: str) -> str:
    return f"ERR wrong number of arguments for '{fullname}' command"


def unknown_command(name: bytes, args: list[bytes]) -> str:
    # Redis quotes the name and up to 128 bytes' worth of the first arguments.
    shown = ""
    for a in args:
        if len(shown) >= 128:
            break
        remaining = 128 - len(shown)
        shown += "'%s' " % a[:remaining].decode("utf-8", "replace")
    return "ERR unknown command '%s', with args beginning with: %s" % (
        name[:128].decode("utf-8", "replace"), shown)


def unknown_subcommand(sub: bytes, container: str) -> str:
    return "ERR unknown subcommand '%s'. Try %s HELP." % (
        sub[:128].decode("utf-8", "replace"), container.upper())


def misconf_log(reason: str) -> str:
    return f"MISCONF Errors writing to the AOF file: {reason}"
