"""Issue 6: every way a file can be wrong ends in a clear job error (exit 2) or a per-row
`invalid` with an actionable message; never a traceback, never a row missing from the report."""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

import anyio
import pytest

from batchrunner.errors import JobError
from batchrunner.job import load_job
from batchrunner.platforms.salesforce.ids import checksum, to18
from batchrunner.runner import prepare, run_prepared
from batchrunner.source import _STRIP
from batchrunner.validate import CODE, MESSAGE

from conftest import cli

L1 = "00Q5e00000AbCdE"  # 15-character lead IDs (the sandbox seed does not need to hold them here)
L2 = "00Q5e00000AbCdF"
L3 = "00Q5e00000AbCdG"
USER = "0055e00000UuUuU"

SF_JOB = """name = "messy"
platform = "salesforce"
operation = "assign"
input = "input.csv"
output_dir = "runs"
{extra}
[columns]
targetId = "Lead Id"
salesCadenceNameOrId = {{ value = "Q4 Outbound" }}
{columns}
[connection]
sandbox = true
"""

SL_JOB = """name = "messy-sl"
platform = "salesloft"
operation = "add"
input = "input.csv"
output_dir = "runs"
[columns]
person_id = "Person"
cadence_id = "Cadence"
[connection]
sandbox = true
"""


def job_with(tmp_path: Path, data: bytes, extra: str = "", columns: str = "", template: str = SF_JOB) -> Path:
    (tmp_path / "input.csv").write_bytes(data)
    job = tmp_path / "job.toml"
    job.write_text(template.format(extra=extra, columns=columns), encoding="utf-8")
    return job


def rows_of(tmp_path: Path, data: bytes, **kw) -> list[dict]:
    prepared = prepare(load_job(job_with(tmp_path, data, **kw)))
    return prepared.validated.to_dicts()


