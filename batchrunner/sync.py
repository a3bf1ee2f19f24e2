"""``mode = "sync"``: a recurring list (the same file, edited, every week) kept in step with a cadence.

The job's ``key`` column(s) name each row's person. A small SQLite file next to the job's runs,
``OUTPUT_DIR/.<job name>.sync.sqlite``, remembers who earlier runs enrolled *successfully* and with
which values. A new run then:

- sends the rows whose key is new (``added``) or whose values changed (``changed``);
- records the rest ``skipped`` / ``UNCHANGED`` ("unchanged since last run") without sending them;
- with ``remove_missing = true``, removes from the cadence the people the state holds whose key is no
  longer in the file (``to remove``); without it they are only counted (and stay in the state).

Removals are a run of their own in ``RUN_DIR/removals/`` with the usual reports (``results.csv``
one line per removal, ``errors.csv``, ``summary.json``; their journal is ``removals.sqlite``, which
``resume`` does not take: the next sync run sends what is left); the run's own
``summary.json`` gets a ``sync`` block with the counts. results.csv keeps its contract (one line
per input row).

The state is only ever updated from journals, so it survives failed and stopped runs: before a run
sends anything it records which rows it will send (``pending``, with the journal's path); their
outcomes are folded into the state when the run ends, or by the next run (or ``validate``, read-only)
if the process died. Only a row that *succeeded* (or that Salesloft already had on the cadence)
counts as enrolled: a row that failed last week is new again this week. A removal that succeeded
(or found the person no longer on the cadence) drops the key; a failed removal is tried next run.

A removal guard keeps a truncated or wrong export from emptying a cadence: ``max_removals`` (a count,
or a share of the synced state such as ``"10%"``; default 10% of the state, at least 5) caps the
removals one run may send. Over the cap, ``run`` stops with exit 2 before sending anything, unless
``--allow-mass-removal`` is given; ``validate`` shows the verdict.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from batchrunner.errors import JobError
from batchrunner.job import Job
from batchrunner.journal import DONE, Journal, utc_now
from batchrunner.outcome import RowOutcome, Status
from batchrunner.source import OPERATION, LoadedInput, clean, match_column
from batchrunner.validate import CODE, IDX, MESSAGE, OP

#: per platform, the operation a sync job may use, and the stored fields its removal needs
SYNC_OPERATIONS = {"salesforce": ("assign", ("targetId",)),
                   "salesloft": ("add", ("person_id", "person_email", "person_crm_id", "cadence_id", "cadence_name"))}
#: outcomes that mean "the person is on the cadence now" (add) / "no longer on it" (remove)
ENROLLED_SKIP = (Status.SKIPPED.value, "ALREADY_ON_CADENCE")
GONE_SKIP = (Status.SKIPPED.value, "NOT_ON_CADENCE")
SEP = "\x1f"
#: the default guard: 10% of the synced state, but never fewer than MIN_DEFAULT_REMOVALS (small lists churn)
DEFAULT_FRACTION = 0.10
MIN_DEFAULT_REMOVALS = 5

SCHEMA = """
CREATE TABLE IF NOT EXISTS enrolled (key TEXT PRIMARY KEY, fields TEXT NOT NULL, run_dir TEXT, updated_at TEXT);
CREATE TABLE IF NOT EXISTS pending (
    journal TEXT NOT NULL, idx INTEGER NOT NULL, kind TEXT NOT NULL,   -- kind: add | remove
    key TEXT NOT NULL, fields TEXT NOT NULL, PRIMARY KEY (journal, idx, kind));
