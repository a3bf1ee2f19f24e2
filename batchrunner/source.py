"""Read the input CSV with polars and map it onto operation fields.

Every cell is read as text (no type inference: ``00Q…`` IDs and ``0012`` survive unchanged). The
original columns are kept as read, for results.csv; the mapped fields are trimmed (including
non-breaking and zero-width spaces) and empty cells become missing values.

Files come from spreadsheets, CRM exports and hurried scripts, so reading is defensive: a BOM never
reaches a column name, UTF-16 (Excel "Unicode text") is decoded, the delimiter is sniffed, blank
lines are not rows, trailing unnamed empty columns are dropped, and a line with too few or too many
fields becomes that row's problem (reported ``invalid``) rather than an error for the whole file.
polars reads a regular file; an irregular one (polars refuses it, or its last column has gaps that
may be missing fields) is re-read with the stdlib ``csv`` module, which reports each line's field
count, so no line is ever silently shifted or dropped.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from batchrunner.errors import JobError, did_you_mean
from batchrunner.job import Job

OPERATION = "__operation"  # the raw per-row operation name in the fields frame
ROW_PROBLEM = "__row_problem"  # why a row cannot be used as read (a ragged line, a NUL byte), else null
#: what `trim` removes: ASCII whitespace, NBSP, zero-width space/joiners, BOM
_STRIP = " \t\r\n\f\v\u00a0\u200b\u200c\u200d\u2060\ufeff"
_ZERO_WIDTH = "[\u200b\u200c\u200d\u2060\ufeff]"


@dataclass
class LoadedInput:
    path: Path
    sha256: str
    frame: pl.DataFrame  # the input's own columns, as read
    fields: pl.DataFrame  # operation fields (mapped, trimmed, null when empty) + OPERATION (+ ROW_PROBLEM)
    notes: list[str] = field(default_factory=list)  # things worth telling the user


@dataclass
class Table:
    """A CSV as read: its columns (all text), what is wrong with particular lines, and notes."""

    frame: pl.DataFrame
    problems: pl.Series | None = None  # one entry per row: a message, or null
    notes: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)  # the header as written (before de-duplication)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _where(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    return f"byte offset {offset}, line {line}"


def _decode(data: bytes, encoding: str) -> bytes:
    """Return UTF-8 bytes without a BOM, or a JobError naming where decoding failed."""
    if data.startswith(codecs.BOM_UTF8):
        data, encoding = data[3:], "utf-8"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise JobError(f"Unknown encoding {encoding!r}: use e.g. \"utf-8\", \"windows-1252\", \"utf-16\".") from None
    if codec == "utf-8":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JobError(
                f"The input is not valid UTF-8: byte 0x{data[exc.start]:02x} at {_where(data, exc.start)}. "
                "Set encoding = \"windows-1252\" (or the file's real encoding) in the job."
            ) from None
        return data
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise JobError(f"The input cannot be read as {encoding}: byte 0x{data[exc.start]:02x} at "
                       f"{_where(data, exc.start)}.") from None
    return text.lstrip("\ufeff").encode("utf-8")


def sniff_delimiter(header: bytes) -> str:
    counts = {sep: header.count(sep.encode()) for sep in (",", ";", "\t")}
    return max(counts, key=lambda sep: counts[sep]) if any(counts.values()) else ","


def _unique_names(names: list[str]) -> list[str]:
    """Column names as polars makes them unique (``a``, ``a_duplicated_0``), for both readers."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            out.append(f"{name}_duplicated_{seen[name]}")
            seen[name] += 1
        else:
            seen[name] = 0
            out.append(name)
    return out


def _csv_reader(text: io.StringIO, sep: str):
    return csv.reader(text, delimiter=sep, quotechar='"', doublequote=True, strict=False)


def _first_record(data: bytes, sep: str) -> list[str]:
    head = data[: 1 << 16].decode("utf-8", errors="ignore")
    return next(_csv_reader(io.StringIO(head, newline=""), sep), [])


