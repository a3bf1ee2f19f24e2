"""Memory flat in the list's length (issue 19 item 4): validation, planning and the reports work a
slice of `chunks.ROWS` rows at a time. Proven without timing or RSS: a run with tiny slices gives
byte for byte the reports (and the sandbox the same requests) as one slice for everything, and no
stage is ever handed more than one slice (counted through injected hooks)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import polars as pl
import pytest

from batchrunner import chunks, journal as journal_module
from batchrunner.job import load_job
from batchrunner.platforms.salesforce.ids import to18
from batchrunner.plan import plan
from batchrunner.platforms.salesforce.operations import CATALOG
from batchrunner.runner import prepare, run_prepared
from batchrunner.sandbox.app import SandboxApp
from batchrunner.sandbox.salesforce import SalesforceEmulator
from batchrunner.sandbox.seeds import load_seed
from batchrunner.validate import validate
from batchrunner.source import load_input

pytestmark = pytest.mark.anyio

ROWS = 3000
LEADS = 2300
SLICE = 700  # not a divisor of anything here: slices end mid-request, mid-wave, mid-event
FRAME_CHUNKS = journal_module.Journal.frame_chunks


def _lead(i: int) -> str:
    return f"00Q7b{i:010d}"


def _messy_job(tmp_path: Path) -> Path:
    """3,000 rows: assigns, and pauses of leads assigned earlier (a second wave), exact duplicates,
    malformed IDs, unknown operations, 15- and 18-character forms of one lead."""
    rng = random.Random(19)
    lines = ["Action,Lead Id,Cadence,Note"]
    for i in range(ROWS):
        lead = _lead(i % LEADS)
        roll = rng.random()
        if roll < 0.05:
            lines.append(f"assign,00Qbad{i},Q4 Outbound,bad id {i}")
        elif roll < 0.07:
            lines.append(f"enrolll,{to18(lead)},Q4 Outbound,typo {i}")
        elif i >= LEADS:  # the same leads again: pauses (a second wave) and exact duplicates
            lines.append(f"pause,{lead},,again {i}" if roll < 0.6 else f"assign,{to18(lead)},Q4 Outbound,note {i % LEADS}")
        else:
            lines.append(f"assign,{lead if roll < 0.5 else to18(lead)},Q4 Outbound,note {i}")
    (tmp_path / "leads.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    job = tmp_path / "job.toml"
    job.write_text('name = "chunks"\nplatform = "salesforce"\ninput = "leads.csv"\noutput_dir = "runs"\n'
                   'report_xlsx = false\n[columns]\noperation = "Action"\ntargetId = "Lead Id"\n'
                   'salesCadenceNameOrId = "Cadence"\n[connection]\nsandbox = true\n'
                   '[limits]\nconcurrency = "fixed:3"\nbatch_size = 40\ncircuit_breaker = 0\n', encoding="utf-8")
    return job


async def _run(tmp_path: Path, job: Path, slice_rows: int, monkeypatch: pytest.MonkeyPatch,
               seen: dict[str, list[int]]) -> tuple[dict, dict]:
    monkeypatch.setattr(chunks, "ROWS", slice_rows)
    monkeypatch.setattr(chunks, "VALIDATE_ROWS", slice_rows)
    prepared = prepare(load_job(job))
    prepared.plan.observe = seen.setdefault("plan", []).append
    def counted(self, chunk_rows=None, states=None):
        for part in FRAME_CHUNKS(self, chunk_rows, states):
            seen.setdefault("report", []).append(part.height)
            yield part

    monkeypatch.setattr(journal_module.Journal, "frame_chunks", counted)
    org = load_seed("salesforce_org.json")
    org["leads"] = [{"id": to18(_lead(i)), "first_name": "L", "last_name": str(i)} for i in range(LEADS)]
    emulator = SalesforceEmulator(org, api_limit=10**9)
    result = await run_prepared(prepared, output_dir=tmp_path / f"out-{slice_rows}",
                                sandbox_app=SandboxApp([emulator]), progress=False)
    # every byte but the time each outcome was recorded
    files = {name: pl.read_csv(result.run_dir / name, infer_schema=False).drop("_finished_at")
             for name in ("results.csv", "errors.csv")}
    summary = json.loads((result.run_dir / "summary.json").read_text(encoding="utf-8"))
    for key in ("started_at", "finished_at", "duration_seconds", "rate_limit_wait_seconds"):
        summary.pop(key)
    return {**files, "summary": summary}, emulator.audit()


async def test_small_slices_give_the_same_reports_and_requests_as_one_slice(tmp_path, monkeypatch):
    job = _messy_job(tmp_path)
    sliced: dict[str, list[int]] = {}
    whole: dict[str, list[int]] = {}
    small, small_audit = await _run(tmp_path, job, SLICE, monkeypatch, sliced)
    big, big_audit = await _run(tmp_path, job, 10**9, monkeypatch, whole)
    for name in ("results.csv", "errors.csv"):
        assert small.pop(name).equals(big.pop(name)), name
    assert small == big
    assert small_audit["assignments"] == big_audit["assignments"]
    assert max(small_audit["assignments"].values()) == 1  # nothing sent twice
    counts = small["summary"]["counts"]
    assert counts["succeeded"] and counts["invalid"] and counts["skipped"]  # every kind of row is in it
    assert small["summary"]["requests_sent"] == big["summary"]["requests_sent"]
    # no stage was handed more than a slice, and together the slices covered every row
    assert max(sliced["plan"]) <= SLICE and len(sliced["plan"]) > 2
    assert max(sliced["report"]) <= SLICE and sum(sliced["report"]) == ROWS
    assert whole["report"] == [ROWS]


def test_validation_in_slices_equals_one_pass(tmp_path):
    job = load_job(_messy_job(tmp_path))
    loaded = load_input(job)
    sizes: list[int] = []
    sliced = validate(loaded, CATALOG, 62.0, chunk_rows=SLICE, observe=sizes.append)
    assert sizes == [SLICE] * (ROWS // SLICE) + [ROWS % SLICE]
    assert sliced.equals(validate(loaded, CATALOG, 62.0, chunk_rows=ROWS))


def test_plan_slices_never_cut_a_request_and_keep_waves_in_order(tmp_path):
    job = load_job(_messy_job(tmp_path))
    validated = validate(load_input(job), CATALOG, 62.0)
    sizes = {op.name: 40 for op in CATALOG.operations}
    whole = plan(validated, CATALOG, sizes, chunk_rows=10**9)
    sliced = plan(validated, CATALOG, sizes, chunk_rows=SLICE)
    assert whole.wave_count == sliced.wave_count == 2
    flat = [(u.operation, u.rows) for wave in whole.waves for u in wave]
    assert [(u.operation, u.rows) for wave in sliced.waves for u in wave] == flat
    assert all(sum(len(u.rows) for u in wave) <= SLICE for wave in sliced.waves)
    assert sliced.requests == whole.requests == len(flat)
    assert [d.row for d in sliced.duplicates] == [d.row for d in whole.duplicates] != []


def test_a_hash_collision_is_never_taken_for_a_duplicate(monkeypatch):
    """Duplicates are found by a 64-bit hash of the row's values; a (forced) collision between
    different rows must not skip one of them."""
    from batchrunner import plan as plan_module

    rows = pl.DataFrame({"__idx": [0, 1, 2], "__code": [None] * 3, "_operation": ["assign"] * 3,
                         "targetId": ["a", "b", "a"]},
                        schema={"__idx": pl.UInt32, "__code": pl.String, "_operation": pl.String, "targetId": pl.String})
    monkeypatch.setattr(pl.Expr, "hash", lambda self, seed=0: pl.lit(7, dtype=pl.UInt64))  # everything collides
    keys = plan_module._keys(rows, CATALOG, ["targetId"], None, 2)
    assert keys["__row"].n_unique() == 1
    first = plan_module._first_of_same(keys, rows, ["targetId"])
    assert dict(first.iter_rows()) == {0: 0, 1: 1, 2: 0}
