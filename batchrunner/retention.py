"""``--keep-runs N``: keep the newest N run directories of a job, delete older ones.

Only directories that are certainly runs of this job are touched: named ``<job name>-<UTC
stamp>[-n]`` (what ``runner.new_run_dir`` creates) and holding a ``journal.sqlite``. Runs that
stopped early (exit 3 or 4, resumable) are kept whatever their age, so nothing resumable is lost.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path


def run_dirs(output_dir: Path, job_name: str) -> list[Path]:
    """The job's run directories, oldest first."""
    pattern = re.compile(re.escape(job_name) + r"-(\d{8}T\d{6}Z)(?:-(\d+))?$")
    found: list[tuple[str, int, Path]] = []
    if not output_dir.is_dir():
        return []
    for path in output_dir.iterdir():
        m = pattern.match(path.name)
        if m and path.is_dir() and (path / "journal.sqlite").is_file():
            found.append((m.group(1), int(m.group(2) or 1), path))
    return [p for _, _, p in sorted(found)]


def _resumable(run_dir: Path) -> bool:
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # no finished report: it may be running or may need `resume`
    return summary.get("exit_code") in (3, 4) and not summary.get("dry_run")


def prune(output_dir: Path, job_name: str, keep: int, *, current: Path | None = None) -> list[Path]:
    """Delete all but the newest ``keep`` runs; return what was deleted."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    runs = run_dirs(output_dir, job_name)
    old = runs[:-keep] if len(runs) > keep else []
    deleted = []
    for path in old:
        if current is not None and path.resolve() == current.resolve():
            continue
        if _resumable(path):
            continue
        shutil.rmtree(path)
        deleted.append(path)
    return deleted
