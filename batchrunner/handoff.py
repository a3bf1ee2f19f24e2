"""``handoff = "remove_from_source"``: a migration that moves people, not copies them.

A migration job enrols people in the *target* tool (its ``platform``) from an export of the
*source* tool (``[source]``). With the hand-off on, each person is then finished in the source,
but only once the target enrolment is confirmed: the run reported it succeeded (or found the person
already on the cadence) **and** a read-back of the target shows it active (``confirm_enrolled`` in
``platforms/<target>/confirm.py``). A target failure leaves the source untouched.

The source side is a run of its own in ``RUN_DIR/handoff/`` (journal.sqlite, a snapshot, the usual
reports), one row per input row, so the two journals together say where every person is:

- the hand-off run is created whole (confirm read, rows, snapshot) in a temporary directory and
  renamed into place, so it either exists completely or not at all;
- ``batchrunner resume RUN_DIR`` finishes the target rows, then creates the hand-off run if it does
  not exist yet, or continues it (rows in flight are checked with the source before anything is
  sent again, as in any resume);
- so a crash at any point, followed by ``resume``, ends with each confirmed person active in the
  target only, and each unconfirmed person still in the source: never both, never neither.

results.csv of the run gains ``_handoff_status`` and ``_handoff_error``; summary.json a ``handoff``
block. docs/migration.md ("Hand-off") describes the keys and what ``retry`` does.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from batchrunner import __version__, failpoints, snapshot
from batchrunner.errors import JobError, did_you_mean
from batchrunner.journal import DONE, Journal, utc_now
from batchrunner.outcome import CHECK_BEFORE_RETRY, RowOutcome, Status
from batchrunner.plan import plan_rest
from batchrunner.prepared import Prepared
from batchrunner.source import OPERATION, LoadedInput, clean, match_column
from batchrunner.validate import CODE, IDX, MESSAGE, OP

HANDOFF = "remove_from_source"
SUBDIR = "handoff"
#: per source platform: the operation that finishes a person there, and the column of the export
#: (batchrunner export ...) naming the exact record it ends: one membership, tracker or sequence state
SOURCE_DEFAULTS: dict[str, tuple[str, dict[str, str]]] = {
    "salesloft": ("remove", {"membership_id": "membership_id"}),
    "salesforce": ("remove", {"actionCadenceTrackerId": "tracker_id"}),
    "outreach": ("finish", {"sequence_state_id": "sequence_state_id"}),
}
#: per target platform: the enrolment a hand-off job sends (a target with a confirm read)
TARGET_OPERATIONS = {"salesforce": "assign", "salesloft": "add"}
SOURCE_KEYS = ("platform", "operation", "columns", "connection")
#: source outcomes that mean "no longer active there" besides succeeded
GONE = ("NOT_ON_CADENCE", "ALREADY_FINISHED")
NOT_ENROLLED, NOT_CONFIRMED = "TARGET_NOT_ENROLLED", "TARGET_NOT_CONFIRMED"
#: `_handoff_status` values
REMOVED, KEPT, FAILED, INVALID, PENDING, SKIPPED = "removed", "kept", "failed", "invalid", "pending", "skipped"


@dataclass
class Source:
    """``[source]``: the tool the people leave, and how its record of each person is named."""

    platform: str
    operation: str
    columns: dict[str, Any]  # operation field -> job.ColumnSpec
    connection: Any  # job.Connection


def parse_source(handoff: Any, table: Any, job: Any) -> tuple[str | None, Source | None]:
    """``handoff`` and ``[source]`` of a job file, checked (JobError, exit 2, naming the mistake)."""
    from batchrunner.job import PLATFORMS, Connection, _typed_table, column_spec

    if handoff is None:
        raise JobError("[source] only applies with handoff = \"remove_from_source\".")
    if handoff != HANDOFF:
        raise JobError(f"handoff must be \"{HANDOFF}\", got {handoff!r}.")
    if not isinstance(table, dict):
        raise JobError("handoff = \"remove_from_source\" needs a [source] table: platform = \"salesloft\" (the tool "
                       "the people leave), and optionally [source.columns] and [source.connection].")
    for key in table:
        if key not in SOURCE_KEYS:
            raise JobError(f"Unknown key {key!r} in [source].{did_you_mean(key, SOURCE_KEYS)}")
    platform = table.get("platform")
    if platform not in PLATFORMS:
        raise JobError(f"[source] platform must name the tool the people leave ({', '.join(PLATFORMS)}), "
                       f"got {platform!r}.")
    if platform == job.platform:
        raise JobError(f"[source] platform is {platform}, the job's own platform: a hand-off moves people between "
                       "two tools.")
    if job.platform not in TARGET_OPERATIONS:
        raise JobError(f"handoff: a {job.platform} target has no confirm read yet; hand-offs go to "
                       f"{' or '.join(TARGET_OPERATIONS)}.")
    if job.mode != "once":
        raise JobError("handoff does not combine with mode = \"sync\".")
    operation, default_columns = SOURCE_DEFAULTS[platform]
    operation = table.get("operation", operation)
    if not isinstance(operation, str):
        raise JobError("[source] operation must be a string.")
    raw_columns = table.get("columns", default_columns)
    if not isinstance(raw_columns, dict) or not raw_columns:
        raise JobError("[source.columns] must map the source operation's fields to input columns.")
    columns = {key: column_spec(key, spec, "source.columns") for key, spec in raw_columns.items()}
    if "connection" in table:
        connection = _typed_table(table["connection"], Connection, "source.connection")
    else:  # the job's sandbox (and a served sandbox's address); live: the source's own environment variables
        own = job.connection
        url = own.base_url or own.instance_url if own.sandbox else None
        key = "instance_url" if platform == "salesforce" else "base_url"
        connection = Connection(sandbox=own.sandbox, **{key: url})
    return HANDOFF, Source(platform, operation, columns, connection)


def source_job(job: Any) -> Any:
    """The job the source side runs: the source platform, its operation, columns and connection."""
    src: Source = job.source
    return replace(job, name=f"{job.name}-handoff", platform=src.platform, operation=src.operation,
                   columns=dict(src.columns), operation_column=None, connection=src.connection, mappings={},
                   handoff=None, source=None, wire_values={})


def check_handoff_job(job: Any) -> None:
    """Before anything is read: the target operation is the enrolment, the source operation exists."""
    from batchrunner.platforms import get_platform

    wanted = TARGET_OPERATIONS[job.platform]
    op = get_platform(job.platform).catalog_for(job).resolve(job.operation or "")
    if op is None or op.name != wanted or job.operation_column is not None:
        raise JobError(f"handoff moves people onto a cadence: on {job.platform} the job's operation must be "
                       f"{wanted!r} for every row.")
    src = source_job(job)
    if get_platform(src.platform).catalog_for(src).resolve(src.operation) is None:
        raise JobError(f"[source] operation {src.operation!r} is not a {src.platform} operation.")


# -- the source side's rows -----------------------------------------------------------------------
def _source_loaded(src: Any, loaded: LoadedInput) -> LoadedInput:
    header = loaded.frame.columns
    exprs = [clean(pl.col(match_column(spec.column, header, [])) if spec.column is not None
                   else pl.lit(spec.value, dtype=pl.String)).alias(name) for name, spec in src.columns.items()]
    fields = loaded.frame.select(*exprs, pl.lit(src.operation, dtype=pl.String).alias(OPERATION))
    return LoadedInput(path=loaded.path, sha256=loaded.sha256, frame=loaded.frame, fields=fields)


def _validated(src: Any, loaded: LoadedInput) -> pl.DataFrame:
    from batchrunner.platforms import get_platform
    from batchrunner.validate import validate

    platform = get_platform(src.platform)
    version = platform.api_version(src)
    return validate(loaded, platform.catalog_for(src), float(version) if version else None)


class ConfirmFailed(Exception):
    """The target could not be read back: nothing is taken off the source; resume tries again."""


async def confirm(job: Any, rows: list[tuple[int, dict[str, Any], dict[str, Any]]], *, make_client: Any,
                  sandbox_app: Any, clock: Any, rng: Any) -> tuple[dict[int, tuple[bool, str]], int]:
    """Read the target back for these (row, sent fields, recorded result): row -> (active?, why),
    and the requests the read took.

    A small function on purpose: ``batchrunner verify`` (built alongside) is the general check of a
    run's rows, and this can become a call to it."""
    from batchrunner.auth import AuthError
    from batchrunner.export.common import Reader
    from batchrunner.platforms import get_platform
    from batchrunner.platforms.base import StopRun

    if not rows:
        return {}, 0
    platform = get_platform(job.platform)
    reads = importlib.import_module(f"batchrunner.platforms.{job.platform}.confirm")
    try:
        session = await platform.open_session(job, make_client(job, sandbox_app))
    except (AuthError, JobError) as exc:
        raise ConfirmFailed(f"could not connect to {job.platform}: {exc}") from None
    try:
        reader = Reader(session.client, session.read_rate, per_minute=platform.budget_per_minute(job),
                        limits=job.limits, clock=clock, rng=rng)
        found = await reads.confirm_enrolled(_ReaderIO(reader), session, rows)
        return found, reader.result.requests
    except (JobError, StopRun, OSError, httpx.HTTPError, *reads.READ_ERRORS) as exc:  # resume reads again
        raise ConfirmFailed(f"{type(exc).__name__}: {exc}") from None
    finally:
        await session.aclose()


