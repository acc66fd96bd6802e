"""Helpers shared by the crash tests (tests/test_crash*.py)."""

from __future__ import annotations


def guarded(target, ledger):
    """Run a client thread; an exception in it fails the test (through
    ``ledger.problems``, under ``ledger.lock``), not just the thread."""
    def run(*args):
        try:
            target(*args)
        except Exception as exc:  # noqa: BLE001 - reported through the ledger
            with ledger.lock:
                ledger.problems.append(f"{target.__name__} thread crashed: {exc!r}")
    return run
