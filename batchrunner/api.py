"""The Python API: everything the CLI does, as functions an orchestrator (Airflow, Dagster, Prefect,
a cron wrapper) calls. The CLI is a thin skin over these: it parses arguments, calls one of them
and prints what it returns.

A job is a path to a TOML file, or a dict of the same keys (``base_dir`` is where its relative
paths start; default: the current directory). Every function raises a typed exception when it
cannot do its work — `JobError` (nothing was sent: exit 2), `RunAborted` (the run could not go on
after sending: exit 4, resumable when its journal is intact), `NothingToRetry` — and otherwise
returns a `RunResult` whose ``exit_code`` says what the CLI would exit with (docs/exit-codes.md).
Sync functions wrap the async ones (``arun`` …) with ``anyio.run``; call the async ones from code
that already runs an event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from batchrunner.errors import JobError
from batchrunner.job import Job, load_job, parse_job

#: ``on_progress(done_rows, total_rows)``: called as outcomes are recorded (many times a second at
#: most a few hundred times per run is typical; keep it cheap)
ProgressCallback = Callable[[int, int], None]
#: ``on_start(info)``: called once the job is checked and the input read, before anything is sent
StartCallback = Callable[["StartInfo"], None]


@dataclass
class StartInfo:
    """What is known before the first request: for a banner, or an orchestrator's log line."""

    job: str
    platform: str
    sandbox: bool
    target: str
    input_file: Path
    rows: int
    notes: list[str] = field(default_factory=list)

    def banner(self) -> str:
        return (f"{'SANDBOX' if self.sandbox else 'LIVE'} {self.platform} ({self.target}) · job {self.job} · "
                f"input {self.input_file}")


JobLike = str | Path | Job | Mapping[str, Any]


def load(job: JobLike, *, base_dir: str | Path | None = None) -> Job:
    """A checked `Job` from a TOML path or a dict of the same keys. A dict job has no file: its
    identity (what the one-run-at-a-time lock is keyed on) is ``base_dir`` and its name, and the
    dict is kept in each run's journal so `resume` can rebuild it."""
    if isinstance(job, Job):
        return job
    if isinstance(job, Mapping):
        raw = dict(job)
        if not isinstance(raw.get("name"), str) or not raw["name"]:
            raise JobError("A job given as a dict needs name = \"...\" (it names the job's runs and its lock).")
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        parsed = parse_job(raw, base / f"{raw['name']}.job.toml")
        parsed.inline = raw
        return parsed
    return load_job(job)


def _start_info(prepared: Any) -> StartInfo:
    job = prepared.job
    return StartInfo(job.name, job.platform, job.is_sandbox, prepared.target, prepared.loaded.path,
                     prepared.validated.height, list(prepared.loaded.notes))


async def arun(job: JobLike, *, input: str | Path | None = None, output_dir: str | Path | None = None,  # noqa: A002
               dry_run: bool = False, progress: bool = False, on_progress: ProgressCallback | None = None,
               on_start: StartCallback | None = None, fail_on: str = "invalid", base_dir: str | Path | None = None,
               handle_signals: bool = False, sandbox_app: Any | None = None, allow_mass_removal: bool = False) -> Any:
    """Run a job: validate every row, send, write the reports; return a `RunResult`.

    ``progress`` draws a tqdm bar on stderr; ``on_progress`` reports the same numbers to code.
    ``fail_on`` decides which row outcomes make ``exit_code`` 1 (``invalid``, ``failed``, ``never``).
    ``handle_signals`` (the CLI's choice) makes SIGINT/SIGTERM/SIGHUP stop the run gracefully.
    ``allow_mass_removal``: a sync job may remove more than its ``max_removals`` (docs/sync.md)."""
    from batchrunner.runner import prepare, run_prepared

    the_job = load(job, base_dir=base_dir)
    _listen(handle_signals)

    async def go() -> Any:
        prepared = prepare(the_job, Path(input) if input is not None else None)
        if on_start is not None:
            on_start(_start_info(prepared))
        return await run_prepared(prepared, output_dir=Path(output_dir) if output_dir else None, dry_run=dry_run,
                                  progress=progress, on_progress=on_progress, handle_signals=handle_signals,
                                  fail_on=fail_on, sandbox_app=sandbox_app, allow_mass_removal=allow_mass_removal)

    return await _notifying(the_job, go)


