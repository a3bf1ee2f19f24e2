"""`batchrunner verify RUN_DIR`: did what the run reported `succeeded` become what it promised?

An accepted enrolment is not always an active one: a Salesloft membership can sit `staged` (waiting
for a first step) or be removed before any action; a Salesforce tracker can exit at once. The run
cannot see that — its answer came before. So verify reads the platform again, only reading (every
request is a GET: `ReadIO` refuses anything else), for every row the run reported `succeeded`,
and writes ``verify.csv`` next to the run plus a ``verify`` block in summary.json.

The platform part lives in ``batchrunner/platforms/<name>/verify.py`` (``IDENTITY``, ``record_key``,
``check``); `read_states` is the library function others can call with rows of their own.
docs/verify.md describes the states each operation is checked for.
"""

from __future__ import annotations

import csv
import importlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import polars as pl

from batchrunner import jsonio, secrets, snapshot
from batchrunner.clock import Clock
from batchrunner.errors import JobError
from batchrunner.job import Job
from batchrunner.journal import DONE, utc_now
from batchrunner.outcome import RowOutcome, Status
from batchrunner.report import atomic_write

OK, MISMATCH, UNREADABLE = "ok", "mismatch", "unreadable"
SUPERSEDED = "superseded"  # a later succeeded row of the run acts on the same record: that one is checked
UNCHECKED = "unchecked"  # an operation whose resulting state verify does not read
VERDICTS = (OK, MISMATCH, UNREADABLE, SUPERSEDED, UNCHECKED)
FILE = "verify.csv"


@dataclass
class Item:
    """One row to check: its 0-based row number, operation, validated field values (as sent) and the
    run's result for it (``_result``: e.g. the membership id Salesloft answered with)."""

    row: int
    operation: str
    data: dict[str, Any]
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class Check:
    """What was found for one row: the state promised, the state read, and the verdict."""

    row: int
    expected: str
    observed: str
    verified: str
    reason: str = ""


@dataclass
class StateRead:
    """`read_states`' answer: one `Check` per item (in the items' order), and what reading cost."""

    checks: list[Check]
    requests: int = 0
    cost: float = 0.0


@dataclass
class VerifyResult:
    """What `verify` ended with; ``exit_code`` is what the CLI exits with (docs/exit-codes.md)."""

    run_dir: Path
    exit_code: int
    block: dict[str, Any]  # the `verify` block of summary.json
    checks: list[Check]

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.block.get("counts") or {})

    @property
    def verify_csv(self) -> Path:
        return self.run_dir / FILE


