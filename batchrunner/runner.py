"""The run, end to end: job -> source -> validate -> plan -> execute -> report.

This is the library the CLI is a thin skin over; tests call it directly. Each stage lives in its
own module and is testable alone; this module only wires them and owns the run directory.
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import polars as pl

from batchrunner import __version__, concurrency, failpoints, interrupts, runlog, secrets, snapshot
from batchrunner.auth import AuthError
from batchrunner.bounded import bound_client
from batchrunner.clock import Clock
from batchrunner.execute import ExecStats, Executor, RetryPolicy
from batchrunner.errors import JobError, NothingToRetry, RunAborted, root_cause
from batchrunner.job import Job, load_job, parse_job
from batchrunner.lock import RunLock, job_lock
from batchrunner.journal import DONE, IN_FLIGHT, PENDING, Journal, JournalLost, utc_now
from batchrunner.mappings import apply_mappings, overlay
from batchrunner.outcome import CHECK_BEFORE_RETRY, Status
from batchrunner.plan import Plan, plan, plan_rest
from batchrunner.prepared import Prepared
from batchrunner.platforms import get_platform
from batchrunner.ratelimit import KeyedRateLimiter, RateLimiter
from batchrunner.report import ReportOptions, exit_code_for, write_reports
from batchrunner.rows import FrameRows
from batchrunner.source import LoadedInput, file_sha256, load_input
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


def prepare(job: Job, input_path: Path | None = None) -> Prepared:
    """Check the job, read and validate the input, plan the requests. Sends nothing.
    Raises ``JobError`` (exit 2) for anything that stops the job. The input's own columns come
    back compressed (``loaded.frame`` is a `snapshot.Spooled`; docs/memory.md)."""
    platform, catalog, api_version, target = _checked_platform(job)
    if job.handoff:  # a migration hand-off: the target enrolment and the source operation (handoff.py)
        from batchrunner.handoff import check_handoff_job

        check_handoff_job(job)
    loaded = load_input(job, input_path)
    # the input's own columns are needed again only by the reports, a slice at a time: compressed
    loaded.frame = snapshot.Spooled.of(loaded.frame)
    loaded, problems = apply_mappings(job, loaded)  # [mappings]: lookup joins (mappings.py)
    validated = overlay(validate(loaded, catalog, api_version), problems)
    loaded = replace(loaded, fields=loaded.fields.clear())  # validated holds what is sent: not kept twice
    sizes = {op.name: platform.rows_per_request(job, op.name) for op in catalog.operations}
    if job.mode == "sync":  # recurring lists: rows unchanged since the last run are not sent (sync.py)
        from batchrunner.sync import diff_for

        diff = diff_for(job, loaded, validated)
        the_plan = plan(validated, catalog, sizes, only=diff.to_send)
        return Prepared(job, platform, loaded, validated, the_plan, target, sync=diff)
    return Prepared(job, platform, loaded, validated, plan(validated, catalog, sizes), target)


def _checked_platform(job: Job) -> tuple[Any, Any, float | None, str]:
    """The job's platform, catalog and API version, checked; and the target it names. Credentials
    are checked here, before any file is read."""
    platform = get_platform(job.platform)
    catalog = platform.catalog_for(job)
    version = platform.api_version(job)
    api_version = float(version) if version else None
    check_job(job, catalog, api_version)
    _, _, target = platform.endpoint(job)
    return platform, catalog, api_version, target


def prepare_from_snapshot(job: Job, run_dir: Path, meta: dict[str, Any]) -> Prepared:
    """The rows of an earlier run exactly as it read and validated them (`snapshot`), with an empty
    plan: `resume` plans only the rows still to send."""
    platform, _, _, target = _checked_platform(job)
    frame, validated = snapshot.load_spooled(run_dir)
    loaded = LoadedInput(path=Path(meta["input_path"]), sha256=meta["input_sha256"], frame=frame, fields=validated)
    return Prepared(job, platform, loaded, validated, Plan(), target)


def new_run_dir(output_dir: Path, name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = output_dir / (f"{name}-{stamp}" if n == 1 else f"{name}-{stamp}-{n}")
        try:
            candidate.mkdir(mode=0o700)
            candidate.chmod(0o700)  # whatever the umask: reports hold every input column (emails, names)
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError("could not create a run directory")


@dataclass
class RunResult:
    """What a run (or resume, or retry) ended with. ``exit_code`` is what the CLI exits with."""

    run_dir: Path
    exit_code: int
    summary: dict[str, Any]
    stats: ExecStats = field(default_factory=ExecStats)

    @property
    def counts(self) -> dict[str, int]:
        """Rows per status: succeeded, failed, invalid, skipped, not_attempted."""
        return dict(self.summary.get("counts") or {})

    @property
    def results_csv(self) -> Path:
        return self.run_dir / "results.csv"

    @property
    def errors_csv(self) -> Path:
        return self.run_dir / "errors.csv"

    @property
    def summary_json(self) -> Path:
        return self.run_dir / "summary.json"

    @property
    def report_html(self) -> Path:
        return self.run_dir / "report.html"

    @property
    def resumable(self) -> bool:
        return self.exit_code in (3, 4) and not self.summary.get("dry_run")


def _client_factory(job: Job, app: Any | None):
    """Clients whose every request is bounded: ``limits.timeout`` for the whole request (send and
    full body, not per read) and ``limits.max_response_bytes`` for its body (bounded.py)."""

    def make(base_url: str | None, headers: dict[str, str]) -> httpx.AsyncClient:
        # connecting (or waiting for a pooled connection) gives up first, at half the budget: a
        # request that never left fails as ConnectTimeout/PoolTimeout, safe to send again, not as
        # the whole-request deadline's ReadTimeout, which must count as maybe applied
        timeout = httpx.Timeout(job.limits.timeout, connect=job.limits.timeout / 2, pool=job.limits.timeout / 2)
        limits = httpx.Limits(max_connections=concurrency.for_job(job, get_platform(job.platform))[1] + 2)
        headers = {**headers, "User-Agent": f"batchrunner/{__version__}"}
        if job.is_sandbox and base_url is None:
            from batchrunner.sandbox.factory import build_sandbox

            transport = httpx.ASGITransport(app=app if app is not None else build_sandbox(job.sandbox))
            client = httpx.AsyncClient(base_url=SANDBOX_BASE, headers=headers, transport=transport, timeout=timeout)
        else:
            client = httpx.AsyncClient(base_url=base_url or "", headers=headers, timeout=timeout, limits=limits)
        return bound_client(client, timeout=job.limits.timeout, max_bytes=job.limits.max_response_bytes)

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
    handle_signals: bool = False,
    fail_on: str = "invalid",
    retry_of: Path | None = None,
    on_progress: Any = None,
    allow_mass_removal: bool = False,
) -> RunResult:
    """Start a new run of a prepared job: a run directory, a journal holding every row, then send.
    ``retry_of``: the run whose unfinished rows this run takes over (`retry`); it is marked as
    handed over, under the job's lock, so it can be neither resumed nor retried again."""
    job, loaded, validated = prepared.job, prepared.loaded, prepared.validated
    out = Path(output_dir) if output_dir else job.output_dir
    lock = job_lock(job.path)  # first: a second run of the job stops here, before it contacts anything
    lock.acquire(out)
    try:
        if not dry_run:  # exit 2 before the run directory: a mass removal, a constant naming nothing
            from batchrunner import constants, sync  # (sync.py, constants.py)

            sync.guard(prepared.sync, allow_mass_removal)
            # sync's removals, a hand-off's source side and [verify] after_run talk to the run's own
            # in-process sandbox
            if job.mode == "sync" or job.handoff or job.verify.after_run:
                sandbox_app = sync.shared_app(job, sandbox_app)
            if prepared.plan.requests:  # the session that looked them up is the run's (one sign-in)
                prepared = replace(prepared, session=await constants.verify_constants(job, sandbox_app))
        run_dir = new_run_dir(out, job.name)
        lock.describe(run_dir)
    except BaseException:
        lock.release()
        if prepared.session is not None:
            await prepared.session.aclose()
        raise
    try:
        if retry_of is not None:
            _hand_over(Path(retry_of), run_dir)
        journal = Journal(run_dir / "journal.sqlite")
    except BaseException:
        lock.release()
        shutil.rmtree(run_dir, ignore_errors=True)
        if prepared.session is not None:
            await prepared.session.aclose()
        raise
    log_scope = runlog.run_log(run_dir)
    log = log_scope.__enter__()
    log.info("run %s started%s: %s %s (%s), input %s", run_dir.name, " (dry run: nothing is sent)" if dry_run else "",
             "SANDBOX" if job.is_sandbox else "LIVE", job.platform, prepared.target, loaded.path)
    try:
        journal.set_meta(job_path=str(job.path), job_name=job.name, platform=job.platform,
                         input_path=str(loaded.path), input_sha256=loaded.sha256, created_at=utc_now(),
                         sandbox=job.is_sandbox, version=__version__, output_dir=str(out), dry_run=dry_run,
                         kind="dry run" if dry_run else "retry" if retry_of is not None else "run",
                         retry_of=str(retry_of) if retry_of is not None else None, job_inline=job.inline)
        journal.add_rows(validated.height)
        loaded.frame = snapshot.Spooled.of(loaded.frame)  # (prepare did; a Prepared made by hand may not have)
        if not dry_run:  # what resume and retry use, whatever becomes of the input file
            snapshot.save(run_dir, loaded.frame, validated)
        if job.mode == "sync":  # under the lock: fold earlier runs, diff, journal the unchanged rows (sync.py)
            from batchrunner import sync

            sandbox_app = sync.shared_app(job, sandbox_app)
            prepared = sync.start(prepared, out, run_dir, journal, dry_run, allow_mass_removal)
        invalid = prepared.invalid
        journal.finish_columns(invalid[IDX].to_list(), [Status.INVALID.value] * invalid.height,
                               invalid[CODE].to_list(), invalid[MESSAGE].to_list())
        journal.finish(prepared.plan.duplicates)
        result = await send_and_report(prepared, prepared.plan, run_dir, journal, dry_run=dry_run,
                                        sandbox_app=sandbox_app, clock=clock, rng=rng, progress=progress,
                                        handle_signals=handle_signals, fail_on=fail_on, on_progress=on_progress)
        if prepared.sync is not None:  # removals of people who left the list, state update
            result = await sync.finish(prepared, result, run_dir, dry_run=dry_run, sandbox_app=sandbox_app,
                                       clock=clock, rng=rng, progress=progress, send=send_and_report)
        if job.handoff and not dry_run:  # migration: take the confirmed people off the source (handoff.py)
            result = await _handoff(prepared, result, run_dir, journal, sandbox_app=sandbox_app, clock=clock,
                                    rng=rng, progress=progress, handle_signals=handle_signals)
        return await verified(result, job, dry_run, sandbox_app, clock, rng)
    except (JobError, RunAborted):
        raise
    except Exception as exc:  # the crash barrier: say what happened, keep what is known
        raise _aborted(exc, prepared, run_dir, journal) from exc
    finally:
        if prepared.session is not None:
            await prepared.session.aclose()
        log_scope.__exit__(None, None, None)
        journal.close()
        lock.release()


