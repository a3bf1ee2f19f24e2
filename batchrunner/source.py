"""Read the input list (CSV, gzip-compressed CSV, .xlsx or Parquet) and map it onto operation fields.

Every cell is read as text (no type inference: ``00Q…`` IDs and ``0012`` survive unchanged). The
original columns are kept as read, for results.csv; the mapped fields are trimmed (including
non-breaking and zero-width spaces) and empty cells become missing values.

Files come from spreadsheets, CRM exports and hurried scripts, so reading is defensive. What the
file is comes from its bytes, not its name (filekind.py): a workbook or a gzip named .csv is read
as what it is (workbook.py), UTF-16 with or without a BOM is decoded, and a file that is no list
(another zip, an .xls, a PDF) is refused saying so. In a CSV a BOM never reaches a column name, the
delimiter is sniffed (or taken from Excel's ``sep=;`` first line), CR-only line ends are read as
lines, lines holding only whitespace and delimiters are not rows, trailing unnamed empty columns
are dropped, and a line with too few or too many fields becomes that row's problem (reported
``invalid``) rather than an error for the whole file. polars reads a regular file; an irregular
one (polars refuses it, or its last column has gaps that may be missing fields) is re-read with
the stdlib ``csv`` module, which reports each line's field count, so no line is ever silently
shifted or dropped. Report columns (``_row``, ``_status``, …) of an earlier run's results.csv or
errors.csv fed back as input are dropped with a note (``drop_report_columns``).
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from batchrunner import chunks, filekind
from batchrunner.errors import JobError, did_you_mean
from batchrunner.csvtext import csv_table, decode
from batchrunner.job import Job
from batchrunner.report import RESULT_COLUMNS
from batchrunner.table import ROW_PROBLEM, STRIP, Table, grid_table
from batchrunner.workbook import read_parquet, read_xlsx

__all__ = ["OPERATION", "ROW_PROBLEM", "LoadedInput", "Table", "clean", "file_sha256", "load_input", "match_column",
           "read_csv", "read_table"]

OPERATION = "__operation"  # the raw per-row operation name in the fields frame
_STRIP = STRIP
_ZERO_WIDTH = "[\u200b\u200c\u200d\u2060\ufeff]"


@dataclass
class LoadedInput:
    path: Path
    sha256: str
    frame: pl.DataFrame  # the input's own columns, as read (runner.prepare compresses them: snapshot.Spooled)
    fields: pl.DataFrame  # operation fields (mapped, trimmed, null when empty) + OPERATION (+ ROW_PROBLEM)
    notes: list[str] = field(default_factory=list)  # things worth telling the user


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise JobError(f"Input file not found: {path}") from None
    except IsADirectoryError:
        raise JobError(f"The input {path} is a directory, not a CSV file.") from None
    except OSError as exc:
        raise JobError(f"Cannot read input file {path}: {exc}") from None


def _kind(data: bytes, path: Path) -> str:
    try:
        return filekind.sniff_kind(data)
    except ValueError as exc:
        raise JobError(f"The input {path.name} cannot be used: {exc}") from None


def _gunzip(data: bytes, path: Path, notes: list[str]) -> bytes:
    try:
        data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise JobError(f"The input {path.name} is gzip-compressed but damaged or cut short ({exc}); "
                       "download or export it again.") from None
    notes.append("the file is gzip-compressed; its contents were read")
    return data


def read_table(path: Path, encoding: str = "utf-8", delimiter: str | None = None, sheet: str | None = None) -> Table:
    """Read a list: CSV (any of the dialects in the module docstring), gzip-compressed CSV, .xlsx
    (``sheet``, else the first) or Parquet, recognised by content, not by name."""
    path = Path(path)
    data = _read_bytes(path)
    notes: list[str] = []
    kind = _kind(data, path)
    if kind == filekind.GZIP:
        data = _gunzip(data, path, notes)
        kind = _kind(data, path)
        if kind == filekind.GZIP:
            raise JobError(f"The input {path.name} is compressed twice (gzip inside gzip); decompress it first.")
    if kind in (filekind.XLSX, filekind.PARQUET):
        if kind == filekind.XLSX:
            header, body, rounded = read_xlsx(data, sheet, notes)
            if path.suffix.lower() not in (".xlsx", ".xlsm"):
                notes.append(f"{path.name} is an Excel workbook (.xlsx) whatever its name; read as one")
        else:
            header, body, rounded = read_parquet(data)
            if sheet is not None:
                notes.append(f"sheet = {sheet!r} was ignored: the input is a Parquet file, not a workbook")
        return grid_table(header, body, notes, rounded)
    if sheet is not None:
        notes.append(f"sheet = {sheet!r} was ignored: the input is a text (CSV) file, not a workbook")
    if kind in (filekind.UTF16_LE, filekind.UTF16_BE) and not _is_utf16(encoding):
        notes.append(f"the file is {kind.upper()} text without a byte-order mark (NUL bytes in every other "
                     "position); decoded as such")
        encoding = kind
    return csv_table(path, decode(data, encoding), delimiter, notes)


def _is_utf16(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name.startswith("utf-16")
    except LookupError:
        return False  # the file's NUL pattern says UTF-16 whatever the job's unknown name says


def read_csv(path: Path, encoding: str = "utf-8", delimiter: str | None = None,
             sheet: str | None = None) -> pl.DataFrame:
    """The input's columns as read (see ``read_table``): what results.csv and `retry` copy."""
    return read_table(path, encoding, delimiter, sheet).frame


