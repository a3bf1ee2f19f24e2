"""The rows a run read, kept in its run directory so `resume` and `retry` use exactly those rows.

A run's journal speaks of rows by number. Re-reading the job's input file later is only right if
the file did not change: next week's list, a re-sorted export or an edited cell would give row 17
another person (a resume once reported 46 people `succeeded` with someone else's membership id;
a retry enrolled someone who was never in the run). So a run stores what it read, once, before
anything is sent: the input's own columns (for the reports) and the validated rows (what is sent),
as Parquet (fast, compact, typed as text). `resume` and `retry` read these, never the input file.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

INPUT = "snapshot-input.parquet"  # the input's own columns, as read
ROWS = "snapshot-rows.parquet"  # the validated rows: fields, operation, invalid code/message


def save(run_dir: Path, frame: pl.DataFrame, validated: pl.DataFrame) -> None:
    """Write both snapshots (0600: they hold every input column, emails and names)."""
    for name, data in ((INPUT, frame), (ROWS, validated)):
        path = run_dir / name
        tmp = run_dir / f".{name}.tmp"
        data.write_parquet(tmp, compression="zstd", statistics=False)
        tmp.chmod(0o600)
        tmp.replace(path)


def exists(run_dir: Path) -> bool:
    return (run_dir / INPUT).is_file() and (run_dir / ROWS).is_file()


def load(run_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(input frame, validated rows) as the run read them."""
    return pl.read_parquet(run_dir / INPUT), pl.read_parquet(run_dir / ROWS)