class _ReaderIO:
    """A `SessionIO` over an export `Reader`: paced, retried GETs, outside a run's executor."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader

    async def request(self, method: str, url: str, *, cost: float = 1.0, **kwargs: Any) -> Any:
        return await self.reader.get(url, params=kwargs.get("params"), cost=cost)

    def record(self, outcomes: Any) -> None:  # a confirm read decides no row
        return None


async def _create(prepared: Prepared, journal: Journal, run_dir: Path, **kw: Any) -> int:
    """Confirm the target, then write the hand-off run whole (a temporary directory renamed into
    place): rows not to be taken off the source already have their outcome."""
    job = prepared.job
    src = source_job(job)
    target_rows = journal.frame()
    status, code = pl.col("status"), pl.col("code")
    enrolled = target_rows.filter((pl.col("state") == DONE) & (
        (status == Status.SUCCEEDED.value) | ((status == Status.SKIPPED.value) & (code == "ALREADY_ON_CADENCE"))))
    fields = [c for c in prepared.validated.columns if not c.startswith("__") and c not in (OP, IDX)]
    sent = prepared.validated.select(IDX, *fields)
    wanted = enrolled.join(sent, left_on="idx", right_on=IDX, how="left")
    rows = [(r["idx"], {f: r[f] for f in fields}, json.loads(r["result"]) if r["result"] else {})
            for r in wanted.iter_rows(named=True)]
    failpoints.hit("handoff.before_confirm")
    confirmed, reads = await confirm(job, rows, **kw)
    loaded = _source_loaded(src, prepared.loaded)
    validated = _validated(src, loaded)
    outcomes: list[RowOutcome] = []
    enrolled_set = {r[0] for r in rows}
    for idx, state, st, cd in target_rows.select("idx", "state", "status", "code").iter_rows():
        if idx not in enrolled_set:
            said = f"{st} {cd}" if cd else str(st if state == DONE else "not attempted")
            outcomes.append(RowOutcome(idx, Status.SKIPPED, NOT_ENROLLED, f"the {job.platform} enrolment did not "
                                       f"happen ({said}): the person stays in {src.platform}, untouched"))
        elif not confirmed.get(idx, (False, ""))[0]:
            why = confirmed.get(idx, (False, "not read back"))[1]
            outcomes.append(RowOutcome(idx, Status.SKIPPED, NOT_CONFIRMED, f"{job.platform} reported the enrolment but "
                                       f"the read-back does not show it active ({why}): the person stays in "
                                       f"{src.platform}; check them in {job.platform}, then `batchrunner retry`"))
    decided = {o.row for o in outcomes}
    invalid = validated.filter(pl.col(CODE).is_not_null() & ~pl.col(IDX).is_in(list(decided)))
    tmp = run_dir / f".{SUBDIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700)
    sub = Journal(tmp / "journal.sqlite")
    try:
        sub.set_meta(job_path=str(job.path), job_name=src.name, platform=src.platform, kind="handoff",
                     parent_run=str(run_dir), input_path=str(loaded.path), input_sha256=loaded.sha256,
                     created_at=utc_now(), sandbox=src.is_sandbox, version=__version__)
        sub.add_rows(validated.height)
        sub.finish(outcomes)
        sub.finish_columns(invalid[IDX].to_list(), [Status.INVALID.value] * invalid.height,
                           invalid[CODE].to_list(), invalid[MESSAGE].to_list())
    finally:
        sub.close()
    snapshot.save(tmp, loaded.frame, validated)
    os.replace(tmp, run_dir / SUBDIR)
    return reads


async def _send(prepared: Prepared, run_dir: Path, *, send: Any, sandbox_app: Any, clock: Any, rng: Any,
                progress: Any, handle_signals: bool) -> Any:
    """Send (or go on sending) the hand-off run's rows, exactly as `resume` goes on with a run."""
    from batchrunner.platforms import get_platform

    src = source_job(prepared.job)
    where = run_dir / SUBDIR
    frame, validated = snapshot.load(where)
    platform = get_platform(src.platform)
    catalog = platform.catalog_for(src)
    sizes = {op.name: platform.rows_per_request(src, op.name) for op in catalog.operations}
    _, _, target = platform.endpoint(src)
    journal = Journal(where / "journal.sqlite")
    try:
        rows = journal.frame()
        resumed = rows.filter(pl.col("attempts") > 0).height > 0
        the_plan, _, _ = plan_rest(validated, catalog, sizes, rows)
        journal.finish(the_plan.duplicates)
        loaded = LoadedInput(path=prepared.loaded.path, sha256=prepared.loaded.sha256, frame=frame, fields=validated)
        sub = Prepared(src, platform, loaded, validated, the_plan, target)
        return await send(sub, the_plan, where, journal, sandbox_app=sandbox_app, clock=clock, rng=rng,
                          progress=False if progress is None else progress, handle_signals=handle_signals,
                          resumed=resumed)
    finally:
        journal.close()