def match_column(wanted: str, header: list[str], notes: list[str], written: list[str] | None = None,
                 field: str | None = None) -> str:
    """Find a job's column in the header: exactly, or ignoring case and surrounding spaces.
    ``written`` is the header as in the file (repeated names not yet made unique)."""
    exact = [h for h in (written or header) if h == wanted]
    if len(exact) > 1:
        raise JobError(f"The header has {len(exact)} columns named {wanted!r}; the job cannot tell which one it "
                       "maps. Rename one of them in the file.")
    if exact:
        return wanted
    loose = [h for h in header if h.strip().lower() == wanted.strip().lower()]
    if len(loose) == 1:
        notes.append(f"column {wanted!r} matched header {loose[0]!r} (ignoring case and spaces)")
        return loose[0]
    if len(loose) > 1:
        raise JobError(f"The job maps column {wanted!r}, and the header has {len(loose)} columns that match it "
                       f"ignoring case and spaces ({', '.join(repr(h) for h in loose)}); name one exactly.")
    hint = ""
    if field is not None:  # `cadence_name = "Q4 Outbound"` meant a constant, not a column
        hint = (f" If {wanted!r} is the value for every row rather than a column of the file, write "
                f"{field} = {{ value = \"{wanted}\" }} in [columns].")
    raise JobError(f"The job maps column {wanted!r}, which the input file lacks.{did_you_mean(wanted, header)}{hint}")


def clean(expr: pl.Expr) -> pl.Expr:
    """Trim (incl. NBSP, zero-width characters) and turn empty strings into missing values."""
    trimmed = expr.str.strip_chars(_STRIP)
    return pl.when(trimmed.str.len_bytes() == 0).then(None).otherwise(trimmed)


def _scrub_inside(fields: pl.DataFrame) -> pl.DataFrame:
    """Invisible characters *inside* a value (pasted from a web page or a chat): zero-width ones
    are removed, a non-breaking space becomes a space. Checked per column first, so the common
    clean file pays one fast scan, not a rewrite."""
    fixes = []
    for name in fields.columns:
        column = fields[name]
        if column.dtype != pl.String:
            continue
        if column.str.contains(_ZERO_WIDTH + "|\u00a0").any():
            fixes.append(pl.col(name).str.replace_all(_ZERO_WIDTH, "").str.replace_all("\u00a0", " ", literal=True))
    return fields.with_columns(fixes) if fixes else fields


def _mapped_names(job: Job) -> set[str]:
    """Input columns the job names (a `_` column it maps is the user's, not a report's)."""
    names = {spec.column for spec in job.columns.values() if spec.column is not None}
    names.update(m.on for m in job.mappings.values())
    names.update(job.key)
    if job.operation_column is not None:
        names.add(job.operation_column)
    return names


