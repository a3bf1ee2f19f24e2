"""``batchrunner predict``: what each row would do on the platform, read before anything is sent.

A dry run checks the file, not the destination; rows pass it and fail the real run (already on the
cadence, unknown person, a cadence that is inactive). A prediction reads the platform's state for
every row -- in batches, GET only -- and applies the same rules the run meets, in file order (a
row sees what the earlier rows of the file would have done), so each row gets the outcome the run
would report: ``apply`` (succeeded), ``skip`` (skipped), ``fail`` (failed) or ``invalid``, and
the error code the run would give (docs/predict.md).

Reads go through the run's own request path (the executor's rate-limited, retried look-up
requests, the job's rate limiter, Salesloft costs, the Salesforce API reserve), and only GETs can
pass (`ReadOnlyIO`). Before the first request the caller is told how many requests the prediction
will spend (an estimate from row counts and page sizes); ``max_requests`` refuses a prediction
whose estimate is over it, and stops one whose reads run past it. The platform part lives in
``batchrunner/platforms/<name>/predict.py``: ``estimate(job, rows)`` and
``predict(job, session, io, rows)``.

The run directory is marked as a prediction (journal meta and summary.json): `resume` and
`retry` refuse it, `batchrunner runs` lists it as a prediction.
"""

from __future__ import annotations

import importlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import polars as pl

from batchrunner import __version__, secrets
from batchrunner.clock import Clock, SystemClock
from batchrunner.errors import JobError
from batchrunner.execute import ExecStats, RetryPolicy, _IO
from batchrunner.journal import Journal, utc_now
from batchrunner.outcome import RowOutcome, Status
from batchrunner.platforms.base import StopRun
from batchrunner.prepared import Prepared
from batchrunner.ratelimit import RateLimiter
from batchrunner.report import RESULT_COLUMNS, atomic_write, results_frame, spreadsheet_safe, write_html_report
from batchrunner.rows import FrameRows
from batchrunner.validate import CODE, IDX, MESSAGE, OP

#: a row's predicted outcome, by the status the run would record
PREDICTION = {Status.SUCCEEDED.value: "apply", Status.SKIPPED.value: "skip", Status.FAILED.value: "fail",
              Status.INVALID.value: "invalid"}
PREDICTIONS = tuple(PREDICTION.values())
COLUMNS = ("_row", "_operation", "_prediction", "_prediction_reason", "_prediction_message")


class PredictStopped(JobError):
    """The prediction could not finish (its request cap, the API reserve, a read the platform
    refused): nothing was sent, and no partial prediction is written."""


@dataclass
class PredictRow:
    """One valid, non-duplicate row, as the run would send it."""

    idx: int  # 0-based input row
    operation: str
    data: dict[str, Any]  # validated wire values (18-character IDs, lower-cased emails ...)


@dataclass
class PredictResult:
    """What a prediction ended with. ``exit_code``: 0 every row would apply or be skipped, 1 some
    would fail or are invalid; ``summary`` is summary.json (``counts`` per prediction, ``reasons``)."""

    run_dir: Path
    exit_code: int
    summary: dict[str, Any]

    @property
    def results_csv(self) -> Path:
        return self.run_dir / "results.csv"


