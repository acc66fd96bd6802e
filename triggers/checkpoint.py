"""A subscription's durable position: ``<dir>/triggers/<name>.checkpoint``.

The checkpoint holds the lowest log offset the subscription has not finished
with (every event below it was delivered or dead-lettered), the ``created``
offset of the subscription it belongs to (a trigger deleted and created
again under the same name starts afresh), and why it is disabled, if a
receiver disabled it. Written atomically (temp file, fsync, rename, fsync
the directory); the same offset is registered with store/retention.py's
``ConsumerRegistry`` so retention keeps the log from there on.
"""

from __future__ import annotations

import os
import threading

import orjson


def triggers_dir(data_dir: str) -> str:
    return os.path.join(data_dir, "triggers")


def consumer_name(name: str) -> str:
    """The subscription's name in the retention registry."""
    return f"trigger-{name}"


class Checkpoint:
    """Load and save one subscription's checkpoint file."""

    def __init__(self, directory: str, name: str, consumers=None):
        self.directory = directory
        self.name = name
        self.path = os.path.join(directory, f"{name}.checkpoint")
        self.consumers = consumers
        self.saved: tuple | None = None
        # a save still running on a thread must not bring back a removed
        # checkpoint (or, worse, a retention hold nobody releases)
        self._lock = threading.Lock()
        self._removed = False

    def load(self) -> dict | None:
        try:
            with open(self.path, "rb") as f:
                doc = orjson.loads(f.read())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError):
            return None  # a torn file cannot happen (atomic rename); an unreadable one restarts from START
        return doc if isinstance(doc, dict) and isinstance(doc.get("offset"), int) else None

    def save_sync(self, offset: int, created: int, disabled: str | None = None) -> None:
        """Write the checkpoint durably (blocking: run it on a thread)."""
        with self._lock:
            if not self._removed:
                self._save_locked(offset, created, disabled)

    def _save_locked(self, offset: int, created: int, disabled: str | None) -> None:
        state = (offset, created, disabled)
        if state == self.saved:
            return
        os.makedirs(self.directory, exist_ok=True)
        tmp = f"{self.path}.tmp"
        with open(tmp, "wb") as f:
            f.write(orjson.dumps({"name": self.name, "offset": offset, "created": created, "disabled": disabled}))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if self.consumers is not None and (self.saved is None or self.saved[0] != offset):
            self.consumers.hold(consumer_name(self.name), offset)
        self.saved = state

    def remove_sync(self) -> None:
        """Forget the position (the trigger was deleted); later saves are ignored."""
        with self._lock:
            self._removed = True
            self._remove_locked()

    def _remove_locked(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        if self.consumers is not None:
            self.consumers.release(consumer_name(self.name))
        self.saved = None
