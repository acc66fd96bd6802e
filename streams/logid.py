"""Log identity: which log a snapshot (or any derived state) came from.

A snapshot is the state after the first N records *of one log*. Loaded for
another log (another topic, another cluster, a file log instead of a topic)
it would silently mix two histories: same offsets, different records. So
every log has an identity string, and the snapshot directory is bound to it
(store/snapshotter.py ``bind_to_log``):

- file log: ``file:<uuid>``, the uuid created once in ``<log dir>/LOG_ID``
  (a log dir copied elsewhere keeps its identity, as it keeps its records);
- Kafka: ``kafka:<cluster id>/<topic>`` with the cluster id the broker
  reports in its metadata (independent of the bootstrap address used to
  reach it); ``kafka:/<topic>`` when the broker reports none;
- anything else (the in-memory log of the tests): ``None``, never checked.
"""

from __future__ import annotations

import os
import uuid

ID_FILE = "LOG_ID"


def _unwrapped(log_):
    """The log under wrappers such as store/fencing.py's ``ConfirmingLog``."""
    while getattr(log_, "inner", None) is not None:
        log_ = log_.inner
    return log_


async def log_identity(log_) -> str | None:
    log_ = _unwrapped(log_)
    kafka_identity = getattr(log_, "identity", None)
    if kafka_identity is not None:  # KafkaLog.identity() asks the broker
        return await kafka_identity()
    path = getattr(log_, "path", None)
    if path is None:
        return None
    return file_log_identity(path, create=not getattr(log_, "readonly", False))


def file_log_identity(log_dir: str, create: bool = True) -> str | None:
    """``file:<uuid>`` from ``<log_dir>/LOG_ID``, created (atomically) when
    missing and ``create``; None when missing and not ``create``."""
    path = os.path.join(log_dir, ID_FILE)
    try:
        with open(path, encoding="ascii") as f:
            return "file:" + f.read().strip()
    except FileNotFoundError:
        if not create:
            return None
    value = uuid.uuid4().hex
    write_atomically(path, value + "\n")
    return "file:" + value


def write_atomically(path: str, text: str) -> None:
    """Temp file, fsync, rename, fsync the directory."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
