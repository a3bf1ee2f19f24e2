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
import csv
import gzip
import hashlib
import io
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from batchrunner import filekind
from batchrunner.errors import JobError, did_you_mean
from batchrunner.job import Job
from batchrunner.report import RESULT_COLUMNS
from batchrunner.workbook import read_parquet, read_xlsx

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
    # the csv module refuses a field over 128 KiB by default; a huge cell is that row's business
    csv.field_size_limit(max(csv.field_size_limit(), (1 << 31) - 1))
    return csv.reader(text, delimiter=sep, quotechar='"', doublequote=True, strict=False)


def _first_record(data: bytes, sep: str) -> list[str]:
    """The header record, however long: the window grows until a second record starts after it
    (a header of thousands of columns, or a quoted newline in a name, is not cut)."""
    size = 1 << 16
    while True:
        head = data[:size].decode("utf-8", errors="ignore")
        records = _csv_reader(io.StringIO(head, newline=""), sep)
        first = next(records, [])
        if size >= len(data) or next(records, None) is not None:
            return first
        size *= 4


def _read_with_csv_module(data: bytes, sep: str, width: int, names: list[str]) -> tuple[pl.DataFrame, pl.Series]:
    """The careful reader: every line's field count is known, so a ragged line is that row's
    problem; blank lines are skipped. Slower than polars (about 1 s per million rows)."""
    columns: list[list[str | None]] = [[] for _ in range(width)]
    problems: list[str | None] = []
    records = _csv_reader(io.StringIO(data.decode("utf-8"), newline=""), sep)
    next(records, None)  # the header
    for record in records:
        if not any(cell.strip(_STRIP) for cell in record):
            continue  # a blank line (or only whitespace and delimiters): not a row
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
            header, body = read_xlsx(data, sheet, notes)
            if not path.suffix.lower() in (".xlsx", ".xlsm"):
                notes.append(f"{path.name} is an Excel workbook (.xlsx) whatever its name; read as one")
        else:
            header, body = read_parquet(data)
            if sheet is not None:
                notes.append(f"sheet = {sheet!r} was ignored: the input is a Parquet file, not a workbook")
        return _grid_table(header, body, notes)
    if sheet is not None:
        notes.append(f"sheet = {sheet!r} was ignored: the input is a text (CSV) file, not a workbook")
    if kind in (filekind.UTF16_LE, filekind.UTF16_BE) and not codecs.lookup(encoding).name.startswith("utf-16"):
        notes.append(f"the file is {kind.upper()} text without a byte-order mark (NUL bytes in every other "
                     "position); decoded as such")
        encoding = kind
    return _csv_table(path, _decode(data, encoding), delimiter, notes)


def _old_mac_lines(data: bytes, notes: list[str]) -> bytes:
    """A file whose lines end in CR alone (classic Mac OS, some old exports) has no LF at all;
    polars and the csv module would see one enormous line."""
    if b"\r" in data and b"\n" not in data:
        notes.append("lines end in CR only (the old Mac format); read as lines")
        return data.replace(b"\r", b"\n")
    return data


def _excel_sep_hint(data: bytes, delimiter: str | None, notes: list[str]) -> tuple[bytes, str | None]:
    """Excel writes ``sep=;`` as a first line to name the delimiter: a hint, not the header."""
    first, _, rest = data.partition(b"\n")
    line = first.rstrip(b"\r").strip()
    if len(line) == 5 and line[:4].lower() == b"sep=":
        hinted = line[4:].decode("utf-8", errors="replace")
        notes.append(f"the first line sep={hinted} (written by Excel) names the delimiter; it is not the header")
        return rest, delimiter or hinted
    return data, delimiter