async def _handoff(prepared: Prepared, result: RunResult, run_dir: Path, journal: Journal, **kw: Any) -> RunResult:
    """The migration hand-off after the target run (handoff.py), handed the runner's sending and
    connection making so that handoff.py never imports the runner."""
    from batchrunner import handoff

    return await handoff.finish(prepared, result, run_dir, journal, send=send_and_report,
                                make_client=_client_factory, **kw)


async def verified(result: RunResult, job: Job, dry_run: bool, sandbox_app: Any | None, clock: Clock | None,
                   rng: random.Random | None) -> RunResult:
    """``[verify] after_run``: check the run's succeeded rows on the platform (verify.py), after the
    reports; the outcome rows and the exit code stay the run's own, the summary gains a block."""
    if dry_run or not job.verify.after_run or (result.summary.get("stopped") or {}).get("code") == "INTERRUPTED":
        return result  # an interrupted run is left to stop: `batchrunner verify RUN_DIR` later
    from batchrunner.verify import after_run

    result.summary = await after_run(result.run_dir, result.summary, sandbox_app=sandbox_app, clock=clock, rng=rng)
    return result


def _aborted(exc: Exception, prepared: Prepared, run_dir: Path, journal: Journal) -> RunAborted:
    """A run that failed for a reason no stage handles (disk full, a read-only directory, a bug):
    write the reports from whatever the journal holds, if that still works, and say how to go on."""
    try:
        sent = journal.db.execute("SELECT 1 FROM events WHERE kind = 'start' LIMIT 1").fetchone() is not None
    except Exception:  # noqa: BLE001 - the journal itself is what failed
        sent = True
    cause = root_cause(exc)
    what = f"{type(cause).__name__}: {secrets.redact(cause)}"
    logging.getLogger("batchrunner.run").error("run could not go on: %s", what)
    try:
        write_reports(run_dir, prepared.loaded.frame, journal.frame_chunks(), prepared.validated[OP],
                      {"job": prepared.job.name, "exit_code": 4 if sent else 2,
                       "stopped": {"code": "RUN_FAILED", "message": what}}, ("RUN_FAILED", what), resumable=sent)
        reports = "the reports show what is known"
    except Exception as again:  # noqa: BLE001
        reports = f"the reports could not be written either ({type(again).__name__}: {secrets.redact(again)})"
    if sent:
        return RunAborted(f"the run could not go on after it had started sending: {what}; {reports}; rows whose "
                          f"outcome is not recorded are checked with the platform by: batchrunner resume {run_dir}",
                          run_dir=run_dir, sent=True)
    return RunAborted(f"the run could not start: {what}; nothing was sent", run_dir=run_dir, sent=False,
                      resumable=False)


