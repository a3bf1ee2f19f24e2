"""The run, end to end: job -> source -> validate -> plan -> execute -> report.

This is the library the CLI is a thin skin over; tests call it directly. Each stage lives in its
own module and is testable alone; this module only wires them and owns the run directory.
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import polars as pl

from batchrunner import __version__, failpoints, runlog, secrets
from batchrunner.auth import AuthError
from batchrunner.clock import Clock
from batchrunner.execute import ExecStats, Executor, RetryPolicy
from batchrunner.errors import JobError
from batchrunner.job import Job, load_job
from batchrunner.lock import RunLock
from batchrunner.journal import DONE, IN_FLIGHT, PENDING, Journal, utc_now
from batchrunner.mappings import apply_mappings, overlay
from batchrunner.outcome import Status
from batchrunner.plan import Plan, plan
from batchrunner.platforms import get_platform
from batchrunner.ratelimit import RateLimiter
from batchrunner.report import exit_code_for, write_reports
from batchrunner.rows import FrameRows
from batchrunner.source import LoadedInput, file_sha256, load_input, read_csv
from batchrunner.validate import CODE, IDX, MESSAGE, OP, check_job, validate

SANDBOX_BASE = "http://sandbox.local"
FAIL_ON = ("invalid", "failed", "never")


def fail_on_code(code: int, counts: dict[str, int], fail_on: str = "invalid") -> int:
    """``--fail-on``: which row outcomes make the exit code 1. ``invalid`` (default): failed or
    invalid rows; ``failed``: failed rows only; ``never``: none. 2 and 3 are never masked."""
    if code != 1 or fail_on == "invalid":
        return code
    if fail_on == "failed":
        return 1 if counts.get(Status.FAILED.value, 0) else 0
    return 0


@dataclass
class Prepared:
    """Everything known before the first request: the checked job, its rows and the plan."""

    job: Job
    platform: Any
    loaded: LoadedInput
    validated: pl.DataFrame
    plan: Plan
    target: str  # what it will talk to, for the first line of output
    sync: Any = None  # mode = "sync": the sync.SyncDiff against the last runs

    @property
    def invalid(self) -> pl.DataFrame:
        return self.validated.filter(pl.col(CODE).is_not_null())


def prepare(job: Job, input_path: Path | None = None) -> Prepared:
    """Check the job, read and validate the input, plan the requests. Sends nothing.
    Raises ``JobError`` (exit 2) for anything that stops the job."""
    platform = get_platform(job.platform)
    catalog = platform.catalog_for(job)
    version = platform.api_version(job)
    api_version = float(version) if version else None
    check_job(job, catalog, api_version)
    _, _, target = platform.endpoint(job)  # credentials are checked before anything is read
    loaded = load_input(job, input_path)
    loaded, problems = apply_mappings(job, loaded)  # [mappings]: lookup joins (mappings.py)
    validated = overlay(validate(loaded, catalog, api_version), problems)
    sizes = {op.name: platform.rows_per_request(job, op.name) for op in catalog.operations}
    if job.mode == "sync":  # recurring lists: rows unchanged since the last run are not sent (sync.py)
        from batchrunner.sync import diff_for

        diff = diff_for(job, loaded, validated)
        the_plan = plan(validated, catalog, sizes, only=diff.to_send)
        return Prepared(job, platform, loaded, validated, the_plan, target, sync=diff)
    return Prepared(job, platform, loaded, validated, plan(validated, catalog, sizes), target)


def new_run_dir(output_dir: Path, name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = output_dir / (f"{name}-{stamp}" if n == 1 else f"{name}-{stamp}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError("could not create a run directory")


@dataclass
class RunResult:
    run_dir: Path
    exit_code: int
    summary: dict[str, Any]
    stats: ExecStats = field(default_factory=ExecStats)


def _client_factory(job: Job, app: Any | None):
    def make(base_url: str | None, headers: dict[str, str]) -> httpx.AsyncClient:
        timeout = httpx.Timeout(job.limits.timeout)
        limits = httpx.Limits(max_connections=job.limits.concurrency + 2)
        headers = {**headers, "User-Agent": f"batchrunner/{__version__}"}
        if job.is_sandbox and base_url is None:
            from batchrunner.sandbox.factory import build_sandbox

            transport = httpx.ASGITransport(app=app if app is not None else build_sandbox(job.sandbox))
            return httpx.AsyncClient(base_url=SANDBOX_BASE, headers=headers, transport=transport, timeout=timeout)
        return httpx.AsyncClient(base_url=base_url or "", headers=headers, timeout=timeout, limits=limits)

    return make


def lock_for(output_dir: Path, job_name: str) -> RunLock:
    return RunLock(output_dir / f".{job_name}.lock")


async def run_prepared(
    prepared: Prepared,
    *,
    output_dir: Path | None = None,
    dry_run: bool = False,
    sandbox_app: Any | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    progress: bool | None = None,
    handle_signals: bool = False,
    fail_on: str = "invalid",
) -> RunResult:
    """Start a new run of a prepared job: a run directory, a journal holding every row, then send."""
    job, loaded, validated = prepared.job, prepared.loaded, prepared.validated
    out = Path(output_dir) if output_dir else job.output_dir
    lock = lock_for(out, job.name)
    run_dir = new_run_dir(out, job.name)
    try:
        lock.acquire(run_dir)
    except BaseException:
        run_dir.rmdir()
        raise
    journal = Journal(run_dir / "journal.sqlite")
    log_scope = runlog.run_log(run_dir)
    log = log_scope.__enter__()
    log.info("run %s started: %s %s (%s), input %s", run_dir.name, "SANDBOX" if job.is_sandbox else "LIVE",
             job.platform, prepared.target, loaded.path)
    try:
        journal.set_meta(job_path=str(job.path), job_name=job.name, platform=job.platform,
                         input_path=str(loaded.path), input_sha256=loaded.sha256, created_at=utc_now(),
                         sandbox=job.is_sandbox, version=__version__, output_dir=str(out))
        journal.add_rows(validated.height)
        if job.mode == "sync":  # under the lock: fold earlier runs, diff, journal the unchanged rows (sync.py)
            from batchrunner import sync

            sandbox_app = sync.shared_app(job, sandbox_app)
            prepared = sync.start(prepared, out, run_dir, journal, dry_run)
        invalid = prepared.invalid
        journal.finish_columns(invalid[IDX].to_list(), [Status.INVALID.value] * invalid.height,
                               invalid[CODE].to_list(), invalid[MESSAGE].to_list())
        journal.finish(prepared.plan.duplicates)
        result = await _send_and_report(prepared, prepared.plan, run_dir, journal, dry_run=dry_run,
                                        sandbox_app=sandbox_app, clock=clock, rng=rng, progress=progress,
                                        handle_signals=handle_signals, fail_on=fail_on)
        if prepared.sync is not None:  # removals of people who left the list, state update
            result = await sync.finish(prepared, result, run_dir, dry_run=dry_run, sandbox_app=sandbox_app,
                                       clock=clock, rng=rng, progress=progress)
        return result
    finally:
        log_scope.__exit__(None, None, None)
        journal.close()
        lock.release()


async def _send_and_report(prepared: Prepared, the_plan: Plan, run_dir: Path, journal: Journal, *,
                           dry_run: bool = False, sandbox_app: Any | None = None, clock: Clock | None = None,
                           rng: random.Random | None = None, progress: bool | None = None,
                           handle_signals: bool = False, resumed: bool = False, fail_on: str = "invalid"
                           ) -> RunResult:
    job, loaded = prepared.job, prepared.loaded
    started = time.monotonic()
    started_at = utc_now()
    stats = ExecStats()
    if dry_run:
        stats.stopped = ("DRY_RUN", "--dry-run: nothing was sent")
    elif the_plan.requests:
        failpoints.hit("run.before_send")
        stats = await _execute(prepared, the_plan, journal, sandbox_app, clock, rng, progress, handle_signals)
    if stats.stopped is not None:
        stats.stopped = (stats.stopped[0], secrets.redact(stats.stopped[1]))
        level = logging.INFO if stats.stopped[0] == "DRY_RUN" else logging.WARNING
        logging.getLogger("batchrunner.run").log(level, "stopped early: %s: %s", *stats.stopped)
    summary = {
        "job": job.name, "job_file": str(job.path), "platform": job.platform,
        "target": "sandbox" if job.is_sandbox else "live", "mode": "SANDBOX" if job.is_sandbox else "LIVE",
        "endpoint": prepared.target, "auth_method": None if job.is_sandbox else _auth_method(job),
        "input_file": str(loaded.path), "input_sha256": loaded.sha256, "resumed": resumed,
        "requests_sent": stats.requests, "retries": stats.retries, "responses_429": stats.responses_429,
        "transport_errors": stats.transport_errors, "batch_splits": stats.splits,
        "http_statuses": {str(k): v for k, v in sorted(stats.status_counts.items())},
        "rate_limit_wait_seconds": round(stats.rate_wait, 3), "api_usage": stats.api_usage,
        "stopped": None if stats.stopped is None else {"code": stats.stopped[0], "message": stats.stopped[1]},
        "started_at": started_at, "finished_at": utc_now(),
        "duration_seconds": round(time.monotonic() - started, 3), "batchrunner_version": __version__,
    }
    rows = journal.frame()
    counts = journal.counts(rows)
    if dry_run:
        code = 1 if counts.get("invalid") else 0
    else:
        code = exit_code_for(counts, stats.stopped is not None)
    code = fail_on_code(code, counts, fail_on)
    summary["exit_code"] = code
    summary = write_reports(run_dir, loaded.frame, rows, prepared.validated[OP], summary, stats.stopped)
    logging.getLogger("batchrunner.run").info(
        "run finished: %s; exit %s", ", ".join(f"{n} {k}" for k, n in summary.get("counts", {}).items() if n)
        or "no rows", code)
    return RunResult(run_dir, code, summary, stats)


async def _execute(prepared: Prepared, the_plan: Plan, journal: Journal, sandbox_app: Any | None,
                   clock: Clock | None, rng: random.Random | None, progress: bool | None,
                   handle_signals: bool) -> ExecStats:
    job = prepared.job
    try:
        session = await prepared.platform.open_session(job, _client_factory(job, sandbox_app))
    except (AuthError, JobError) as exc:  # credentials refused: nothing was sent; resumable (exit 3)
        return ExecStats(stopped=("AUTH_FAILED", secrets.redact(exc)))
    prepared.target = getattr(session, "target", None) or prepared.target
    try:
        limiter = RateLimiter(prepared.platform.budget_per_minute(job), clock=clock, rng=rng,
                              window_kind=job.limits.rate_window, margin=max(0, job.limits.concurrency - 1))
        fields = [c for c in prepared.validated.columns if not c.startswith("__") and c != OP]
        executor = Executor(
            session, FrameRows(prepared.validated, fields), journal, limiter,
            concurrency=job.limits.concurrency,
            policy=RetryPolicy(job.limits.max_attempts, job.limits.backoff_base, job.limits.backoff_max),
            clock=clock, rng=rng, progress=progress,
        )
        async with anyio.create_task_group() as tg:
            if handle_signals:
                tg.start_soon(_watch_signals, executor, tg.cancel_scope)
            await executor.run(the_plan.waves, the_plan.rows_to_send)
            tg.cancel_scope.cancel()
        stats = executor.stats  # also when a stop's grace period cancelled requests in flight
        stats.rate_wait = limiter.waited
        if limiter.api_limit is not None:
            stats.api_usage = {"used": limiter.api_used, "limit": limiter.api_limit}
        return stats
    finally:
        await session.aclose()


GRACE_SECONDS = 30.0  # how long a stop waits for requests already in flight


async def _watch_signals(executor: Executor, scope: anyio.CancelScope) -> None:
    """First SIGINT/SIGTERM: stop sending, let in-flight requests finish (bounded), then report.
    Second: leave at once (the journal is consistent: every outcome was committed as it came)."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if executor.stopping:
                print("\nsecond interrupt: exiting now; `batchrunner resume` continues from the journal",
                      file=sys.stderr, flush=True)
                os._exit(3)
            name = signal.Signals(signum).name
            print(f"\n{name}: finishing requests in flight, then writing the reports (again to quit now)",
                  file=sys.stderr, flush=True)
            executor.request_stop("INTERRUPTED", f"stopped by {name}")
            scope.deadline = anyio.current_time() + GRACE_SECONDS