def _csv_table(path: Path, data: bytes, delimiter: str | None, notes: list[str]) -> Table:
    if not data.strip():
        raise JobError(f"The input file {path} is empty: it needs a header line and rows.")
    data = _old_mac_lines(data, notes)
    data, delimiter = _excel_sep_hint(data, delimiter, notes)
    if not data.strip():
        raise JobError(f"The input file {path} holds only a sep= line: it needs a header line and rows.")
    sep = delimiter or sniff_delimiter(data.split(b"\n", 1)[0])
    if delimiter is None and sep != ",":
        notes.append(f"columns are separated by {'tab' if sep == chr(9) else repr(sep)} (sniffed from the header)")
    header = [name.strip("\r\n") for name in _first_record(data, sep)]
    width = _named_width(header)
    names = _unique_names(header[:width])
    frame: pl.DataFrame | None = None
    problems: pl.Series | None = None
    if width == len(header):
        try:
            frame = pl.read_csv(io.BytesIO(data), separator=sep, infer_schema=False, has_header=True,
                                new_columns=names, quote_char='"')
        except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, pl.exceptions.ShapeError,
                pl.exceptions.SchemaError):
            frame = None  # more fields than the header on some line, or bad quoting: read it carefully
        if frame is not None:
            frame = _drop_blank(frame)
            if frame.width and frame[:, -1].null_count():
                frame = None  # gaps in the last column: empty values, or lines with fields missing?
    if frame is None:
        frame, problems = _read_with_csv_module(data, sep, width, names)
        if problems.null_count() == problems.len():
            problems = None
    if width < len(header):
        notes.append(f"{len(header) - width} unnamed empty column(s) at the right edge of the header were ignored")
    _note_repeats(header[:width], notes)
    if problems is not None:
        notes.append(f"{problems.len() - problems.null_count()} line(s) have a different number of fields "
                     "than the header; they are reported invalid (MALFORMED_ROW)")
    return Table(frame, problems, notes, header[:width])


def _named_width(header: list[str]) -> int:
    """How many columns count: trailing unnamed ones (Excel's ragged right edge) do not."""
    width = len(header)
    while width > 1 and not header[width - 1].strip():
        width -= 1
    return width


def _note_repeats(header: list[str], notes: list[str]) -> None:
    dupes = sorted({name for name in header if header.count(name) > 1})
    if dupes:
        notes.append("the header repeats " + ", ".join(repr(d) for d in dupes)
                     + "; later copies are named NAME_duplicated_N in the reports")


def _drop_blank(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows whose cells are all empty or whitespace (a blank line, a line of delimiters) are not rows."""
    if not frame.width:
        return frame

    def empty(name: str) -> pl.Expr:
        return pl.col(name).is_null() | (pl.col(name).str.strip_chars(_STRIP) == "")

    if not frame.select(empty(frame.columns[0]).any()).item():
        return frame  # the usual file: every row has a first value, so no row is blank (one column scanned)
    return frame.filter(~pl.all_horizontal([empty(c) for c in frame.columns]))


def _grid_table(header: list[str], body: pl.DataFrame, notes: list[str]) -> Table:
    """A workbook sheet or Parquet file as a Table: same header rules as a CSV's, all text."""
    body = body.rename(dict(zip(body.columns, [f"c{i}" for i in range(body.width)], strict=True)))
    width = _named_width(header)
    extra = body.select(body.columns[width:])
    if extra.width and _drop_blank(extra).height:
        width = len(header)  # data under an unnamed column: keep it, named
    header = [name if name.strip() else f"unnamed_{i + 1}" for i, name in enumerate(header[:width])]
    if width < len(body.columns):
        notes.append(f"{len(body.columns) - width} unnamed empty column(s) at the right edge were ignored")
    names = _unique_names(header)
    frame = body.select(pl.col(f"c{i}").cast(pl.String).alias(name) for i, name in enumerate(names))
    _note_repeats(header, notes)
    return Table(_drop_blank(frame), None, notes, header)


def read_csv(path: Path, encoding: str = "utf-8", delimiter: str | None = None,
             sheet: str | None = None) -> pl.DataFrame:
    """The input's columns as read (see ``read_table``): what results.csv and `retry` copy."""
    return read_table(path, encoding, delimiter, sheet).frame


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
    report = {name for name in table.frame.columns
              if name.startswith("_") and (name not in keep or name.split("_duplicated_")[0] in RESULT_COLUMNS)}
    if not report:
        return table
    kept = [name for name in table.frame.columns if name not in report]
    header = [written for written, name in zip(table.header, table.frame.columns, strict=True) if name in kept]
    shown = ", ".join(name for name in table.frame.columns if name in report)
    note = (f"{len(report)} report column(s) from an earlier run ({shown}) were dropped; "
            "results.csv adds its own")
    return Table(table.frame.select(kept), table.problems, [*table.notes, note], header)


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