def _hand_over(old_run: Path, new_run: Path) -> None:
    """Mark ``old_run`` as handed to the retry run ``new_run`` (under the job lock)."""
    journal = open_run_journal(old_run)
    try:
        refuse_if_handed_over(journal.meta(), old_run)
        journal.set_meta(retried_by=str(new_run))
    finally:
        journal.close()


def refuse_if_handed_over(meta: dict[str, Any], run_dir: Path) -> None:
    """A run whose unfinished rows went to a `retry` run belongs to that run now: resuming or
    retrying it again would send those rows twice."""
    if meta.get("retried_by"):
        raise JobError(f"{run_dir} was handed to `batchrunner retry`, which started {meta['retried_by']}; its "
                       f"unfinished rows belong to that run now (sending them from here would send them twice). "
                       f"Continue with: batchrunner resume {meta['retried_by']}  (if it stopped) or "
                       f"batchrunner retry {meta['retried_by']}  (for what failed there).")
    if meta.get("prediction"):
        raise JobError(f"{run_dir} is a prediction (batchrunner predict): it read the platform and sent nothing, "
                       f"so there is nothing to resume or retry. Send the job with: batchrunner run "
                       f"{meta.get('job_path')}")
    if meta.get("dry_run"):
        raise JobError(f"{run_dir} is a dry run: nothing was sent, so there is nothing to resume or retry. Send "
                       f"the job with: batchrunner run {meta.get('job_path')}")