def full_run(tmp_path: Path, data: bytes, **kw) -> tuple[list[dict], dict]:
    prepared = prepare(load_job(job_with(tmp_path, data, **kw)))
    result = anyio.run(lambda: run_prepared(prepared, output_dir=tmp_path / "runs", progress=False))
    with open(result.run_dir / "results.csv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle)), result.summary


# -- encodings -----------------------------------------------------------------------------------
def test_utf8_bom_does_not_reach_the_first_column_name(tmp_path):
    rows, _ = full_run(tmp_path, codecs.BOM_UTF8 + f"Lead Id,Name\n{L1},Zoë\n".encode())
    assert list(rows[0])[:2] == ["Lead Id", "Name"] and rows[0]["Name"] == "Zoë"
    assert rows[0]["_status"] in ("succeeded", "failed")  # sent: the column was found


def test_utf16_with_bom_excel_unicode_text(tmp_path):
    text = f"Lead Id\tName\r\n{L1}\tJosé\r\n{L2}\tMüller\r\n"
    rows = rows_of(tmp_path, codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    assert [r["targetId"] for r in rows] == [to18(L1), to18(L2)] and all(r[CODE] is None for r in rows)


def test_windows_1252_with_the_encoding_option(tmp_path):
    data = f"Lead Id,Name\n{L1},Andr\xe9 \x80\n".encode("latin-1")
    with pytest.raises(JobError, match=r"not valid UTF-8: byte 0xe9 at byte offset \d+, line 2.*windows-1252"):
        prepare(load_job(job_with(tmp_path, data)))
    prepared = prepare(load_job(job_with(tmp_path, data, extra='encoding = "windows-1252"')))
    assert prepared.loaded.frame["Name"].to_list() == ["André €"]


def test_undecodable_bytes_name_offset_and_line(tmp_path):
    data = f"Lead Id\n{L1}\n{L2}\n".encode() + b"\x81\x8d\n"
    with pytest.raises(JobError, match=r"cannot be read as cp1252|cannot be read as windows-1252") as info:
        prepare(load_job(job_with(tmp_path, data, extra='encoding = "windows-1252"')))
    assert "line 4" in str(info.value)


def test_unknown_encoding_is_a_job_error(tmp_path):
    with pytest.raises(JobError, match="Unknown encoding 'klingon'"):
        prepare(load_job(job_with(tmp_path, f"Lead Id\n{L1}\n".encode(), extra='encoding = "klingon"')))


# -- dialects --------------------------------------------------------------------------------------
@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_delimiters_are_sniffed(tmp_path, sep):
    data = f"Lead Id{sep}Company\n{L1}{sep}Acme, Inc.\n".replace("Acme, Inc.", '"Acme, Inc."' if sep == "," else "Acme, Inc.")
    prepared = prepare(load_job(job_with(tmp_path, data.encode())))
    assert prepared.loaded.frame["Company"].to_list() == ["Acme, Inc."]
    assert prepared.validated[CODE].to_list() == [None]


def test_delimiter_option_wins_over_sniffing(tmp_path):
    data = f"Lead Id|Note\n{L1}|a;b;c,d\n".encode()
    prepared = prepare(load_job(job_with(tmp_path, data, extra='delimiter = "|"')))
    assert prepared.loaded.frame["Note"].to_list() == ["a;b;c,d"]


def test_quotes_commas_newlines_inside_fields_crlf_and_no_final_newline(tmp_path):
    data = (f'Lead Id,Note\r\n{L1},"said ""hi"", then\r\nleft"\r\n{L2},plain').encode()
    rows, _ = full_run(tmp_path, data)
    assert [r["Note"] for r in rows] == ['said "hi", then\r\nleft', "plain"]
    assert [r["_row"] for r in rows] == ["1", "2"]


def test_blank_lines_are_not_rows_and_trailing_empty_columns_are_ignored(tmp_path):
    data = f"Lead Id,Name,,\n{L1},Ada,,\n\n{L2},Bob,,\n,,,\n\n".encode()
    prepared = prepare(load_job(job_with(tmp_path, data)))
    assert prepared.loaded.frame.columns == ["Lead Id", "Name"]
    assert prepared.loaded.frame["Name"].to_list() == ["Ada", "Bob"]
    assert prepared.validated[CODE].to_list() == [None, None]
    assert any("unnamed empty column" in n for n in prepared.loaded.notes)


# -- structure -------------------------------------------------------------------------------------
def test_empty_file_and_header_only_are_job_errors(tmp_path):
    with pytest.raises(JobError, match="is empty"):
        prepare(load_job(job_with(tmp_path, b"\n  \n")))
    with pytest.raises(JobError, match="header but no data rows"):
        prepare(load_job(job_with(tmp_path, b"Lead Id,Name\r\n")))


def test_duplicate_header_names(tmp_path):
    data = f"Lead Id,Name,Name\n{L1},Ada,Lovelace\n".encode()
    prepared = prepare(load_job(job_with(tmp_path, data)))
    assert prepared.loaded.frame.columns == ["Lead Id", "Name", "Name_duplicated_0"]
    assert any("repeats 'Name'" in n for n in prepared.loaded.notes)
    with pytest.raises(JobError, match="2 columns named 'Lead Id'"):
        prepare(load_job(job_with(tmp_path, f"Lead Id,Lead Id\n{L1},{L2}\n".encode())))


def test_header_case_and_spaces_match_loosely_and_say_so(tmp_path):
    prepared = prepare(load_job(job_with(tmp_path, f" lead id \n{L1}\n".encode())))
    assert prepared.validated[CODE].to_list() == [None]
    assert any("matched header ' lead id '" in n for n in prepared.loaded.notes)
    with pytest.raises(JobError, match="2 columns that match it"):
        prepare(load_job(job_with(tmp_path, f"lead id,LEAD ID\n{L1},{L2}\n".encode())))


def test_ragged_rows_are_invalid_and_the_rest_go_on(tmp_path):
    data = f"Lead Id,Name,Company\n{L1},Ada,Acme\n{L2},Bob\n{L3},Cy,Acme,extra\n{to18(L1)},Di,Acme,,\n".encode()
    rows, summary = full_run(tmp_path, data)
    assert [r["_row"] for r in rows] == ["1", "2", "3", "4"]
    assert [r["_status"] for r in rows][1:3] == ["invalid", "invalid"]
    assert rows[1]["_error_code"] == "MALFORMED_ROW" and "2 fields but the header has 3" in rows[1]["_error_message"]
    assert "4 fields but the header has 3" in rows[2]["_error_message"]
    assert rows[0]["_status"] != "invalid" and rows[3]["_status"] == "skipped"  # row 4 repeats row 1: sent once
    assert summary["counts"]["invalid"] == 2


def test_a_mapped_column_the_file_lacks_names_close_matches(tmp_path):
    with pytest.raises(JobError, match=r"lacks.*Lead ID#|lacks.*did you mean"):
        prepare(load_job(job_with(tmp_path, f"Lead ID#,Name\n{L1},Ada\n".encode())))


def test_job_errors_exit_2_without_a_traceback(tmp_path):
    job_with(tmp_path, b"Lead Id,Name\n")
    out = cli("run", "job.toml", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "no data rows" in out.stderr


# -- values ----------------------------------------------------------------------------------------
def test_salesforce_id_problems_are_per_row(tmp_path):
    bad_checksum = L1 + ("AAA" if checksum(L1) != "AAA" else "BBB")
    data = "\n".join(["Lead Id", "00Q5e00000AbC", bad_checksum, to18(USER), L1.lower().upper()[:3] + L1[3:], ""])
    rows = rows_of(tmp_path, data.encode())
    assert [r[CODE] for r in rows] == ["INVALID_ID", "INVALID_ID", "WRONG_OBJECT", None]
    assert "got 13 characters" in rows[0][MESSAGE] and "bad checksum" in rows[1][MESSAGE]
    assert "is a User ID" in rows[2][MESSAGE]
    assert rows[3]["targetId"] == to18(L1)  # 15-character, mixed case: normalised


def test_invisible_characters_and_spaces_never_reach_the_wire(tmp_path):
    data = f"Lead Id,Cadence\n\u00a0{L1} \u200b,Q4\u00a0Outbound\n{L2[:5]}\u200b{L2[5:]},  Q4 Outbound\t\n".encode()
    rows = rows_of(tmp_path, data, columns="", extra="")
    assert [r["targetId"] for r in rows] == [to18(L1), to18(L2)]
    prepared = prepare(load_job(job_with(tmp_path, data, columns="")))
    assert prepared.validated[CODE].to_list() == [None, None]


def test_cadence_name_with_a_non_breaking_space_inside_is_normalised(tmp_path):
    template = SF_JOB.replace('salesCadenceNameOrId = {{ value = "Q4 Outbound" }}', 'salesCadenceNameOrId = "Cadence"')
    data = f"Lead Id,Cadence\n{L1},Q4\u00a0Outbound\u200d\n".encode()
    rows = rows_of(tmp_path, data, template=template)
    assert rows[0]["salesCadenceNameOrId"] == "Q4 Outbound"


@pytest.mark.parametrize("value, fragment", [("1.23E+05", "spreadsheet"), ("123456.0", "spreadsheet"),
                                             ("-4", "positive whole number"), ("12 34", "positive whole number")])
def test_excel_mangled_salesloft_ids_are_refused_not_repaired(tmp_path, value, fragment):
    rows = rows_of(tmp_path, f"Person,Cadence\n{value},5001\n".encode(), template=SL_JOB)
    assert rows[0][CODE] == "INVALID_ID" and fragment in rows[0][MESSAGE]


def test_emails_are_lowercased_and_spaces_inside_are_invalid(tmp_path):
    template = SL_JOB.replace('person_id = "Person"', 'person_email = "Email"')
    rows = rows_of(tmp_path, "Email,Cadence\n ADA@Example.COM ,5001\nada @example.com,5001\n".encode(),
                   template=template)
    assert rows[0][CODE] is None and rows[0]["person_email"] == "ada@example.com"
    assert rows[1][CODE] == "INVALID_EMAIL" and "'ada @example.com'" in rows[1][MESSAGE]


def test_enumeration_spellings_and_date_times_without_a_zone(tmp_path):
    template = SF_JOB.replace('operation = "assign"', 'operation = "remove"').replace(
        'salesCadenceNameOrId = {{ value = "Q4 Outbound" }}',
        'completionDisposition = "Disposition"\ncompletionReasonCode = {{ value = "ManuallyRemoved" }}')
    rows = rows_of(tmp_path, f"Lead Id,Disposition\n{L1},customer engaged\n{L2},nope\n".encode(), template=template)
    assert rows[0][CODE] is None and rows[0]["completionDisposition"] == "Customer Engaged"
    assert rows[1][CODE] == "INVALID_VALUE"
    template = SF_JOB.replace('operation = "assign"', 'operation = "pause"').replace(
        'salesCadenceNameOrId = {{ value = "Q4 Outbound" }}', 'resumeTime = "When"')
    rows = rows_of(tmp_path, f"Lead Id,When\n{L1},2026-12-01T09:00:00\n{L2},2026-12-01T09:00:00+01:00\n".encode(),
                   template=template)
    assert rows[0][CODE] == "MISSING_TIME_ZONE" and "add Z or an offset" in rows[0][MESSAGE]
    assert rows[1][CODE] is None and rows[1]["resumeTime"] == "2026-12-01T08:00:00Z"


def test_a_100_kb_cell_and_a_nul_byte(tmp_path):
    huge = "x" * 100_000
    data = f"Lead Id,Note\n{huge},fine\n{L1},\"big {huge}\"\n{L2[:4]}\x00{L2[4:]},x\n".encode()
    rows, summary = full_run(tmp_path, data)
    assert len(rows) == 3 and len(rows[1]["Note"]) == 100_004  # unmapped: kept as it was
    assert rows[0]["_error_code"] == "INVALID_ID" and len(rows[0]["_error_message"]) < 300
    assert rows[1]["_status"] != "invalid"
    assert rows[2]["_error_code"] == "MALFORMED_ROW" and "NUL byte" in rows[2]["_error_message"]


# -- duplicates and conflicts --------------------------------------------------------------------
def test_same_operation_twice_is_skipped_and_conflicts_go_in_file_order(tmp_path):
    template = SF_JOB.replace('operation = "assign"', 'operation = "assign"\n').replace(
        "[columns]", '[columns]\noperation = "Action"')
    data = (f"Lead Id,Action\n{L1},assign\n{L1.lower()[:0] + L1},assign\n{L2},assign\n{L2},remove\n").encode()
    prepared = prepare(load_job(job_with(tmp_path, data, template=template,
                                         columns='completionReasonCode = { value = "ManuallyRemoved" }')))
    assert [d.row for d in prepared.plan.duplicates] == [1]
    assert [[u.rows for u in wave] for wave in prepared.plan.waves] == [[[0, 2]], [[3]]]


# -- validate's summary ------------------------------------------------------------------------------
def test_validate_prints_a_summary_per_problem_not_a_line_per_row(tmp_path):
    lines = ["Lead Id"] + [f"bad{i}" for i in range(500)] + [L1]
    job_with(tmp_path, "\n".join(lines).encode())
    out = cli("validate", "job.toml", cwd=tmp_path)
    assert out.returncode == 1
    assert "INVALID_ID ×500 (rows 1, 2, 3, 4, 5, …)" in out.stdout
    assert len(out.stdout.splitlines()) < 15


# -- the invariant, for arbitrary content ----------------------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CELL = st.one_of(
    st.sampled_from([L1, to18(L2), L3.lower(), "", " ", USER]),
    st.text(alphabet=st.sampled_from(list('ab1,;"\n\r\t \x00\u00a0\u200béZ')), max_size=12),
)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(CELL, min_size=0, max_size=5), max_size=8),
       crlf=st.booleans(), bom=st.booleans(), final_newline=st.booleans(), quote_all=st.booleans())
