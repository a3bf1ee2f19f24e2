"""The weekly loop as users chain it (issue 14), against a served sandbox, every step as its own
`batchrunner` process: run -> fix errors.csv and run --input -> retry -> resume after a kill ->
retry after the list changed -> next week's list (sync). Every report is checked line by line
against the input it came from, and "applied twice" is judged from the sandbox's own audit.
"""

from __future__ import annotations

import csv
import io
import json
import signal
from pathlib import Path

import httpx
import pytest

from conftest import cli, copy_demo_job, sandbox_server

SL_JOB, SL_CSV = "salesloft-weekly-enrolment.toml", "salesloft_weekly_enrolment.csv"
SF_JOB, SF_CSV = "salesforce-weekly-assign.toml", "salesforce_weekly_leads.csv"
REPORT_COLUMNS = ["_row", "_operation", "_status", "_error_code", "_error_message", "_attempts", "_result",
                  "_finished_at"]
UNUSED_PEOPLE = ["amara.weber@meridian.example.com", "noah.moreau@orbit.example.com",
                 "chloe.patel@pioneer.example.com", "mateo.murphy@quanta.example.com"]


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    text = path.read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def _write(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _run_dir(proc) -> Path:  # noqa: ANN001
    line = next(line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("run directory: "))
    return Path(line.removeprefix("run directory: ").strip())


def check_report(run_dir: Path, input_rows: list[dict[str, str]], input_header: list[str]) -> list[dict[str, str]]:
    """results.csv holds every input row once, in order, its columns unchanged, each `_` column once;
    errors.csv is exactly the rows that need a person or a retry; the summary adds up."""
    header, results = _read(run_dir / "results.csv")
    assert header == [c for c in input_header if not c.startswith("_")] + REPORT_COLUMNS
    assert len(results) == len(input_rows)
    for i, (got, want) in enumerate(zip(results, input_rows, strict=True), start=1):
        assert got["_row"] == str(i)
        assert all(got[c] == want[c] for c in header if not c.startswith("_")), (got, want)
        assert got["_status"] in {"succeeded", "failed", "invalid", "skipped", "not_attempted"}
        assert (got["_status"] in ("succeeded",)) == (got["_error_code"] == "") or got["_status"] == "skipped"
    _, errors = _read(run_dir / "errors.csv")
    assert [e["_row"] for e in errors] == [r["_row"] for r in results
                                           if r["_status"] in ("failed", "invalid", "not_attempted")]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert sum(summary["counts"].values()) == len(input_rows)
    return results


def _enrolments(url: str) -> dict[str, int]:
    return httpx.get(f"{url}/_sandbox/audit").json()["SalesloftEmulator"]["enrolments"]


def test_salesloft_weekly_loop(tmp_path: Path) -> None:
    with sandbox_server("error_rate=0.2", "seed=11") as url:
        job = copy_demo_job(tmp_path, SL_JOB, SL_CSV, url, concurrency=1, max_attempts=1)
        data = tmp_path / "data" / SL_CSV
        header, source = _read(data)

        # 1. Monday's list
        first = cli("run", str(job), "--no-progress", cwd=tmp_path)
        assert first.returncode == 1, first.stderr
        run1 = _run_dir(first)
        results1 = check_report(run1, source, header)
        assert {r["_error_code"] for r in results1} >= {"PERSON_NOT_FOUND", "INVALID_EMAIL"}

        # 2. fix errors.csv (a typo'd email, a wrong cadence name) and feed it back as it is
        err_header, errors = _read(run1 / "errors.csv")
        for row in errors:
            if row["Email"] == "not-an-email":
                row["Email"] = UNUSED_PEOPLE[0]
            if row["Cadence"] == "Q4 Outbound Campaign":
                row["Cadence"] = "Q4 Outbound"
        fixed = tmp_path / "fixed.csv"
        _write(fixed, err_header, errors)
        second = cli("run", str(job), "--input", str(fixed), "--no-progress", cwd=tmp_path)
        assert second.returncode == 1, second.stderr
        assert "Traceback" not in second.stderr
        run2 = _run_dir(second)
        results2 = check_report(run2, errors, err_header)
        by_email = {r["Email"]: r for r in results2}
        assert by_email[UNUSED_PEOPLE[0]]["_status"] in ("succeeded", "failed")
        assert by_email[UNUSED_PEOPLE[0]]["_error_code"] != "INVALID_EMAIL"

        # 3. retry what failed for a transient reason, until nothing transient is left
        run = run2
        for _ in range(15):  # each retry meets the same 20 % of injected 5xx (seeded): a few rounds
            _, before = _read(run / "results.csv")
            transient = [r for r in before if r["_status"] == "failed"
                         and r["_error_code"] not in ("PERSON_NOT_FOUND", "AMBIGUOUS_PERSON", "AMBIGUOUS_CADENCE")]
            if not transient:
                break
            again = cli("retry", str(run), "--no-progress", cwd=tmp_path)
            assert again.returncode in (0, 1), again.stderr
            retried = _run_dir(again)
            _, retry_input = _read(run / "retry-input.csv")
            failed_before = [r for r in before if r["_status"] == "failed"]
            assert [r["Email"] for r in retry_input] == [r["Email"] for r in failed_before]
            check_report(retried, retry_input, list(retry_input[0].keys()))
            # the run handed over can be neither resumed nor retried again
            refused = cli("resume", str(run), cwd=tmp_path)
            assert refused.returncode == 2 and str(retried) in refused.stderr
            run = retried
        else:
            pytest.fail("transient failures never cleared")

        # 4. next week's list, killed mid-run, resumed
        week2 = [*source[:6], *({**source[0], "Email": e} for e in UNUSED_PEOPLE[1:])]
        _write(data, header, week2)
        killed = cli("run", str(job), "--no-progress", cwd=tmp_path,
                     env={"BATCHRUNNER_FAILPOINT": "execute.after_send:3"})
        assert killed.returncode == -signal.SIGKILL
        run4 = sorted((tmp_path / "runs").iterdir())[-1]
        resumed = cli("resume", str(run4), "--no-progress", cwd=tmp_path)
        assert resumed.returncode in (0, 1), resumed.stderr
        results4 = check_report(run4, week2, header)
        assert not [r for r in results4 if r["_status"] == "not_attempted"]

        # 5. the list changes again, then the user retries week 2: the run's own rows are sent
        _write(data, header, [{**source[0], "Email": "someone.new@nowhere.example.com"}])
        failed4 = [r for r in results4 if r["_status"] == "failed"]
        retry4 = cli("retry", str(run4), "--no-progress", cwd=tmp_path)
        if failed4:
            _, retry_input = _read(run4 / "retry-input.csv")
            assert [r["Email"] for r in retry_input] == [r["Email"] for r in failed4]
            assert "someone.new@nowhere.example.com" not in (run4 / "retry-input.csv").read_text()
        else:
            assert retry4.returncode == 0 and "Nothing to retry" in retry4.stdout + retry4.stderr

        enrolled = _enrolments(url)
        assert enrolled and max(enrolled.values()) == 1  # nobody enrolled twice along the way


def test_salesforce_weekly_loop(tmp_path: Path) -> None:
    with sandbox_server("error_rate=0.2", "seed=5") as url:
        job = copy_demo_job(tmp_path, SF_JOB, SF_CSV, url, concurrency=1, max_attempts=1, batch_size=3)
        data = tmp_path / "data" / SF_CSV
        header, source = _read(data)
        first = cli("run", str(job), "--no-progress", cwd=tmp_path)
        assert first.returncode == 1, first.stderr
        run1 = _run_dir(first)
        check_report(run1, source, header)

        # errors.csv back: the bad-checksum ID corrected to its right 18-character form
        err_header, errors = _read(run1 / "errors.csv")
        for row in errors:
            if row["Lead Id"] == "00Q5e0000000021AAA":
                row["Lead Id"] = "00Q5e0000000021EAA"
        fixed = tmp_path / "fixed.csv"
        _write(fixed, err_header, errors)
        second = cli("run", str(job), "--input", str(fixed), "--no-progress", cwd=tmp_path)
        assert second.returncode in (0, 1), second.stderr
        run2 = _run_dir(second)
        results2 = check_report(run2, errors, err_header)
        assert not [r for r in results2 if r["_error_code"] == "INVALID_ID"]

        run = run2
        for _ in range(15):
            _, before = _read(run / "results.csv")
            if not [r for r in before if r["_status"] == "failed" and r["_error_code"] in
                    ("UNKNOWN_EXCEPTION", "SERVER_UNAVAILABLE", "RETRIES_EXHAUSTED", "SERVER_ERROR")]:
                break
            again = cli("retry", str(run), "--no-progress", cwd=tmp_path)
            assert again.returncode in (0, 1), again.stderr
            run = _run_dir(again)
        assigned = httpx.get(f"{url}/_sandbox/audit").json()["SalesforceEmulator"]["assignments"]
        assert assigned and max(assigned.values()) == 1