"""


def state_path(output_dir: Path, job_name: str) -> Path:
    return Path(output_dir) / f".{job_name}.sync.sqlite"


@dataclass(frozen=True)
class RemovalLimit:
    """``max_removals``: a fixed count, or a fraction of the people the state holds."""

    count: int | None = None
    fraction: float | None = None
    default: bool = False

    def allowed(self, enrolled: int) -> int:
        if self.count is not None:
            return self.count
        share = math.floor((self.fraction or 0.0) * enrolled + 1e-9)
        return max(MIN_DEFAULT_REMOVALS, share) if self.default else share

    def describe(self, enrolled: int) -> str:
        if self.count is not None:
            return f"max_removals = {self.count}"
        pct = f"{(self.fraction or 0.0) * 100:g}%"
        floor = f", at least {MIN_DEFAULT_REMOVALS}" if self.default else ""
        return (f"max_removals {'default ' if self.default else '= '}{pct} of {enrolled} enrolled{floor} "
                f"= {self.allowed(enrolled)}")


def parse_max_removals(raw: Any) -> RemovalLimit:
    """The job's ``max_removals``: absent (the default), a whole number, or ``"N%"`` (0 to 100)."""
    if raw is None:
        return RemovalLimit(fraction=DEFAULT_FRACTION, default=True)
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return RemovalLimit(count=raw)
    if isinstance(raw, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", raw)
        if m and m.group(2) and float(m.group(1)) <= 100:
            return RemovalLimit(fraction=float(m.group(1)) / 100)
        if m and not m.group(2) and m.group(1).isdigit():
            return RemovalLimit(count=int(m.group(1)))
    raise JobError(f"max_removals must be a whole number of removals (e.g. 50) or a share of the synced state "
                   f"(e.g. \"10%\"), got {raw!r}.")


@dataclass
class SyncDiff:
    state: Path
    keys: list[str | None]  # per input row
    fields: list[str | None]  # per input row: its values as JSON (what is stored once enrolled)
    added: list[int] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)
    unchanged: list[RowOutcome] = field(default_factory=list)
    to_remove: list[tuple[str, str]] = field(default_factory=list)  # (key, stored fields JSON)
    remove_missing: bool = False
    shared_keys: int = 0  # valid rows whose key an earlier valid row already has (the key should be unique)
    enrolled: int = 0  # people the state held before this run (what a max_removals share is of)
    limit: RemovalLimit = field(default_factory=lambda: parse_max_removals(None))
    allow_mass_removal: bool = False  # --allow-mass-removal: the guard is lifted for this run

    def guard_ok(self) -> bool:
        """True when the removals this run would send are within max_removals (or nothing is removed)."""
        return not (self.remove_missing and len(self.to_remove) > self.limit.allowed(self.enrolled))

    def guard_text(self) -> str:
        n = len(self.to_remove)
        verdict = "within the limit" if self.guard_ok() else (
            "over the limit: lifted by --allow-mass-removal" if self.allow_mass_removal else
            "over the limit: `run` stops before sending anything; check the input, then raise max_removals or run "
            "with --allow-mass-removal")
        return f"removal guard: {n} removals, {self.limit.describe(self.enrolled)}: {verdict}"

    @property
    def to_send(self) -> set[int]:
        return set(self.added) | set(self.changed)

    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "changed": len(self.changed), "unchanged": len(self.unchanged),
                "left_the_list": len(self.to_remove),
                "to_remove": len(self.to_remove) if self.remove_missing else 0}

    def describe(self) -> list[str]:
        c = self.counts()
        lines = [f"sync against {self.state}: {c['added']} added, {c['changed']} changed, "
                 f"{c['unchanged']} unchanged (skipped), {c['to_remove']} to remove"]
        if self.shared_keys:
            lines.append(f"  warning: {self.shared_keys} rows repeat the key of an earlier row; the state keeps one "
                         "row per key, so give key every column that tells them apart (e.g. key = [\"Email\", "
                         "\"Cadence\"])")
        if self.to_remove and not self.remove_missing:
            lines.append(f"  {len(self.to_remove)} left the list and stay on the cadence (remove_missing is off)")
        if self.remove_missing and self.to_remove:
            lines.append(f"  {self.guard_text()}")
        for key, _ in self.to_remove[:5]:
            lines.append(f"  {'remove' if self.remove_missing else 'left'}: {key.replace(SEP, ' / ')}")
        if len(self.to_remove) > 5:
            lines.append(f"  … and {len(self.to_remove) - 5} more")
        return lines


# -- the state file ---------------------------------------------------------------------------------
def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(SCHEMA)
    return db


def _journal_outcomes(path: Path) -> dict[int, tuple[str, str | None]]:
    """Done rows of a run's journal: idx -> (status, code)."""
    if not path.is_file():
        return {}
    journal = Journal(path)
    try:
        done = (journal.states().filter(pl.col("state") == DONE)
                .select("idx", pl.col("status").cast(pl.String), pl.col("code").cast(pl.String)))
        return {idx: (status, code) for idx, status, code in done.iter_rows()}
    finally:
        journal.close()