def test_any_content_never_raises_and_every_data_row_is_reported(tmp_path_factory, rows, crlf, bom, final_newline,
                                                                quote_all):
    tmp_path = tmp_path_factory.mktemp("prop")
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n" if crlf else "\n",
                        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    writer.writerow(["Lead Id", "Name", "Note"])
    writer.writerows(rows)
    text = buffer.getvalue()
    if not final_newline:
        text = text.rstrip("\r\n") if rows else text
    data = (codecs.BOM_UTF8 if bom else b"") + text.encode("utf-8")
    # the oracle: the stdlib reader's records after the header that hold more than whitespace
    records = list(csv.reader(io.StringIO(text, newline="")))[1:]
    expected = sum(1 for record in records if any(cell.strip(_STRIP) for cell in record))
    try:
        got, summary = full_run(tmp_path, data)
    except JobError as exc:
        assert expected == 0 and "no data rows" in str(exc), (str(exc), expected)
        return
    assert len(got) == expected
    assert [r["_row"] for r in got] == [str(i) for i in range(1, expected + 1)]
    assert all(r["_status"] in {"succeeded", "failed", "invalid", "skipped"} for r in got)
    assert sum(summary["counts"].values()) == expected


def test_retry_with_nothing_to_retry_is_a_clear_job_error(tmp_path):
    from batchrunner.runner import retry_rows

    rows, _ = full_run(tmp_path, "Person,Cadence\n70001,5001\n".encode(), template=SL_JOB)  # a seed person
    assert rows[0]["_status"] == "succeeded"
    with pytest.raises(JobError, match="Nothing to retry"):
        retry_rows(next((tmp_path / "runs").iterdir()))


