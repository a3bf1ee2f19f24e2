"""One run of a job at a time: two cron firings that overlap must not both send.

The lock belongs to the *job*, not to where its runs are written: two runs of one job file with
different ``--output-dir`` would otherwise both send (every row applied twice). A job's identity
is its job file's resolved path; the lock file sits beside it (``jobs/.weekly.toml.lock``), or,
when that folder is read-only, in the user's state folder under a name derived from that path.

An advisory ``flock``: the kernel releases it when the holder dies, however it dies, so a lock
left by a killed process is never mistaken for a live one. The file says who holds it, for the
message the second run prints. It is created 0600 (it names a run directory).
"""

from __future__ import annotations

import hashlib
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
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        handle = open(fd, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
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
        self.handle = handle
        self.describe(run_dir)

    def describe(self, run_dir: Path) -> None:
        """Say who holds the lock (this process, and its run directory once it has one)."""
        if self.handle is None:
            return
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "run_dir": str(run_dir)}))
        self.handle.flush()

    def release(self) -> None:
        if self.handle is not None:
            if fcntl is not None:
                fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def state_dir() -> Path:
    """Where batchrunner keeps per-user state that belongs to no run directory."""
    if override := os.environ.get("BATCHRUNNER_STATE_DIR"):
        return Path(override)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "batchrunner"


def job_lock(job_path: Path) -> RunLock:
    """The lock of the job whose file is ``job_path``, wherever its runs are written."""
    resolved = Path(job_path).resolve()
    beside = resolved.parent / f".{resolved.name}.lock"
    if os.access(resolved.parent, os.W_OK) or beside.exists():
        return RunLock(beside)
    digest = hashlib.sha256(str(resolved).encode("utf-8")).hexdigest()[:16]
    return RunLock(state_dir() / "locks" / f"{resolved.stem}-{digest}.lock")