async def send_and_report(prepared: Prepared, the_plan: Plan, run_dir: Path, journal: Journal, *,
                           dry_run: bool = False, sandbox_app: Any | None = None, clock: Clock | None = None,
                           rng: random.Random | None = None, progress: bool | None = None,
                           handle_signals: bool = False, resumed: bool = False, fail_on: str = "invalid",
                           on_progress: Any = None) -> RunResult:
    job, loaded = prepared.job, prepared.loaded
    started = time.monotonic()
    started_at = utc_now()
    stats = ExecStats()
    if dry_run:
        stats.stopped = ("DRY_RUN", "--dry-run: nothing was sent")
    elif the_plan.requests:
        failpoints.hit("run.before_send")
        if handle_signals and (name := interrupts.pending()):  # a stop signal before the first request
            interrupts.clear()
            stats = ExecStats(stopped=("INTERRUPTED", f"stopped by {name} before the first request"))
        else:
            stats = await _execute(prepared, the_plan, journal, sandbox_app, clock, rng, progress, handle_signals,
                                   on_progress)
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
        "concurrency": stats.concurrency,
        "budget_per_minute": prepared.platform.budget_per_minute(job),
        "stopped": None if stats.stopped is None else {"code": stats.stopped[0], "message": stats.stopped[1]},
        "started_at": started_at, "finished_at": utc_now(),
        "duration_seconds": round(time.monotonic() - started, 3), "batchrunner_version": __version__,
    }
    lost = stats.stopped is not None and stats.stopped[0] == JOURNAL_FAILED
    if lost:
        _recover_run_dir(prepared, run_dir, journal)
    states = journal.states()  # compact: the texts are read a slice at a time by the reports
    counts = journal.counts(states)
    if dry_run:
        code = 1 if counts.get("invalid") else 0
    else:
        code = 4 if lost else exit_code_for(counts, stats.stopped is not None)
    code = fail_on_code(code, counts, fail_on)
    summary["exit_code"] = code
    summary["dry_run"] = dry_run
    summary = write_reports(run_dir, loaded.frame, journal.frame_chunks(states=states), prepared.validated[OP],
                            summary, stats.stopped,
                            resumable=not dry_run, options=ReportOptions(bom=job.report_bom, xlsx=job.report_xlsx))
    logging.getLogger("batchrunner.run").info(
        "run finished: %s; exit %s", ", ".join(f"{n} {k}" for k, n in summary.get("counts", {}).items() if n)
        or "no rows", code)
    return RunResult(run_dir, code, summary, stats)


