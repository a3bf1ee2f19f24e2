"""One run of a job at a time: two cron firings that overlap must not both send.

An advisory ``flock`` on a lock file beside the job's runs: the kernel releases it when the
holder dies, however it dies, so a lock left by a killed process is never mistaken for a live one.
The file says who holds it, for the message the second run prints.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from batchrunner.errors import JobError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no overlap protection
    fcntl = None  # type: ignore[assignment]


class RunLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = None

    def acquire(self, run_dir: Path) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip()
                handle.close()
                try:
                    info = json.loads(holder)
                    who = f"pid {info['pid']} on {info['host']}, run directory {info['run_dir']}"
                except (ValueError, KeyError):
                    who = "another process"
                raise JobError(f"Another run of this job is in progress ({who}); not starting a second one.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "run_dir": str(run_dir)}))
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            if fcntl is not None:
                fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None