def _fold(db: sqlite3.Connection) -> None:
    """Apply the known outcomes of pending rows to ``enrolled`` (inside the caller's transaction)."""
    journals = [j for (j,) in db.execute("SELECT journal FROM pending GROUP BY journal ORDER BY MIN(rowid)")]
    for journal in journals:
        outcomes = _journal_outcomes(Path(journal))
        run_dir = str(Path(journal).parent)
        for idx, kind, key, fields in db.execute(
                "SELECT idx, kind, key, fields FROM pending WHERE journal = ? ORDER BY idx", (journal,)).fetchall():
            outcome = outcomes.get(idx)
            if outcome is None:
                if Path(journal).is_file():
                    continue  # not done yet: a later resume may finish it
            elif kind == "add" and (outcome[0] == Status.SUCCEEDED.value or outcome == ENROLLED_SKIP):
                db.execute("INSERT INTO enrolled(key, fields, run_dir, updated_at) VALUES (?, ?, ?, ?) "
                           "ON CONFLICT(key) DO UPDATE SET fields = excluded.fields, run_dir = excluded.run_dir, "
                           "updated_at = excluded.updated_at", (key, fields, run_dir, utc_now()))
            elif kind == "remove" and (outcome[0] == Status.SUCCEEDED.value or outcome == GONE_SKIP):
                db.execute("DELETE FROM enrolled WHERE key = ?", (key,))
            db.execute("DELETE FROM pending WHERE journal = ? AND idx = ? AND kind = ?", (journal, idx, kind))


def fold(path: Path) -> None:
    """Bring the state up to date with every journal it is waiting on (call under the job's lock)."""
    db = _connect(path)
    try:
        db.execute("BEGIN IMMEDIATE")
        _fold(db)
        db.execute("COMMIT")
    finally:
        db.close()


def enrolled(path: Path) -> dict[str, str]:
    """key -> stored fields, as the state would be after folding (read-only: nothing is written)."""
    if not path.is_file():
        return {}
    db = _connect(path)
    try:
        db.execute("BEGIN")
        _fold(db)
        out = dict(db.execute("SELECT key, fields FROM enrolled"))
        db.execute("ROLLBACK")
        return out
    finally:
        db.close()


def register(path: Path, journal: Path, kind: str, rows: list[tuple[int, str, str]]) -> None:
    """Record rows about to be sent (idx, key, fields), so their outcomes can be folded in later."""
    db = _connect(path)
    try:
        with db:
            db.execute("BEGIN")
            db.executemany("INSERT OR REPLACE INTO pending(journal, idx, kind, key, fields) VALUES (?, ?, ?, ?, ?)",
                           [(str(journal), idx, kind, key, fields) for idx, key, fields in rows])
    finally:
        db.close()


# -- the diff -------------------------------------------------------------------------------------
def check_sync_job(job: Job) -> None:
    from batchrunner.platforms import get_platform

    if job.platform not in SYNC_OPERATIONS:
        raise JobError(f"mode = \"sync\" is not available on {job.platform} yet (it is on "
                       f"{' and '.join(SYNC_OPERATIONS)}): use mode = \"once\" (someone already in the sequence "
                       "is skipped).")
    wanted, _ = SYNC_OPERATIONS[job.platform]
    op = get_platform(job.platform).catalog_for(job).resolve(job.operation or "")
    if op is None or op.name != wanted:
        raise JobError(f"mode = \"sync\" keeps people on a cadence: on {job.platform} its operation must be "
                       f"{wanted!r}, not {job.operation!r}.")


def _row_keys(job: Job, loaded: LoadedInput, validated: pl.DataFrame) -> pl.Series:
    header = loaded.frame.columns
    parts = []
    for column in job.key:
        actual = match_column(column, header, [])  # a JobError naming the column when it is missing
        raw = loaded.frame.select(clean(pl.col(actual))).to_series()
        fed = [name for name, spec in job.columns.items() if spec.column == actual and name in validated.columns]
        if fed:  # the field's normalised value (18-character IDs, lower-cased emails) when the row is valid
            parts.append(validated.select(pl.coalesce(pl.col(fed[0]), pl.lit(raw))).to_series())
        else:
            parts.append(raw)
    frame = pl.DataFrame({f"k{i}": p for i, p in enumerate(parts)})
    return frame.select(pl.concat_str(pl.all(), separator=SEP, ignore_nulls=False)).to_series()


