"""Serving the other clients while a script runs past busy-reply-threshold.

The script runs inside a command handler on the event loop, so the loop
is stuck until it returns. Redis answers other clients meanwhile (-BUSY
to everything but SCRIPT KILL, FUNCTION KILL and the ``allow_busy``
commands); Fjord does the same from the script's count hook: it polls the
sockets of the connected clients, reads what they sent and feeds it to
their connections, whose replies (``Connection.execute`` answers -BUSY
while ``server.busy`` is set) are written at once by the transport.

SHUTDOWN (flag ``allow_busy``) is served too: with NOSAVE it stops the
script, whose effects are dropped (``ScriptEngine.abort_for_shutdown``).

Clients that connect while the script runs are served too: the poll
also watches the listening sockets, accepts what is pending and gives each
new socket a ``Connection`` over a small blocking-free transport
(``BusyTransport``); once the script has returned, the loop adopts the
socket (``connect_accepted_socket``) and the same Connection, session,
AUTH/HELLO state and all, goes on over uvloop's transport.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket


def serve_others(server, running_session) -> None:
    """Read and answer whatever other clients sent since the last poll;
    accept the clients waiting on the listening sockets."""
    conns = {}
    poller = select.poll()
    for conn in list(server.clients.values()):
        if conn.closed or conn.session is running_session or conn.transport is None:
            continue
        transport = conn.transport
        if type(transport) is BusyTransport:
            transport.flush()
        sock = transport.get_extra_info("socket")
        if sock is None:
            continue
        fd = sock.fileno()
        if fd < 0:
            continue
        conns[fd] = conn
        poller.register(fd, select.POLLIN)
    listeners = {}
    for sock in _listening_sockets(server):
        fd = sock.fileno()
        if fd >= 0:
            listeners[fd] = sock
            poller.register(fd, select.POLLIN)
    if not conns and not listeners:
        return
    for fd, _events in poller.poll(0):
        listener = listeners.get(fd)
        if listener is not None:
            _accept(server, listener)
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:  # BlockingIOError, InterruptedError, a reset...
            continue
        if data:  # an EOF stays readable: the loop sees it once the script ends
            conns[fd].data_received(data)


def _listening_sockets(server) -> list:
    listening = getattr(server, "_server", None)
    if listening is None:
        return []
    try:
        return list(listening.sockets)
    except Exception:  # noqa: BLE001 - a closed server: nothing to accept
        return []


def _accept(server, listener) -> None:
    """Accept the pending connections of ``listener`` (non-blocking: a
    TransportSocket gives no accept(), so a duplicate descriptor does)."""
    lsock = socket.socket(listener.family, listener.type, fileno=os.dup(listener.fileno()))
    try:
        lsock.setblocking(False)
        for _ in range(64):
            try:
                sock, _addr = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock.setblocking(False)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            from ..server import Connection
            conn = Connection(server)
            transport = BusyTransport(sock)
            conn.connection_made(transport)
            asyncio.get_running_loop().call_soon(_adopt, conn, transport)
    finally:
        lsock.close()  # the duplicate only: the loop's listening socket stays open


def _adopt(conn, transport: "BusyTransport") -> None:
    """After the script: hand the socket to the loop, keeping ``conn``."""
    sock = transport.sock
    if conn.closed or transport.closing:
        transport.flush()
        sock.close()
        conn.connection_lost(None)
        return
    loop = asyncio.get_running_loop()
    loop.create_task(loop.connect_accepted_socket(lambda: _Adopter(conn, transport), sock))


class _Adopter(asyncio.Protocol):
    """Gives uvloop's transport to the Connection made while the script ran."""

    def __init__(self, conn, busy_transport: "BusyTransport"):
        self.conn = conn
        self.pending = busy_transport.buffer

    def connection_made(self, transport) -> None:
        conn = self.conn
        conn.transport = transport
        transport.set_protocol(conn)
        if self.pending:
            transport.write(bytes(self.pending))


class BusyTransport:
    """The transport of a client accepted while a script runs: writes go
    straight to the non-blocking socket (what does not fit waits for the
    next poll, or for the loop's transport)."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = bytearray()
        self.closing = False
        self._extra = {"socket": sock, "peername": _name(sock.getpeername),
                       "sockname": _name(sock.getsockname)}

    def get_extra_info(self, name, default=None):
        return self._extra.get(name, default)

    def write(self, data) -> None:
        if self.closing:
            return
        self.buffer += data
        self.flush()

    def flush(self) -> None:
        while self.buffer:
            try:
                n = self.sock.send(self.buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.buffer.clear()
                self.closing = True
                return
            del self.buffer[:n]

    def get_write_buffer_size(self) -> int:
        return len(self.buffer)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True  # the socket closes once the loop runs (_adopt)

    def abort(self) -> None:
        self.buffer.clear()
        self.closing = True


def _name(getter):
    try:
        return getter()
    except OSError:
        return None