def _listen(handle_signals: bool) -> None:
    """With ``handle_signals``, a stop signal from now on ends the run cleanly, even one that comes
    before the first request (interrupts.py)."""
    if handle_signals:
        from batchrunner import interrupts
        from batchrunner.runner import stop_signals

        interrupts.clear()
        interrupts.install(stop_signals())


async def _notifying(job: Job, go: Callable[[], Any]) -> Any:
    """Run ``go`` and tell the job's webhook ([notify]) how it ended, errors included. The webhook's
    variable is checked first: a notification asked for must not silently never come."""
    from batchrunner import notify
    from batchrunner.errors import RunAborted

    notify.webhook_url(job)
    try:
        result = await go()
    except (JobError, RunAborted) as exc:
        await notify.send(job, exc.exit_code, run_dir=getattr(exc, "run_dir", None), error=str(exc))
        raise
    await notify.send(job, result.exit_code, summary=result.summary, run_dir=result.run_dir)
    return result


def run(job: JobLike, **options: Any) -> Any:
    """`arun`, for code without an event loop. Same arguments, same result."""
    return anyio.run(lambda: arun(job, **options))


async def aresume(run_dir: str | Path, *, allow_changed_input: bool = False, progress: bool = False,
                  on_progress: ProgressCallback | None = None, fail_on: str = "invalid",
                  handle_signals: bool = False, sandbox_app: Any | None = None) -> Any:
    """Finish a run that stopped (crash, signal, budget stop, exit 3 or 4). Rows with an outcome are
    never sent again; rows that were in flight are checked with the platform first."""
    from batchrunner.runner import job_of_run, resume_async

    _listen(handle_signals)
    return await _notifying(job_of_run(Path(run_dir)), lambda: resume_async(
        Path(run_dir), allow_changed_input=allow_changed_input, progress=progress, on_progress=on_progress,
        fail_on=fail_on, handle_signals=handle_signals, sandbox_app=sandbox_app))


def resume(run_dir: str | Path, **options: Any) -> Any:
    """`aresume`, for code without an event loop."""
    return anyio.run(lambda: aresume(run_dir, **options))


async def aretry(run_dir: str | Path, *, output_dir: str | Path | None = None, include_unknown: bool = False,
                 progress: bool = False, on_progress: ProgressCallback | None = None,
                 on_start: StartCallback | None = None, fail_on: str = "invalid", handle_signals: bool = False,
                 sandbox_app: Any | None = None) -> Any:
    """A new run of the same job over an earlier run's failed and not_attempted rows, exactly as
    that run read them, next to it (or in ``output_dir``). The earlier run is handed over (it can
    no longer be resumed or retried).
    Raises `NothingToRetry` (with its exit code) when no row can be sent again."""
    from batchrunner.runner import job_of_run

    the_job = job_of_run(Path(run_dir))
    _listen(handle_signals)
    return await _notifying(the_job, lambda: _retry(the_job, Path(run_dir), output_dir, include_unknown, progress,
                                                     on_progress, on_start, fail_on, handle_signals, sandbox_app))


async def _retry(job: Job, run_dir: Path, output_dir: str | Path | None, include_unknown: bool, progress: bool,
                 on_progress: ProgressCallback | None, on_start: StartCallback | None, fail_on: str,
                 handle_signals: bool, sandbox_app: Any | None) -> Any:
    from batchrunner.runner import prepare, retry_rows, run_prepared

    selection = retry_rows(run_dir, include_unknown=include_unknown)
    prepared = prepare(job, selection.input_path)
    if selection.unknown:
        prepared.loaded.notes.append(
            f"{selection.unknown} rows with an unknown outcome (UNKNOWN_OUTCOME) are left out; check them on the "
            "platform, or retry with include_unknown (--include-unknown) to send them again")
    prepared.loaded.notes.insert(0, f"retrying {len(selection.rows)} rows of {run_dir}")
    if on_start is not None:
        on_start(_start_info(prepared))
    return await run_prepared(prepared, output_dir=Path(output_dir) if output_dir else Path(run_dir).parent,
                              progress=progress, on_progress=on_progress, handle_signals=handle_signals,
                              fail_on=fail_on, retry_of=Path(run_dir), sandbox_app=sandbox_app)


def retry(run_dir: str | Path, **options: Any) -> Any:
    """`aretry`, for code without an event loop."""
    return anyio.run(lambda: aretry(run_dir, **options))


