"""`batchrunner runs` (run history from summary.json + the journal) and the end-of-run screen."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from batchrunner.endscreen import next_steps, render, use_colour
from conftest import cli
from report_dom import demo_job


def _runs(tmp_path: Path) -> list[dict]:
    done = cli("runs", str(tmp_path / "runs"), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_runs_lists_kinds_newest_first_and_links_retries(tmp_path: Path) -> None:
    job = demo_job(tmp_path)
    assert cli("run", str(job), "--dry-run", "--no-progress", cwd=tmp_path).returncode == 1
    crashed = cli("run", str(job), "--no-progress", cwd=tmp_path, env={"BATCHRUNNER_FAILPOINT": "run.before_send"})
    assert crashed.returncode < 0
    runs = _runs(tmp_path)
    assert [r["kind"] for r in runs] == ["crashed", "dry run"]
    assert runs[0]["resumable"] is True and runs[1]["resumable"] is False
    crashed_dir = runs[0]["run_dir"]

    assert cli("resume", crashed_dir, "--no-progress", cwd=tmp_path).returncode == 1
    assert cli("retry", crashed_dir, "--no-progress", cwd=tmp_path).returncode == 1
    runs = _runs(tmp_path)
    assert [r["kind"] for r in runs] == ["retry", "resume", "dry run"]
    retry, resumed, dry = runs
    assert retry["retry_of"] == crashed_dir == resumed["run_dir"]
    assert resumed["retried_by"] == [retry["run_dir"]] and dry["retried_by"] == []
    assert resumed["counts"] == {"succeeded": 20, "failed": 1, "invalid": 3, "skipped": 2}
    assert resumed["exit_code"] == 1 and resumed["resumable"] is False
    assert retry["counts"] == {"failed": 1} and retry["rows"] == 1
    assert dry["counts"]["not_attempted"] == 22
    assert all(isinstance(r["duration_seconds"], float) for r in runs)

    text = cli("runs", str(tmp_path / "runs"), cwd=tmp_path).stdout.splitlines()
    assert text[0].split()[:3] == ["STARTED", "(UTC)", "JOB"] and len(text) == 4
    assert "retry" in text[1] and Path(retry["run_dir"]).name in text[2]  # the resumed run names its retry


def test_runs_of_an_empty_directory(tmp_path: Path) -> None:
    assert cli("runs", str(tmp_path), cwd=tmp_path).stdout.strip() == "no runs"


SUMMARY = {
    "rows": 10, "counts": {"succeeded": 5, "failed": 2, "invalid": 2, "skipped": 0, "not_attempted": 1},
    "error_codes": {"UNABLE_TO_LOCK_ROW": 2, "INVALID_ID": 2, "NOT_ATTEMPTED": 1},
    "error_messages": {"UNABLE_TO_LOCK_ROW": "unable to obtain\nexclusive access\x1b[31m", "INVALID_ID": "bad id"},
    "stopped": {"code": "INTERRUPTED", "message": "stopped by SIGINT"}, "exit_code": 3,
    "job_file": "/jobs/weekly.toml",
}


def test_end_screen_says_what_happened_and_what_next(tmp_path: Path) -> None:
    (tmp_path / "report.html").write_text("x")
    (tmp_path / "results.csv").write_text("x")
    text = render(SUMMARY, tmp_path)
    lines = text.splitlines()
    assert lines[0] == "10 rows: 5 succeeded, 2 failed, 2 invalid, 1 not_attempted"
    assert "stopped early: INTERRUPTED: stopped by SIGINT" in lines
    assert "  2 × UNABLE_TO_LOCK_ROW: unable to obtain exclusive access [31m" in lines  # one line, no escape
    assert "NOT_ATTEMPTED" not in text.split("by error code:")[1]  # the stop already says it
    assert "exit code 3: the run stopped early and can be resumed" in lines
    assert text.index("report.html") < text.index("results.csv")
    assert "\033" not in text  # no colour unless asked
    commands = [s.command for s in next_steps(SUMMARY, tmp_path)]
    assert commands == [f"batchrunner resume {tmp_path}", f"batchrunner run /jobs/weekly.toml --input {tmp_path}/errors.csv",
                        f"batchrunner retry {tmp_path}"]
    only_failed = {**SUMMARY, "stopped": None, "counts": {"succeeded": 8, "failed": 2}}
    assert [s.command for s in next_steps(only_failed, tmp_path)] == [f"batchrunner retry {tmp_path}"]
    assert next_steps({"counts": {"succeeded": 3}, "stopped": None}, tmp_path) == []
    assert "\033[31m2 failed\033[0m" in render(SUMMARY, tmp_path, colour=True)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour(_Tty()) and not use_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(_Tty())
