"""Excel-friendly reports: report_bom puts a UTF-8 BOM on the CSVs (Excel then shows "Müller"),
report_xlsx writes workbooks whose every cell is text (0012 stays 0012, =1+1 is no formula). The
CSV contract is unchanged when neither is asked for."""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import anyio
import pytest

from batchrunner.errors import JobError
from batchrunner.job import load_job
from batchrunner.runner import prepare, run_prepared
from test_messy_input import SF_JOB

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
CSV = ("Lead Id,Zip,Note,Last Name\n"
       "00Q5e0000000001EAA,0012,=1+1,Müller\n"
       "00Q5e0000000002EAA,00501,+49 30 1234,O'Brien\n"
       ",0099,@SUM(A1),Zoë\n")


def _run(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "input.csv").write_text(CSV, encoding="utf-8")
    job = tmp_path / "job.toml"
    job.write_text(SF_JOB.format(extra=extra, columns=""), encoding="utf-8")
    result = anyio.run(lambda: run_prepared(prepare(load_job(job)), output_dir=tmp_path / "runs", progress=False))
    return result.run_dir


def _sheet(path: Path) -> list[dict[str, tuple[str | None, str]]]:
    """Each row's cells by column letter as (cell type, text); a formula shows as type 'formula'."""
    with zipfile.ZipFile(path) as z:
        root = ElementTree.fromstring(z.read("xl/worksheets/sheet1.xml"))
        shared = []
        if "xl/sharedStrings.xml" in z.namelist():
            shared = ["".join(t.text or "" for t in si.iter(f"{{{NS['m']}}}t"))
                      for si in ElementTree.fromstring(z.read("xl/sharedStrings.xml")).findall("m:si", NS)]
    rows = []
    for row in root.iter(f"{{{NS['m']}}}row"):
        cells = {}
        for c in row.findall("m:c", NS):
            kind = "formula" if c.find("m:f", NS) is not None else c.get("t")
            if kind == "s":
                text = shared[int(c.find("m:v", NS).text)]
            else:
                text = "".join(t.text or "" for t in c.iter(f"{{{NS['m']}}}t")) or (c.findtext("m:v", "", NS))
            cells[c.get("r").rstrip("0123456789")] = (kind, text)
        rows.append(cells)
    return rows


def test_default_csv_has_no_bom_and_no_workbook(tmp_path: Path) -> None:
    run_dir = _run(tmp_path)
    assert not (run_dir / "results.csv").read_bytes().startswith(codecs.BOM_UTF8)
    assert not list(run_dir.glob("*.xlsx"))


def test_report_bom_for_excel(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, "report_bom = true")
    for name in ("results.csv", "errors.csv"):
        data = (run_dir / name).read_bytes()
        assert data.startswith(codecs.BOM_UTF8) and not data[3:].startswith(codecs.BOM_UTF8)
    rows = list(csv.DictReader(io.StringIO((run_dir / "results.csv").read_text(encoding="utf-8-sig"))))
    assert [r["Last Name"] for r in rows] == ["Müller", "O'Brien", "Zoë"] and list(rows[0])[0] == "Lead Id"


def test_report_xlsx_text_cells(tmp_path: Path) -> None:
    run_dir = _run(tmp_path, "report_xlsx = true")
    results = _sheet(run_dir / "results.xlsx")
    header = [text for _, text in results[0].values()]
    assert header[:4] == ["Lead Id", "Zip", "Note", "Last Name"] and "_status" in header
    assert len(results) == 4  # header + one line per input row, like results.csv
    assert [r["B"] for r in results[1:]] == [("inlineStr", "0012"), ("inlineStr", "00501"), ("inlineStr", "0099")]
    kinds = {kind for row in results for kind, _ in row.values()}
    assert kinds <= {"inlineStr", "s", "str"}, kinds  # text only: no number, no formula
    assert results[1]["C"] == ("inlineStr", "=1+1") and results[3]["C"] == ("inlineStr", "@SUM(A1)")
    assert "A" not in results[3]  # an empty input cell stays empty
    errors = _sheet(run_dir / "errors.xlsx")
    assert len(errors) == 2 and errors[1]["B"] == ("inlineStr", "0099")  # the invalid row (no Lead Id)


def test_report_xlsx_must_be_true_or_false(tmp_path: Path) -> None:
    (tmp_path / "input.csv").write_text(CSV, encoding="utf-8")
    job = tmp_path / "job.toml"
    job.write_text(SF_JOB.format(extra='report_xlsx = "yes"', columns=""), encoding="utf-8")
    with pytest.raises(JobError, match="report_xlsx must be true or false"):
        load_job(job)
