"""What an input file really is, from its first bytes rather than its name.

A list saved from Excel is often an .xlsx renamed .csv, a download may be gzip-compressed, and
Windows "Unicode" exports can be UTF-16 without a byte-order mark. Decoding any of them as text
ends in "not valid UTF-8: set encoding = windows-1252", which sends the user the wrong way; this
module names the format first so the reader can read it or say what to do.
"""

from __future__ import annotations

import io
import zipfile

CSV = "csv"
XLSX = "xlsx"
PARQUET = "parquet"
GZIP = "gzip"
UTF16_LE = "utf-16-le"
UTF16_BE = "utf-16-be"

_SAMPLE = 4096


def sniff_kind(data: bytes) -> str:
    """One of the kinds above for a file we can read; raise ``ValueError`` with a sentence saying
    what the file is and what to do for one we cannot (another zip archive, an old .xls, a PDF)."""
    if data.startswith(b"\x1f\x8b"):
        return GZIP
    if data.startswith(b"PAR1"):
        return PARQUET
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        return _zip_kind(data)
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        raise ValueError("it is an Excel 97-2003 workbook (.xls) or another old Office file, whatever its name. "
                         "Open it in Excel and save it as .xlsx or CSV (UTF-8).")
    if data.startswith(b"%PDF"):
        raise ValueError("it is a PDF document, not a list. Export the list as CSV or .xlsx.")
    return _text_kind(data[:_SAMPLE])


def _zip_kind(data: bytes) -> str:
    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except zipfile.BadZipFile:
        raise ValueError("it starts like a zip archive (an .xlsx workbook is one) but is damaged or cut short; "
                         "download or export it again.") from None
    if "xl/workbook.xml" in names:
        return XLSX
    if "content.xml" in names and "mimetype" in names:
        raise ValueError("it is an OpenDocument file (LibreOffice .ods), whatever its name. Save it as .xlsx "
                         "or CSV (UTF-8).")
    shown = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
    raise ValueError(f"it is a zip archive holding {len(names)} file(s) ({shown or 'none'}), not a list. Unzip it "
                     "and set input to the CSV or .xlsx inside.")


def _text_kind(sample: bytes) -> str:
    """UTF-16 without a BOM shows as NUL bytes in every other position (ASCII text is one byte
    and a NUL); a file full of NULs in no such pattern is binary, not a list."""
    sample = sample[: len(sample) - len(sample) % 2]
    if len(sample) < 4 or b"\x00" not in sample:
        return CSV
    half = len(sample) // 2
    even_nul = sample[0::2].count(0) / half
    odd_nul = sample[1::2].count(0) / half
    if odd_nul > 0.6 and even_nul < 0.05:
        return UTF16_LE
    if even_nul > 0.6 and odd_nul < 0.05:
        return UTF16_BE
    if len(sample) >= 256 and (even_nul + odd_nul) / 2 > 0.3:  # a few NULs in a cell are that row's problem
        raise ValueError("it holds many NUL bytes in no text encoding's pattern: a binary file (a database, an "
                         "image, a program?), not a list. Export the list as CSV or .xlsx.")
    return CSV
