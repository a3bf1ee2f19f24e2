"""results.xlsx / errors.xlsx: the CSV reports as workbooks Excel opens without mangling them.

Opening a CSV in Excel turns ``0012`` into 12, an 18-character ID into 1.2E+17 and ``=cmd|...`` into
a formula. Here every cell is written as a text cell (xlsxwriter ``write_string``, with the
workbook's number/formula/URL guessing off), so what the platform and the input said is what Excel
shows. xlsxwriter is an optional extra (``pip install 'batchrunner[xlsx]'``): most runs never need it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from batchrunner.errors import JobError

#: Excel's sheet size: 1,048,576 rows including the header
MAX_DATA_ROWS = 1_048_575
_CHUNK = 50_000


def write_xlsx(path: Path, frame: pl.DataFrame, sheet: str) -> int:
    """Write ``frame`` as one sheet of text cells; return the rows written (Excel's limit cuts the
    rest, with a note in the last row and a warning in run.log)."""
    try:
        import xlsxwriter
    except ImportError:
        raise JobError("report_xlsx needs the xlsx extra: pip install 'batchrunner[xlsx]' (xlsxwriter)") from None
    options = {"constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False,
               "strings_to_urls": False, "tmpdir": str(path.parent)}
    workbook = xlsxwriter.Workbook(str(path), options)
    try:
        ws = workbook.add_worksheet(sheet)
        text = workbook.add_format({"num_format": "@"})  # cells typed into later stay text too
        bold = workbook.add_format({"bold": True, "num_format": "@"})
        ws.freeze_panes(1, 0)
        for c, name in enumerate(frame.columns):
            ws.write_string(0, c, name, bold)
        keep = min(frame.height, MAX_DATA_ROWS - 1 if frame.height > MAX_DATA_ROWS else MAX_DATA_ROWS)
        as_text = frame.head(keep).select(pl.all().cast(pl.String))
        r = 1
        for start in range(0, keep, _CHUNK):
            for row in as_text.slice(start, _CHUNK).iter_rows():
                for c, value in enumerate(row):
                    if value is not None and value != "":
                        ws.write_string(r, c, value, text)
                r += 1
        if keep < frame.height:
            ws.write_string(r, 0, f"… {frame.height - keep} more rows: Excel holds {MAX_DATA_ROWS + 1} rows per "
                            "sheet; the CSV has them all", bold)
            logging.getLogger("batchrunner.report").warning(
                "%s: %d rows did not fit in Excel's sheet; the CSV has them all", path.name, frame.height - keep)
        ws.autofilter(0, 0, max(r - 1, 0), max(len(frame.columns) - 1, 0))
    finally:
        workbook.close()
    return keep
