"""The run, end to end: job -> source -> validate -> plan -> execute -> report.

This is the library the CLI is a thin skin over; tests call it directly. Each stage lives in its
own module and is testable alone; this module only wires them and owns the run directory.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import polars as pl

from batchrunner import __version__
from batchrunner.clock import Clock
from batchrunner.execute import ExecStats, Executor, RetryPolicy
from batchrunner.job import Job
from batchrunner.journal import Journal, utc_now
from batchrunner.outcome import RowOutcome, Status
from batchrunner.plan import Plan, plan
from batchrunner.platforms import get_platform
from batchrunner.ratelimit import RateLimiter
from batchrunner.report import exit_code_for, write_reports
from batchrunner.rows import FrameRows
from batchrunner.source import LoadedInput, load_input
from batchrunner.validate import CODE, IDX, MESSAGE, OP, check_job, validate

SANDBOX_BASE = "http://sandbox.local"


@dataclass
class Prepared:
    """Everything known before the first request: the checked job, its rows and the plan."""

    job: Job
    platform: Any
    loaded: LoadedInput
    validated: pl.DataFrame
    plan: Plan
    target: str  # what it will talk to, for the first line of output

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
    validated = validate(loaded, catalog, api_version)
    sizes = {op.name: platform.rows_per_request(job, op.name) for op in catalog.operations}
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


async def run_prepared(
    prepared: Prepared,
    *,
    output_dir: Path | None = None,
    dry_run: bool = False,
    sandbox_app: Any | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    progress: bool | None = None,
) -> RunResult:
    job, loaded, validated, the_plan = prepared.job, prepared.loaded, prepared.validated, prepared.plan
    started = time.monotonic()
    started_at = utc_now()
    run_dir = new_run_dir(Path(output_dir) if output_dir else job.output_dir, job.name)
    journal = Journal(run_dir / "journal.sqlite")
    try:
        journal.set_meta(job_path=str(job.path), job_name=job.name, platform=job.platform,
                         input_path=str(loaded.path), input_sha256=loaded.sha256, created_at=started_at,
                         sandbox=job.is_sandbox, version=__version__)
        journal.add_rows(validated.select(IDX, OP).iter_rows())
        invalid = prepared.invalid.select(IDX, CODE, MESSAGE).iter_rows()
        journal.finish([RowOutcome(i, Status.INVALID, c, m) for i, c, m in invalid])
        journal.finish(the_plan.duplicates)
        stats = ExecStats()
        if dry_run:
            stats.stopped = ("DRY_RUN", "--dry-run: nothing was sent")
        elif the_plan.requests:
            stats = await _execute(prepared, journal, sandbox_app, clock, rng, progress)
        summary = {
            "job": job.name, "job_file": str(job.path), "platform": job.platform,
            "target": "sandbox" if job.is_sandbox else "live", "endpoint": prepared.target,
            "input_file": str(loaded.path), "input_sha256": loaded.sha256,
            "requests_sent": stats.requests, "retries": stats.retries, "responses_429": stats.responses_429,
            "transport_errors": stats.transport_errors, "batch_splits": stats.splits,
            "http_statuses": {str(k): v for k, v in sorted(stats.status_counts.items())},
            "rate_limit_wait_seconds": round(getattr(stats, "rate_wait", 0.0), 3),
            "api_usage": getattr(stats, "api_usage", None),
            "stopped": None if stats.stopped is None else {"code": stats.stopped[0], "message": stats.stopped[1]},
            "started_at": started_at, "finished_at": utc_now(),
            "duration_seconds": round(time.monotonic() - started, 3), "batchrunner_version": __version__,
        }
        counts = journal.counts()
        if dry_run:
            code = 1 if counts.get("invalid") else 0
        else:
            code = exit_code_for(counts, stats.stopped is not None)
        summary["exit_code"] = code
        summary = write_reports(run_dir, loaded.frame, journal, summary, stats.stopped)
        return RunResult(run_dir, code, summary, stats)
    finally:
        journal.close()


async def _execute(prepared: Prepared, journal: Journal, sandbox_app: Any | None, clock: Clock | None,
                   rng: random.Random | None, progress: bool | None) -> ExecStats:
    job = prepared.job
    session = await prepared.platform.open_session(job, _client_factory(job, sandbox_app))
    try:
        limiter = RateLimiter(prepared.platform.budget_per_minute(job), clock=clock, rng=rng)
        fields = [c for c in prepared.validated.columns if not c.startswith("__") and c != OP]
        executor = Executor(
            session, FrameRows(prepared.validated, fields), journal, limiter,
            concurrency=job.limits.concurrency,
            policy=RetryPolicy(job.limits.max_attempts, job.limits.backoff_base, job.limits.backoff_max),
            clock=clock, rng=rng, progress=progress,
        )
        stats = await executor.run(prepared.plan.waves, prepared.plan.rows_to_send)
        stats.rate_wait = limiter.waited  # type: ignore[attr-defined]
        if limiter.api_limit is not None:
            stats.api_usage = {"used": limiter.api_used, "limit": limiter.api_limit}  # type: ignore[attr-defined]
        return stats
    finally:
        await session.aclose()


def run_job(job: Job, *, input_path: Path | None = None, output_dir: Path | None = None, dry_run: bool = False,
            progress: bool | None = None) -> RunResult:
    prepared = prepare(job, input_path)
    return anyio.run(lambda: run_prepared(prepared, output_dir=output_dir, dry_run=dry_run, progress=progress))


def estimate_seconds(prepared: Prepared, latency: float = 1.0) -> float:
    """A rough duration at the configured limits: requests spread over the concurrency, and no
    faster than the per-minute budget allows."""
    job = prepared.job
    requests = prepared.plan.requests
    by_concurrency = math.ceil(requests / job.limits.concurrency) * latency
    budget = prepared.platform.budget_per_minute(job)
    by_budget = requests / budget * 60 if budget else 0.0
    return max(by_concurrency, by_budget)