async def _execute(prepared: Prepared, the_plan: Plan, journal: Journal, sandbox_app: Any | None,
                   clock: Clock | None, rng: random.Random | None, progress: bool | None,
                   handle_signals: bool, on_progress: Any = None) -> ExecStats:
    job = prepared.job
    session = prepared.session  # already open (run_prepared looked up the constants with it), else opened here
    if session is None:
        try:
            session = await prepared.platform.open_session(job, _client_factory(job, sandbox_app))
        except (AuthError, JobError) as exc:  # credentials refused: nothing was sent; resumable (exit 3)
            return ExecStats(stopped=("AUTH_FAILED", secrets.redact(exc)))
    prepared.target = getattr(session, "target", None) or prepared.target
    started = journal.meta().get("created_at")  # the platform tells the run's own changes from older ones
    if started and hasattr(session, "run_started_at"):
        session.run_started_at = datetime.fromisoformat(str(started).replace("Z", "+00:00"))
    try:
        # one budget per connection, or per user where the platform's budget is per user (Outreach)
        limiter = KeyedRateLimiter(lambda: RateLimiter(
            prepared.platform.budget_per_minute(job), clock=clock, rng=rng, window_kind=job.limits.rate_window,
            margin=max(0, job.limits.concurrency - 1), max_server_wait=job.limits.max_server_wait))
        # adaptive where the platform publishes no budget; a resumed run starts at its last limit
        in_flight = concurrency.build(job, prepared.platform, clock=clock,
                                      start=journal.meta().get(concurrency.JOURNAL_META))
        fields = [c for c in prepared.validated.columns if not c.startswith("__") and c != OP]
        executor = Executor(
            session, FrameRows(prepared.validated, fields), journal, limiter,
            concurrency=in_flight,
            policy=RetryPolicy(job.limits.max_attempts, job.limits.backoff_base, job.limits.backoff_max),
            clock=clock, rng=rng, progress=progress, on_progress=on_progress,
            circuit_breaker=job.limits.circuit_breaker,
        )
        try:
            async with anyio.create_task_group() as tg:
                if handle_signals:
                    tg.start_soon(_watch_signals, executor, tg.cancel_scope)
                await executor.run(the_plan.iter_waves(), the_plan.rows_to_send)
                tg.cancel_scope.cancel()
        except* JournalLost as group:  # fail-stop: no request goes out once outcomes cannot be recorded
            first = root_cause(group)
            executor.stats.stopped = (JOURNAL_FAILED, f"{first}; the run stopped at once (nothing more was sent)")
        stats = executor.stats  # also when a stop's grace period cancelled requests in flight
        stats.rate_wait = limiter.waited
        if limiter.api_limit is not None:
            stats.api_usage = {"used": limiter.api_used, "limit": limiter.api_limit}
        return stats
    finally:
        if prepared.session is None:
            await session.aclose()


JOURNAL_FAILED = "JOURNAL_FAILED"  # the journal could not record an outcome: the run stopped at once (exit 4)


def _recover_run_dir(prepared: Prepared, run_dir: Path, journal: Journal) -> None:
    """After `JournalLost`: if the run directory was removed, make it again and put in it what the
    still-open journal knows and the snapshot, so the reports can be written and `resume` works."""
    if (run_dir / "journal.sqlite").exists():
        return
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    journal.rescue(run_dir / "journal.sqlite")
    snapshot.save(run_dir, prepared.loaded.frame, prepared.validated)
    logging.getLogger("batchrunner.run").error(
        "the run directory %s disappeared while the run was going on; it was made again with every outcome "
        "recorded so far", run_dir)


GRACE_SECONDS = 30.0  # how long a stop waits for requests already in flight


def stop_signals() -> list[signal.Signals]:
    """The signals that stop a run: Ctrl-C, a service manager's TERM, and HUP (the terminal or ssh
    session closed) -- unless HUP is ignored, as under ``nohup``: then the user asked to go on."""
    found = [signal.SIGINT, signal.SIGTERM]
    hup = getattr(signal, "SIGHUP", None)
    if hup is not None and signal.getsignal(hup) is not signal.SIG_IGN:
        found.append(hup)
    return found


