"""The small things a user hits at once (issue 14 item 11): help, --json, suggestions, plurals,
a closed pipe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from batchrunner.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_operations_into_a_closed_pipe_is_quiet() -> None:
    """`batchrunner operations | head -1` printed a BrokenPipeError traceback."""
    done = subprocess.run(f"{sys.executable} -m batchrunner operations --json | true", shell=True, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_operations_and_validate_have_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["operations", "salesloft", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [op["name"] for op in listing["salesloft"]] == ["add", "remove"]
    assert any(f["need"].startswith("one of") for f in listing["salesloft"][0]["fields"])
    code = main(["validate", str(REPO / "jobs" / "salesforce-weekly-assign.toml"), "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    report = json.loads(out[-1])
    assert code == report["exit_code"] == 1
    assert report["rows"] == report["valid"] + report["invalid"] and report["sent"] == 0
    assert {p["code"] for p in report["problems"]} >= {"INVALID_ID"}
    assert len(out) == 1  # the human lines went to stderr


def test_export_help_is_its_own(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["export", "salesloft-memberships", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--on-cadence-only" in text and "page beyond 99" in text
    assert "resumed" not in text  # not the run exit codes


def test_every_option_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["validate"], ["retry"], ["resume"], ["sandbox"], ["run"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        text = capsys.readouterr().out
        options = text.split("options:")[1] if "options:" in text else text
        for line in options.splitlines():
            stripped = line.strip()
            if stripped.startswith("--") and "  " not in stripped and not stripped.endswith(("]", "}")):
                # an option alone on its line has its help on the next one; check it is not blank
                nxt = options.splitlines()[options.splitlines().index(line) + 1].strip()
                assert nxt and not nxt.startswith("-"), f"{command}: {stripped} has no help"


def test_a_misspelled_operation_gets_a_suggestion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in.csv").write_text("Email,Cadence\na@example.com,Q4 Outbound\n")
    job = tmp_path / "job.toml"
    job.write_text('platform = "salesloft"\noperation = "enrolll"\ninput = "in.csv"\n[columns]\n'
                   'person_email = "Email"\ncadence_name = "Cadence"\n[connection]\nsandbox = true\n')
    assert main(["validate", str(job)]) == 2
    assert "Did you mean 'add'?" in capsys.readouterr().err
    (tmp_path / "in.csv").write_text("Email,Cadence,Op\na@example.com,Q4 Outbound,enrolll\n")
    job.write_text('platform = "salesloft"\ninput = "in.csv"\n[columns]\noperation = "Op"\n'
                   'person_email = "Email"\ncadence_name = "Cadence"\n[connection]\nsandbox = true\n')
    assert main(["validate", str(job)]) == 1
    out = capsys.readouterr().out
    assert "UNKNOWN_OPERATION" in out and "Did you mean 'add'?" in out
    assert "1 row:" in out and "1 rows" not in out


def test_a_job_file_with_three_mistakes_reports_all_three(tmp_path: Path, capsys) -> None:
    job = tmp_path / "job.toml"
    job.write_text('platfrom = "salesforce"\ninput = "x.csv"\noperation = "assign"\n[limits]\nconcurency = 3\n'
                   '[connection]\nsandbx = true\n')
    assert main(["validate", str(job)]) == 2
    err = capsys.readouterr().err
    assert "4 problems" in err
    assert "'platfrom'. Did you mean 'platform'?" in err and "'concurency'" in err and "'sandbx'" in err


def test_a_column_that_looks_like_a_constant_gets_the_value_hint(tmp_path: Path, capsys) -> None:
    (tmp_path / "in.csv").write_text("Email\na@example.com\n")
    job = tmp_path / "job.toml"
    job.write_text('platform = "salesloft"\noperation = "add"\ninput = "in.csv"\n[columns]\n'
                   'person_email = "Email"\ncadence_name = "Q4 Outbound"\n[connection]\nsandbox = true\n')
    assert main(["validate", str(job)]) == 2
    assert 'cadence_name = { value = "Q4 Outbound" }' in capsys.readouterr().err


def test_run_log_has_one_line_per_retry_and_stop(tmp_path: Path) -> None:
    """Issue 14.8: run.log said "one line per event" but logged only start and finish."""
    import shutil

    import batchrunner
    from batchrunner.job import SandboxSettings
    from batchrunner.sandbox.factory import build_sandbox

    shutil.copy(REPO / "sample_data" / "salesforce_weekly_leads.csv", tmp_path / "leads.csv")
    text = (REPO / "jobs" / "salesforce-weekly-assign.toml").read_text()
    text = text.replace("../sample_data/salesforce_weekly_leads.csv", "leads.csv").replace('"../runs"', '"runs"')
    text = text.replace("batch_size = 200", "batch_size = 2\nbackoff_base = 0.001\nbackoff_max = 0.002")
    (tmp_path / "job.toml").write_text(text)
    app = build_sandbox(SandboxSettings(error_rate=0.3, seed=4))
    result = batchrunner.run(tmp_path / "job.toml", sandbox_app=app)
    log = (result.run_dir / "run.log").read_text()
    assert result.summary["retries"] > 0
    assert log.count("retrying ") >= 1 and "run finished" in log
