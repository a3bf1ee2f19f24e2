"""The whole product as a user meets it: `batchrunner sandbox` serving on a real 127.0.0.1 port,
and `batchrunner run` / `validate` as separate processes pointed at it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import httpx
import pytest

from conftest import cli, copy_demo_job, sandbox_server



@pytest.fixture(scope="module")
def sandbox_url():
    with sandbox_server() as url:
        yield url


def _cli(*args: str, cwd: Path):
    return cli(*args, cwd=cwd)


def _copy_job(tmp_path: Path, job: str, csv_name: str, url_key: str, url: str) -> Path:
    return copy_demo_job(tmp_path, job, csv_name, url)


def _results(stdout: str) -> tuple[Path, list[dict[str, str]]]:
    path = Path(next(l.strip() for l in stdout.splitlines() if l.strip().endswith("results.csv")))
    with path.open(newline="", encoding="utf-8") as f:
        return path, list(csv.DictReader(f))


def test_salesforce_demo_over_loopback(sandbox_url: str, tmp_path: Path) -> None:
    job = _copy_job(tmp_path, "salesforce-weekly-assign.toml", "salesforce_weekly_leads.csv", "instance_url",
                    sandbox_url)
    done = _cli("run", str(job), "--no-progress", cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # the demo has failed and invalid rows on purpose
    assert f"SANDBOX salesforce ({sandbox_url})" in done.stdout
    results_path, rows = _results(done.stdout)
    with (tmp_path / "data" / "salesforce_weekly_leads.csv").open(newline="", encoding="utf-8") as f:
        source = list(csv.DictReader(f))
    assert len(rows) == len(source)
    assert [r["Lead Id"] for r in rows] == [r["Lead Id"] for r in source]  # input columns unchanged, in order
    assert [r["_row"] for r in rows] == [str(i) for i in range(1, len(source) + 1)]
    assert {r["_status"] for r in rows} >= {"succeeded", "failed", "invalid", "skipped"}
    summary = json.loads((results_path.parent / "summary.json").read_text())
    assert summary["target"] == "sandbox" and summary["exit_code"] == 1
    assert summary["requests_sent"] >= 1
    assert summary["api_usage"]["used"] >= summary["requests_sent"]  # read from Sforce-Limit-Info
    errors = list(csv.DictReader((results_path.parent / "errors.csv").open(newline="", encoding="utf-8")))
    assert {r["_status"] for r in errors} <= {"failed", "invalid", "not_attempted"}
    assert len(errors) == sum(r["_status"] in ("failed", "invalid") for r in rows)


def test_served_sandbox_keeps_state_between_runs(sandbox_url: str, tmp_path: Path) -> None:
    """The served emulator is one org: running the same assignments twice finds them assigned."""
    job = _copy_job(tmp_path, "salesforce-select-template.toml", "salesforce_select_template.csv",
                    "instance_url", sandbox_url)
    first = _cli("run", str(job), "--no-progress", cwd=tmp_path)
    assert first.returncode in (0, 1), first.stderr
    _, rows = _results(first.stdout)
    succeeded = [r for r in rows if r["_status"] == "succeeded"]
    assert succeeded and all("TemplateId" in json.loads(r["_result"]) for r in succeeded)


def test_validate_misspelled_column_exits_2_and_sends_nothing(sandbox_url: str, tmp_path: Path) -> None:
    job = _copy_job(tmp_path, "salesforce-weekly-assign.toml", "salesforce_weekly_leads.csv", "instance_url",
                    sandbox_url)
    job.write_text(job.read_text().replace('targetId = "Lead Id"', 'targetId = "Leed Id"'))
    before = httpx.get(f"{sandbox_url}/services/data/v62.0/limits",
                       headers={"Authorization": "Bearer sandbox-token"}).json()
    done = _cli("validate", str(job), cwd=tmp_path)
    assert done.returncode == 2
    assert "Leed Id" in done.stderr and "Lead Id" in done.stderr  # names it and what would be valid
    after = httpx.get(f"{sandbox_url}/services/data/v62.0/limits",
                      headers={"Authorization": "Bearer sandbox-token"}).json()
    # only the two limits calls themselves were counted
    used = lambda body: body["DailyApiRequests"]["Max"] - body["DailyApiRequests"]["Remaining"]  # noqa: E731
    assert used(after) == used(before) + 1


def test_validate_misspelled_operation_exits_2(tmp_path: Path) -> None:
    job = _copy_job(tmp_path, "salesforce-weekly-assign.toml", "salesforce_weekly_leads.csv", "instance_url",
                    "http://127.0.0.1:9")
    job.write_text(job.read_text().replace('operation = "assign"', 'operation = "asign"'))
    done = _cli("validate", str(job), cwd=tmp_path)
    assert done.returncode == 2
    assert "asign" in done.stderr and "assign" in done.stderr.replace("asign", "")
