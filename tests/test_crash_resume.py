"""Crashes, interrupts and overlaps, against a sandbox served by a separate process.

The CLI is killed with SIGKILL at the moments a crash is hardest to survive (failpoints.py), then
resumed; the final report must hold every input row exactly once and the sandbox's own records
must show no target assigned or enrolled twice.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from batchrunner.platforms.salesforce.ids import to18
from conftest import cli, copy_demo_job, sandbox_server

SF_JOB, SF_CSV = "salesforce-weekly-assign.toml", "salesforce_weekly_leads.csv"
SL_JOB, SL_CSV = "salesloft-weekly-enrolment.toml", "salesloft_weekly_enrolment.csv"
OR_JOB, OR_CSV = "outreach-enrolment.toml", "outreach_enrolment.csv"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _only_run_dir(tmp_path: Path) -> Path:
    runs = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def _audit(url: str) -> dict:
    return httpx.get(f"{url}/_sandbox/audit").json()


def _check_final(tmp_path: Path, run_dir: Path, csv_name: str) -> list[dict[str, str]]:
    source = _rows(tmp_path / "data" / csv_name)
    results = _rows(run_dir / "results.csv")
    assert len(results) == len(source)  # every input row exactly once
    assert [r["_row"] for r in results] == [str(i) for i in range(1, len(source) + 1)]
    assert not [r for r in results if r["_status"] == "not_attempted"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert sum(summary["counts"].values()) == len(source)  # the totals add up
    return results


@pytest.mark.parametrize("point", ["run.before_send", "execute.after_send:2", "execute.after_record:3",
                                   "report.writing"])
def test_salesforce_sigkill_then_resume(tmp_path: Path, point: str) -> None:
    with sandbox_server() as url:
        job = copy_demo_job(tmp_path, SF_JOB, SF_CSV, url, batch_size=4, concurrency=2)
        crashed = cli("run", str(job), "--no-progress", cwd=tmp_path, env={"BATCHRUNNER_FAILPOINT": point})
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        run_dir = _only_run_dir(tmp_path)
        done = cli("resume", str(run_dir), "--no-progress", cwd=tmp_path)
        assert done.returncode == 1, done.stderr  # the demo's failed and invalid rows, nothing else
        results = _check_final(tmp_path, run_dir, SF_CSV)
        assigned = _audit(url)["SalesforceEmulator"]["assignments"]
        assert assigned and max(assigned.values()) == 1  # no target assigned twice
        succeeded = {to18(r["Lead Id"]): r for r in results if r["_status"] == "succeeded"}
        assert set(assigned) <= set(succeeded)  # every assignment made is reported
        # a succeeded row the org has no new assignment for was answered "already assigned" on
        # resume: reported as reconciled, with what the platform said
        for target in set(succeeded) - set(assigned):
            assert json.loads(succeeded[target]["_result"])["reconciled"] is True
        if point.startswith("execute.after_send"):
            # the answer to the killed request was lost: resume found the assignment done
            assert any(r["_result"] and json.loads(r["_result"]).get("reconciled") is True for r in results)


@pytest.mark.parametrize("job_name,csv_name,emulator", [(SL_JOB, SL_CSV, "SalesloftEmulator"),
                                                         (OR_JOB, OR_CSV, "OutreachEmulator")])
@pytest.mark.parametrize("point", ["execute.after_send:3", "execute.after_record:5"])
def test_salesloft_sigkill_then_resume(tmp_path: Path, point: str, job_name: str, csv_name: str,
                                       emulator: str) -> None:
    """One request per row, no idempotency key (Salesloft, Outreach): resume reads before re-sending."""
    with sandbox_server() as url:
        job = copy_demo_job(tmp_path, job_name, csv_name, url, concurrency=2)
        crashed = cli("run", str(job), "--no-progress", cwd=tmp_path, env={"BATCHRUNNER_FAILPOINT": point})
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        run_dir = _only_run_dir(tmp_path)
        done = cli("resume", str(run_dir), "--no-progress", cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        results = _check_final(tmp_path, run_dir, csv_name)
        enrolled = _audit(url)[emulator]["enrolments"]
        assert enrolled and max(enrolled.values()) == 1  # nobody enrolled twice
        succeeded = [r for r in results if r["_status"] == "succeeded"]
        fresh = [r for r in succeeded if not json.loads(r["_result"]).get("reconciled")]
        # every enrolment made is reported; only a reconciled row may lack one of its own
        assert len(fresh) <= len(enrolled) <= len(succeeded)
        if emulator == "OutreachEmulator":  # the org counts every enrol request: none was sent twice
            assert max(_audit(url)[emulator]["posts"].values()) == 1


def test_sigint_stops_resumably_and_resume_finishes(tmp_path: Path) -> None:
    with sandbox_server("latency_ms=150") as url:
        job = copy_demo_job(tmp_path, SF_JOB, SF_CSV, url, batch_size=1, concurrency=1)
        proc = subprocess.Popen([sys.executable, "-m", "batchrunner", "run", str(job), "--no-progress"], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while sum(_audit(url)["SalesforceEmulator"]["assignments"].values()) < 2:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, err
        assert "SIGINT" in err and "stopped early: INTERRUPTED" in out
        run_dir = _only_run_dir(tmp_path)
        partial = _rows(run_dir / "results.csv")
        assert any(r["_status"] == "not_attempted" for r in partial)
        assert any(r["_status"] == "succeeded" for r in partial)
        assert {r["_status"] for r in _rows(run_dir / "errors.csv")} >= {"not_attempted"}
        done = cli("resume", str(run_dir), "--no-progress", cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        _check_final(tmp_path, run_dir, SF_CSV)
        assert max(_audit(url)["SalesforceEmulator"]["assignments"].values()) == 1


def test_overlapping_runs_and_a_dead_holder(tmp_path: Path) -> None:
    from batchrunner.lock import job_lock

    job = copy_demo_job(tmp_path, SF_JOB, SF_CSV, "http://127.0.0.1:9", batch_size=4)
    lock = job_lock(job)
    lock.acquire(tmp_path / "runs" / "the-running-one")
    try:
        second = cli("run", str(job), "--no-progress", cwd=tmp_path)
        assert second.returncode == 2
        assert "Another run of this job is in progress" in second.stderr and "the-running-one" in second.stderr
        runs = tmp_path / "runs"  # nothing left behind (the lock is taken before anything is made)
        assert not runs.exists() or [p.name for p in runs.iterdir() if p.is_dir()] == []
    finally:
        lock.release()
    # a holder killed outright leaves its lock file, but the kernel released the lock with it
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from batchrunner.lock import job_lock; "
        f"job_lock(Path({str(job)!r})).acquire(Path('x')); "
        "print('held', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    with sandbox_server() as url:
        job = copy_demo_job(tmp_path, SF_JOB, SF_CSV, url)
        third = cli("run", str(job), "--no-progress", cwd=tmp_path)
        assert third.returncode == 1, third.stderr


def test_resume_after_the_input_was_reordered_and_edited_uses_the_rows_the_run_read(tmp_path: Path) -> None:
    """Issue 13.6: resume matched rows by position in the file as it is now; a re-sorted file gave
    rows another person's outcome. A run keeps the rows it read, and resume uses those."""
    with sandbox_server() as url:
        job = copy_demo_job(tmp_path, SF_JOB, SF_CSV, url, batch_size=4)
        data = tmp_path / "data" / SF_CSV
        original = _rows(data)
        crashed = cli("run", str(job), "--no-progress", cwd=tmp_path,
                      env={"BATCHRUNNER_FAILPOINT": "execute.after_record:2"})
        assert crashed.returncode == -signal.SIGKILL
        run_dir = _only_run_dir(tmp_path)
        header, *lines = data.read_text(encoding="utf-8").splitlines()
        data.write_text("\n".join([header, *reversed(lines)]).replace("Helix Robotics", "Helix Robotics AG") + "\n",
                        encoding="utf-8")  # next week's export: another order, an edit
        done = cli("resume", str(run_dir), "--no-progress", cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "goes on with the rows it read then" in done.stdout + done.stderr
        results = _check_final(tmp_path, run_dir, SF_CSV)
        assert [r["Lead Id"] for r in results] == [r["Lead Id"] for r in original]  # the run's rows, its order
        assert not any("Helix Robotics AG" in r["Company"] for r in results)
        assigned = _audit(url)["SalesforceEmulator"]["assignments"]
        assert max(assigned.values()) == 1
        succeeded = {to18(r["Lead Id"]) for r in results if r["_status"] == "succeeded"}
        assert set(assigned) <= succeeded


def test_two_runs_of_one_job_with_different_output_dirs_are_not_both_allowed(tmp_path: Path) -> None:
    """Issue 13.1: the lock lived in the output directory, so `--output-dir` elsewhere ran the same
    job twice at once. The lock belongs to the job file."""
    from batchrunner.lock import job_lock

    job = copy_demo_job(tmp_path, SF_JOB, SF_CSV, "http://127.0.0.1:9", batch_size=4)
    lock = job_lock(job)
    lock.acquire(tmp_path / "runs" / "the-running-one")
    try:
        second = cli("run", str(job), "--no-progress", "--output-dir", str(tmp_path / "elsewhere"), cwd=tmp_path)
        assert second.returncode == 2, second.stderr
        assert "Another run of this job is in progress" in second.stderr and "the-running-one" in second.stderr
        assert not (tmp_path / "elsewhere").exists() or not any((tmp_path / "elsewhere").iterdir())
    finally:
        lock.release()
