"""A list as read, whatever its format: its columns (all text), per-row problems and notes, and
the header and blank-row rules every reader applies (csvtext.py for CSV, workbook.py for .xlsx and
Parquet), so a list reads the same saved either way."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

ROW_PROBLEM = "__row_problem"  # why a row cannot be used as read (a ragged line, a NUL byte), else null
#: what `trim` removes: ASCII whitespace, NBSP, zero-width space/joiners, BOM
STRIP = " \t\r\n\f\v\u00a0\u200b\u200c\u200d\u2060\ufeff"
_BLANK = f"^[{STRIP}]*$"  # a cell of nothing but what `trim` removes


@dataclass
class Table:
    """A list as read (CSV, workbook sheet or Parquet): its columns (all text), what is wrong with
    particular lines, and notes."""

    frame: pl.DataFrame
    problems: pl.Series | None = None  # one entry per row: a message, or null
    notes: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)  # the header as written (before de-duplication)
    #: column -> texts of numbers a spreadsheet or float column stored too long to be exact (workbook.py)
    rounded: dict[str, list[str]] = field(default_factory=dict)


def unique_names(names: list[str]) -> list[str]:
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


def named_width(header: list[str]) -> int:
    """How many columns count: trailing unnamed ones (Excel's ragged right edge) do not."""
    width = len(header)
    while width > 1 and not header[width - 1].strip():
        width -= 1
    return width


def note_repeats(header: list[str], notes: list[str]) -> None:
    dupes = sorted({name for name in header if header.count(name) > 1})
    if dupes:
        notes.append("the header repeats " + ", ".join(repr(d) for d in dupes)
                     + "; later copies are named NAME_duplicated_N in the reports")


def drop_blank(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows whose cells are all empty or whitespace (a blank line, a line of delimiters) are not rows."""
    if not frame.width:
        return frame

    def empty(name: str) -> pl.Expr:  # a pattern, not strip_chars: no trimmed copy of the column is made
        return pl.col(name).is_null() | pl.col(name).str.contains(_BLANK)

    if not frame.select(empty(frame.columns[0]).any()).item():
        return frame  # the usual file: every row has a first value, so no row is blank (one column scanned)
    return frame.filter(~pl.all_horizontal([empty(c) for c in frame.columns]))


def grid_table(header: list[str], body: pl.DataFrame, notes: list[str],
               rounded: dict[int, list[str]] | None = None) -> Table:
    """A workbook sheet or Parquet file as a Table: same header rules as a CSV's, all text.
    ``rounded``: column position -> texts of numbers too long to be exact."""
    body = body.rename(dict(zip(body.columns, [f"c{i}" for i in range(body.width)], strict=True)))
    width = named_width(header)
    extra = body.select(body.columns[width:])
    if extra.width and drop_blank(extra).height:
        width = len(header)  # data under an unnamed column: keep it, named
    header = [name if name.strip() else f"unnamed_{i + 1}" for i, name in enumerate(header[:width])]
    if width < len(body.columns):
        notes.append(f"{len(body.columns) - width} unnamed empty column(s) at the right edge were ignored")
    names = unique_names(header)
    frame = body.select(pl.col(f"c{i}").cast(pl.String).alias(name) for i, name in enumerate(names))
    note_repeats(header, notes)
    by_name = {names[i]: texts for i, texts in (rounded or {}).items() if i < len(names)}
    return Table(drop_blank(frame), None, notes, header, by_name)
