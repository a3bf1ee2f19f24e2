"""A stop signal that arrives before the run's signal watcher is listening.

The executor's watcher (`runner._watch_signals`) handles SIGINT/SIGTERM/SIGHUP while requests are
being sent. Before that — reading a big file, validating, opening the journal, signing in — a
SIGTERM from a service manager or a closed ssh session (SIGHUP) would kill the process with the
default action: no reports, and a run directory that looks like a crash. Installed at the start
of a command, these handlers only remember the first signal; the run then stops cleanly before
its first request (exit 3, reports written, resumable). A second signal exits at once.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

_pending: str | None = None


def install(signals: list[signal.Signals]) -> None:
    """Remember the first of ``signals``; a second one exits (3) at once."""
    def handler(signum: int, frame: Any) -> None:  # noqa: ARG001
        global _pending
        if _pending is not None:
            try:
                print("\nsecond interrupt: exiting now", file=sys.stderr, flush=True)
            except (OSError, ValueError):
                pass
            os._exit(3)
        _pending = signal.Signals(signum).name

    for sig in signals:
        signal.signal(sig, handler)


def pending() -> str | None:
    """The name of a stop signal received and not yet acted on (or None)."""
    return _pending


def clear() -> None:
    global _pending
    _pending = None