def resume(run_dir: Path, *, allow_changed_input: bool = False, sandbox_app: Any | None = None,
           clock: Clock | None = None, progress: bool | None = None, handle_signals: bool = False,
           fail_on: str = "invalid") -> RunResult:
    return anyio.run(lambda: resume_async(run_dir, allow_changed_input=allow_changed_input, sandbox_app=sandbox_app,
                                          clock=clock, progress=progress, handle_signals=handle_signals,
                                          fail_on=fail_on))


def open_run_journal(run_dir: Path) -> Journal:
    """The journal of an earlier run, or a JobError (exit 2) saying the directory is not a run."""
    if not (run_dir / "journal.sqlite").is_file():
        raise JobError(f"{run_dir} is not a run directory (it has no journal.sqlite).")
    return Journal(run_dir / "journal.sqlite")


async def resume_async(run_dir: Path, *, allow_changed_input: bool = False, sandbox_app: Any | None = None,
                       clock: Clock | None = None, progress: bool | None = None,
                       handle_signals: bool = False, fail_on: str = "invalid") -> RunResult:
    """Finish a run that stopped. Rows with an outcome are never sent again; rows that were in
    flight are checked by the platform session before anything is re-sent."""
    run_dir = Path(run_dir)
    journal = open_run_journal(run_dir)
    try:
        meta = journal.meta()
        job = load_job(meta["job_path"])
        input_path = Path(meta["input_path"])
        if not input_path.is_file():
            raise JobError(f"The run's input file is gone: {input_path}")
        if file_sha256(input_path) != meta["input_sha256"] and not allow_changed_input:
            raise JobError(f"The input file {input_path} changed since this run started (sha256 differs); the "
                           "journal's row numbers may no longer match. Use --allow-changed-input to go on anyway.")
        lock = lock_for(Path(meta.get("output_dir") or run_dir.parent), job.name)
        lock.acquire(run_dir)
        try:
            prepared = prepare(job, input_path)
            if prepared.validated.height != journal.row_count():
                raise JobError("The input no longer has the journal's rows; it cannot be resumed.")
            rows = journal.frame()
            pending = set(rows.filter(pl.col("state") == PENDING)["idx"].to_list())
            in_flight = rows.filter(pl.col("state") == IN_FLIGHT)
            unsure = set(in_flight["idx"].to_list())
            attempts = dict(in_flight.select("idx", "attempts").iter_rows())
            catalog = prepared.platform.catalog_for(job)
            sizes = {op.name: prepared.platform.rows_per_request(job, op.name) for op in catalog.operations}
            the_plan = plan(prepared.validated, catalog, sizes, only=pending | unsure)
            journal.finish([d for d in the_plan.duplicates])
            for wave in the_plan.waves:
                for i, unit in enumerate(wave):
                    mine = frozenset(unit.rows) & unsure
                    if mine:
                        wave[i] = unit.part(unit.rows, unsure=mine, attempts=max(attempts[r] for r in mine))
            with runlog.run_log(run_dir) as log:
                log.info("resuming %s: %s %s (%s)", run_dir.name, "SANDBOX" if job.is_sandbox else "LIVE",
                         job.platform, prepared.target)
                return await _send_and_report(prepared, the_plan, run_dir, journal, sandbox_app=sandbox_app,
                                              clock=clock, progress=progress, handle_signals=handle_signals,
                                              resumed=True, fail_on=fail_on)
        finally:
            lock.release()
    finally:
        journal.close()


