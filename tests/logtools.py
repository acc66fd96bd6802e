"""Reading a Fjord data dir's log from its segment files, as an outside
consumer would (no server, no FileLog): tests use it to check what was logged."""

from __future__ import annotations

import os

from streams import segment
from streams.events import Record, decode_record


def logged_records(data_dir: str) -> list[Record]:
    """Every record in ``<data_dir>/log``, in offset order; a torn tail ends
    the read."""
    log_dir = os.path.join(data_dir, "log")
    out = []
    for name in sorted(n for n in os.listdir(log_dir) if n.endswith(".log")):
        with open(os.path.join(log_dir, name), "rb") as f:
            data = f.read()
        pos = 0
        while pos < len(data):
            try:
                offset, payload, pos = segment.parse(data, pos)
            except segment.Incomplete:
                break
            out.append(decode_record(offset, payload))
    return out


def logged_events(data_dir: str) -> list:
    """Every event in ``<data_dir>/log``, in log order."""
    return [e for r in logged_records(data_dir) for e in r.events]