class ReadOnlyIO:
    """The executor's look-up request path (`execute._IO`: the shared rate limiter, the platform's
    costs, retries of 429/5xx and transport errors), capped at ``max_requests`` and stopped at the
    Salesforce API reserve. (The client's request hook, `_read_only`, lets only GETs leave.)"""

    def __init__(self, session: Any, limiter: RateLimiter, policy: RetryPolicy, *, clock: Clock,
                 rng: random.Random, concurrency: int, max_requests: int | None, api_reserve: int,
                 sent: list[int] | None = None) -> None:
        self.session = session
        self.limiter = limiter
        self.policy = policy
        self.clock = clock
        self.rng = rng
        self.stats = ExecStats()
        self.concurrency = anyio.CapacityLimiter(max(1, concurrency))
        self.max_requests = max_requests
        self.api_reserve = api_reserve
        self.cost = 0.0
        self.sent = sent if sent is not None else [0]  # every request of the prediction (`_read_only` counts)
        self._io = _IO(self)  # duck-typed: _IO reads limiter, stats, concurrency, session, policy, clock, rng

    async def request(self, method: str, url: str, *, cost: float = 1.0, **kwargs: Any) -> httpx.Response:
        if self.max_requests is not None and self.sent[0] >= self.max_requests:
            raise PredictStopped(f"predict reached its cap of {self.max_requests} requests before it had read "
                                 "everything it needs (the platform had more pages than estimated); nothing was "
                                 "sent. Raise --max-requests, or predict fewer rows (--input).")
        response = await self._io.request(method, url, cost=cost, **kwargs)
        self.cost += cost
        signal = self.session.read_rate(response)
        if signal.api_limit is not None and self.api_reserve > 0:
            remaining = signal.api_limit - (signal.api_used or 0)
            if remaining <= self.api_reserve:
                raise PredictStopped(f"the org has {remaining} daily API calls left; the job keeps "
                                     f"{self.api_reserve} in reserve (limits.api_reserve), so predict stopped")
        return response

    def record(self, outcomes: Sequence[RowOutcome]) -> None:
        """Sessions record outcomes decided during a run's look-ups; a prediction has none."""


def _read_only(sent: list[int]) -> Callable[[httpx.Request], Any]:
    """An httpx request hook on the prediction's client: counts every request (look-ups of
    constants included) and refuses any that is not a GET before it leaves this machine."""

    async def hook(request: httpx.Request) -> None:
        if request.method != "GET":
            raise PredictStopped(f"predict reads only; refused to send {request.method} {request.url.path}")
        sent[0] += 1

    return hook


def platform_part(name: str) -> Any:
    """``batchrunner.platforms.<name>.predict``, or a JobError saying predict does not cover it."""
    try:
        return importlib.import_module(f"batchrunner.platforms.{name}.predict")
    except ModuleNotFoundError:
        raise JobError(f"batchrunner predict does not cover {name} yet; `batchrunner run --dry-run` checks the "
                       "file without the platform.") from None


def rows_to_predict(prepared: Prepared) -> list[PredictRow]:
    """The rows the run would send (valid, not an exact duplicate), in the order the run sends them:
    wave by wave (a row waits for the earlier rows naming the same record: plan.py), each wave in
    input order. A row's prediction sees what the rows before it would have done."""
    skipped = {o.row for o in prepared.plan.duplicates}
    indices = [r for wave in prepared.plan.waves for r in sorted(r for unit in wave for r in unit.rows)
               if r not in skipped]
    if not indices:
        return []
    fields = [c for c in prepared.validated.columns if not c.startswith("__") and c != OP]
    data = FrameRows(prepared.validated, fields).rows(indices)
    operations = prepared.validated[OP].gather(indices).to_list()
    return [PredictRow(i, op, d) for i, op, d in zip(indices, operations, data, strict=True)]


def refuse_sync(job: Any) -> None:
    """A sync job's rows are a diff against earlier runs, with removals of who left: not covered."""
    if job.mode == "sync":
        raise JobError(f"{job.path.name} is a sync job (mode = \"sync\"); predict covers plain jobs. "
                       "`batchrunner run --dry-run` shows what a sync run would send.")


def check_cap(requests: int, max_requests: int | None, rows: int) -> None:
    """Refuse (exit 2) a prediction whose estimate is over ``max_requests``."""
    if max_requests is not None and requests > max_requests:
        raise JobError(f"predict would spend about {requests} requests for {rows} rows, more than --max-requests "
                       f"{max_requests}; nothing was read. Raise it (--max-requests {requests}) or predict fewer "
                       "rows (--input with part of the file).")


