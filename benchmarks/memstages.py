"""Where a big run's memory goes: peak RSS per stage (Linux only). Not part of the test suite.

    python benchmarks/memstages.py 1000000            # in-process sandbox
    python benchmarks/memstages.py 1000000 --served   # the sandbox served by a second process
    python benchmarks/memstages.py 1000000 --prepare  # load, validate and plan only

Each stage's peak is measured on its own: the kernel's high-water mark (VmHWM) is reset before the
stage (``/proc/self/clear_refs``, value 5) and read after it, so a stage's line is the most the
process held while that stage ran, whatever earlier stages left behind ("held" is the RSS after it).
"""

from __future__ import annotations

import functools
import json
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import served_sandbox, write_big_input  # noqa: E402

STAGES: list[dict] = []


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) // 1024
    return 0


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _measured(name: str, fn):
    """``fn`` wrapped so each call records (stage, peak MB, MB held after, seconds)."""
    if getattr(fn, "__wrapped_stage__", None):
        return fn

    def record(started: float) -> None:
        STAGES.append({"stage": name, "peak_mb": _status("VmHWM"), "held_mb": _status("VmRSS"),
                       "seconds": round(time.monotonic() - started, 2)})

    if anyio_is_coroutine(fn):
        @functools.wraps(fn)
        async def wrapper_async(*args, **kwargs):
            _reset_peak()
            started = time.monotonic()
            try:
                return await fn(*args, **kwargs)
            finally:
                record(started)
        wrapper_async.__wrapped_stage__ = True  # type: ignore[attr-defined]
        return wrapper_async

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _reset_peak()
        started = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            record(started)
    wrapper.__wrapped_stage__ = True  # type: ignore[attr-defined]
    return wrapper


def anyio_is_coroutine(fn) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)


def instrument() -> None:
    """Wrap the pipeline's stages where the runner calls them."""
    from batchrunner import execute, journal, runner, snapshot

    patches = [
        (runner, "load_input", "load"), (runner, "apply_mappings", "mappings"), (runner, "validate", "validate"),
        (runner, "plan", "plan"), (snapshot, "save", "snapshot.save"),
        (execute.Executor, "run", "execute"), (journal.Journal, "states", "journal.states"),
        (runner, "write_reports", "reports (csv, summary, xlsx, html)"),
    ]
    for owner, attr, name in patches:
        if hasattr(owner, attr):
            setattr(owner, attr, _measured(name, getattr(owner, attr)))


def main(rows: int, served: bool, prepare_only: bool = False) -> None:
    instrument()
    from batchrunner.job import load_job
    from batchrunner.runner import prepare, run_prepared

    with served_sandbox(served, port=18766) as url, tempfile.TemporaryDirectory() as tmp:
        job = write_big_input(Path(tmp), rows, url)
        base = _status("VmRSS")
        started = time.monotonic()
        prepared = prepare(load_job(job))
        STAGES.append({"stage": "(prepared held)", "held_mb": _status("VmRSS")})
        if not prepare_only:
            anyio.run(lambda: run_prepared(prepared, output_dir=Path(tmp), progress=False))
        elapsed = time.monotonic() - started
    import resource

    print(json.dumps({"rows": rows, "start_mb": base, "seconds": round(elapsed, 1),
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
    for stage in STAGES:
        print(json.dumps(stage))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000, "--served" in sys.argv, "--prepare" in sys.argv)