# -- the report -----------------------------------------------------------------------------------
def row_columns(run_dir: Path, height: int) -> pl.DataFrame:
    """``_handoff_status`` and ``_handoff_error`` per input row, from the hand-off run's journal."""
    path = run_dir / SUBDIR / "journal.sqlite"
    if not path.is_file():
        return pl.DataFrame({"_handoff_status": [PENDING] * height,
                             "_handoff_error": ["the hand-off has not run yet; `batchrunner resume` does it"] * height})
    journal = Journal(path)
    try:
        rows = journal.frame()
    finally:
        journal.close()
    st, cd = pl.col("status"), pl.col("code")
    status = (pl.when(pl.col("state") != DONE).then(pl.lit(PENDING))
              .when((st == Status.SUCCEEDED.value) | ((st == Status.SKIPPED.value) & cd.is_in(GONE)))
              .then(pl.lit(REMOVED))
              .when((st == Status.SKIPPED.value) & cd.is_in([NOT_ENROLLED, NOT_CONFIRMED])).then(pl.lit(KEPT))
              .when(st == Status.FAILED.value).then(pl.lit(FAILED))
              .when(st == Status.INVALID.value).then(pl.lit(INVALID))
              .otherwise(pl.lit(SKIPPED)))
    error = (pl.when(pl.col("state") != DONE).then(pl.lit("not done yet; `batchrunner resume` finishes it"))
             .when(cd.is_not_null()).then(pl.concat_str([cd, pl.lit(": "), pl.col("message").fill_null("")])))
    return rows.sort("idx").select(status.alias("_handoff_status"), error.alias("_handoff_error"))


