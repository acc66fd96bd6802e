"""Dead letters: ``<dir>/triggers/<name>.dlq``, one JSON line per event.

An event whose retries are exhausted (or that is older than the maximum
age) is appended here, fsynced, and only then counted as done, so an event
is never silently dropped. Each line holds the delivery record as the sink
saw it (same ``id``), the last error, the attempts and when it was
dead-lettered. ``read`` shows them; ``take_for_redrive`` moves the file to
``<name>.dlq.redrive`` and returns its entries for the dispatcher to deliver
again (an entry failing again is dead-lettered again); the ``.redrive`` file
is removed once all of them are done, and re-driven after a crash.
"""

from __future__ import annotations

import os

import orjson


class DeadLetters:
    """One subscription's dead-letter file."""

    def __init__(self, directory: str, name: str):
        self.directory = directory
        self.path = os.path.join(directory, f"{name}.dlq")
        self.redrive_path = self.path + ".redrive"

    def append_sync(self, entries: list[dict]) -> None:
        """Append and fsync (blocking: run it on a thread)."""
        if not entries:
            return
        os.makedirs(self.directory, exist_ok=True)
        new = not os.path.exists(self.path)
        with open(self.path, "ab") as f:
            f.write(b"".join(orjson.dumps(e) + b"\n" for e in entries))
            f.flush()
            os.fsync(f.fileno())
        if new:
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    @staticmethod
    def _read(path: str) -> list[dict]:
        try:
            with open(path, "rb") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue  # a torn last line (crash mid-append): that entry was never counted done
        return out

    def read(self, count: int | None = None) -> list[dict]:
        """Dead letters, oldest first (at most ``count``)."""
        entries = self._read(self.path)
        return entries if count is None else entries[:count]

    def count(self) -> int:
        return len(self._read(self.path))

    def pending_redrive(self) -> list[dict]:
        """Entries of a redrive a crash interrupted."""
        return self._read(self.redrive_path)

    def take_for_redrive(self) -> list[dict]:
        """Move the dead letters aside for a redrive and return them (with
        those of an unfinished earlier redrive)."""
        if os.path.exists(self.path):
            if os.path.exists(self.redrive_path):
                with open(self.path, "rb") as src, open(self.redrive_path, "ab") as dst:
                    dst.write(src.read())
                    dst.flush()
                    os.fsync(dst.fileno())
                os.unlink(self.path)
            else:
                os.replace(self.path, self.redrive_path)
        return self._read(self.redrive_path)

    def finish_redrive(self) -> None:
        try:
            os.unlink(self.redrive_path)
        except FileNotFoundError:
            pass

    def retire_sync(self) -> None:
        """The trigger was deleted: keep its dead letters under another name."""
        import time

        for path in (self.path, self.redrive_path):
            if os.path.exists(path):
                os.replace(path, f"{path}.deleted-{int(time.time())}")
