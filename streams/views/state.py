"""Checkpoints: a view's state and the log position it reflects, together.

Exactly-once comes from writing both in ONE file, atomically (write a
temporary file, fsync, rename over the old one, fsync the directory). After
a crash the view restarts from a state and a position that belong together:
events after the position are applied again, events before it never are.

The position is ``(offset, index)`` of the last event applied, plus
``next_offset``, the first record not yet complete (the runner checkpoints
only at record boundaries, so ``index`` is informational). A checkpoint also
carries the view's ``fingerprint``; a different fingerprint (the definition
changed) means the state is thrown away and rebuilt from the start of the
log.

Format: ``FJVIEW1\\n`` then a pickle of a dict (states are Python values
with bytes keys; pickle keeps them exact). Files are written and read only
by Fjord itself, in its own data directory.
"""

from __future__ import annotations

import os
import pickle
import time
from dataclasses import dataclass, field
from typing import Any

MAGIC = b"FJVIEW1\n"


@dataclass
class Checkpoint:
    """What a view's state file holds."""

    name: str
    fingerprint: str
    next_offset: int
    state: Any
    applied: int = 0
    time: float = field(default_factory=time.time)
    #: for partitioned runners (Kafka): partition -> next offset
    positions: dict = field(default_factory=dict)


class CheckpointStore:
    """Checkpoint files of views in one directory (``<dir>/<name>.view``)."""

    def __init__(self, directory: str):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    def path(self, name: str) -> str:
        return os.path.join(self.directory, f"{name}.view")

    def load(self, name: str) -> Checkpoint | None:
        """The stored checkpoint, or None (none yet, or unreadable: then the
        view rebuilds, which is always correct, just slower)."""
        try:
            with open(self.path(name), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        if not data.startswith(MAGIC):
            return None
        try:
            doc = pickle.loads(data[len(MAGIC):])
            return Checkpoint(**doc)
        except Exception:  # noqa: BLE001 - a bad file only costs a rebuild
            return None

    @staticmethod
    def encode(cp: Checkpoint) -> bytes:
        """Serialize now (on the caller's thread), so the state cannot change
        under a write running elsewhere."""
        return MAGIC + pickle.dumps(cp.__dict__, protocol=pickle.HIGHEST_PROTOCOL)

    def write_bytes(self, name: str, data: bytes) -> None:
        """Atomically replace the checkpoint file (blocking: run off the loop)."""
        path = self.path(name)
        tmp = f"{path}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def save(self, cp: Checkpoint) -> None:
        self.write_bytes(cp.name, self.encode(cp))

    def delete(self, name: str) -> None:
        try:
            os.unlink(self.path(name))
        except FileNotFoundError:
            pass
