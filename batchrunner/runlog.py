"""The run's log: ``RUN_DIR/run.log`` with UTC timestamps, and stderr for people and cron mail.

Everything goes through ``secrets.RedactingFilter``: a token can never reach a log line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from batchrunner.secrets import RedactingFilter

LOGGER = "batchrunner"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class UTCFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def logger() -> logging.Logger:
    log = logging.getLogger(LOGGER)
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    return log


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each line (not the one at set-up), so a
    caller that swaps stderr (a test, an orchestrator capturing output) never gets a closed file."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001
        pass


def to_stderr(level: int = logging.WARNING) -> logging.Handler:
    """Log lines at ``level`` and above to stderr (the CLI calls this once)."""
    log = logger()
    for handler in log.handlers:
        if getattr(handler, "_batchrunner_stderr", False):
            handler.setLevel(level)
            return handler
    handler = _CurrentStderr()
    handler._batchrunner_stderr = True  # type: ignore[attr-defined]
    handler.setLevel(level)
    handler.setFormatter(UTCFormatter(FORMAT))
    handler.addFilter(RedactingFilter())
    log.addHandler(handler)
    return handler


@contextlib.contextmanager
def run_log(run_dir: Path) -> Iterator[logging.Logger]:
    """Append INFO and above to ``run_dir/run.log`` while the block runs."""
    log = logger()
    path = run_dir / "run.log"
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))  # 0600 whatever the umask
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(UTCFormatter(FORMAT))
    handler.addFilter(RedactingFilter())
    log.addHandler(handler)
    try:
        yield log
    finally:
        log.removeHandler(handler)
        handler.close()