class ReadIO:
    """The `SessionIO` a platform's verify part reads through: GETs only, paced by the same rate
    limiter as a run and retried like an export's (export/common.py `Reader`)."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader

    async def request(self, method: str, url: str, *, cost: float = 1.0, **kwargs: Any) -> httpx.Response:
        if method.upper() != "GET":  # verify changes nothing, whatever a platform module asks
            raise RuntimeError(f"verify sends GET requests only, not {method}")
        return await self.reader.fetch(url, params=kwargs.get("params"), cost=cost)

    def record(self, outcomes: Sequence[RowOutcome]) -> None:  # nothing is recorded: verify has no journal
        return None


def platform_part(platform: str) -> ModuleType:
    """``batchrunner.platforms.<platform>.verify``, or a JobError (exit 2) for a platform without one."""
    try:
        return importlib.import_module(f"batchrunner.platforms.{platform}.verify")
    except ModuleNotFoundError:
        raise JobError(f"verify cannot read {platform} yet (docs/verify.md lists the platforms it reads).") from None


async def read_states(job: Job, items: Sequence[Item], *, sandbox_app: Any | None = None,
                      clock: Clock | None = None, rng: random.Random | None = None) -> StateRead:
    """Read the platform state of ``items`` over ``job``'s connection and judge each against what its
    operation promised. Reads only (GET); budgeted by the platform's rate limiter. A state that
    cannot be read is a check with verdict ``unreadable``, never an exception; a session that cannot
    be opened at all (credentials refused) raises ``JobError``."""
    from batchrunner.auth import AuthError
    from batchrunner.export.common import Reader
    from batchrunner.platforms import get_platform
    from batchrunner.runner import _client_factory

    part = platform_part(job.platform)
    if not items:
        return StateRead([])
    platform = get_platform(job.platform)
    try:
        session = await platform.open_session(job, _client_factory(job, sandbox_app))
    except AuthError as exc:
        raise JobError(f"verify could not sign in: {secrets.redact(exc)}") from None
    try:
        reader = Reader(session.client, session.read_rate, per_minute=platform.budget_per_minute(job),
                        limits=job.limits, clock=clock, rng=rng)
        checks = await part.check(session, ReadIO(reader), list(items))
        return StateRead(checks, reader.result.requests, reader.result.cost)
    finally:
        await session.aclose()


def _items(validated: pl.DataFrame, rows: pl.DataFrame) -> list[Item]:
    """The succeeded rows of a run (journal ``rows``), with their validated values and results."""
    from batchrunner.validate import OP

    done = rows.filter((pl.col("state") == DONE) & (pl.col("status") == Status.SUCCEEDED.value))
    indices = done["idx"].to_list()
    fields = [c for c in validated.columns if not c.startswith("__") and c != OP]
    picked = validated[indices]
    items = []
    for idx, op, data, result in zip(indices, picked[OP].to_list(), picked.select(fields).iter_rows(named=True),
                                     done["result"].to_list(), strict=True):
        items.append(Item(idx, op, {k: v for k, v in data.items() if v is not None}, _json(result)))
    return items


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = jsonio.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _supersede(items: list[Item], part: ModuleType) -> tuple[list[Item], list[Check]]:
    """Only the last succeeded row per record is checked: an earlier one's state was changed on
    purpose by the later one (assign then pause)."""
    last: dict[str, int] = {}
    for item in items:
        if (key := part.record_key(item.operation, item.data)) is not None:
            last[key] = item.row
    keep, superseded = [], []
    for item in items:
        key = part.record_key(item.operation, item.data)
        if key is not None and last[key] != item.row:
            superseded.append(Check(item.row, "", "", SUPERSEDED,
                                    f"row {last[key] + 1} of this run acts on the same record later; checked there"))
        else:
            keep.append(item)
    return keep, superseded


def refuse(meta: dict[str, Any], run_dir: Path) -> None:
    """Runs with nothing to verify: a dry run and a prediction sent nothing."""
    if meta.get("dry_run"):
        raise JobError(f"{run_dir} is a dry run: nothing was sent, so there is nothing to verify.")
    if meta.get("prediction") or meta.get("kind") == "prediction":
        raise JobError(f"{run_dir} is a prediction: nothing was sent, so there is nothing to verify.")


async def averify(run_dir: str | Path, *, sandbox_app: Any | None = None, clock: Clock | None = None,
                  rng: random.Random | None = None) -> VerifyResult:
    """Re-read the platform state of every row ``run_dir``'s run reported `succeeded`; write
    verify.csv and summary.json's ``verify`` block. Raises ``JobError`` (exit 2) for a directory that
    is not a run, a dry run or a prediction."""
    from batchrunner.runner import job_of_run, read_run

    run_dir = Path(run_dir)
    meta, rows = read_run(run_dir, refuse)
    if not snapshot.exists(run_dir):
        raise JobError(f"{run_dir} has no copy of the rows it read (an older run); it cannot be verified.")
    job = job_of_run(run_dir, meta)
    if sandbox_app is None and job.is_sandbox and not (job.connection.base_url or job.connection.instance_url):
        raise JobError(f"{run_dir} ran against the in-process sandbox, whose state ended with the run: there is "
                       "nothing left to read. Use [verify] after_run = true in the job, or a served sandbox "
                       "(batchrunner sandbox, and base_url / instance_url in [connection]).")
    _, validated = snapshot.load(run_dir)
    part = platform_part(job.platform)
    items, superseded = _supersede(_items(validated, rows), part)
    checked_at = utc_now()
    read = await read_states(job, items, sandbox_app=sandbox_app, clock=clock, rng=rng)
    checks = sorted(read.checks + superseded, key=lambda c: c.row)
    _write_csv(run_dir / FILE, checks, {i.row: i for i in items}, validated, part.IDENTITY)
    counts = {v: 0 for v in VERDICTS}
    for check in checks:
        counts[check.verified] += 1
    code = 1 if counts[MISMATCH] or counts[UNREADABLE] else 0
    block = {"checked_at": checked_at, "rows": len(checks), "counts": counts, "requests": read.requests,
             "cost": read.cost, "file": FILE, "exit_code": code}
    _add_to_summary(run_dir, block)
    return VerifyResult(run_dir, code, block, checks)


def _write_csv(path: Path, checks: list[Check], items: dict[int, Item], validated: pl.DataFrame,
               identity: Sequence[str]) -> None:
    """verify.csv: one line per succeeded row; the values that identify it (IDs, emails, cadence —
    never a credential, and redacted like every report), expected, observed, verdict, reason."""
    from batchrunner.validate import OP

    columns = ["_row", "_operation", *identity, "expected", "observed", "verified", "reason"]
    wanted = [c for c in identity if c in validated.columns]
    values = validated.select(OP, *wanted) if checks else None

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(columns)
            for check in checks:
                row = values.row(check.row, named=True) if values is not None else {}
                cells = [check.row + 1, row.get(OP), *(row.get(c) for c in identity), check.expected, check.observed,
                         check.verified, check.reason]
                writer.writerow(["" if v is None else secrets.redact_value(v) for v in cells])

    atomic_write(path, write)


def _add_to_summary(run_dir: Path, block: dict[str, Any]) -> None:
    path = run_dir / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = {}
    summary["verify"] = block
    text = json.dumps(summary, indent=2, default=str) + "\n"
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


async def after_run(run_dir: Path, summary: dict[str, Any], *, sandbox_app: Any | None = None,
                    clock: Clock | None = None, rng: random.Random | None = None) -> dict[str, Any]:
    """``[verify] after_run``: verify the run that just ended. Never changes the run's outcome rows
    or exit code; a verify that cannot be done says why in the summary's ``verify`` block."""
    import logging

    log = logging.getLogger("batchrunner.run")
    try:
        result = await averify(run_dir, sandbox_app=sandbox_app, clock=clock, rng=rng)
        block = result.block
    except Exception as exc:  # noqa: BLE001 - the run's own outcome stands whatever happens here
        block = {"error": secrets.redact(f"{type(exc).__name__}: {exc}"), "checked_at": utc_now()}
        _add_to_summary(run_dir, block)
        log.warning("verify after the run could not be done: %s", block["error"])
        return {**summary, "verify": block}
    counts = block["counts"]
    log.info("verify: %d ok, %d mismatch, %d unreadable (%d requests); %s", counts[OK], counts[MISMATCH],
             counts[UNREADABLE], block["requests"], run_dir / FILE)
    return {**summary, "verify": block}
