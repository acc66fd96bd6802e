"""Start-up progress: the ``loading_*`` figures of INFO persistence and the
progress shown to whoever started the server.

Recovery is two phases: apply the newest snapshot (``phase snapshot``,
counted in snapshot events), then replay the log's tail from the snapshot's
offset (``phase log``, counted in log records). ``LoadingProgress`` keeps
both counts on the server, where INFO reads them, and reports them:

- stderr is a terminal: a tqdm bar, which tqdm itself shows only once
  start-up has taken more than a second (``delay``), so quick starts stay
  quiet;
- otherwise (a service, a log file): one log line every ``LOG_EVERY``
  seconds.

Callers report every few thousand records, so this costs nothing per record.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("fjord.loading")

#: seconds between progress log lines when stderr is not a terminal
LOG_EVERY = 5.0
#: tqdm shows its bar only after start-up has taken this long (seconds)
BAR_DELAY = 1.0


class LoadingProgress:
    """Counts one start-up's progress onto ``server`` and shows it."""

    def __init__(self, server: "Server", tty: bool | None = None):
        self.server = server
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.bar = None
        self.next_log = time.monotonic() + LOG_EVERY
        server.loading_phase = "snapshot"
        server.loading_events_done = 0
        server.loading_snapshot_events = 0
        server.loading_snapshot_done = 0
        server.loading_tail_start = server.loading_offset

    # ---------------------------------------------------------- phases

    def snapshot(self, done: int, total: int) -> None:
        """``done`` of the snapshot's ``total`` events applied."""
        srv = self.server
        srv.loading_phase = "snapshot"
        srv.loading_snapshot_events = total
        srv.loading_snapshot_done = done
        srv.loading_events_done = done
        self._show()

    def log_started(self, start: int, end: int, events_before: int) -> None:
        """The tail replay from offset ``start`` to ``end`` begins."""
        srv = self.server
        srv.loading_phase = "log"
        srv.loading_offset = start
        srv.loading_tail_start = start
        srv.loading_end_offset = end
        srv.loading_events_done = events_before
        self._show()

    def log(self, done_offset: int, end: int) -> None:
        """Replay reached ``done_offset`` (the next record to apply). The
        materializer reports offsets only, so ``loading_events_done`` counts
        a tail record as one event while the tail is replayed."""
        srv = self.server
        srv.loading_offset = done_offset
        srv.loading_events_done = srv.loading_snapshot_done + done_offset - srv.loading_tail_start
        self._show()

    def close(self) -> None:
        if self.bar is not None:
            self._update_bar()
            self.bar.close()
            self.bar = None

    # ---------------------------------------------------------- display

    def units(self) -> tuple[int, int]:
        """(done, total) over both phases: snapshot events + tail records."""
        srv = self.server
        tail_start = srv.loading_tail_start
        tail_total = max(srv.loading_end_offset - tail_start, 0)
        tail_done = max(srv.loading_offset - tail_start, 0) if srv.loading_phase == "log" else 0
        return srv.loading_snapshot_done + tail_done, srv.loading_snapshot_events + tail_total

    def _show(self) -> None:
        if self.tty:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=self.units()[1] or None, desc="loading", unit=" items", unit_scale=True,
                                delay=BAR_DELAY, file=sys.stderr, leave=False, dynamic_ncols=True)
            self._update_bar()
            return
        now = time.monotonic()
        if now >= self.next_log:
            self.next_log = now + LOG_EVERY
            done, total = self.units()
            log.info("loading (%s): %d of %d (%.1f%%), %d events applied", self.server.loading_phase,
                        done, total, 100.0 * done / total if total else 0.0, self.server.loading_events_done)

    def _update_bar(self) -> None:
        done, total = self.units()
        bar = self.bar
        bar.total = total
        bar.set_description(f"loading {self.server.loading_phase}", refresh=False)
        bar.update(done - bar.n)
