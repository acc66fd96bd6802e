"""A function-sink worker process: imports one handler and calls it per batch.

Run as ``python <this file> module:function`` by triggers/sinks/function.py,
which talks to it over the process's stdin/stdout with frames of a 4-byte
big-endian length followed by JSON:

- worker -> server, once: ``{"ready": true}`` or ``{"ready": false, "error": ...}``
- server -> worker: ``{"event": {"Records": [...]}, "batch_id", "attempt",
  "timeout_ms", "source"}`` (all but the event feed the optional context)
- worker -> server: ``{"ok": true, "result": <return value>}`` or
  ``{"ok": false, "error": "<last line of the traceback>"}``

The handler runs in this process so that a crash (``os._exit``, a segfault)
or a hang takes only the worker down; the server kills and replaces it. The
protocol moves to private file descriptors before user code runs, so the
handler's ``print`` goes to stderr (the server's log) instead of corrupting
frames, and reading stdin reads nothing.

The file runs as a script, not ``-m triggers.sinks.worker``, so starting a
worker does not import the server's packages: ``sys.path[0]`` is set back to
the working directory, as ``python -m`` would have it.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import struct
import sys
import threading
import time
import traceback

import orjson

_LEN = struct.Struct(">I")


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, n - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> dict | None:
    head = _read_exact(fd, 4)
    if head is None:
        return None
    body = _read_exact(fd, _LEN.unpack(head)[0])
    return None if body is None else orjson.loads(body)


def write_frame(fd: int, doc: dict) -> None:
    body = orjson.dumps(doc)
    data = _LEN.pack(len(body)) + body
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _private_fds() -> tuple[int, int]:
    """Move the protocol off fds 0/1; point 0 at /dev/null and 1 at stderr."""
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    return proto_in, proto_out


def _exit_with_parent() -> None:
    """A hung handler never reads EOF, so watch the parent instead: when the
    server dies (even by SIGKILL) this process follows within a second."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def load_handler(target: str):
    module_name, _, attr_path = target.partition(":")
    obj = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    if not callable(obj):
        raise TypeError(f"{target} is not callable")
    return obj


class InvocationContext:
    """The second argument of a handler that takes two (``def h(event,
    context)``), named as AWS Lambda names its context, so Lambda handlers
    run unchanged."""

    def __init__(self, msg: dict):
        self.function_name = os.environ.get("FJORD_TRIGGER", "")
        self.invoked_function_arn = msg.get("source", "")
        self.aws_request_id = self.batch_id = msg.get("batch_id", "")
        self.attempt = msg.get("attempt", 1)
        self._deadline = time.monotonic() + msg.get("timeout_ms", 0) / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def takes_context(handler) -> bool:
    try:
        inspect.signature(handler).bind(None, None)
    except TypeError:
        return False
    except ValueError:  # no signature (some builtins): call with the event only
        return False
    return True


def last_line(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    return lines[-1].strip() if lines else type(exc).__name__


def serve(target: str) -> int:
    proto_in, proto_out = _private_fds()
    _exit_with_parent()
    try:
        handler = load_handler(target)
    except BaseException as exc:  # noqa: BLE001 - any import failure is reported, then we exit
        traceback.print_exc()
        write_frame(proto_out, {"ready": False, "error": f"cannot load {target}: {last_line(exc)}"})
        return 1
    with_context = takes_context(handler)
    write_frame(proto_out, {"ready": True})
    loop = asyncio.new_event_loop()  # one loop for the worker's life: async handlers may keep clients
    while True:
        msg = read_frame(proto_in)
        if msg is None:
            return 0
        try:
            if with_context:
                result = handler(msg["event"], InvocationContext(msg))
            else:
                result = handler(msg["event"])
            if inspect.isawaitable(result):
                result = loop.run_until_complete(result)
        except Exception as exc:
            traceback.print_exc()
            write_frame(proto_out, {"ok": False, "error": last_line(exc)})
            continue
        # Only a partial-failure report matters to the server; the rest of
        # the answer stays here (it need not be JSON-serialisable).
        if isinstance(result, dict) and "batchItemFailures" in result:
            result = {"batchItemFailures": result["batchItemFailures"]}
        else:
            result = None
        try:
            write_frame(proto_out, {"ok": True, "result": result})
        except TypeError as exc:
            write_frame(proto_out, {"ok": False, "error": f"batchItemFailures is not JSON: {exc}"})


if __name__ == "__main__":
    sys.path[0] = os.getcwd()
    sys.exit(serve(sys.argv[1]))