def drop_report_columns(table: Table, keep: set[str]) -> Table:
    """An earlier run's results.csv or errors.csv fed back as input carries the report's own
    `_` columns; results.csv appends fresh ones, so the old ones go (a clash would stop the run
    after sending). Columns of RESULT_COLUMNS always go; other `_` columns unless the job maps them."""
    clash = [name for name in RESULT_COLUMNS if name in keep and name in table.frame.columns]
    if clash:
        raise JobError(f"The job maps column {clash[0]!r}, a name results.csv uses for its own report column; "
                       "rename that column in the file and the job.")
    report = {name for name in table.frame.columns
              if name.startswith("_") and (name not in keep or name.split("_duplicated_")[0] in RESULT_COLUMNS)}
    if not report:
        return table
    kept = [name for name in table.frame.columns if name not in report]
    header = [written for written, name in zip(table.header, table.frame.columns, strict=True) if name in kept]
    shown = ", ".join(name for name in table.frame.columns if name in report)
    note = (f"{len(report)} report column(s) from an earlier run ({shown}) were dropped; "
            "results.csv adds its own")
    return Table(table.frame.select(kept), table.problems, [*table.notes, note], header, table.rounded)


def load_input(job: Job, input_path: Path | None = None) -> LoadedInput:
    path = Path(input_path) if input_path else job.input
    table = drop_report_columns(read_table(path, job.encoding, job.delimiter, job.sheet), _mapped_names(job))
    frame = table.frame
    if frame.height == 0:
        raise JobError(f"The input file {path} has a header but no data rows: nothing to do. (An empty weekly "
                       "list is more often a broken export than an empty week, so this stops the job.)")
    header = frame.columns
    notes = list(table.notes)
    exprs: list[pl.Expr] = []
    raw_columns: dict[str, str] = {}
    for name, spec in job.columns.items():
        if spec.column is not None:
            column = match_column(spec.column, header, notes, table.header, field=name)
            raw_columns[name] = column
            exprs.append(clean(pl.col(column)).alias(name))
        else:
            exprs.append(clean(pl.lit(spec.value, dtype=pl.String)).alias(name))
    if job.operation_column is not None:
        column = match_column(job.operation_column, header, notes, table.header)
        raw_columns[OPERATION] = column
        op = clean(pl.col(column))
        if job.operation:
            op = op.fill_null(pl.lit(job.operation))
    else:
        op = pl.lit(job.operation, dtype=pl.String)
    exprs.append(op.alias(OPERATION))
    # a NUL byte in a mapped cell: a binary file or a broken export; never sent
    nul = [pl.when(pl.col(c).str.contains("\x00", literal=True)).then(pl.lit(f"column {c!r} contains a NUL byte "
                                                                            "(a broken export?)"))
           for c in dict.fromkeys(raw_columns.values())]
    # a number too long for a spreadsheet (or a float) to hold exactly: the ID may have been rounded
    rounded = [pl.when(pl.col(c).is_in(table.rounded[c])).then(pl.lit(
        f"column {c!r} holds a number of more than 15 digits, stored as a number: the spreadsheet kept only 15 "
        "significant digits, so it may have been rounded. Format the column as Text and enter the IDs again"))
        for c in dict.fromkeys(raw_columns.values()) if c in table.rounded]
    problems = [pl.lit(table.problems)] if table.problems is not None else []
    problem = pl.coalesce([*problems, *nul, *rounded, pl.lit(None, dtype=pl.String)])
    if problems:  # a per-line problem list (an irregular file, read carefully): in one pass
        fields = frame.select(*exprs, problem.alias(ROW_PROBLEM))
    else:  # a slice at a time: trimming's work columns exist for one slice (docs/memory.md)
        step = chunks.validate_rows()
        fields = pl.concat([frame.slice(start, step).select(*exprs, problem.alias(ROW_PROBLEM))
                            for start in range(0, frame.height, step)], rechunk=False)
    fields = _scrub_inside(fields)
    if fields[ROW_PROBLEM].null_count() == fields.height:
        fields = fields.drop(ROW_PROBLEM)
    return LoadedInput(path=path.resolve(), sha256=file_sha256(path), frame=frame, fields=fields, notes=notes)