# -- issue 13: files that still ended in tracebacks ----------------------------------------------
BIG = "x" * 140_000  # over the csv module's default 128 KiB field limit


@pytest.mark.parametrize("tail", ["{L2}\n", "{L2},\n"], ids=["ragged-line", "empty-last-cell"])
def test_a_cell_over_128_kib_with_a_ragged_line_or_an_empty_last_cell(tmp_path, tail):
    data = (f"Lead Id,Note\n{L1},\"{BIG}\"\n" + tail.format(L2=L2)).encode()
    rows, _ = full_run(tmp_path, data)
    assert len(rows) == 2 and rows[0]["Note"] == BIG and rows[0]["_status"] != "invalid"
    if tail.endswith(",\n"):
        assert rows[1]["_status"] != "invalid" and rows[1]["Note"] == ""
    else:
        assert rows[1]["_error_code"] == "MALFORMED_ROW"
        assert "1 fields but the header has 2" in rows[1]["_error_message"]


def test_a_header_line_over_64_kib_is_read_whole(tmp_path):
    names = [f"Column with a long descriptive name {i:05d}" for i in range(2000)] + ["Lead Id"]
    data = (",".join(names) + "\n" + ",".join(["v"] * 2000 + [L1]) + "\n").encode()
    assert len(data.split(b"\n")[0]) > 1 << 16
    prepared = prepare(load_job(job_with(tmp_path, data)))
    assert prepared.loaded.frame.width == 2001 and prepared.validated["targetId"].to_list() == [to18(L1)]


