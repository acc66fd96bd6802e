"""Function sink: a Lambda-style handler called in worker processes.

The handler (``module:function``, sync or async) is called with
``{"Records": [DynamoDB-Streams-shaped records]}`` (formats.py) in a worker
process (worker.py), never in the server: an exception fails the batch with
the traceback's last line; a handler that runs longer than the
subscription's timeout is killed with its process group and replaced; one
that kills its process (``os._exit``, a segfault) is replaced too. Either
way the server keeps serving and the dispatcher retries.

The pool holds up to ``concurrency`` workers (default 1), started on first
use and reused between batches, so a handler's module-level state (clients,
caches) lives across calls. Workers get ``FJORD_TRIGGER`` (the subscription
name) and ``FJORD_URL`` (``redis://host:port`` of the server) in their
environment; ``triggers.sinks.context.fjord_client()`` uses them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import subprocess
import sys
from typing import Any

import orjson

from store.saving import wait_exit
from triggers.delivery import Batch, Outcome

from . import formats

DEFAULT_TIMEOUT_MS = 30_000
DEFAULT_CONCURRENCY = 1
#: a worker must import its handler within this many seconds (or the timeout, if longer)
START_TIMEOUT_S = 20.0
WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
_LEN = struct.Struct(">I")


class WorkerGone(Exception):
    """The worker process ended (or could not start); the message says why."""


class Worker:
    """One worker process and its pipes.

    Started with ``subprocess.Popen`` (vfork), not
    ``asyncio.create_subprocess_exec``: under uvloop that is a plain fork()
    that copies the server's page tables while the event loop waits (tens to
    hundreds of ms with a big keyspace, on every worker start). The pipes are
    then handed to the loop, and the exit is awaited on a pidfd
    (``store.saving.wait_exit``), so nothing here blocks the loop."""

    def __init__(self, proc: subprocess.Popen, pipes: "_Pipes"):
        self.proc = proc
        self.reader, self.writer, self._read_transport = pipes

    @classmethod
    async def start(cls, target: str, env: dict[str, str], cwd: str | None, timeout_s: float) -> "Worker":
        proc = subprocess.Popen([sys.executable, WORKER_SCRIPT, target], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, bufsize=0, env=env, cwd=cwd, start_new_session=True)
        try:
            pipes = await _wrap_pipes(proc)
        except BaseException:
            _killpg(proc)
            proc.stdin.close()
            proc.stdout.close()
            await _exit_status(proc)
            raise
        worker = cls(proc, pipes)
        try:
            hello = await asyncio.wait_for(worker._read(), timeout_s)
        except asyncio.TimeoutError:
            await worker.kill()
            raise WorkerGone(f"worker for {target} did not start within {timeout_s:.0f} s") from None
        except BaseException:
            await worker.kill()
            raise
        if not hello.get("ready"):
            await worker.kill()
            raise WorkerGone(hello.get("error") or f"worker for {target} failed to start")
        return worker

    async def _read(self) -> dict:
        try:
            head = await self.reader.readexactly(4)
            body = await self.reader.readexactly(_LEN.unpack(head)[0])
        except (asyncio.IncompleteReadError, ConnectionError):
            code = await _exit_status(self.proc)
            raise WorkerGone(f"worker exited with code {code}") from None
        return orjson.loads(body)

    async def call(self, payload: bytes) -> dict:
        try:
            self.writer.write(_LEN.pack(len(payload)) + payload)
            await self.writer.drain()
        except (ConnectionError, BrokenPipeError):
            code = await _exit_status(self.proc)
            raise WorkerGone(f"worker exited with code {code}") from None
        return await self._read()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _close_pipes(self) -> None:
        self.writer.close()
        self.reader.feed_eof()
        self._read_transport.close()

    async def kill(self) -> None:
        """Kill the worker and anything it started (its own process group)."""
        _killpg(self.proc)
        await _exit_status(self.proc)
        self._close_pipes()

    async def stop(self, grace_s: float = 2.0) -> None:
        """Let an idle worker exit on end-of-input; kill it if it does not."""
        if self.proc.poll() is None:
            self.writer.close()
            try:
                await asyncio.wait_for(_exit_status(self.proc), grace_s)
            except asyncio.TimeoutError:
                pass
        await self.kill()


async def _exit_status(proc: subprocess.Popen) -> int:
    """The worker's exit status. Not ``wait_exit`` once ``poll()`` has reaped
    it: its pid may then belong to another process, and a pidfd opened on
    that would wait for the wrong one."""
    if proc.returncode is not None:
        return proc.returncode
    return await wait_exit(proc)


def _killpg(proc: subprocess.Popen) -> None:
    """SIGKILL the worker's process group. Only while ``poll()`` says it is
    unreaped, so its pid (= the group's id) cannot have been reused."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()


_Pipes = tuple[asyncio.StreamReader, asyncio.StreamWriter, asyncio.ReadTransport]


async def _wrap_pipes(proc: subprocess.Popen) -> _Pipes:
    """The child's stdout and stdin as asyncio streams (the transports own,
    and close, the pipe files), plus the read side's transport to close."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    read_transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), proc.stdout)
    try:
        write_transport, write_protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                                        proc.stdin)
    except BaseException:
        read_transport.close()
        raise
    writer = asyncio.StreamWriter(write_transport, write_protocol, reader, loop)
    return reader, writer, read_transport


class FunctionSink:
    """Delivers batches of one subscription to a handler in worker processes."""

    def __init__(self, sub: Any, *, fjord_url: str | None = None, source_host: str | None = None,
                 python_path: list[str] | tuple[str, ...] = (), cwd: str | None = None):
        self.subscription = sub.name
        self.target: str = sub.target
        self.timeout_s = (getattr(sub, "timeout_ms", None) or DEFAULT_TIMEOUT_MS) / 1000
        self.size = max(1, int(getattr(sub, "concurrency", None) or DEFAULT_CONCURRENCY))
        self.source_host = source_host or formats.default_source_host()
        self.cwd = cwd
        env = dict(os.environ)
        env["FJORD_TRIGGER"] = sub.name
        if fjord_url:
            env["FJORD_URL"] = fjord_url
        if python_path:
            env["PYTHONPATH"] = os.pathsep.join([*python_path, *filter(None, [env.get("PYTHONPATH")])])
        self.env = env
        self._idle: list[Worker] = []
        self._all: set[Worker] = set()
        self._slots: asyncio.Semaphore | None = None
        self.started = 0  # workers started so far (tests and stats: replacements show here)

    async def _take(self) -> Worker:
        while self._idle:
            worker = self._idle.pop()
            if worker.alive:
                return worker
            await self._drop(worker)  # reaped by ``alive``; this closes its pipes
        worker = await Worker.start(self.target, self.env, self.cwd, max(START_TIMEOUT_S, self.timeout_s))
        self.started += 1
        self._all.add(worker)
        return worker

    async def _drop(self, worker: Worker) -> None:
        self._all.discard(worker)
        await worker.kill()

    async def deliver(self, batch: Batch) -> Outcome:
        event = formats.function_event(batch, self.source_host)
        payload = orjson.dumps({"event": event, "batch_id": batch.id, "attempt": batch.attempt,
                                "timeout_ms": int(self.timeout_s * 1000),
                                "source": formats.function_arn(batch.subscription, self.source_host)})
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        async with self._slots:
            try:
                worker = await self._take()
            except WorkerGone as exc:
                return Outcome(ok=False, error=str(exc))
            except OSError as exc:
                return Outcome(ok=False, error=f"cannot start worker: {exc}")
            try:
                reply = await asyncio.wait_for(worker.call(payload), self.timeout_s)
            except asyncio.TimeoutError:
                await self._drop(worker)
                return Outcome(ok=False, error=f"timeout: {self.target} ran longer than "
                                               f"{self.timeout_s * 1000:.0f} ms; worker killed and replaced")
            except WorkerGone as exc:
                await self._drop(worker)
                return Outcome(ok=False, error=f"{exc} while running {self.target}; worker replaced")
            except asyncio.CancelledError:
                await self._drop(worker)  # a half-read reply would desynchronise the pipe
                raise
            self._idle.append(worker)
        return self._outcome(reply, batch)

    @staticmethod
    def _outcome(reply: dict, batch: Batch) -> Outcome:
        if not reply.get("ok"):
            return Outcome(ok=False, error=reply.get("error") or "handler failed")
        try:
            failed = formats.failed_ids_from_result(reply.get("result"), batch)
        except ValueError as exc:
            return Outcome(ok=False, error=f"bad batchItemFailures: {exc}")
        if failed:
            return Outcome(ok=False, failed_ids=failed, error=f"handler reported {len(failed)} failed record(s)")
        return Outcome(ok=True)

    async def close(self) -> None:
        workers, self._all, self._idle = list(self._all), set(), []
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
