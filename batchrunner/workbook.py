"""Excel (.xlsx) and Parquet input, read as text like a CSV.

A spreadsheet stores an ID typed as 12345 as the number 12345.0 and a Parquet file may hold it as
an integer or a float; the operations want the text a person sees ("12345", never "12345.0"), and
a value kept as text ("0012") must keep its zeros. So every cell becomes a string here, whole
numbers without a decimal point, and nothing is inferred from the values. The xlsx reader is
``fastexcel`` (calamine, the engine polars documents for ``pl.read_excel``).
"""

from __future__ import annotations

import polars as pl

from batchrunner.errors import JobError, did_you_mean

#: a whole float below this is written as an integer; beyond it a spreadsheet has already rounded it
_EXACT = 10**15
#: column position -> the texts of its numbers too long to be exact (an 18-digit ID typed into Excel
#: keeps 15 significant digits): such a value in a mapped column is reported, not sent
Rounded = dict[int, list[str]]


def read_xlsx(data: bytes, sheet: str | None, notes: list[str]) -> tuple[list[str], pl.DataFrame, Rounded]:
    """The sheet's first row (the header) and the rows under it, every cell as text or null."""
    try:
        import fastexcel  # imported here: only workbook input needs it
    except ImportError:
        raise JobError("The input is an Excel workbook; reading it needs the fastexcel package "
                       "(a batchrunner dependency): pip install fastexcel, or save the sheet as CSV.") from None

    try:
        reader = fastexcel.read_excel(data)
    except Exception as exc:  # fastexcel raises its own error classes for a damaged workbook
        raise JobError(f"The input workbook cannot be read: {exc}") from None
    names = list(reader.sheet_names)
    if not names:
        raise JobError("The input workbook has no sheets.")
    if sheet is None:
        chosen = names[0]
        if len(names) > 1:
            notes.append(f"the workbook has {len(names)} sheets; read the first, {chosen!r} "
                         "(set sheet = \"NAME\" in the job to choose another)")
    elif sheet in names:
        chosen = sheet
    else:
        raise JobError(f"The workbook has no sheet named {sheet!r}.{did_you_mean(sheet, names)}")
    grid = reader.load_sheet(chosen, header_row=None, dtypes="string").to_polars()
    if grid.height == 0 or grid.width == 0:
        raise JobError(f"Sheet {chosen!r} of the input workbook is empty: it needs a header row and rows.")
    header = ["" if cell is None else str(cell) for cell in grid.row(0)]
    body = grid.slice(1)
    return header, body, _rounded_cells(reader, chosen, body)


def _rounded_cells(reader: object, chosen: str, body: pl.DataFrame) -> Rounded:
    """Numbers of 16 or more digits stored as numbers (not text). The text grid cannot tell a
    number from a text cell, so the sheet is loaded again with types, only when a cell has that
    many digits (the usual list never pays for it)."""
    suspect = [i for i, name in enumerate(body.columns) if body[name].str.contains(r"^\d{16,}$").any()]
    if not suspect:
        return {}
    typed = reader.load_sheet(chosen, header_row=None, skip_rows=1).to_polars()  # type: ignore[attr-defined]
    rounded: Rounded = {}
    for i in suspect:
        if i < typed.width and typed[:, i].dtype.is_float() and typed.height == body.height:
            big = typed[:, i].abs() >= _EXACT
            rounded[i] = body[:, i].filter(big.fill_null(False)).unique().to_list()
    return {i: texts for i, texts in rounded.items() if texts}


def read_parquet(data: bytes) -> tuple[list[str], pl.DataFrame, Rounded]:
    """The file's columns, every value as text (see the module docstring for numbers)."""
    import io

    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except Exception as exc:  # polars raises several error classes for a damaged file
        raise JobError(f"The input Parquet file cannot be read: {exc}") from None
    if frame.width == 0:
        raise JobError("The input Parquet file has no columns.")
    text = frame.select(_as_text(frame[name]) for name in frame.columns)
    rounded: Rounded = {}
    for i, name in enumerate(frame.columns):
        if frame[name].dtype.is_float():
            big = (frame[name].abs() >= _EXACT) & (frame[name] == frame[name].round(0))
            texts = text[name].filter(big.fill_null(False)).unique().to_list()
            if texts:
                rounded[i] = texts
    return frame.columns, text, rounded


def _as_text(column: pl.Series) -> pl.Series:
    dtype = column.dtype
    if dtype == pl.String:
        return column
    if dtype.is_float():
        whole = column.is_not_nan() & (column == column.round(0)) & (column.abs() < _EXACT)
        as_int = pl.select(pl.when(whole).then(column.cast(pl.Int64, strict=False).cast(pl.String))
                           .otherwise(column.cast(pl.String))).to_series()
        return as_int.alias(column.name)
    if dtype.is_nested() or dtype == pl.Object:
        raise JobError(f"Column {column.name!r} of the input Parquet file holds {dtype} values (lists or records), "
                       "not text or numbers; flatten it before using it as a list.")
    return column.cast(pl.String)
