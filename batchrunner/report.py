"""results.csv, errors.csv and summary.json, built from the journal (the run's truth).

Contract (docs/architecture.md, docs/reports.md): results.csv has exactly one line per input data row, in input order, the
input's columns unchanged followed by the `_` columns; errors.csv holds the failed, invalid and
not_attempted rows with the same columns (a valid input for the same job). Files are written to a
temporary name and renamed, so a crash never leaves a half-written report that looks complete.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable, Iterator
from typing import Any

import polars as pl

from batchrunner import chunks, failpoints
from batchrunner.journal import DONE
from batchrunner.outcome import RERUNNABLE, Status

DRY_RUN = "DRY_RUN"  # the code of a dry run's valid rows (and its stop): nothing was sent

RESULT_COLUMNS = ("_row", "_operation", "_status", "_error_code", "_error_message", "_attempts", "_result",
                  "_finished_at")


#: the tool's own text columns: platform messages and results that a spreadsheet must not run
TOOL_TEXT_COLUMNS = ("_error_code", "_error_message", "_result", "_handoff_error")
#: a cell starting with one of these is a formula in Excel, LibreOffice and Google Sheets
FORMULA_START = r"^[=+\-@\t\r]"


def spreadsheet_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with the tool's own text cells that start like a formula prefixed with ``'``
    (OWASP "CSV Injection"): a platform message such as ``=HYPERLINK(...)`` is shown, not run, when
    results.csv is opened in a spreadsheet. Input columns are left byte-identical, so errors.csv
    stays a valid input for the same job; only the CSV files get this, not the journal."""
    text = {c: pl.col(c).cast(pl.String) for c in TOOL_TEXT_COLUMNS if c in frame.columns}
    # only the columns that hold such a cell are rebuilt: a million-row report is not copied for nothing
    found = frame.select(t.str.contains(FORMULA_START).any().alias(c) for c, t in text.items()).row(0, named=True)
    return frame.with_columns(pl.when(t.str.contains(FORMULA_START)).then(pl.lit("'") + t).otherwise(t).alias(c)
                              for c, t in text.items() if found[c])


