"""`batchrunner runs`: the run directories under an output directory, newest first.

Read from what each run leaves behind: summary.json (counts, exit code, how it stopped) and the
journal's meta table (when it was created, its input). A run that has a journal but no summary
crashed before its reports were written: it is listed as resumable. Which run retried which is
derived: `batchrunner retry RUN_DIR` writes RUN_DIR/retry-input.csv and the new run's input is that file.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

RETRY_INPUT = "retry-input.csv"
KINDS = ("run", "dry run", "prediction", "resume", "retry")


def run_kind(summary: dict[str, Any]) -> str:
    """run, dry run, prediction (`batchrunner predict`), resume (summary rewritten by `batchrunner
    resume`) or retry (input is a retry file)."""
    if summary.get("prediction"):
        return "prediction"
    if (summary.get("stopped") or {}).get("code") == "DRY_RUN":
        return "dry run"
    if summary.get("resumed"):
        return "resume"
    if Path(str(summary.get("input_file") or "")).name == RETRY_INPUT:
        return "retry"
    return "run"


def _meta(journal: Path) -> dict[str, Any]:
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
        try:
            return {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
        finally:
            db.close()
    except (sqlite3.Error, ValueError):
        return {}


def _read_summary(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def list_runs(output_dir: Path) -> list[dict[str, Any]]:
    """One dict per run directory under ``output_dir``, newest first."""
    output_dir = Path(output_dir)
    runs: list[dict[str, Any]] = []
    if not output_dir.is_dir():
        return runs
    for run_dir in output_dir.iterdir():
        journal = run_dir / "journal.sqlite"
        if not run_dir.is_dir() or not (journal.is_file() or (run_dir / "summary.json").is_file()):
            continue
        summary = _read_summary(run_dir)
        meta = _meta(journal) if journal.is_file() else {}
        input_file = (summary or {}).get("input_file") or meta.get("input_path")
        entry: dict[str, Any] = {
            "run_dir": str(run_dir.resolve()), "name": run_dir.name,
            "job": (summary or {}).get("job") or meta.get("job_name"),
            "started": meta.get("created_at") or (summary or {}).get("started_at"),
            "finished": (summary or {}).get("finished_at"),
            "duration_seconds": (summary or {}).get("duration_seconds"),
            "platform": (summary or {}).get("platform") or meta.get("platform"),
            "target": (summary or {}).get("target") or ("sandbox" if meta.get("sandbox") else "live"),
            "input_file": input_file,
            "rows": (summary or {}).get("rows", meta.get("rows")),
            "counts": {k: v for k, v in ((summary or {}).get("counts") or {}).items() if v},
            "exit_code": (summary or {}).get("exit_code"),
            "retry_of": None, "retried_by": [],
        }
        if summary is None:
            entry.update(kind="crashed", resumable=journal.is_file(), stopped="no summary.json: the run did not "
                         "finish writing its reports")
        else:
            stop = summary.get("stopped") or {}
            entry.update(kind=run_kind(summary), resumable=summary.get("exit_code") == 3 and journal.is_file(),
                         stopped=f"{stop['code']}: {stop['message']}" if stop else None)
        if input_file and Path(input_file).name == RETRY_INPUT:
            entry["retry_of"] = str(Path(input_file).resolve().parent)
        runs.append(entry)
    by_dir = {r["run_dir"]: r for r in runs}
    for r in runs:
        if r["retry_of"] in by_dir:
            by_dir[r["retry_of"]]["retried_by"].append(r["run_dir"])
    runs.sort(key=lambda r: (r["started"] or "", r["name"]), reverse=True)
    for r in runs:
        r["retried_by"].sort()
    return runs


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


SHORT = {"succeeded": "ok", "skipped": "skip", "failed": "fail", "invalid": "inv", "not_attempted": "n/a"}


def format_runs(runs: list[dict[str, Any]]) -> str:
    """A plain-text table of ``list_runs`` for the terminal."""
    if not runs:
        return "no runs"
    header = ("STARTED (UTC)", "JOB", "KIND", "DURATION", "COUNTS", "EXIT", "RESUMABLE", "RUN", "RETRIED BY")
    lines = [header]
    for r in runs:
        counts = " ".join(f"{n} {SHORT.get(s, s)}" for s, n in r["counts"].items()) or "-"
        lines.append((str(r["started"] or "-")[:19].replace("T", " "), str(r["job"] or "-"), r["kind"],
                      _duration(r["duration_seconds"]), counts,
                      "-" if r["exit_code"] is None else str(r["exit_code"]), "yes" if r["resumable"] else "no",
                      r["name"], ", ".join(Path(p).name for p in r["retried_by"]) or "-"))
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in lines)