def _exit_code(target_code: int, columns: pl.DataFrame) -> int:
    counts = dict(columns.group_by("_handoff_status").len().iter_rows())
    if target_code in (3, 4) or counts.get(PENDING):
        return max(target_code, 3) if target_code != 4 else 4
    problems = counts.get(FAILED, 0) + counts.get(INVALID, 0)
    not_confirmed = columns.filter(pl.col("_handoff_error").str.starts_with(NOT_CONFIRMED)).height
    return 1 if target_code == 1 or problems or not_confirmed else target_code


async def finish(prepared: Prepared, result: Any, run_dir: Path, journal: Journal, *, send: Any, make_client: Any,
                 sandbox_app: Any, clock: Any, rng: Any, progress: Any, handle_signals: bool = False) -> Any:
    """After the target run (or its resume): create or continue the hand-off run, then rewrite the
    run's reports with both sides per row and a ``handoff`` block. ``send`` and ``make_client``
    are the runner's, handed in so this module never imports the runner."""
    from batchrunner.report import ReportOptions, write_reports

    src: Source = prepared.job.source
    block: dict[str, Any] = {"mode": HANDOFF, "source_platform": src.platform, "source_operation": src.operation,
                             "report": str(run_dir / SUBDIR / "results.csv"), "sent": False}
    code = result.exit_code
    if code in (3, 4):
        block["why"] = "the run stopped before every row had an outcome; `batchrunner resume` hands off after it"
    else:
        try:
            if not (run_dir / SUBDIR / "journal.sqlite").is_file():
                block["confirm_requests"] = await _create(prepared, journal, run_dir, make_client=make_client,
                                                          sandbox_app=sandbox_app, clock=clock, rng=rng)
            sub = await _send(prepared, run_dir, send=send, sandbox_app=sandbox_app, clock=clock, rng=rng,
                              progress=progress, handle_signals=handle_signals)
            block.update(sent=True, exit_code=sub.exit_code, source_counts=sub.summary.get("counts"),
                         requests_sent=sub.summary.get("requests_sent"))
        except ConfirmFailed as exc:
            block["why"] = f"the {prepared.job.platform} enrolments could not be read back ({exc}); nothing was taken " \
                           "off the source; `batchrunner resume` tries again"
    columns = row_columns(run_dir, prepared.validated.height)
    block["counts"] = {s: 0 for s in (REMOVED, KEPT, FAILED, INVALID, PENDING, SKIPPED)} | dict(
        columns.group_by("_handoff_status").len().iter_rows())
    code = _exit_code(code, columns)
    summary = {**result.summary, "handoff": block, "exit_code": code}
    job = prepared.job
    summary = write_reports(run_dir, prepared.loaded.frame, journal.frame(), prepared.validated[OP], summary,
                            _stopped(result), resumable=True, options=ReportOptions(bom=job.report_bom,
                                                                                    xlsx=job.report_xlsx),
                            extra=columns)
    return replace(result, exit_code=code, summary=summary)


def _stopped(result: Any) -> tuple[str, str] | None:
    stop = result.summary.get("stopped")
    return (stop["code"], stop["message"]) if stop else None


# -- retry ----------------------------------------------------------------------------------------
def retry_extra(run_dir: Path) -> list[int]:
    """`retry` of a hand-off run also takes the rows enrolled in the target but not finished in the
    source (removal failed, or not confirmed): sent again, the target answers "already on the
    cadence", which is confirmed and handed off. A hand-off still pending must be resumed first."""
    path = run_dir / SUBDIR / "journal.sqlite"
    if not path.is_file():
        raise JobError(f"{run_dir}'s hand-off has not run yet: finish it first with: batchrunner resume {run_dir}")
    journal = Journal(path)
    try:
        rows = journal.frame()
    finally:
        journal.close()
    if rows.filter(pl.col("state") != DONE).height:
        raise JobError(f"{run_dir}'s hand-off stopped before it ended; finish it first with: "
                       f"batchrunner resume {run_dir}")
    again = (((pl.col("status") == Status.FAILED.value) & ~pl.col("code").is_in(list(CHECK_BEFORE_RETRY)))
             | (pl.col("code") == NOT_CONFIRMED))
    return rows.filter(again)["idx"].to_list()
