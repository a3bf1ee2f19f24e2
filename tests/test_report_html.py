"""report.html: written for real, dry and resumed runs, its numbers are summary.json's, hostile
platform/input text is escaped, it needs nothing from the network, and it stays small."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import polars as pl

from batchrunner.htmlreport import MAX_PROBLEM_ROWS, render_html
from batchrunner.job import load_job
from batchrunner.journal import Journal
from batchrunner.runner import prepare, run_prepared
from batchrunner.timeline import Timeline, bucket_size, read_timeline
from conftest import cli
from report_dom import demo_job, parse

HOSTILE = '<img src=x onerror=alert(1)>'


def _run(job: Path, tmp_path: Path, **kw) -> Path:
    result = anyio.run(lambda: run_prepared(prepare(load_job(job)), output_dir=tmp_path / "runs", progress=False, **kw))
    return result.run_dir


def _check_numbers(run_dir: Path) -> tuple[dict, object]:
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    dom = parse((run_dir / "report.html").read_text(encoding="utf-8"))
    assert dom.status_counts == summary["counts"]
    assert dom.code_counts == summary["error_codes"]
    assert int(dom.by_id["total-rows"]) == summary["rows"]
    assert dom.by_id["exit-code"] == str(summary["exit_code"])
    assert dom.by_id["requests-sent"] == str(summary["requests_sent"])
    drawn = {b["data-label"]: float(b["data-value"]) for b in dom.bars}
    for status, n in summary["counts"].items():
        if n:
            assert drawn[status] == n
    assert not dom.external and not dom.scripts_with_src  # opens offline: nothing fetched
    return summary, dom


def test_real_run_report_matches_summary_and_escapes_hostile_text(tmp_path: Path) -> None:
    job = demo_job(tmp_path, more_rows=f'"{HOSTILE}",Eve,"</td><script>alert(2)</script>",Evil Inc,e@x.example.com\n')
    run_dir = _run(job, tmp_path)
    summary, dom = _check_numbers(run_dir)
    assert summary["counts"]["succeeded"] == 20 and summary["counts"]["invalid"] == 4
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert HOSTILE not in html and "<script>alert(2)" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # shown, as text
    assert html.count("<script>") == 1  # only the filter's own
    assert {r["code"] for r in dom.problem_rows} == {"INVALID_ID", "INVALID_CROSS_REFERENCE_KEY",
                                                     "REQUIRED_FIELD_MISSING", "WRONG_OBJECT"}
    assert f"batchrunner retry {run_dir}" in html  # the next command
    assert "api-usage" in dom.by_id and "of 15,000" in dom.by_id["api-usage"]  # Salesforce daily usage


def test_dry_run_report(tmp_path: Path) -> None:
    run_dir = _run(demo_job(tmp_path), tmp_path, dry_run=True)
    summary, dom = _check_numbers(run_dir)
    assert summary["counts"]["not_attempted"] == 22 and summary["requests_sent"] == 0
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "dry run" in html and "DRY_RUN" in html
    assert f"batchrunner run {tmp_path / 'rep.toml'}" in html


def test_resume_rewrites_the_report_of_a_crashed_run(tmp_path: Path) -> None:
    job = demo_job(tmp_path)
    crashed = cli("run", str(job), "--no-progress", cwd=tmp_path, env={"BATCHRUNNER_FAILPOINT": "run.before_send"})
    assert crashed.returncode < 0
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert not (run_dir / "report.html").exists()  # killed before any report
    done = cli("resume", str(run_dir), "--no-progress", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    summary, dom = _check_numbers(run_dir)
    assert summary["resumed"] is True and summary["counts"]["succeeded"] == 20
    assert "resume" in (run_dir / "report.html").read_text(encoding="utf-8")
    assert done.stdout.index("report.html") < done.stdout.index("results.csv")  # report.html listed first


def test_problem_rows_are_cut_with_a_note(tmp_path: Path) -> None:
    extra = "".join(f",Nobody,N{i},None,n{i}@x.example.com\n" for i in range(MAX_PROBLEM_ROWS + 100))
    run_dir = _run(demo_job(tmp_path, more_rows=extra), tmp_path)
    summary, dom = _check_numbers(run_dir)
    assert len(dom.problem_rows) == MAX_PROBLEM_ROWS
    assert int(dom.by_id["problems-total"]) == summary["counts"]["failed"] + summary["counts"]["invalid"]
    assert "problems-cut" in dom.by_id


def test_a_million_rows_render_fast_and_small(tmp_path: Path) -> None:
    """Aggregates, not one element per row: the page for 1,000,000 results stays small."""
    n = 1_000_000
    results = pl.DataFrame({
        "Lead Id": pl.int_range(n, eager=True).cast(pl.String),
        "_row": pl.int_range(1, n + 1, eager=True),
        "_status": pl.Series(["succeeded", "failed", "invalid", "skipped"] * (n // 4)),
        "_error_code": pl.Series([None, "UNABLE_TO_LOCK_ROW", "INVALID_ID", "DUPLICATE_ROW"] * (n // 4)),
        "_error_message": pl.Series([None, "locked", "bad id", "dup"] * (n // 4)),
    })
    summary = {"job": "big", "rows": n, "counts": {"succeeded": n // 4, "failed": n // 4, "invalid": n // 4,
                                                   "skipped": n // 4, "not_attempted": 0},
               "error_codes": {"UNABLE_TO_LOCK_ROW": n // 4, "INVALID_ID": n // 4, "DUPLICATE_ROW": n // 4},
               "exit_code": 1, "requests_sent": 5000}
    line = Timeline(1, None, [f"00:00:{i:02d}" for i in range(60)], [n // 60] * 60, [83] * 60)
    html = render_html(tmp_path, results, summary, line)
    assert len(html) < 1_000_000
    dom = parse(html)
    assert dom.status_counts == summary["counts"] and len(dom.problem_rows) == MAX_PROBLEM_ROWS


def test_timeline_from_the_journal(tmp_path: Path) -> None:
    run_dir = _run(demo_job(tmp_path), tmp_path)
    line = read_timeline(run_dir / "journal.sqlite")
    assert sum(line.rows) == 26  # every row's outcome, once
    assert sum(line.responses) >= 1  # the validator's invalid rows are not a response
    assert read_timeline(tmp_path / "nothing.sqlite").empty
    assert bucket_size(30) == 1 and bucket_size(3600) == 30 and bucket_size(86400) == 900


def _journal_at(path: Path, seconds: list[float]) -> Path:
    journal = Journal(path)
    journal.add_rows(len(seconds))
    for i, t in enumerate(seconds):
        at = f"2026-11-23T12:{int(t) // 60 % 60:02d}:{int(t) % 60:02d}.000Z".replace("12:", f"{12 + int(t) // 3600:02d}:")
        journal._event("finish", {"idx": [i], "status": ["succeeded"], "code": [None], "message": [None],
                                  "attempts": [1], "result": [None], "at": at})
    journal.close()
    return path


def test_timeline_keeps_the_time_axis_and_skips_long_gaps(tmp_path: Path) -> None:
    # a slow run (320 s, one response every 20 s): columns span the whole time, empty ones included
    slow = read_timeline(_journal_at(tmp_path / "slow.sqlite", [20.0 * i for i in range(17)]))
    assert slow.bucket_seconds == 5 and len(slow.labels) == 65 and sum(slow.responses) == 17
    assert slow.responses.count(0) == 65 - 17 and slow.peak_minute_responses == 3
    # resumed 10 hours later: the seconds with activity, not 10 hours of empty columns
    gap = read_timeline(_journal_at(tmp_path / "gap.sqlite", [0, 1, 2, 36000, 36001]))
    assert gap.labels == ["12:00:00", "12:00:01", "12:00:02", "22:00:00", "22:00:01"] and gap.responses == [1] * 5