async def predict_prepared(prepared: Prepared, *, max_requests: int | None = None, output_dir: Path | None = None,
                           sandbox_app: Any | None = None, clock: Clock | None = None,
                           rng: random.Random | None = None,
                           on_estimate: Callable[[int, int], None] | None = None) -> PredictResult:
    """Read the platform, predict every row, write the prediction's run directory."""
    from batchrunner.runner import new_run_dir

    job = prepared.job
    rows = rows_to_predict(prepared)
    refuse_sync(job)
    part = platform_part(job.platform)
    requests = part.estimate(job, rows)
    check_cap(requests, max_requests, len(rows))
    if on_estimate is not None:
        on_estimate(requests, len(rows))
    started, started_at = time.monotonic(), utc_now()
    sent = [0]
    outcomes, io = await _read_and_predict(prepared, part, rows, sent, max_requests=max_requests,
                                           sandbox_app=sandbox_app, clock=clock or SystemClock(),
                                           rng=rng or random.Random()) if rows else ([], None)
    stats = io.stats if io is not None else ExecStats()
    summary = {
        "job": job.name, "job_file": str(job.path), "platform": job.platform, "kind": "prediction",
        "prediction": True, "target": "sandbox" if job.is_sandbox else "live",
        "mode": "SANDBOX" if job.is_sandbox else "LIVE", "endpoint": prepared.target,
        "input_file": str(prepared.loaded.path), "input_sha256": prepared.loaded.sha256,
        "requests_estimated": requests, "requests_sent": sent[0], "cost": io.cost if io else 0.0,
        "max_requests": max_requests, "http_statuses": {str(k): v for k, v in sorted(stats.status_counts.items())},
        "retries": stats.retries, "responses_429": stats.responses_429, "transport_errors": stats.transport_errors,
        "rate_limit_wait_seconds": round(io.limiter.waited, 3) if io else 0.0,
        "budget_per_minute": prepared.platform.budget_per_minute(job),
        "started_at": started_at, "finished_at": utc_now(), "duration_seconds": round(time.monotonic() - started, 3),
        "batchrunner_version": __version__,
        "note": "a prediction: the platform was read, nothing was sent; `batchrunner run` sends",
    }
    run_dir = new_run_dir(Path(output_dir) if output_dir else job.output_dir, f"{job.name}-predict")
    return write_prediction(prepared, run_dir, outcomes, summary)


async def _read_and_predict(prepared: Prepared, part: Any, rows: list[PredictRow], sent: list[int], *,
                            max_requests: int | None, sandbox_app: Any | None, clock: Clock,
                            rng: random.Random) -> tuple[list[RowOutcome], ReadOnlyIO]:
    """Open the job's session (GET only, counted), check its constants as `run` does, and let the
    platform part read and predict. Any failure to read stops the prediction (nothing written)."""
    from batchrunner.constants import refuse_unusable
    from batchrunner.runner import _client_factory

    job = prepared.job
    session = await prepared.platform.open_session(job, _client_factory(job, sandbox_app))
    session.client.event_hooks["request"].append(_read_only(sent))
    prepared.target = getattr(session, "target", None) or prepared.target
    try:
        # a constant naming nothing stops the run before it sends (constants.py): the same stop here
        await refuse_unusable(job, session.client)
        limits = job.limits
        limiter = RateLimiter(prepared.platform.budget_per_minute(job), clock=clock, rng=rng,
                              window_kind=limits.rate_window, max_server_wait=limits.max_server_wait)
        io = ReadOnlyIO(session, limiter, RetryPolicy(limits.max_attempts, limits.backoff_base, limits.backoff_max),
                        clock=clock, rng=rng, concurrency=limits.concurrency, max_requests=max_requests,
                        api_reserve=limits.api_reserve, sent=sent)
        try:
            return await part.predict(job, session, io, rows), io
        except StopRun as exc:  # the platform refused the credentials during a read
            raise PredictStopped(f"predict could not read {job.platform}: {exc.message}; nothing was sent") from None
        except httpx.TransportError as exc:
            raise PredictStopped(f"predict could not read {job.platform}: {type(exc).__name__}: "
                                 f"{secrets.redact(exc)}; nothing was sent") from None
    finally:
        await session.aclose()