def retry_rows(run_dir: Path) -> tuple[Path, Path]:
    """Write the earlier run's failed and not_attempted rows as a new input file; return
    (job path, input path) for a new run over them."""
    run_dir = Path(run_dir)
    journal = open_run_journal(run_dir)
    try:
        meta = journal.meta()
        rows = journal.frame().filter((pl.col("state") != DONE) | (pl.col("status") == Status.FAILED.value))["idx"].to_list()
    finally:
        journal.close()
    job = load_job(meta["job_path"])
    if job.mode == "sync":  # a retry file lacks everyone else: as a sync input it would "remove" them
        raise JobError(f"{job.path.name} is a sync job: its next `batchrunner run` sends the rows that failed "
                       "again (only succeeded rows count as enrolled); retry is not needed.")
    frame = read_csv(Path(meta["input_path"]), job.encoding, job.delimiter)
    if not rows:
        raise JobError(f"Nothing to retry: every row of {run_dir} succeeded or was skipped.")
    subset = frame[rows]
    target = run_dir / "retry-input.csv"
    subset.write_csv(target)
    return Path(meta["job_path"]), target


def estimate_seconds(prepared: Prepared, latency: float = 1.0) -> float:
    """A rough duration at the configured limits: requests spread over the concurrency, and no
    faster than the per-minute budget allows."""
    job = prepared.job
    requests = prepared.plan.requests
    by_concurrency = math.ceil(requests / job.limits.concurrency) * latency
    budget = prepared.platform.budget_per_minute(job)
    by_budget = requests / budget * 60 if budget else 0.0
    return max(by_concurrency, by_budget)


def _auth_method(job: Job) -> str:
    default = {"salesforce": "env", "outreach": "oauth"}.get(job.platform, "api_key")
    return str(job.connection.auth.get("method", default))
