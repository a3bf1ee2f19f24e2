from __future__ import annotations

import textwrap
from pathlib import Path

import pytest


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(autouse=True)
def _demo_job_locks_per_test(tmp_path: Path):
    """In-process runs of the repository's own demo jobs lock in the test's folder, not in jobs/.

    The lock belongs to the job file (lock.py), so two tests running ``jobs/x.toml`` at once, as
    pytest-xdist's workers do, would refuse each other. Jobs elsewhere keep the real lock. Its own
    MonkeyPatch, so a test's ``monkeypatch.undo()`` leaves it in place.
    """
    from batchrunner import lock, runner

    demo_jobs = (Path(__file__).resolve().parents[1] / "jobs").resolve()
    real = lock.job_lock

    def job_lock(job_path: Path) -> lock.RunLock:
        resolved = Path(job_path).resolve()
        if resolved.parent == demo_jobs:
            return lock.RunLock(tmp_path / f".{resolved.name}.lock")
        return real(job_path)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner, "job_lock", job_lock)
        yield


@pytest.fixture
def write_job(tmp_path: Path):
    """Write a CSV and a job file into tmp_path; return the job file's path."""

    def write(csv: str, toml: str, name: str = "job.toml", csv_name: str = "input.csv") -> Path:
        (tmp_path / csv_name).write_text(textwrap.dedent(csv).lstrip(), encoding="utf-8")
        job = tmp_path / name
        job.write_text(textwrap.dedent(toml).lstrip(), encoding="utf-8")
        return job

    return write


# -- a real sandbox server on 127.0.0.1, as a separate process --------------------------------
import contextlib  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import httpx  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def sandbox_server(*settings: str):
    """``batchrunner sandbox`` in its own process; yields its URL. ``settings`` are KEY=VALUE."""
    port = free_port()
    args = [sys.executable, "-m", "batchrunner", "sandbox", "--port", str(port)]
    for item in settings:
        args += ["--set", item]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                httpx.get(f"{url}/services/data/", timeout=1)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sandbox did not start: {server.stderr.read() if server.stderr else ''}")
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
        ) -> subprocess.CompletedProcess[str]:
    """Run ``python -m batchrunner`` as a user would, in its own process."""
    full_env = {k: v for k, v in os.environ.items() if k != "BATCHRUNNER_FAILPOINT"}
    full_env.update({"PYTHONUNBUFFERED": "1", **(env or {})})
    return subprocess.run([sys.executable, "-m", "batchrunner", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def copy_demo_job(tmp_path: Path, job: str, csv_name: str, url: str, **limits: int) -> Path:
    """A demo job and its CSV copied into tmp_path, its connection pointed at a served sandbox."""
    (tmp_path / "data").mkdir(exist_ok=True)
    shutil.copy(REPO / "sample_data" / csv_name, tmp_path / "data" / csv_name)
    text = (REPO / "jobs" / job).read_text(encoding="utf-8")
    text = text.replace("../sample_data/", "data/").replace('output_dir = "../runs"', 'output_dir = "runs"')
    key = "instance_url" if "salesforce" in job else "base_url"
    text = text.replace("sandbox = true", f'sandbox = true\n{key} = "{url}"')
    if limits:
        text = "\n".join(line for line in text.splitlines() if line.split("=")[0].strip() not in limits)
        if "[limits]" not in text:
            text += "\n[limits]\n"
        text = text.replace("[limits]", "[limits]\n" + "\n".join(f"{k} = {v}" for k, v in limits.items()))
    path = tmp_path / job
    path.write_text(text, encoding="utf-8")
    return path