def write_prediction(prepared: Prepared, run_dir: Path, outcomes: list[RowOutcome],
                     summary: dict[str, Any]) -> PredictResult:
    """The run directory of a prediction: a journal marked ``prediction`` (so `resume` and `retry`
    refuse it), results.csv with ``_prediction`` / ``_prediction_reason`` per input row,
    summary.json with the counts per prediction and per reason, and report.html."""
    job, validated = prepared.job, prepared.validated
    journal = Journal(run_dir / "journal.sqlite")
    try:
        journal.set_meta(job_path=str(job.path), job_name=job.name, platform=job.platform,
                         input_path=str(prepared.loaded.path), input_sha256=prepared.loaded.sha256,
                         created_at=summary["started_at"], sandbox=job.is_sandbox, version=__version__,
                         output_dir=str(run_dir.parent), dry_run=False, prediction=True, kind="prediction",
                         job_inline=job.inline)
        journal.add_rows(validated.height)
        invalid = prepared.invalid
        journal.finish_columns(invalid[IDX].to_list(), [Status.INVALID.value] * invalid.height,
                               invalid[CODE].to_list(), invalid[MESSAGE].to_list())
        journal.finish(prepared.plan.duplicates)
        journal.finish(outcomes)
        rows = journal.frame()
    finally:
        journal.close()
    # a prediction's own results.csv given back as the input carries its `_` columns: replaced
    frame = prepared.loaded.frame.drop([c for c in (*COLUMNS, *RESULT_COLUMNS) if c in prepared.loaded.frame.columns])
    results = spreadsheet_safe(results_frame(frame, rows, validated[OP], None)).select(
        *frame.columns, "_row", "_operation",
        pl.col("_status").replace_strict(PREDICTION, default="unknown").alias("_prediction"),
        pl.col("_error_code").alias("_prediction_reason"), pl.col("_error_message").alias("_prediction_message"))
    atomic_write(run_dir / "results.csv", lambda p: results.write_csv(p, include_bom=job.report_bom))
    counts = {name: 0 for name in PREDICTIONS}
    for name, n in results.group_by("_prediction").len().iter_rows():
        counts[name] = n
    reasons = dict(results.filter(pl.col("_prediction_reason").is_not_null()).group_by("_prediction_reason").len()
                   .sort(["len", "_prediction_reason"], descending=[True, False]).iter_rows())
    code = 1 if counts["fail"] or counts["invalid"] else 0
    summary = {**summary, "rows": results.height, "counts": counts, "reasons": reasons, "exit_code": code}
    text = json.dumps(secrets.redact_value(summary), indent=2, default=str) + "\n"
    atomic_write(run_dir / "summary.json", lambda p: p.write_text(text, encoding="utf-8"))
    write_html_report(run_dir, _as_run_results(results), _as_run_summary(summary))
    return PredictResult(run_dir, code, summary)


#: report.html shows a run; a prediction is shown as the run it predicts, said so in its title
_STATUS = {v: k for k, v in PREDICTION.items()}


def _as_run_results(results: pl.DataFrame) -> pl.DataFrame:
    return results.with_columns(
        pl.col("_prediction").replace_strict(_STATUS, default=Status.NOT_ATTEMPTED.value).alias("_status"),
        pl.col("_prediction_reason").alias("_error_code"), pl.col("_prediction_message").alias("_error_message"),
        pl.lit(0).alias("_attempts"), pl.lit(None, dtype=pl.String).alias("_result"),
        pl.lit(None, dtype=pl.String).alias("_finished_at"))


def _as_run_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The page's counts keep the prediction's words (apply, skip, fail, invalid)."""
    return {**summary, "job": f"{summary['job']} (prediction: nothing was sent)",
            "error_codes": summary["reasons"], "error_messages": {}, "resumed": False}