def diff_for(job: Job, loaded: LoadedInput, validated: pl.DataFrame, output_dir: Path | None = None) -> SyncDiff:
    """Compare this file with what earlier runs enrolled (the state, folded read-only)."""
    check_sync_job(job)
    path = state_path(output_dir or job.output_dir, job.name)
    keys = _row_keys(job, loaded, validated).to_list()
    field_columns = [c for c in validated.columns if not c.startswith("__") and c != OP]
    values = validated.select(pl.struct(field_columns).struct.json_encode()).to_series().to_list()
    before = enrolled(path)
    diff = SyncDiff(state=path, keys=keys, fields=values, remove_missing=job.remove_missing, enrolled=len(before),
                    limit=parse_max_removals(job.max_removals))
    valid = validated.get_column(CODE).is_null().to_list()
    seen: set[str] = set()
    for idx, (key, value, ok) in enumerate(zip(keys, values, valid, strict=True)):
        if not ok:
            continue
        if key is not None:
            diff.shared_keys += key in seen
            seen.add(key)
        if key is None:  # a valid row without a key cannot be tracked: send it, never remember it
            diff.added.append(idx)
        elif key not in before:
            diff.added.append(idx)
        elif before[key] != value:
            diff.changed.append(idx)
        else:
            diff.unchanged.append(RowOutcome(idx, Status.SKIPPED, "UNCHANGED", "unchanged since last run"))
    present = {k for k in keys if k is not None}
    diff.to_remove = [(k, v) for k, v in sorted(before.items()) if k not in present]
    return diff


# -- hooks for runner.run_prepared -----------------------------------------------------------------
def guard(diff: SyncDiff | None, allow_mass_removal: bool = False) -> None:
    """Before a run starts: a JobError (exit 2, nothing sent) when it would remove more people than
    ``max_removals`` allows, unless ``allow_mass_removal``. A truncated weekly export would
    otherwise take everyone missing from it off the cadence."""
    if diff is None or diff.guard_ok() or allow_mass_removal:
        return
    shown = ", ".join(k.replace(SEP, " / ") for k, _ in diff.to_remove[:5])
    more = f" and {len(diff.to_remove) - 5} more" if len(diff.to_remove) > 5 else ""
    raise JobError(f"sync would remove {len(diff.to_remove)} of the {diff.enrolled} people on the cadence "
                   f"({shown}{more}); {diff.limit.describe(diff.enrolled)}. Nothing was sent. If the input is "
                   "complete, run again with --allow-mass-removal (or raise max_removals in the job); "
                   "`batchrunner validate` lists them.")


def shared_app(job: Job, sandbox_app: Any | None) -> Any | None:
    """An in-process sandbox shared by the run and its removals (else each would get a fresh one)."""
    if sandbox_app is None and job.is_sandbox and not (job.connection.base_url or job.connection.instance_url):
        from batchrunner.sandbox.factory import build_sandbox

        return build_sandbox(job.sandbox)
    return sandbox_app


def start(prepared: Any, output_dir: Path, run_dir: Path, journal: Journal, dry_run: bool,
          allow_mass_removal: bool = False) -> Any:
    """Under the job's lock: fold earlier runs, diff again, journal the unchanged rows as skipped and
    register the rows about to be sent. Returns ``prepared`` with the fresh diff and plan."""
    from batchrunner.plan import plan

    job = prepared.job
    path = state_path(output_dir, job.name)
    if not dry_run:
        fold(path)
    diff = diff_for(job, prepared.loaded, prepared.validated, output_dir)
    diff.allow_mass_removal = allow_mass_removal
    catalog = prepared.platform.catalog_for(job)
    sizes = {op.name: prepared.platform.rows_per_request(job, op.name) for op in catalog.operations}
    the_plan = plan(prepared.validated, catalog, sizes, only=diff.to_send)
    journal.finish(diff.unchanged)
    if not dry_run:
        register(path, journal.path, "add", [(i, diff.keys[i], diff.fields[i]) for i in sorted(diff.to_send)
                                             if diff.keys[i] is not None])
    return replace(prepared, sync=diff, plan=the_plan)


