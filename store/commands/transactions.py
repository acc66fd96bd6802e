"""Transactions (Redis's "transactions" group): MULTI, EXEC, DISCARD, WATCH,
UNWATCH. The state they work on, and the queueing done by the connection,
are in store/transactions.py.

These handlers run while the client is in MULTI (they are not queued), and
they *return* their errors instead of raising them: the connection takes an
error raised in MULTI, or by EXEC, for a refusal before the handler ran,
which fails the transaction (see ``transactions.rejected``).

EXEC runs the queued commands one after another without letting anything
else run in between, as Redis does. Their events stay in ``session.events``
until EXEC returns, and the connection stages them as one log record: the
transaction is one atomic unit on the log, for replay, replicas and
triggers alike. Errors while running (WRONGTYPE...) roll nothing back: the
reply array holds each command's reply, errors included.
"""

from __future__ import annotations

import logging

from .. import errors, transactions
from ..resp import NULL_ARRAY, OK, Delayed, Raw, ReplyError, encode, encode_error
from ..session import Session
from .table import command

log = logging.getLogger("fjord.transactions")

_FLAGS = "noscript loading stale fast allow_busy"


@command("multi", 1, _FLAGS, group="transactions", since="1.2.0",
         summary="Mark the start of a transaction block", complexity="O(1)")
def multi(s: Session, args: list[bytes]):
    if s.multi is not None:
        return ReplyError(errors.MULTI_NESTED)  # and the transaction stays good
    s.multi = transactions.Transaction()
    return OK


@command("discard", 1, _FLAGS, group="transactions", since="2.0.0",
         summary="Discard all commands issued after MULTI",
         complexity="O(N), when N is the number of queued commands")
def discard(s: Session, args: list[bytes]):
    if s.multi is None:
        return ReplyError(errors.DISCARD_WITHOUT_MULTI)
    transactions.discard(s)
    return OK


@command("watch", -2, _FLAGS, (1, -1, 1), group="transactions", since="2.2.0",
         summary="Watch the given keys to determine execution of the MULTI/EXEC block",
         complexity="O(1) for every key.")
def watch(s: Session, args: list[bytes]):
    if s.multi is not None:
        return ReplyError(errors.WATCH_INSIDE_MULTI)
    transactions.watch(s, args[1:])
    return OK


@command("unwatch", 1, _FLAGS, group="transactions", since="2.2.0",
         summary="Forget about all watched keys", complexity="O(1)")
def unwatch(s: Session, args: list[bytes]):
    transactions.unwatch(s)
    return OK


@command("exec", 1, "noscript loading stale skip_slowlog", group="transactions", since="1.2.0",
         summary="Execute all commands issued after MULTI",
         complexity="Depends on commands in the transaction")
def exec_(s: Session, args: list[bytes]):
    tx = s.multi
    if tx is None:
        return ReplyError(errors.EXEC_WITHOUT_MULTI)
    refusal = _refusal(s, tx)
    if refusal is not None or tx.failed or transactions.watch_failed(s):
        transactions.discard(s)
        if refusal is not None:
            return ReplyError(errors.EXECABORT_BECAUSE + refusal)
        return ReplyError(errors.EXECABORT) if tx.failed else NULL_ARRAY
    # Unwatch first: the transaction's own writes must not dirty its client.
    transactions.unwatch(s)
    # s.multi stays set while the commands run, as Redis keeps its MULTI
    # flag: CLIENT LIST inside EXEC shows ``flags=x multi=<n>``.
    s.in_exec = True
    out = [b"*%d\r\n" % len(tx.commands)]
    try:
        for cmd, argv in tx.commands:
            out.append(_run(s, cmd, argv))
    finally:
        s.in_exec = False
        s.multi = None
    return Raw(b"".join(out))


def _refusal(s: Session, tx: transactions.Transaction) -> str | None:
    """Why the server cannot run ``tx`` now, though it could queue it:
    the log failing (MISCONF, if it writes) or the keyspace being rebuilt
    (LOADING) since. Redis refuses such an EXEC with EXECABORT."""
    srv = s.server
    if srv is None:
        return None
    if srv.loading and not all(cmd.allow_loading for cmd, _ in tx.commands):
        return errors.LOADING
    if srv.write_error is not None and any(cmd.is_write for cmd, _ in tx.commands):
        try:
            srv.check_writable()
        except ReplyError as exc:
            return exc.message
    return None


def _run(s: Session, cmd, argv: list[bytes]) -> bytes:
    """One queued command's encoded reply, in the protocol of the moment (a
    HELLO inside the transaction changes it for the replies after it)."""
    try:
        reply = cmd.handler(s, argv)
    except ReplyError as exc:
        return encode_error(exc.message)
    except Exception as exc:  # a bug must cost one reply, not the transaction's other events
        log.exception("command %r failed inside EXEC", argv[0])
        return encode_error(f"ERR internal error in '{argv[0].decode('utf-8', 'replace')}': {exc}")
    if type(reply) is Delayed:  # WAIT, or anything that would block: answer now
        reply = reply.reply
    return encode(reply, s.resp3)