async def apredict(job: JobLike, *, input: str | Path | None = None,  # noqa: A002
                   max_requests: int | None = None, output_dir: str | Path | None = None,
                   base_dir: str | Path | None = None, sandbox_app: Any | None = None,
                   on_estimate: Callable[[int, int], None] | None = None, clock: Any | None = None) -> Any:
    """Predict each row's outcome by reading the platform (never writing): a run directory marked
    as a prediction, with ``_prediction`` (apply, skip, fail, invalid) and ``_prediction_reason``
    per row in results.csv (docs/predict.md). ``on_estimate(requests, rows)`` is called before the
    first request; ``max_requests`` refuses (JobError, exit 2) a prediction estimated to spend more.
    ``clock`` paces the reads (default: the system's; tests inject one). Returns a `PredictResult`:
    ``exit_code`` 0 when every row would apply or be skipped, 1 when some would fail or are invalid."""
    from batchrunner.predict import predict_prepared
    from batchrunner.runner import prepare

    prepared = prepare(load(job, base_dir=base_dir), Path(input) if input is not None else None)
    return await predict_prepared(prepared, max_requests=max_requests,
                                  output_dir=Path(output_dir) if output_dir else None, sandbox_app=sandbox_app,
                                  on_estimate=on_estimate, clock=clock)


def predict(job: JobLike, **options: Any) -> Any:
    """`apredict`, for code without an event loop."""
    return anyio.run(lambda: apredict(job, **options))


def validate(job: JobLike, *, input: str | Path | None = None,  # noqa: A002
             base_dir: str | Path | None = None) -> dict[str, Any]:
    """Check the job and every row and plan the requests; send nothing. Returns what `batchrunner
    validate --json` prints: rows, valid, invalid, problems (by code, first rows, an example),
    requests, an estimated duration, and ``exit_code`` (0 all valid, 1 some invalid)."""
    from batchrunner.runner import prepare, validation_summary

    return validation_summary(prepare(load(job, base_dir=base_dir), Path(input) if input is not None else None))


async def acheck(job: JobLike, *, base_dir: str | Path | None = None) -> Any:
    """Is the job ready? Authenticates and reads (never writes): see `batchrunner check`."""
    from batchrunner.check import check as run_check

    return await run_check(load(job, base_dir=base_dir))


def check(job: JobLike, **options: Any) -> Any:
    """`acheck`, for code without an event loop."""
    return anyio.run(lambda: acheck(job, **options))


async def aexport(what: str, *, job: JobLike | None = None, sandbox: bool = False, url: str | None = None,
                  cadences: list[str] | None = None, on_cadence_only: bool = False,
                  output: str | Path | None = None) -> Any:
    """Read (never write) what is on cadences: ``what`` is ``salesloft-memberships`` or
    ``salesforce-trackers``. Returns the export result (``rows``, ``requests``, ``notes``); with
    ``output``, also writes the CSV there."""
    from batchrunner.export import WHAT, export_job, run_export, write_csv

    if what not in WHAT:
        raise JobError(f"Unknown export {what!r}. Valid: {', '.join(WHAT)}.")
    connection = export_job(WHAT[what], sandbox=sandbox, base_url=url, job=load(job) if job is not None else None)
    result, columns = await run_export(what, connection, list(cadences or []), on_cadence_only)
    if output is not None:
        write_csv(Path(output), result.rows, columns)
    result.columns = columns
    return result


def export(what: str, **options: Any) -> Any:
    """`aexport`, for code without an event loop."""
    return anyio.run(lambda: aexport(what, **options))


async def averify(run_dir: str | Path, *, sandbox_app: Any | None = None) -> Any:
    """Re-read the platform state of every row an earlier run reported `succeeded` and say which are
    not in the state their operation promised (an enrolment accepted but not active). Reads only.
    Writes RUN_DIR/verify.csv and summary.json's ``verify`` block; returns a `VerifyResult`
    (``exit_code`` 0 all ok, 1 some mismatched or unreadable). Raises `JobError` for a directory that
    is not a run, a dry run or a prediction (docs/verify.md)."""
    from batchrunner.verify import averify as verify_run

    return await verify_run(Path(run_dir), sandbox_app=sandbox_app)


def verify(run_dir: str | Path, **options: Any) -> Any:
    """`averify`, for code without an event loop."""
    return anyio.run(lambda: averify(run_dir, **options))
