"""Fixtures: real Fjord and real redis-server processes on free ports.

Functional tests talk to servers over real sockets. ``fjord`` is one Fjord
server for the whole session (tests get it flushed through ``r``), ``redis_srv``
a real ``redis-server`` (Debian package) for differential tests, and ``diff``
sends the same command to both over raw sockets and asserts the reply bytes
are identical.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


#: the Tansu broker fixture (``broker``, one per test session) for the Kafka-backend tests
pytest_plugins = ["kafkakit"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns something true (returned) or
    ``timeout`` seconds pass (AssertionError naming ``what``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not met within {timeout} s")


def wait_ready(port: int, proc: subprocess.Popen | None = None, timeout: float = 20.0, password=None) -> None:
    """Wait until the server answers PING with PONG (not -LOADING)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if password:
                    s.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(password), password.encode()))
                    s.recv(100)
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                last = s.recv(100)
                if last.startswith(b"+PONG"):
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"server on port {port} not ready: {last!r}")


class FjordProcess:
    """A ``fjord serve`` child process on its own port and data dir."""

    def __init__(self, data_dir: str, port: int | None = None, args: tuple[str, ...] = ()):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.args = list(args)
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(os.path.dirname(data_dir.rstrip("/")) or ".",
                                     f"fjord-{os.path.basename(data_dir.rstrip('/'))}.log")

    def start(self, wait: bool = True, password: str | None = None) -> "FjordProcess":
        self.logfile = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "store", "serve", "--port", str(self.port), "--data-dir", self.data_dir,
             *self.args],
            cwd=ROOT, stdout=self.logfile, stderr=subprocess.STDOUT,
        )
        if wait:
            wait_ready(self.port, self.proc, password=password)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> int:
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=30)
        self.logfile.close()
        return rc

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        return self.kill(signal.SIGTERM)

    def restart(self, sig: int = signal.SIGKILL, **kw) -> "FjordProcess":
        self.kill(sig)
        return self.start(**kw)

    def client(self, **kw) -> redis.Redis:
        return redis.Redis(port=self.port, **kw)

    def output(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


class RedisProcess:
    """A real redis-server (Debian's package) for side-by-side tests."""

    def __init__(self, args: tuple[str, ...] = ()):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="redis-ref-")
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run .ci/run or `apt-get install redis-server redis-tools`")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--save", "", "--appendonly", "no", "--dir", self.dir,
             "--daemonize", "no", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_ready(self.port, self.proc)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- raw RESP


class RawClient:
    """A socket that sends commands and returns each reply's exact bytes."""

    def __init__(self, port: int, timeout: float = 10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        self.buf += chunk

    def _line(self, pos: int) -> tuple[bytes, int]:
        while True:
            i = self.buf.find(b"\r\n", pos)
            if i >= 0:
                return self.buf[pos:i], i + 2
            self._fill()

    def _skip(self, pos: int) -> int:
        line, pos = self._line(pos)
        t, rest = line[:1], line[1:]
        if t in b"+-:_,#(":
            return pos
        if t in b"$=!":
            n = int(rest)
            if n < 0:
                return pos
            while len(self.buf) < pos + n + 2:
                self._fill()
            return pos + n + 2
        if t in b"*~>":
            n = int(rest)
            for _ in range(max(n, 0)):
                pos = self._skip(pos)
            return pos
        if t == b"%" or t == b"|":
            n = int(rest)
            for _ in range(2 * n):
                pos = self._skip(pos)
            if t == b"|":  # attribute: the reply follows
                pos = self._skip(pos)
            return pos
        raise ValueError(f"bad reply line {line!r}")

    def read_reply(self) -> bytes:
        end = self._skip(0)
        out, self.buf = self.buf[:end], self.buf[end:]
        return out

    def call(self, *args) -> bytes:
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(parts))
        return self.read_reply()


class Differ:
    """Runs each command on Fjord and on redis-server; replies must match."""

    def __init__(self, fjord_port: int, redis_port: int):
        self.f = RawClient(fjord_port)
        self.r = RawClient(redis_port)

    def __call__(self, *args) -> bytes:
        got, want = self.f.call(*args), self.r.call(*args)
        assert got == want, f"{args!r}: fjord {got!r} != redis {want!r}"
        return got

    def run_all(self, *commands) -> None:
        """Run each command (a tuple of arguments) on both; all must match."""
        for cmd in commands:
            self(*cmd)

    def resp3(self) -> None:
        """Switch both connections to RESP3 (HELLO 3 answers a map on both)."""
        got, want = self.both("HELLO", "3")
        assert want.startswith(b"%") and got.startswith(b"%"), (got, want)

    def both(self, *args) -> tuple[bytes, bytes]:
        """Run on both without asserting (for replies that differ by design)."""
        return self.f.call(*args), self.r.call(*args)

    def close(self) -> None:
        self.f.close()
        self.r.close()


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def fjord(tmp_path_factory):
    """One Fjord server for the session; use ``r`` to get it flushed."""
    d = tmp_path_factory.mktemp("fjord-shared")
    server = FjordProcess(str(d / "data")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_srv():
    server = RedisProcess()
    yield server
    server.stop()


@pytest.fixture
def r(fjord):
    """A redis-py client on the shared Fjord server, databases flushed."""
    client = fjord.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def rr(redis_srv):
    client = redis.Redis(port=redis_srv.port)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def diff(fjord, redis_srv):
    """Differential runner: ``diff("SET", "k", "v")`` asserts equal bytes."""
    redis.Redis(port=fjord.port).flushall()
    redis.Redis(port=redis_srv.port).flushall()
    d = Differ(fjord.port, redis_srv.port)
    yield d
    d.close()


@pytest.fixture
def new_fjord(tmp_path):
    """Factory for private Fjord servers (restart, crash, corruption tests)."""
    servers = []

    def make(*args: str, name: str = "data", start: bool = True) -> FjordProcess:
        s = FjordProcess(str(tmp_path / name), args=tuple(args))
        servers.append(s)
        return s.start() if start else s

    yield make
    for s in servers:
        if s.proc is not None and s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
