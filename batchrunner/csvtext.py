"""CSV text: decoding, the dialect (delimiter, Excel's ``sep=`` line, CR-only line ends) and the two
readers, polars for a regular file and the stdlib ``csv`` module for an irregular one (see
source.py's docstring for what each handles and why)."""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

import polars as pl

from batchrunner.errors import JobError
from batchrunner.table import ROW_PROBLEM, STRIP, Table, drop_blank, named_width, note_repeats, unique_names


def _where(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    return f"byte offset {offset}, line {line}"


def decode(data: bytes, encoding: str) -> bytes:
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
        _check_utf8(data)
        return data
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise JobError(f"The input cannot be read as {encoding}: byte 0x{data[exc.start]:02x} at "
                       f"{_where(data, exc.start)}.") from None
    return text.lstrip("\ufeff").encode("utf-8")


def _check_utf8(data: bytes, block: int = 1 << 24) -> None:
    """A JobError naming the first byte that is not UTF-8. Checked 16 MiB at a time: decoding the
    whole file at once made a second copy of it (as text) just to throw it away."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for start in range(0, len(data), block):
        chunk = view[start:start + block]
        try:
            decoder.decode(chunk, final=start + block >= len(data))
        except UnicodeDecodeError as exc:
            carried = len(exc.object) - len(chunk)  # bytes of a character begun in the block before
            at = start - carried + exc.start
            raise JobError(
                f"The input is not valid UTF-8: byte 0x{data[at]:02x} at {_where(data, at)}. "
                "Set encoding = \"windows-1252\" (or the file's real encoding) in the job."
            ) from None


def sniff_delimiter(header: bytes) -> str:
    counts = {sep: header.count(sep.encode()) for sep in (",", ";", "\t")}
    return max(counts, key=lambda sep: counts[sep]) if any(counts.values()) else ","


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
        if not any(cell.strip(STRIP) for cell in record):
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


def csv_table(path: Path, data: bytes, delimiter: str | None, notes: list[str]) -> Table:
    """Read decoded (UTF-8) CSV bytes: polars when the file is regular, else the careful reader,
    so a ragged line is that row's problem and never shifts or drops another row."""
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
    width = named_width(header)
    names = unique_names(header[:width])
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
            frame = drop_blank(frame)
            if frame.width and frame[:, -1].null_count():
                frame = None  # gaps in the last column: empty values, or lines with fields missing?
    if frame is None:
        frame, problems = _read_with_csv_module(data, sep, width, names)
        if problems.null_count() == problems.len():
            problems = None
    if width < len(header):
        notes.append(f"{len(header) - width} unnamed empty column(s) at the right edge of the header were ignored")
    note_repeats(header[:width], notes)
    if problems is not None:
        notes.append(f"{problems.len() - problems.null_count()} line(s) have a different number of fields "
                     "than the header; they are reported invalid (MALFORMED_ROW)")
    return Table(frame, problems, notes, header[:width])
