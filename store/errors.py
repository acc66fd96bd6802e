"""Redis's error replies, word for word, in one place."""

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
SYNTAX = "ERR syntax error"
NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
OVERFLOW = "ERR increment or decrement would overflow"
NO_SUCH_KEY = "ERR no such key"
DB_INDEX = "ERR DB index is out of range"
# MULTI/EXEC/WATCH (store/transactions.py)
MULTI_NESTED = "ERR MULTI calls can not be nested"
EXEC_WITHOUT_MULTI = "ERR EXEC without MULTI"
DISCARD_WITHOUT_MULTI = "ERR DISCARD without MULTI"
WATCH_INSIDE_MULTI = "ERR WATCH inside MULTI is not allowed"
NOT_IN_TRANSACTION = "ERR Command not allowed inside a transaction"
EXECABORT = "EXECABORT Transaction discarded because of previous errors."
EXECABORT_BECAUSE = "EXECABORT Transaction discarded because of: "
NOAUTH = "NOAUTH Authentication required."
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."
LOADING = "LOADING Fjord is loading the dataset in memory"
MAXCLIENTS = "ERR max number of clients reached"
STRING_TOO_LONG = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
NOPROTO = "NOPROTO unsupported protocol version"
HELLO_NOAUTH = ("NOAUTH HELLO must be called with the client already authenticated, otherwise the "
                "HELLO AUTH <user> <pass> option can be used to authenticate the client and select "
                "the RESP protocol version at the same time")
AUTH_NO_PASSWORD = ("ERR AUTH <password> called without any password configured for the default user. "
                    "Are you sure your configuration is correct?")
BAD_CLIENT_NAME = "ERR Client names cannot contain spaces, newlines or special characters."
SAME_OBJECT = "ERR source and destination objects are the same"
INVALID_CURSOR = "ERR invalid cursor"
INT_RANGE = "ERR value is out of range, value must between -2147483648 and 2147483647"
DECREMENT_OVERFLOW = "ERR decrement would overflow"
NAN_OR_INFINITY = "ERR increment would produce NaN or Infinity"
OFFSET_OUT_OF_RANGE = "ERR offset is out of range"
# hashes and sets
HASH_NOT_INTEGER = "ERR hash value is not an integer"
HASH_NOT_FLOAT = "ERR hash value is not a float"
VALUE_NAN_OR_INFINITY = "ERR value is NaN or Infinity"
OUT_OF_RANGE = "ERR value is out of range"
OUT_OF_RANGE_POSITIVE = "ERR value is out of range, must be positive"
NUMKEYS_POSITIVE = "ERR numkeys should be greater than 0"
NUMKEYS_TOO_MANY = "ERR Number of keys can't be greater than number of args"
LIMIT_NEGATIVE = "ERR LIMIT can't be negative"
# lists
INDEX_OUT_OF_RANGE = "ERR index out of range"
COUNT_NOT_POSITIVE = "ERR count should be greater than 0"
COUNT_NEGATIVE = "ERR COUNT can't be negative"
MAXLEN_NEGATIVE = "ERR MAXLEN can't be negative"
RANK_ZERO = ("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... "
             "or use negative to start from the end of the list")
# blocking commands (store/blocking.py) and CLIENT UNBLOCK
TIMEOUT_NOT_FLOAT = "ERR timeout is not a float or out of range"
TIMEOUT_NEGATIVE = "ERR timeout is negative"
UNBLOCKED = "UNBLOCKED client unblocked via CLIENT UNBLOCK"
UNBLOCK_REASON = "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"


def invalid_expire_time(fullname: str) -> str:
    return f"ERR invalid expire time in '{fullname}' command"


def wrong_arity(fullname: str) -> str:
    return f"ERR wrong number of arguments for '{fullname}' command"


def unknown_command(name: bytes, args: list[bytes]) -> str:
    # Redis quotes the name and up to 128 bytes' worth of the first arguments.
    shown = ""
    for a in args:
        if len(shown) >= 128:
            break
        remaining = 128 - len(shown)
        shown += "'%s' " % a[:remaining].decode("utf-8", "surrogateescape")
    return "ERR unknown command '%s', with args beginning with: %s" % (
        name[:128].decode("utf-8", "surrogateescape"), shown)


def unknown_subcommand(sub: bytes, container: str) -> str:
    return "ERR unknown subcommand '%s'. Try %s HELP." % (
        sub[:128].decode("utf-8", "surrogateescape"), container.upper())


def misconf_log(reason: str) -> str:
    return f"MISCONF Errors writing to the AOF file: {reason}"


def out_of_range_between(low: int, high: int) -> str:
    return f"ERR value is out of range, value must between {low} and {high}"


BGSAVE_IN_PROGRESS = "ERR Background save already in progress"
#: Fjord's own: snapshots need the embedded file log
NO_SNAPSHOTS = "ERR snapshots need the embedded file log"
#: Redis answers a failed SAVE with a bare "-ERR"; Fjord says where to look
SAVE_FAILED = "ERR snapshot failed: see the server log"
READONLY = "READONLY You can't write against a read only replica."