def _temporary(path: Path) -> Path:
    """The temporary name ``path`` is written under (same directory, so the rename is atomic), 0600."""
    tmp = path.with_name(f".{path.name}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))  # 0600: reports hold people's data
    return tmp


def _commit(tmp: Path, path: Path) -> None:
    os.chmod(tmp, 0o600)
    failpoints.hit("report.writing")
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename over ``path`` (same directory, so the rename is atomic)."""
    tmp = _temporary(path)
    write(tmp)
    _commit(tmp, path)


@dataclass(frozen=True)
class ReportOptions:
    """Optional report formats (job keys ``report_bom`` and ``report_xlsx``); the CSV contract is
    unchanged by default."""

    bom: bool = False  # results.csv and errors.csv start with a UTF-8 BOM (Excel then reads UTF-8)
    xlsx: bool = False  # results.xlsx and errors.xlsx as well, every cell text (excel.py)


def results_frame(frame: pl.DataFrame, rows: pl.DataFrame, operations: pl.Series,
                  stop: tuple[str, str] | None, run_dir: Path | None = None) -> pl.DataFrame:
    """The input's columns followed by the `_` columns; ``rows`` is `Journal.frame()`."""
    dry = stop is not None and stop[0] == DRY_RUN
    if dry:
        why = "dry run: this row is valid and would be sent; nothing was sent"
    elif stop is not None:
        why = f"the run stopped before this row ({stop[0]}: {stop[1]})"
    else:
        why = "the run stopped before this row"
    if run_dir is not None and not dry:
        why += f"; continue with: batchrunner resume {run_dir}"
    assert rows.height == frame.height == operations.len(), "the journal must hold every input row"
    not_done = pl.col("state") != DONE
    outcomes = rows.select(
        (pl.col("idx") + 1).alias("_row"),
        operations.alias("_operation"),
        pl.when(not_done).then(pl.lit(Status.NOT_ATTEMPTED.value)).otherwise(pl.col("status")).alias("_status"),
        pl.when(not_done).then(pl.lit(DRY_RUN if dry else "NOT_ATTEMPTED")).otherwise(pl.col("code"))
        .alias("_error_code"),
        pl.when(not_done).then(pl.lit(why)).otherwise(pl.col("message")).alias("_error_message"),
        pl.col("attempts").alias("_attempts"),
        pl.col("result").alias("_result"),
        pl.col("finished_at").alias("_finished_at"),
    )
    # an earlier run's errors.csv as the input (fixed and run again) carries that run's `_` columns: replaced
    return pl.concat([frame.drop([c for c in RESULT_COLUMNS if c in frame.columns]), outcomes], how="horizontal")


def _slices(rows: pl.DataFrame | Iterable[pl.DataFrame], chunk_rows: int) -> Iterator[pl.DataFrame]:
    if isinstance(rows, pl.DataFrame):
        for start in range(0, max(rows.height, 1), chunk_rows):
            yield rows.slice(start, chunk_rows)
    else:
        yield from rows


def write_reports(run_dir: Path, frame: pl.DataFrame, rows: pl.DataFrame | Iterable[pl.DataFrame],
                  operations: pl.Series, summary: dict[str, Any], stop: tuple[str, str] | None = None, *,
                  resumable: bool = True, options: ReportOptions | None = None,
                  chunk_rows: int | None = None, extra: pl.DataFrame | None = None) -> dict[str, Any]:
    """Write the reports; return the summary with counts filled in. ``rows`` is
    `Journal.frame()`, or its slices in row order (`Journal.frame_chunks`), ``operations`` each
    row's operation (as validated). A dry run's valid rows are not in errors.csv: nothing is wrong
    with them. The files are written a slice at a time (``chunk_rows`` rows): what is held is one
    slice of report lines, not the whole run's (``chunk_rows``: `chunks.ROWS`)."""
    from batchrunner.htmlreport import Problems

    chunk_rows = chunks.rows(chunk_rows)
    options = options or ReportOptions()
    counts = {s.value: 0 for s in Status}
    by_code: dict[str, list[Any]] = {}  # code -> [rows, first message]
    problems = Problems()
    rerunnable = pl.col("_status").is_in([s.value for s in RERUNNABLE]) & (pl.col("_error_code") != DRY_RUN)
    paths = {name: run_dir / name for name in ("results.csv", "errors.csv")}
    tmps = {name: _temporary(path) for name, path in paths.items()}
    sheets: dict[str, Any] = {}
    total = 0
    try:
        with tmps["results.csv"].open("wb") as results_out, tmps["errors.csv"].open("wb") as errors_out:
            for part in _slices(rows, chunk_rows):
                first = total == 0
                results = results_frame(frame.slice(total, part.height), part, operations.slice(total, part.height),
                                        stop, run_dir if stop and resumable else None)
                if extra is not None:
                    results = pl.concat([results, extra.slice(total, part.height)], how="horizontal")
                total += part.height
                safe = spreadsheet_safe(results)  # the tool's own cells never open as formulas (docs/reports.md)
                safe.write_csv(results_out, include_header=first, include_bom=options.bom and first)
                safe.filter(rerunnable).write_csv(errors_out, include_header=first, include_bom=options.bom and first)
                for status, n in results.group_by("_status").len().iter_rows():
                    counts[status] += n
                coded = (results.filter(pl.col("_error_code").is_not_null()).group_by("_error_code", maintain_order=True)
                         .agg(pl.len(), pl.col("_error_message").drop_nulls().first()))
                for code, n, message in coded.iter_rows():
                    seen = by_code.setdefault(code, [0, None])
                    seen[0] += n
                    seen[1] = seen[1] if seen[1] is not None else message
                problems.add(results)
                if options.xlsx:
                    _add_to_workbooks(sheets, run_dir, results, rerunnable)
        assert total == frame.height == operations.len(), "the journal must hold every input row"
        for name, path in paths.items():
            _commit(tmps[name], path)
    except BaseException:
        for sheet, tmp in sheets.values():
            sheet.close()
            tmp.unlink(missing_ok=True)
        raise
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
    for sheet, _ in sheets.values():
        sheet.close()
    ordered = sorted(by_code.items(), key=lambda item: (-item[1][0], item[0]))
    codes = {code: n for code, (n, _) in ordered}
    messages = {code: m for code, (_, m) in ordered if m is not None}
    summary = {**summary, "rows": total, "counts": counts, "error_codes": codes, "error_messages": messages}
    text = json.dumps(summary, indent=2, default=str) + "\n"
    atomic_write(run_dir / "summary.json", lambda p: p.write_text(text, encoding="utf-8"))
    for name, (_, tmp) in sheets.items():
        _commit(tmp, run_dir / name)
    write_html_report(run_dir, problems, summary)
    return summary


def _add_to_workbooks(sheets: dict[str, Any], run_dir: Path, results: pl.DataFrame, rerunnable: pl.Expr) -> None:
    """results.xlsx and errors.xlsx, a slice at a time (text cells never evaluate: no escaping)."""
    from batchrunner.excel import XlsxSheet

    for name, part in (("results.xlsx", results), ("errors.xlsx", results.filter(rerunnable))):
        if name not in sheets:
            tmp = _temporary(run_dir / name)
            sheets[name] = (XlsxSheet(tmp, name.split(".")[0], results.columns), tmp)
        sheets[name][0].add(part)


def write_html_report(run_dir: Path, results: Any, summary: dict[str, Any]) -> None:
    """report.html, last: the CSVs and summary.json are the contract, so a failure here is logged
    (run.log) and does not fail the run."""
    from batchrunner.htmlreport import render_html

    log = logging.getLogger("batchrunner.report")
    started = time.monotonic()
    try:
        page = render_html(run_dir, results, summary)
        atomic_write(run_dir / "report.html", lambda p: p.write_text(page, encoding="utf-8"))
    except Exception:  # noqa: BLE001 - the page is a view; the reports it shows are already written
        log.exception("report.html could not be written")
        return
    log.info("report.html written in %.2f s", time.monotonic() - started)


def exit_code_for(counts: dict[str, int], stopped: bool) -> int:
    """0 all succeeded/skipped; 1 some failed or invalid; 3 stopped early and resumable. (4, a run
    that could not go on after sending, is decided where that is known: `runner`.)"""
    if stopped or counts.get(Status.NOT_ATTEMPTED.value, 0):
        return 3
    if counts.get(Status.FAILED.value, 0) or counts.get(Status.INVALID.value, 0):
        return 1
    return 0
