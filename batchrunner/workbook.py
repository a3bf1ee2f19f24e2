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


def read_xlsx(data: bytes, sheet: str | None, notes: list[str]) -> tuple[list[str], pl.DataFrame]:
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
    return header, grid.slice(1)


def read_parquet(data: bytes) -> tuple[list[str], pl.DataFrame]:
    """The file's columns, every value as text (see the module docstring for numbers)."""
    import io

    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except Exception as exc:  # polars raises several error classes for a damaged file
        raise JobError(f"The input Parquet file cannot be read: {exc}") from None
    if frame.width == 0:
        raise JobError("The input Parquet file has no columns.")
    return frame.columns, frame.select(_as_text(frame[name]) for name in frame.columns)


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