def _read_with_csv_module(data: bytes, sep: str, width: int, names: list[str]) -> tuple[pl.DataFrame, pl.Series]:
    """The careful reader: every line's field count is known, so a ragged line is that row's
    problem; blank lines are skipped. Slower than polars (about 1 s per million rows)."""
    columns: list[list[str | None]] = [[] for _ in range(width)]
    problems: list[str | None] = []
    records = _csv_reader(io.StringIO(data.decode("utf-8"), newline=""), sep)
    next(records, None)  # the header
    for record in records:
        if not any(record):
            continue  # a blank line (or only delimiters): not a row
        n = len(record)
        problem = None
        if n > width and any(cell.strip() for cell in record[width:]):
            problem = (f"this line has {n} fields but the header has {width}: a delimiter inside an unquoted "
                       "value? The extra fields were not read")
        elif n < width:
            problem = f"this line has {n} fields but the header has {width}: a value is missing or the line was cut"
        for i in range(width):
            cell = record[i] if i < n else None
            columns[i].append(cell if cell != "" else None)
        problems.append(problem)
    frame = pl.DataFrame({name: col for name, col in zip(names, columns, strict=True)},
                         schema={name: pl.String for name in names})
    return frame, pl.Series(ROW_PROBLEM, problems, dtype=pl.String)


def read_table(path: Path, encoding: str = "utf-8", delimiter: str | None = None) -> Table:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise JobError(f"Input file not found: {path}") from None
    except IsADirectoryError:
        raise JobError(f"The input {path} is a directory, not a CSV file.") from None
    except OSError as exc:
        raise JobError(f"Cannot read input file {path}: {exc}") from None
    data = _decode(data, encoding)
    if not data.strip():
        raise JobError(f"The input file {path} is empty: it needs a header line and rows.")
    sep = delimiter or sniff_delimiter(data.split(b"\n", 1)[0])
    notes: list[str] = []
    if delimiter is None and sep != ",":
        notes.append(f"columns are separated by {'tab' if sep == chr(9) else repr(sep)} (sniffed from the header)")
    header = [name.strip("\r\n") for name in _first_record(data, sep)]
    width = len(header)
    while width > 1 and not header[width - 1].strip():
        width -= 1  # trailing unnamed columns (Excel's ragged right edge); checked for data below
    names = _unique_names(header[:width])
    frame: pl.DataFrame | None = None
    problems: pl.Series | None = None
    if width == len(header):
        try:
            frame = pl.read_csv(io.BytesIO(data), separator=sep, infer_schema=False, has_header=True,
                                new_columns=names, quote_char='"')
        except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, pl.exceptions.ShapeError):
            frame = None  # more fields than the header on some line, or bad quoting: read it carefully
        if frame is not None:
            blank = pl.all_horizontal([pl.col(c).is_null() | (pl.col(c) == "") for c in frame.columns])
            frame = frame.filter(~blank)  # blank lines (or only delimiters) are not rows
            if frame.width and frame[:, -1].null_count():
                frame = None  # gaps in the last column: empty values, or lines with fields missing?
    if frame is None:
        frame, problems = _read_with_csv_module(data, sep, width, names)
        if problems.null_count() == problems.len():
            problems = None
    if width < len(header):
        notes.append(f"{len(header) - width} unnamed empty column(s) at the right edge of the header were ignored")
    dupes = sorted({name for name in header[:width] if header[:width].count(name) > 1})
    if dupes:
        notes.append("the header repeats " + ", ".join(repr(d) for d in dupes)
                     + "; later copies are named NAME_duplicated_N in the reports")
    if problems is not None:
        notes.append(f"{problems.len() - problems.null_count()} line(s) have a different number of fields "
                     "than the header; they are reported invalid (MALFORMED_ROW)")
    return Table(frame, problems, notes, header[:width])


def read_csv(path: Path, encoding: str = "utf-8", delimiter: str | None = None) -> pl.DataFrame:
    """The input's columns as read (see ``read_table``): what results.csv and `retry` copy."""
    return read_table(path, encoding, delimiter).frame


def match_column(wanted: str, header: list[str], notes: list[str], written: list[str] | None = None) -> str:
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
    raise JobError(f"The job maps column {wanted!r}, which the input file lacks.{did_you_mean(wanted, header)}")


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


def load_input(job: Job, input_path: Path | None = None) -> LoadedInput:
    path = Path(input_path) if input_path else job.input
    table = read_table(path, job.encoding, job.delimiter)
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
            column = match_column(spec.column, header, notes, table.header)
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
    problems = [pl.lit(table.problems)] if table.problems is not None else []
    problem = pl.coalesce([*problems, *nul, pl.lit(None, dtype=pl.String)])
    fields = frame.select(*exprs, problem.alias(ROW_PROBLEM))
    fields = _scrub_inside(fields)
    if fields[ROW_PROBLEM].null_count() == fields.height:
        fields = fields.drop(ROW_PROBLEM)
    return LoadedInput(path=path.resolve(), sha256=file_sha256(path), frame=frame, fields=fields, notes=notes)
