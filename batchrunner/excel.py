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


class XlsxSheet:
    """One sheet of text cells written a slice at a time (xlsxwriter's constant-memory mode), so
    a big run's workbook is written without its whole results frame. Excel's limit cuts the rest,
    with a note in the last row and a warning in run.log."""

    def __init__(self, path: Path, sheet: str, columns: list[str]) -> None:
        try:
            import xlsxwriter
        except ImportError:
            raise JobError("report_xlsx needs the xlsx extra: pip install 'batchrunner[xlsx]' (xlsxwriter)") from None
        options = {"constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False,
                   "strings_to_urls": False, "tmpdir": str(path.parent)}
        self.path, self.columns = path, columns
        self.workbook = xlsxwriter.Workbook(str(path), options)
        self.ws = self.workbook.add_worksheet(sheet)
        self.text = self.workbook.add_format({"num_format": "@"})  # cells typed into later stay text too
        self.bold = self.workbook.add_format({"bold": True, "num_format": "@"})
        self.ws.freeze_panes(1, 0)
        for c, name in enumerate(columns):
            self.ws.write_string(0, c, name, self.bold)
        self.rows = 0  # data rows given
        self.last: tuple | None = None  # the row that fits only if it is the very last one

    def _write(self, r: int, row: tuple) -> None:
        for c, value in enumerate(row):
            if value is not None and value != "":
                self.ws.write_string(r, c, value, self.text)

    def add(self, frame: pl.DataFrame) -> None:
        as_text = frame.select(pl.all().cast(pl.String))
        for start in range(0, as_text.height, _CHUNK):
            for row in as_text.slice(start, _CHUNK).iter_rows():
                self.rows += 1
                if self.rows < MAX_DATA_ROWS:
                    self._write(self.rows, row)
                elif self.rows == MAX_DATA_ROWS:
                    self.last = row

    def close(self) -> int:
        """Finish the sheet; return the data rows written."""
        try:
            keep = min(self.rows, MAX_DATA_ROWS - 1 if self.rows > MAX_DATA_ROWS else MAX_DATA_ROWS)
            if self.rows == MAX_DATA_ROWS and self.last is not None:
                self._write(MAX_DATA_ROWS, self.last)
            r = keep + 1
            if keep < self.rows:
                self.ws.write_string(r, 0, f"… {self.rows - keep} more rows: Excel holds {MAX_DATA_ROWS + 1} rows "
                                     "per sheet; the CSV has them all", self.bold)
                logging.getLogger("batchrunner.report").warning(
                    "%s: %d rows did not fit in Excel's sheet; the CSV has them all", self.path.name, self.rows - keep)
            self.ws.autofilter(0, 0, max(r - 1, 0), max(len(self.columns) - 1, 0))
        finally:
            self.workbook.close()
        return keep


def write_xlsx(path: Path, frame: pl.DataFrame, sheet: str) -> int:
    """Write ``frame`` as one sheet of text cells; return the rows written (Excel's limit cuts the
    rest, with a note in the last row and a warning in run.log)."""
    sheet_writer = XlsxSheet(path, sheet, frame.columns)
    try:
        sheet_writer.add(frame)
    finally:
        written = sheet_writer.close()
    return written
