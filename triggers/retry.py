"""How long to wait before trying a failed event again."""

from __future__ import annotations


def backoff_seconds(schedule_ms: list[int], failures: int, retry_after: float | None = None) -> float:
    """Delay after the ``failures``-th failed attempt: the schedule's entry
    for it (its last entry once past the end), or longer if the receiver
    asked for it (``Retry-After`` on 429/503)."""
    if failures < 1:
        return 0.0
    delay = schedule_ms[min(failures - 1, len(schedule_ms) - 1)] / 1000.0
    if retry_after is not None and retry_after > delay:
        delay = retry_after
    return delay