def _say(text: str) -> None:
    """Print to stderr, which a closed terminal (SIGHUP) may have turned into an error."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


async def _cancel_when_idle(executor: Executor, scope: anyio.CancelScope) -> None:
    await executor.idle()
    scope.cancel()


async def _watch_signals(executor: Executor, scope: anyio.CancelScope) -> None:
    """First SIGINT/SIGTERM/SIGHUP: stop sending, let in-flight requests finish (bounded by
    GRACE_SECONDS, and no longer than they take: workers waiting on the rate limiter have nothing
    in flight), then report. Second: leave at once (every outcome was committed as it came)."""
    with anyio.open_signal_receiver(*stop_signals()) as signals:
        async with anyio.create_task_group() as waiters:
            if name := interrupts.pending():  # arrived while the session was being opened
                interrupts.clear()
                executor.request_stop("INTERRUPTED", f"stopped by {name}")
                waiters.start_soon(_cancel_when_idle, executor, scope)
            async for signum in signals:
                if executor.stopping:
                    _say("\nsecond interrupt: exiting now; `batchrunner resume` continues from the journal")
                    os._exit(3)
                name = signal.Signals(signum).name
                if name == "SIGHUP" and executor.bar is not None:
                    executor.bar.disable = True  # the terminal is gone: no more progress lines
                _say(f"\n{name}: finishing requests in flight, then writing the reports (again to quit now)")
                executor.request_stop("INTERRUPTED", f"stopped by {name}")
                scope.deadline = anyio.current_time() + GRACE_SECONDS
                waiters.start_soon(_cancel_when_idle, executor, scope)


def resume(run_dir: Path, *, allow_changed_input: bool = False, sandbox_app: Any | None = None,
           clock: Clock | None = None, progress: bool | None = None, handle_signals: bool = False,
           fail_on: str = "invalid") -> RunResult:
    return anyio.run(lambda: resume_async(run_dir, allow_changed_input=allow_changed_input, sandbox_app=sandbox_app,
                                          clock=clock, progress=progress, handle_signals=handle_signals,
                                          fail_on=fail_on))


def job_of_run(run_dir: Path, meta: dict[str, Any] | None = None) -> Job:
    """The job an earlier run ran: its job file as it is now, or the dict it was given as."""
    if meta is None:
        journal = open_run_journal(run_dir)
        try:
            meta = journal.meta()
        finally:
            journal.close()
    if meta.get("job_inline"):
        job = parse_job(meta["job_inline"], Path(meta["job_path"]))
        job.inline = meta["job_inline"]
        return job
    return load_job(meta["job_path"])


def read_run(run_dir: Path, refuse: Any) -> tuple[dict[str, Any], pl.DataFrame]:
    """An earlier run's meta and journal rows (`Journal.frame`); ``refuse(meta, run_dir)`` raises
    JobError first for a run the caller cannot take (handed over, a dry run...)."""
    journal = open_run_journal(run_dir)
    try:
        meta = journal.meta()
        refuse(meta, run_dir)
        return meta, journal.frame()
    finally:
        journal.close()


def open_run_journal(run_dir: Path) -> Journal:
    """The journal of an earlier run, or a JobError (exit 2) saying the directory is not a run."""
    if not (run_dir / "journal.sqlite").is_file():
        raise JobError(f"{run_dir} is not a run directory (it has no journal.sqlite).")
    return Journal(run_dir / "journal.sqlite")


async def resume_async(run_dir: Path, *, allow_changed_input: bool = False, sandbox_app: Any | None = None,
                       clock: Clock | None = None, progress: bool | None = None,
                       handle_signals: bool = False, fail_on: str = "invalid", on_progress: Any = None) -> RunResult:
    """Finish a run that stopped. Rows with an outcome are never sent again; rows that were in
    flight are checked by the platform session before anything is re-sent. The rows are the ones
    the run read (its snapshot), whatever has become of the input file since."""
    run_dir = Path(run_dir)
    journal = open_run_journal(run_dir)
    try:
        meta = journal.meta()
        refuse_if_handed_over(meta, run_dir)
        job = job_of_run(run_dir, meta)
        lock = job_lock(job.path)
        lock.acquire(run_dir)
        try:
            meta = journal.meta()  # again, under the lock: a retry may have taken the run meanwhile
            refuse_if_handed_over(meta, run_dir)
            notes: list[str] = []
            if snapshot.exists(run_dir):
                prepared = prepare_from_snapshot(job, run_dir, meta)
                input_path = Path(meta["input_path"])
                if not input_path.is_file() or file_sha256(input_path) != meta["input_sha256"]:
                    notes.append(f"the input file {input_path} changed or is gone since this run started; the run "
                                 "goes on with the rows it read then (kept in its run directory)")
            else:
                prepared = _prepare_legacy(job, meta, allow_changed_input)
            if prepared.validated.height != journal.row_count():
                raise JobError("The input no longer has the journal's rows; it cannot be resumed.")
            prepared.loaded.notes.extend(notes)
            catalog = prepared.platform.catalog_for(job)
            sizes = {op.name: prepared.platform.rows_per_request(job, op.name) for op in catalog.operations}
            the_plan, pending, unsure = plan_rest(prepared.validated, catalog, sizes, journal.states())
            journal.finish([d for d in the_plan.duplicates])
            prepared.plan = the_plan
            with runlog.run_log(run_dir) as log:
                log.info("resuming %s: %s %s (%s); %d rows to send, %d in flight when it stopped", run_dir.name,
                         "SANDBOX" if job.is_sandbox else "LIVE", job.platform, prepared.target, pending, unsure)
                for note in notes:
                    log.warning("%s", note)
                try:
                    result = await send_and_report(prepared, the_plan, run_dir, journal, sandbox_app=sandbox_app,
                                                    clock=clock, progress=progress, handle_signals=handle_signals,
                                                    resumed=True, fail_on=fail_on, on_progress=on_progress)
                    if job.handoff:  # migration: finish (or start) the source side (handoff.py)
                        result = await _handoff(prepared, result, run_dir, journal, sandbox_app=sandbox_app,
                                                clock=clock, rng=None, progress=progress,
                                                handle_signals=handle_signals)
                    return await verified(result, job, False, sandbox_app, clock, None)
                except (JobError, RunAborted):
                    raise
                except Exception as exc:  # the crash barrier, as for a new run
                    raise _aborted(exc, prepared, run_dir, journal) from exc
        finally:
            lock.release()
    finally:
        journal.close()


def _prepare_legacy(job: Job, meta: dict[str, Any], allow_changed_input: bool) -> Prepared:
    """A run made before runs kept their rows: re-read the input, which must be unchanged."""
    input_path = Path(meta["input_path"])
    if not input_path.is_file():
        raise JobError(f"The run's input file is gone: {input_path}")
    if file_sha256(input_path) != meta["input_sha256"]:
        if not allow_changed_input:
            raise JobError(f"The input file {input_path} changed since this run started (sha256 differs); the "
                           "journal's row numbers may no longer match. Use --allow-changed-input to go on anyway.")
    return prepare(job, input_path)


@dataclass
class RetrySelection:
    """What `retry` takes from an earlier run, and what it leaves (and why)."""

    job_path: Path
    input_path: Path  # the rows to send, written in the job's own CSV dialect
    rows: list[int]  # 0-based rows of the earlier run
    unknown: int = 0  # rows left out: UNKNOWN_OUTCOME (maybe applied)


def retry_rows(run_dir: Path, *, include_unknown: bool = False) -> RetrySelection:
    """The earlier run's failed and not_attempted rows, exactly as that run read them, written as a
    new input file for the same job (its delimiter and encoding, so it reads back the same).
    Rows whose outcome is unknown (maybe applied) are left out unless ``include_unknown``."""
    run_dir = Path(run_dir)
    journal = open_run_journal(run_dir)
    try:
        meta = journal.meta()
        refuse_if_handed_over(meta, run_dir)
        frame = journal.states().with_columns(pl.col(c).cast(pl.String) for c in ("state", "status", "code"))
    finally:
        journal.close()
    job = job_of_run(run_dir, meta)
    if job.mode == "sync":  # a retry file lacks everyone else: as a sync input it would "remove" them
        raise JobError(f"{job.path.name} is a sync job: its next `batchrunner run` sends the rows that failed "
                       "again (only succeeded rows count as enrolled); retry is not needed.")
    in_flight = frame.filter(pl.col("state") == IN_FLIGHT).height
    if in_flight:
        raise JobError(f"{run_dir} stopped with {in_flight} rows in flight (sent, answer never read). Resume it "
                       f"first, so those are checked with the platform before anything is sent again: "
                       f"batchrunner resume {run_dir}")
    unknown = (pl.col("state") == DONE) & pl.col("code").is_in(list(CHECK_BEFORE_RETRY))
    wanted = (pl.col("state") == PENDING) | ((pl.col("status") == Status.FAILED.value)
                                              & (~unknown if not include_unknown else pl.lit(True)))
    rows = frame.filter(wanted)["idx"].to_list()
    if job.handoff:  # also the people enrolled in the target but still in the source (handoff.py)
        from batchrunner.handoff import retry_extra

        rows = sorted(set(rows) | set(retry_extra(run_dir)))
    n_unknown = 0 if include_unknown else frame.filter(unknown).height
    if not rows:
        from batchrunner.retryplan import explain_nothing_to_retry, nothing_to_retry_exit_code

        counts = journal_counts(frame)
        message = explain_nothing_to_retry(counts, run_dir)
        if n_unknown:
            message += (f" {n_unknown} rows have an unknown outcome (UNKNOWN_OUTCOME: sent, maybe applied): check "
                        "them on the platform, or send them again with `batchrunner retry --include-unknown`.")
        raise NothingToRetry(message, 1 if n_unknown else nothing_to_retry_exit_code(counts))
    if snapshot.exists(run_dir):
        source, _ = snapshot.load(run_dir)
    else:  # a run made before runs kept their rows: the input must not have changed
        input_path = Path(meta["input_path"])
        if not input_path.is_file() or file_sha256(input_path) != meta["input_sha256"]:
            raise JobError(f"The input file {input_path} changed since {run_dir} ran, and that run did not keep a "
                           "copy of its rows; retry cannot know which rows failed. Feed its errors.csv back instead: "
                           f"batchrunner run {meta['job_path']} --input {run_dir / 'errors.csv'}")
        source = load_input(job, input_path).frame
    target = run_dir / "retry-input.csv"
    write_in_dialect(source[rows], target, job)
    return RetrySelection(Path(meta["job_path"]), target, rows, n_unknown)


def journal_counts(frame: pl.DataFrame) -> dict[str, int]:
    status = pl.when(pl.col("state") == DONE).then(pl.col("status")).otherwise(pl.lit(Status.NOT_ATTEMPTED.value))
    return dict(frame.group_by(status.alias("s")).len().iter_rows())


def write_in_dialect(frame: pl.DataFrame, path: Path, job: Job) -> None:
    """Write rows as the job reads them: its delimiter and encoding (a `;` cp1252 job gets a `;`
    cp1252 file), 0600."""
    text = frame.write_csv(separator=job.delimiter or ",")
    try:
        data = text.encode(job.encoding)
    except (UnicodeEncodeError, LookupError):
        data = text.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as handle:
        handle.write(data)


def validation_summary(prepared: Prepared) -> dict[str, Any]:
    """What `validate` reports: rows per operation, invalid rows grouped by problem (first rows of
    each, one example message), the requests the plan needs and a rough duration. Sends nothing."""
    from batchrunner.constants import validate_note

    total = prepared.validated.height
    invalid = prepared.invalid
    the_plan = prepared.plan
    grouped = (invalid.group_by(CODE, maintain_order=True)
               .agg(pl.len().alias("n"), (pl.col(IDX) + 1).head(5).alias("rows"), pl.col(MESSAGE).first()))
    budget = prepared.platform.budget_per_minute(prepared.job)
    return {
        "job": prepared.job.name, "platform": prepared.job.platform, "input_file": str(prepared.loaded.path),
        "rows": total, "valid": total - invalid.height, "invalid": invalid.height,
        "duplicates": len(the_plan.duplicates), "rows_by_operation": dict(the_plan.rows_by_operation),
        "problems": [{"code": code, "count": n, "rows": rows, "example": message}
                     for code, n, rows, message in grouped.iter_rows()],
        "sync": prepared.sync.describe() if prepared.sync is not None else None,
        "requests": the_plan.requests, "waves": the_plan.wave_count,
        "estimated_seconds": round(estimate_seconds(prepared), 1), "concurrency": concurrency.for_job(prepared.job, prepared.platform)[1],
        "budget_per_minute": budget, "notes": list(prepared.loaded.notes), "sent": 0,
        "constants_note": validate_note(prepared.job),
        "banner": (f"{'SANDBOX' if prepared.job.is_sandbox else 'LIVE'} {prepared.job.platform} ({prepared.target}) "
                   f"· job {prepared.job.name} · input {prepared.loaded.path}"),
        "exit_code": 1 if invalid.height else 0,
    }


def estimate_seconds(prepared: Prepared, latency: float = 1.0) -> float:
    """A rough duration at the configured limits: requests spread over the concurrency, and no
    faster than the per-minute budget allows."""
    job = prepared.job
    requests = prepared.plan.requests
    by_concurrency = math.ceil(requests / concurrency.for_job(job, prepared.platform)[1]) * latency
    budget = prepared.platform.budget_per_minute(job)
    by_budget = requests / budget * 60 if budget else 0.0
    return max(by_concurrency, by_budget)


def _auth_method(job: Job) -> str:
    default = {"salesforce": "env", "outreach": "oauth"}.get(job.platform, "api_key")
    return str(job.connection.auth.get("method", default))
