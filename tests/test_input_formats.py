"""Issues 16.3 and 13.19: Excel (.xlsx), Parquet and gzip input, and files that are not what their
name says (an .xlsx or a gzip named .csv, another zip, UTF-16 without a BOM, an old .xls). Each is
read like a CSV (every value as text) or stopped with a message saying what the file is."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import signal
import sys
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import polars as pl
import pytest

from batchrunner.errors import JobError
from batchrunner.job import load_job
from batchrunner.runner import prepare, retry_rows
from batchrunner.validate import CODE, MESSAGE

from conftest import cli

JOB = """name = "formats"
platform = "salesloft"
operation = "add"
input = "{input}"
output_dir = "runs"
{extra}
[columns]
person_id = "Person"
cadence_id = "Cadence"
[connection]
sandbox = true
"""


def job_for(tmp_path: Path, name: str, data: bytes, extra: str = "") -> Path:
    (tmp_path / name).write_bytes(data)
    job = tmp_path / "job.toml"
    job.write_text(JOB.format(input=name, extra=extra), encoding="utf-8")
    return job


def run_dir_of(tmp_path: Path) -> Path:
    """The one run directory (not the job's .lock file beside it)."""
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")]
    return run_dir


def prepared_for(tmp_path: Path, name: str, data: bytes, extra: str = ""):
    return prepare(load_job(job_for(tmp_path, name, data, extra)))


# -- a minimal .xlsx, written by hand (no spreadsheet library needed to build test input) -------
def _cell(ref: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return f'<c r="{ref}"><v>{value}</v></c>'  # a number cell, as Excel stores a typed-in ID
    return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{escape(str(value))}</t></is></c>'


def _sheet_xml(rows: list[list[object]]) -> str:
    body = "".join(
        f'<row r="{r + 1}">' + "".join(_cell(f"{chr(65 + c)}{r + 1}", v) for c, v in enumerate(row)) + "</row>"
        for r, row in enumerate(rows))
    return ('<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
            f'spreadsheetml/2006/main"><sheetData>{body}</sheetData></worksheet>')


def xlsx(sheets: dict[str, list[list[object]]]) -> bytes:
    """Bytes of a workbook with these sheets (name -> rows; numbers become number cells)."""
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    ws_type = f"{rel}/worksheet"
    names = list(sheets)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("[Content_Types].xml", (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName='
            '"/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.'
            'main+xml"/>' + "".join(
                f'<Override PartName="/xl/worksheets/sheet{i + 1}.xml" ContentType="application/vnd.'
                'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>' for i in range(len(names)))
            + "</Types>"))
        z.writestr("_rels/.rels", (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
            f'package/2006/relationships"><Relationship Id="rId1" Type="{rel}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>'))
        z.writestr("xl/workbook.xml", (
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{main}" xmlns:r="{rel}"><sheets>'
            + "".join(f'<sheet name="{escape(n)}" sheetId="{i + 1}" r:id="rId{i + 1}"/>' for i, n in enumerate(names))
            + "</sheets></workbook>"))
        z.writestr("xl/_rels/workbook.xml.rels", (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/'
            'package/2006/relationships">' + "".join(
                f'<Relationship Id="rId{i + 1}" Type="{ws_type}" Target="worksheets/sheet{i + 1}.xml"/>'
                for i in range(len(names))) + "</Relationships>"))
        for i, name in enumerate(names):
            z.writestr(f"xl/worksheets/sheet{i + 1}.xml", _sheet_xml(sheets[name]))
    return buffer.getvalue()


PEOPLE = [["Person", "Cadence", "Zip", "Note"],
          [70001, 5001, "0012", "typed as a number"],
          [None, None, None, None],
          ["70002", 5001.0, "00345", 2.5]]


# -- xlsx ------------------------------------------------------------------------------------------
def test_xlsx_values_are_text_ids_stored_as_numbers_round_trip_and_zeros_stay(tmp_path):
    prepared = prepared_for(tmp_path, "list.xlsx", xlsx({"People": PEOPLE}))
    frame = prepared.loaded.frame
    assert frame.columns == ["Person", "Cadence", "Zip", "Note"] and frame.dtypes == [pl.String] * 4
    assert frame.rows() == [("70001", "5001", "0012", "typed as a number"), ("70002", "5001", "00345", "2.5")]
    assert prepared.validated[CODE].to_list() == [None, None]
    assert prepared.validated["person_id"].to_list() == [70001, 70002]


def test_xlsx_full_run_and_results_csv_keeps_the_text(tmp_path):
    job_for(tmp_path, "list.xlsx", xlsx({"People": PEOPLE}))
    out = cli("run", "job.toml", "--no-progress", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run_dir = run_dir_of(tmp_path)
    with open(run_dir / "results.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["Person"], r["Zip"], r["_status"]) for r in rows] == [("70001", "0012", "succeeded"),
                                                                      ("70002", "00345", "succeeded")]


def test_xlsx_empty_sheet_is_a_job_error(tmp_path):
    with pytest.raises(JobError, match="Sheet 'Blank' of the input workbook is empty"):
        prepared_for(tmp_path, "list.xlsx", xlsx({"Blank": []}))
    with pytest.raises(JobError, match="header but no data rows"):
        prepared_for(tmp_path, "list.xlsx", xlsx({"Header": [["Person", "Cadence"]]}))


def test_xlsx_two_sheets_the_first_by_default_or_the_named_one(tmp_path):
    book = xlsx({"Summary": [["Person", "Cadence"], [70001, 5001]], "Week 48": [["Person", "Cadence"], [70002, 5001]]})
    first = prepared_for(tmp_path, "list.xlsx", book)
    assert first.validated["person_id"].to_list() == [70001]
    assert any("2 sheets; read the first, 'Summary'" in n for n in first.loaded.notes)
    named = prepared_for(tmp_path, "list.xlsx", book, extra='sheet = "Week 48"')
    assert named.validated["person_id"].to_list() == [70002] and not named.loaded.notes
    with pytest.raises(JobError, match=r"no sheet named 'Week 84'.*Did you mean 'Week 48'"):
        prepared_for(tmp_path, "list.xlsx", book, extra='sheet = "Week 84"')


def test_the_sheet_key_is_typed_and_ignored_with_a_note_for_a_csv(tmp_path):
    with pytest.raises(JobError, match="sheet"):
        load_job(job_for(tmp_path, "list.csv", b"Person,Cadence\n70001,5001\n", extra="sheet = 2"))
    prepared = prepared_for(tmp_path, "list.csv", b"Person,Cadence\n70001,5001\n", extra='sheet = "Week 48"')
    assert any("sheet = 'Week 48' was ignored" in n for n in prepared.loaded.notes)


def test_retry_reads_the_jobs_sheet(tmp_path):
    book = xlsx({"Summary": [["Person", "Cadence"], [70001, 5001]],
                 "Week 48": [["Person", "Cadence"], [70002, 5001], [79999, 5001]]})
    job_for(tmp_path, "list.xlsx", book, extra='sheet = "Week 48"')
    assert cli("run", "job.toml", "--no-progress", cwd=tmp_path).returncode == 1
    retry_input = retry_rows(run_dir_of(tmp_path)).input_path
    assert retry_input.read_text(encoding="utf-8").splitlines() == ["Person,Cadence", "79999,5001"]


def test_resume_notices_a_changed_workbook_and_goes_on_with_the_rows_it_read(tmp_path):
    book = xlsx({"People": PEOPLE})
    job_for(tmp_path, "list.xlsx", book)
    crashed = cli("run", "job.toml", "--no-progress", cwd=tmp_path, env={"BATCHRUNNER_FAILPOINT": "run.before_send"})
    assert crashed.returncode == -signal.SIGKILL
    run_dir = run_dir_of(tmp_path)
    (tmp_path / "list.xlsx").write_bytes(xlsx({"People": PEOPLE[:2]}))  # the workbook changed since
    resumed = cli("resume", str(run_dir), "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr  # it goes on with the rows the run read (its snapshot)
    assert "changed or is gone since this run started" in resumed.stdout + resumed.stderr
    with (run_dir / "results.csv").open(encoding="utf-8") as f:
        assert len(f.read().splitlines()) == 3  # the header and both rows the run read (a blank one is not a row)


# -- parquet ---------------------------------------------------------------------------------------
def test_parquet_values_are_text_integers_and_whole_floats_without_a_decimal_point(tmp_path):
    frame = pl.DataFrame({"Person": pl.Series([70001, 70002], dtype=pl.Int64),
                          "Cadence": pl.Series([5001.0, 5001.0], dtype=pl.Float64),
                          "Zip": ["0012", None], "Score": [2.5, None]})
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    prepared = prepared_for(tmp_path, "list.parquet", buffer.getvalue())
    assert prepared.loaded.frame.rows() == [("70001", "5001", "0012", "2.5"), ("70002", "5001", None, None)]
    assert prepared.validated[CODE].to_list() == [None, None]


def test_parquet_with_a_nested_column_names_it(tmp_path):
    buffer = io.BytesIO()
    pl.DataFrame({"Person": ["70001"], "Cadence": ["5001"], "Tags": [["a", "b"]]}).write_parquet(buffer)
    with pytest.raises(JobError, match="Column 'Tags' of the input Parquet file holds"):
        prepared_for(tmp_path, "list.parquet", buffer.getvalue())


# -- files that are not what their name says ---------------------------------------------------------
def test_an_xlsx_named_csv_is_read_as_a_workbook(tmp_path):
    prepared = prepared_for(tmp_path, "list.csv", xlsx({"People": PEOPLE}))
    assert prepared.validated["person_id"].to_list() == [70001, 70002]
    assert any("is an Excel workbook (.xlsx) whatever its name" in n for n in prepared.loaded.notes)


@pytest.mark.parametrize("name", ["list.csv", "list.csv.gz"])
def test_a_gzip_compressed_csv_is_read(tmp_path, name):
    prepared = prepared_for(tmp_path, name, gzip.compress("Person;Cadence\r\n70001;5001\r\n".encode()))
    assert prepared.validated["person_id"].to_list() == [70001] and prepared.validated[CODE].to_list() == [None]
    assert any("gzip-compressed" in n for n in prepared.loaded.notes)


def test_a_cut_gzip_and_another_zip_are_explained(tmp_path):
    with pytest.raises(JobError, match="gzip-compressed but damaged or cut short"):
        prepared_for(tmp_path, "list.csv", gzip.compress(b"Person,Cadence\n" * 500)[:40])
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("export/list.csv", "Person,Cadence\n70001,5001\n")
    with pytest.raises(JobError, match=r"zip archive holding 1 file\(s\) \(export/list.csv\).*Unzip it") as info:
        prepared_for(tmp_path, "list.csv", archive.getvalue())
    assert "windows-1252" not in str(info.value)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom_is_recognised(tmp_path, codec):
    data = "Person\tCadence\tName\r\n70001\t5001\tJosé\r\n".encode(codec)
    assert not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    prepared = prepared_for(tmp_path, "list.csv", data)
    assert prepared.loaded.frame["Name"].to_list() == ["José"] and prepared.validated[CODE].to_list() == [None]
    assert any(f"{codec.upper()} text without a byte-order mark" in n for n in prepared.loaded.notes)


@pytest.mark.parametrize("data, fragment", [
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, "Excel 97-2003 workbook (.xls)"),
    (b"%PDF-1.7\n" + b"x" * 100, "PDF document"),
    (bytes(range(256)) * 4 + b"\x00" * 1024, "binary file"),
])
def test_other_binary_files_say_what_they_are(tmp_path, data, fragment):
    with pytest.raises(JobError, match="cannot be used") as info:
        prepared_for(tmp_path, "list.csv", data)
    assert fragment in str(info.value) and "windows-1252" not in str(info.value)


def test_an_xlsx_id_cell_keeps_its_invalid_verdict_for_a_fraction(tmp_path):
    prepared = prepared_for(tmp_path, "list.xlsx", xlsx({"People": [["Person", "Cadence"], [70001.5, 5001]]}))
    assert prepared.validated[CODE].to_list() == ["INVALID_ID"] and "70001.5" in prepared.validated[MESSAGE][0]


def test_without_fastexcel_a_workbook_is_a_job_error_saying_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "fastexcel", None)  # as if the package were not installed
    with pytest.raises(JobError, match="needs the fastexcel package"):
        prepared_for(tmp_path, "list.xlsx", xlsx({"People": PEOPLE}))


def test_utf16_without_a_bom_wins_over_a_wrong_or_unknown_encoding_setting(tmp_path):
    data = "Person,Cadence\r\n70001,5001\r\n".encode("utf-16-le")
    for setting in ('encoding = "windows-1252"', 'encoding = "klingon"'):
        prepared = prepared_for(tmp_path, "list.csv", data, extra=setting)
        assert prepared.validated["person_id"].to_list() == [70001]


def test_a_number_too_long_for_a_spreadsheet_in_a_mapped_column_is_invalid_not_sent(tmp_path):
    long_id = 1234567890123456789  # stored as a float in the workbook: only 15 significant digits survive
    book = xlsx({"People": [["Person", "Cadence", "Phone"], [long_id, 5001, None], [70001, 5001, 4155550100123456]]})
    prepared = prepared_for(tmp_path, "list.xlsx", book)
    assert prepared.validated[CODE].to_list() == ["MALFORMED_ROW", None]  # Phone is not mapped: no problem
    message = prepared.validated[MESSAGE][0]
    assert "more than 15 digits" in message and "Format the column as Text" in message
    text_id = xlsx({"People": [["Person", "Cadence"], ["1234567890123456789", 5001]]})  # typed as text: exact
    assert prepared_for(tmp_path, "list.xlsx", text_id).loaded.frame["Person"].to_list() == ["1234567890123456789"]
    buffer = io.BytesIO()
    pl.DataFrame({"Person": [1.5e18, 70001.0], "Cadence": [5001, 5001]}).write_parquet(buffer)
    from_parquet = prepared_for(tmp_path, "list.parquet", buffer.getvalue())
    assert from_parquet.validated[CODE].to_list() == ["MALFORMED_ROW", None]
