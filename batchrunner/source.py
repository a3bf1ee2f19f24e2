"""Read the input CSV with polars and map it onto operation fields.

Every cell is read as text (no type inference: ``00Q…`` IDs and ``0012`` survive unchanged). The
original columns are kept as read, for results.csv; the mapped fields are trimmed (including
non-breaking and zero-width spaces) and empty cells become missing values.
"""

from __future__ import annotations

import codecs
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from batchrunner.errors import JobError, did_you_mean
from batchrunner.job import Job

OPERATION = "__operation"  # the raw per-row operation name in the fields frame
#: what `trim` removes: ASCII whitespace, NBSP, zero-width space/joiners, BOM
_STRIP = " \t\r\n\f\v\u00a0\u200b\u200c\u200d\u2060\ufeff"


@dataclass
class LoadedInput:
    path: Path
    sha256: str
    frame: pl.DataFrame  # the input's own columns, as read
    fields: pl.DataFrame  # operation fields (mapped, trimmed, null when empty) + OPERATION
    notes: list[str] = field(default_factory=list)  # things worth telling the user


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _decode(data: bytes, encoding: str) -> bytes:
    """Return UTF-8 bytes without a BOM, or a JobError naming where decoding failed."""
    if data.startswith(codecs.BOM_UTF8):
        data, encoding = data[3:], "utf-8"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    if codecs.lookup(encoding).name == "utf-8":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise JobError(
                f"The input is not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}). "
                "Set encoding = \"windows-1252\" (or the file's real encoding) in the job."
            ) from None
        return data
    try:
        return data.decode(encoding).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise JobError(f"The input cannot be read as {encoding}: byte offset {exc.start}.") from None
    except LookupError:
        raise JobError(f"Unknown encoding {encoding!r}.") from None


def sniff_delimiter(header: bytes) -> str:
    counts = {sep: header.count(sep.encode()) for sep in (",", ";", "\t")}
    return max(counts, key=lambda sep: counts[sep]) if any(counts.values()) else ","


def read_csv(path: Path, encoding: str = "utf-8", delimiter: str | None = None) -> pl.DataFrame:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise JobError(f"Input file not found: {path}") from None
    except OSError as exc:
        raise JobError(f"Cannot read input file {path}: {exc}") from None
    data = _decode(data, encoding)
    if not data.strip():
        raise JobError(f"The input file {path} is empty: it needs a header line and rows.")
    sep = delimiter or sniff_delimiter(data.split(b"\n", 1)[0])
    try:
        return pl.read_csv(io.BytesIO(data), separator=sep, infer_schema=False, has_header=True)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JobError(f"The input file {path} cannot be read as CSV: {first}") from None


def match_column(wanted: str, header: list[str], notes: list[str]) -> str:
    """Find a job's column in the header: exactly, or ignoring case and surrounding spaces."""
    if wanted in header:
        return wanted
    loose = [h for h in header if h.strip().lower() == wanted.strip().lower()]
    if len(loose) == 1:
        notes.append(f"column {wanted!r} matched header {loose[0]!r} (ignoring case and spaces)")
        return loose[0]
    raise JobError(f"The job maps column {wanted!r}, which the input file lacks.{did_you_mean(wanted, header)}")


def clean(expr: pl.Expr) -> pl.Expr:
    """Trim (incl. NBSP, zero-width characters) and turn empty strings into missing values."""
    trimmed = expr.str.strip_chars(_STRIP)
    return pl.when(trimmed.str.len_bytes() == 0).then(None).otherwise(trimmed)


def load_input(job: Job, input_path: Path | None = None) -> LoadedInput:
    path = Path(input_path) if input_path else job.input
    frame = read_csv(path, job.encoding, job.delimiter)
    header = frame.columns
    notes: list[str] = []
    exprs: list[pl.Expr] = []
    for name, spec in job.columns.items():
        if spec.column is not None:
            exprs.append(clean(pl.col(match_column(spec.column, header, notes))).alias(name))
        else:
            exprs.append(clean(pl.lit(spec.value, dtype=pl.String)).alias(name))
    if job.operation_column is not None:
        op = clean(pl.col(match_column(job.operation_column, header, notes)))
        if job.operation:
            op = op.fill_null(pl.lit(job.operation))
    else:
        op = pl.lit(job.operation, dtype=pl.String)
    exprs.append(op.alias(OPERATION))
    fields = frame.select(exprs) if exprs else pl.DataFrame()
    return LoadedInput(path=path.resolve(), sha256=file_sha256(path), frame=frame, fields=fields, notes=notes)
