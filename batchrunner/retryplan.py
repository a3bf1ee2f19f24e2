"""What ``batchrunner retry`` says when there is nothing to retry, and with which exit code.

``retry`` re-sends failed and not-attempted rows. Invalid rows are not retried: sending the same
bad value again cannot succeed, a person has to fix it first. So after a run whose only problems
were invalid rows there is nothing to retry, and saying "every row succeeded or was skipped" (as
it used to) is false and hides the rows that still need a person. This module says what is true
and where the rows to fix are.
"""

from __future__ import annotations

import json
from pathlib import Path

from batchrunner.outcome import Status


def _job_file(run_dir: Path) -> str:
    """The run's job file as the run recorded it (summary.json), else a placeholder to fill in."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
        return str(summary.get("job_file") or "JOB.toml")
    except (OSError, ValueError):
        return "JOB.toml"


def _rows(n: int) -> str:
    return f"{n} row{'' if n == 1 else 's'}"


def explain_nothing_to_retry(counts: dict[str, int], run_dir: Path | str) -> str:
    """The message for a run with no failed or not-attempted rows: which rows remain (invalid ones:
    fix them in errors.csv and run that file), or that every row is done."""
    run_dir = Path(run_dir)
    invalid = counts.get(Status.INVALID.value, 0)
    done = ", ".join(f"{_rows(n)} {status}" for status, n in counts.items()
                     if n and status in (Status.SUCCEEDED.value, Status.SKIPPED.value))
    if invalid:
        errors = run_dir / "errors.csv"
        verb = "is" if invalid == 1 else "are"
        return (f"Nothing to retry: no row of {run_dir} failed for a reason a retry could fix. {_rows(invalid)} "
                f"{verb} invalid{f' ({done})' if done else ''}: fix them in {errors} and run "
                f"`batchrunner run {_job_file(run_dir)} --input {errors}`.")
    if not any(counts.values()):
        return f"Nothing to retry: {run_dir} has no rows."
    return f"Nothing to retry: every row of {run_dir} is done ({done})."


def nothing_to_retry_exit_code(counts: dict[str, int], fail_on: str = "invalid") -> int:
    """Proposed exit code: 0 when every row is done (nothing is wrong); 1 when invalid rows are
    still waiting for a person (as ``run`` would say with the same ``--fail-on``); never 2, which
    means the command could not start."""
    if counts.get(Status.INVALID.value, 0) and fail_on == "invalid":
        return 1
    return 0