def test_old_mac_cr_only_line_endings(tmp_path):
    data = f"Lead Id,Note\r{L1},\"two\rlines\"\r{L2},b\r".encode()
    rows, _ = full_run(tmp_path, data)
    assert [r["Lead Id"] for r in rows] == [L1, L2] and rows[0]["Note"] == "two\nlines"
    prepared = prepare(load_job(job_with(tmp_path, data)))
    assert any("CR only" in n for n in prepared.loaded.notes)


def test_excel_sep_line_is_a_dialect_hint_not_the_header(tmp_path):
    data = f"sep=;\r\nLead Id;Company\r\n{L1};Acme, Inc.\r\n".encode()
    prepared = prepare(load_job(job_with(tmp_path, data)))
    assert prepared.loaded.frame.columns == ["Lead Id", "Company"]
    assert prepared.loaded.frame["Company"].to_list() == ["Acme, Inc."] and prepared.validated[CODE].to_list() == [None]
    assert any("sep=;" in n for n in prepared.loaded.notes)


def test_lines_of_only_whitespace_and_delimiters_are_blank_lines(tmp_path):
    data = f"Lead Id,Name\n{L1},Ada\n  ,  \n\t\n \u00a0\n{L2},Bob\n , \n".encode()
    rows, summary = full_run(tmp_path, data)
    assert [r["Lead Id"] for r in rows] == [L1, L2] and [r["_row"] for r in rows] == ["1", "2"]
    assert summary["counts"]["invalid"] == 0


# -- issue 14: an earlier run's report fed back as input -------------------------------------------
def _csv_rows(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


@pytest.mark.parametrize("report", ["errors.csv", "results.csv"])
def test_a_runs_own_report_fed_back_as_input(tmp_path, report):
    from batchrunner.report import RESULT_COLUMNS

    job_with(tmp_path, b"Person,Cadence\n70001,5001\n7000x,5001\n", template=SL_JOB)
    assert cli("run", "job.toml", "--no-progress", cwd=tmp_path).returncode == 1
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".")]
    header, rows = _csv_rows(run_dir / report)
    fixed = tmp_path / "fixed.csv"
    with open(fixed, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, header)
        writer.writeheader()
        writer.writerows({**r, "Person": "70002" if r["Person"] == "7000x" else r["Person"]} for r in rows)
    checked = cli("validate", "job.toml", "--input", str(fixed), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (checked.stdout + checked.stderr).count("report column(s) from an earlier run") == 1
    again = cli("run", "job.toml", "--input", str(fixed), "--no-progress", cwd=tmp_path)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
    (second,) = [p for p in (tmp_path / "runs").iterdir() if not p.name.startswith(".") and p != run_dir]
    header, results = _csv_rows(second / "results.csv")
    assert header == ["Person", "Cadence", *RESULT_COLUMNS]
    assert {r["Person"]: r["_status"] for r in results}["70002"] == "succeeded"
    assert [r["_row"] for r in results] == [str(i) for i in range(1, len(rows) + 1)]


def test_a_job_mapping_a_report_column_name_is_told_to_rename_it(tmp_path):
    template = SL_JOB.replace('person_id = "Person"', 'person_id = "_row"')
    with pytest.raises(JobError, match="maps column '_row', a name results.csv uses"):
        prepare(load_job(job_with(tmp_path, b"_row,Cadence\n70001,5001\n", template=template)))
    template = SL_JOB.replace('person_id = "Person"', 'person_id = "_person"')
    prepared = prepare(load_job(job_with(tmp_path, b"_person,Cadence,_note\n70001,5001,x\n", template=template)))
    assert prepared.loaded.frame.columns == ["_person", "Cadence"] and prepared.validated[CODE].to_list() == [None]
