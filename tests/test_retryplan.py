"""`retry` after a run whose only problems were invalid rows: say what is true (batchrunner/retryplan.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from batchrunner.errors import JobError
from batchrunner.job import load_job
from batchrunner.retryplan import explain_nothing_to_retry, nothing_to_retry_exit_code
from batchrunner.runner import prepare, retry_rows, run_prepared
from batchrunner.sandbox.app import SandboxApp
from batchrunner.sandbox.salesforce import SalesforceEmulator
from batchrunner.sandbox.seeds import load_seed

JOB = """
    name = "sf-invalid"
    platform = "salesforce"
    operation = "assign"
    input = "input.csv"
    [columns]
    targetId = "Lead Id"
    salesCadenceNameOrId = { value = "Q4 Outbound" }
    [connection]
    sandbox = true
"""


def test_the_message_for_each_case(tmp_path: Path) -> None:
    invalid = explain_nothing_to_retry({"succeeded": 5, "invalid": 3, "skipped": 1}, tmp_path)
    assert "3 rows are invalid (5 rows succeeded, 1 row skipped)" in invalid
    assert f"fix them in {tmp_path / 'errors.csv'}" in invalid
    assert f"`batchrunner run JOB.toml --input {tmp_path / 'errors.csv'}`" in invalid
    assert "succeeded or was skipped" not in invalid
    assert "1 row is invalid:" in explain_nothing_to_retry({"invalid": 1}, tmp_path)
    done = explain_nothing_to_retry({"succeeded": 2, "skipped": 1, "invalid": 0}, tmp_path)
    assert done == f"Nothing to retry: every row of {tmp_path} is done (2 rows succeeded, 1 row skipped)."
    assert "has no rows" in explain_nothing_to_retry({}, tmp_path)
    assert nothing_to_retry_exit_code({"succeeded": 2}) == 0
    assert nothing_to_retry_exit_code({"succeeded": 2, "invalid": 1}) == 1
    assert nothing_to_retry_exit_code({"invalid": 1}, fail_on="failed") == 0


@pytest.mark.anyio
async def test_after_a_run_with_only_invalid_rows_the_advice_works(tmp_path: Path, write_job) -> None:
    leads = [lead["id"] for lead in load_seed("salesforce_org.json")["leads"][:3]]
    job = write_job("Lead Id\n" + "\n".join([leads[0], leads[1][:15] + "ZZZ", leads[2]]) + "\n", JOB)
    app = SandboxApp([SalesforceEmulator()])
    result = await run_prepared(prepare(load_job(job)), output_dir=tmp_path / "runs", sandbox_app=app, progress=False)
    counts = result.summary["counts"]
    assert counts["succeeded"] == 2 and counts["invalid"] == 1 and result.exit_code == 1
    with pytest.raises(JobError, match="Nothing to retry"):  # what retry does today (the wording is the lead's)
        retry_rows(result.run_dir)
    message = explain_nothing_to_retry(counts, result.run_dir)
    assert f"1 row is invalid (2 rows succeeded): fix them in {result.run_dir / 'errors.csv'}" in message
    assert f"`batchrunner run {job} --input {result.run_dir / 'errors.csv'}`" in message
    # follow the advice: fix the ID in errors.csv, run that file
    errors = result.run_dir / "errors.csv"
    rows = list(csv.DictReader(errors.open(encoding="utf-8")))
    assert len(rows) == 1
    rows[0]["Lead Id"] = leads[1]
    with errors.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    fixed = await run_prepared(prepare(load_job(job), errors), output_dir=tmp_path / "runs", sandbox_app=app,
                               progress=False)
    assert fixed.summary["counts"]["succeeded"] == 1 and fixed.exit_code == 0
