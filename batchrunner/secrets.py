"""Secrets stay in memory: every token, key or client secret batchrunner reads or receives is
registered here, and everything it writes for people (logs, error messages, summary.json) goes
through ``redact`` first. Secrets are only ever read from environment variables or named files;
a job file holds the *names* of those, never the values.
"""

from __future__ import annotations

import logging
import threading

MASK = "[REDACTED]"
_MIN_LENGTH = 6  # shorter values would mask ordinary words; no real credential is this short
_lock = threading.Lock()
_secrets: set[str] = set()


def register(value: str | None) -> str | None:
    """Remember ``value`` as a secret (returns it unchanged, for inline use)."""
    if value and len(value) >= _MIN_LENGTH:
        with _lock:
            _secrets.add(value)
    return value


def redact(text: object) -> str:
    """``text`` as a string with every registered secret replaced by a mask."""
    out = str(text)
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in out:
            out = out.replace(secret, MASK)
    return out


def forget_all() -> None:
    """Tests only."""
    with _lock:
        _secrets.clear()


class RedactingFilter(logging.Filter):
    """A logging filter that renders the message and masks secrets in it (and in exceptions)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            import traceback

            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True
