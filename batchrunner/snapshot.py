"""The rows a run read, kept in its run directory so `resume` and `retry` use exactly those rows.

A run's journal speaks of rows by number. Re-reading the job's input file later is only right if
the file did not change: next week's list, a re-sorted export or an edited cell would give row 17
another person (a resume once reported 46 people `succeeded` with someone else's membership id;
a retry enrolled someone who was never in the run). So a run stores what it read, once, before
anything is sent: the input's own columns (for the reports) and the validated rows (what is sent),
as Parquet (fast, compact, typed as text). `resume` and `retry` read these, never the input file.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import polars as pl

from batchrunner import chunks

INPUT = "snapshot-input.parquet"  # the input's own columns, as read
ROWS = "snapshot-rows.parquet"  # the validated rows: fields, operation, invalid code/message


class Spooled:
    """A frame kept as compressed Parquet bytes (what its snapshot file holds) and read back a
    slice at a time: the input's own columns are needed again only by the reports, one slice at
    a time, and held this way a ten-million-row list costs tens of megabytes, not gigabytes
    (docs/memory.md). Row groups of `chunks.ROWS` rows, so a slice decodes only its own."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        lazy = pl.scan_parquet(io.BytesIO(data))
        self.columns: list[str] = lazy.collect_schema().names()
        self.height: int = lazy.select(pl.len()).collect().item()

    @classmethod
    def of(cls, frame: pl.DataFrame | Spooled) -> Spooled:
        if isinstance(frame, Spooled):
            return frame
        buffer = io.BytesIO()
        frame.write_parquet(buffer, compression="zstd", statistics=False, row_group_size=chunks.rows())
        return cls(buffer.getvalue())

    @property
    def width(self) -> int:
        return len(self.columns)

    def slice(self, offset: int, length: int | None = None) -> pl.DataFrame:
        return pl.scan_parquet(io.BytesIO(self.data)).slice(offset, length).collect()

    def collect(self) -> pl.DataFrame:
        return pl.read_parquet(io.BytesIO(self.data))

    def __getitem__(self, key: Any) -> Any:
        return self.collect()[key]

    def __getattr__(self, name: str) -> Any:
        """Anything else a DataFrame does (``select``, ``rows``…), on the whole frame, read back:
        for small lists and the few places that need every row (a sync diff)."""
        if name.startswith("__") or name == "data":
            raise AttributeError(name)
        return getattr(self.collect(), name)


def _write(path: Path, data: pl.DataFrame | Spooled) -> None:
    if isinstance(data, Spooled):
        path.write_bytes(data.data)
    else:
        data.write_parquet(path, compression="zstd", statistics=False, row_group_size=chunks.rows())


def save(run_dir: Path, frame: pl.DataFrame | Spooled, validated: pl.DataFrame) -> None:
    """Write both snapshots (0600: they hold every input column, emails and names)."""
    for name, data in ((INPUT, frame), (ROWS, validated)):
        path = run_dir / name
        tmp = run_dir / f".{name}.tmp"
        _write(tmp, data)
        tmp.chmod(0o600)
        tmp.replace(path)


def exists(run_dir: Path) -> bool:
    return (run_dir / INPUT).is_file() and (run_dir / ROWS).is_file()


def load(run_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(input frame, validated rows) as the run read them."""
    return pl.read_parquet(run_dir / INPUT), pl.read_parquet(run_dir / ROWS)


def load_spooled(run_dir: Path) -> tuple[Spooled, pl.DataFrame]:
    """`load`, the input's columns left compressed (`Spooled`): what `resume` needs."""
    return Spooled((run_dir / INPUT).read_bytes()), pl.read_parquet(run_dir / ROWS)