async def finish(prepared: Any, result: Any, run_dir: Path, *, dry_run: bool, sandbox_app: Any | None,
                 clock: Any, rng: Any, progress: bool | None, send: Any) -> Any:
    """After the run: removals (when asked and the run was not stopped), fold, the summary's sync block.
    ``send`` is the runner's `send_and_report`, handed in so sync never imports the runner."""
    diff: SyncDiff = prepared.sync
    block: dict[str, Any] = {"key": prepared.job.key, "state_file": str(diff.state), **diff.counts(),
                             "rows_repeating_a_key": diff.shared_keys,
                             "remove_missing": diff.remove_missing, "removals": None,
                             "removal_guard": {"allowed": diff.limit.allowed(diff.enrolled), "enrolled": diff.enrolled,
                                               "ok": diff.guard_ok(), "overridden": diff.allow_mass_removal}}
    code = result.exit_code
    if diff.remove_missing and diff.to_remove:
        if dry_run:
            block["removals"] = {"sent": False, "why": "--dry-run"}
        elif not diff.guard_ok() and not diff.allow_mass_removal:  # the state changed after `guard` passed
            block["removals"] = {"sent": False, "why": diff.guard_text()}
            code = 3 if code == 3 else 1
        elif code == 3:
            block["removals"] = {"sent": False, "why": "the run stopped early; the next run removes them"}
        else:
            removal = await _remove(prepared, diff, run_dir / "removals", sandbox_app=sandbox_app, clock=clock,
                                    rng=rng, progress=progress, send=send)
            block["removals"] = {"sent": True, "report": str(removal.run_dir / "results.csv"),
                                 "counts": removal.summary["counts"], "exit_code": removal.exit_code}
            code = 3 if 3 in (code, removal.exit_code) else 1 if 1 in (code, removal.exit_code) else 0
    if not dry_run:
        fold(diff.state)
    summary = {**result.summary, "sync": block, "exit_code": code}
    from batchrunner.report import atomic_write

    text = json.dumps(summary, indent=2, default=str) + "\n"
    atomic_write(run_dir / "summary.json", lambda p: p.write_text(text, encoding="utf-8"))
    return replace(result, exit_code=code, summary=summary)


async def _remove(prepared: Any, diff: SyncDiff, run_dir: Path, *, sandbox_app: Any | None, clock: Any, rng: Any,
                  progress: bool | None, send: Any) -> Any:
    """A run of its own over the people who left the list: the platform's remove, by the stored fields."""
    from batchrunner import __version__
    from batchrunner.plan import plan
    from batchrunner.prepared import Prepared
    from batchrunner.validate import validate

    job = prepared.job
    _, needed = SYNC_OPERATIONS[job.platform]
    stored = [json.loads(fields) for _, fields in diff.to_remove]
    columns = {"_sync_key": [k.replace(SEP, " / ") for k, _ in diff.to_remove]}
    for name in needed:
        columns[name] = [None if s.get(name) is None else str(s.get(name)) for s in stored]
    frame = pl.DataFrame(columns, schema={name: pl.String for name in columns})
    fields = frame.drop("_sync_key").with_columns(pl.lit("remove", dtype=pl.String).alias(OPERATION))
    loaded = LoadedInput(path=diff.state, sha256="", frame=frame, fields=fields)
    catalog = prepared.platform.catalog_for(job)
    validated = validate(loaded, catalog, None)
    sizes = {op.name: prepared.platform.rows_per_request(job, op.name) for op in catalog.operations}
    the_plan = plan(validated, catalog, sizes)
    removal = Prepared(job, prepared.platform, loaded, validated, the_plan, prepared.target)
    run_dir.mkdir(parents=True, exist_ok=True)
    # not "journal.sqlite": this is not a run `batchrunner resume` can finish (the next sync run does)
    journal = Journal(run_dir / "removals.sqlite")
    try:
        journal.set_meta(job_name=job.name, kind="sync-removals", created_at=utc_now(), version=__version__)
        journal.add_rows(validated.height)
        invalid = validated.filter(pl.col(CODE).is_not_null())
        journal.finish_columns(invalid[IDX].to_list(), [Status.INVALID.value] * invalid.height,
                               invalid[CODE].to_list(), invalid[MESSAGE].to_list())
        journal.finish(the_plan.duplicates)
        register(diff.state, journal.path, "remove", [(i, k, f) for i, (k, f) in enumerate(diff.to_remove)])
        return await send(removal, the_plan, run_dir, journal, sandbox_app=sandbox_app, clock=clock,
                                      rng=rng, progress=False if progress is None else progress)
    finally:
        journal.close()
