"""report.html: one self-contained page per run that opens offline (no CDN, font or framework).

It is built from what the other reports are built from (the results frame, summary.json and the
journal), aggregated with polars, so a million-row run's page is a few hundred kilobytes: counts,
charts drawn as inline SVG (svgchart.py), the run over time (timeline.py) and the first
``MAX_PROBLEM_ROWS`` failed and invalid rows, filterable by error code with a few lines of script.
Every value that reaches the page passes through ``html.escape``: platform messages and input
cells are not trusted.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import polars as pl

from batchrunner import svgchart
from batchrunner.endscreen import EXIT_MEANINGS, STATUS_ORDER, next_steps
from batchrunner.runs import run_kind
from batchrunner.timeline import Timeline, read_timeline

MAX_PROBLEM_ROWS = 500
MAX_INPUT_COLUMNS = 4  # input columns shown next to each problem row (enough to recognise it)
MAX_CELL = 300  # characters of one cell shown in the problems table
STATUS_COLOURS = {"succeeded": "#59a14f", "skipped": "#76b7b2", "failed": "#e15759", "invalid": "#f28e2b",
                  "not_attempted": "#b07aa1"}
PROBLEM_STATUSES = ("failed", "invalid")

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:16px 24px;color:#222}
h1{font-size:22px;margin:8px 0}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.facts th{width:170px}.badge{display:inline-block;padding:1px 8px;border-radius:9px;color:#fff;font-weight:600}
.live{background:#c0392b}.sandbox{background:#2e7d32}.exit0{color:#2e7d32}.exit1,.exit2,.exit3{color:#c0392b}
code{background:#f4f4f4;padding:2px 6px;border-radius:4px;word-break:break-all}.note{color:#666}
svg.chart text{font:12px system-ui,sans-serif;fill:#333}.charts{display:flex;flex-wrap:wrap;gap:24px}
#problems td{max-width:420px;overflow-wrap:anywhere}
figure{margin:8px 0}figcaption{font-weight:600;margin-bottom:4px}
"""

FILTER_JS = """
(function () {
  var select = document.getElementById('code-filter');
  function apply() {
    var v = select.value, shown = 0;
    document.querySelectorAll('#problems tbody tr').forEach(function (r) {
      var on = !v || r.getAttribute('data-code') === v; r.style.display = on ? '' : 'none'; if (on) shown++;
    });
    document.getElementById('problems-shown').textContent = shown;
  }
  select.addEventListener('change', apply);
  var m = /[#&]code=([^&]*)/.exec(location.hash);  // report.html#code=INVALID_ID opens filtered
  if (m) { select.value = decodeURIComponent(m[1]); apply(); }
})();
"""

def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _cut(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _facts(summary: dict[str, Any], run_dir: Path) -> str:
    target = summary.get("target") or ""
    badge = f'<span class="badge {"live" if target == "live" else "sandbox"}">{_e(summary.get("mode") or target)}</span>'
    code = summary.get("exit_code")
    stop = summary.get("stopped") or {}
    rows = [
        ("Job", f'{_e(summary.get("job"))} <span class="note">({_e(summary.get("job_file"))})</span>'),
        ("Kind", _e(run_kind(summary))),
        ("Platform", _e(summary.get("platform"))),
        ("Target", f'{badge} {_e(summary.get("endpoint"))}'),
        ("Input file", _e(summary.get("input_file"))),
        ("Started", _e(summary.get("started_at"))),
        ("Finished", _e(summary.get("finished_at"))),
        ("Duration", f'{_e(summary.get("duration_seconds"))} s'),
        ("Exit code", f'<b class="exit{_e(code)}" id="exit-code">{_e(code)}</b> '
                      f'{_e(EXIT_MEANINGS.get(code, "")) if isinstance(code, int) else ""}'),
    ]
    if stop:
        rows.append(("Stopped early", f'{_e(stop.get("code"))}: {_e(stop.get("message"))}'))
    rows += [
        ("Requests sent", f'<span id="requests-sent">{_e(summary.get("requests_sent"))}</span>'),
        ("Retries · 429s", f'{_e(summary.get("retries"))} retries · {_e(summary.get("responses_429"))} responses 429 · '
                           f'{_e(summary.get("transport_errors"))} transport errors · waited '
                           f'{_e(summary.get("rate_limit_wait_seconds"))} s for the budget'),
        ("Run directory", _e(run_dir)),
    ]
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="facts">{body}</table>'


def _next(summary: dict[str, Any], run_dir: Path) -> str:
    steps = next_steps(summary, run_dir)
    if not steps:
        return "<p>Nothing to do: every row succeeded or was skipped.</p>"
    items = "".join(f"<li>{_e(s.why)}" + (f'<br><code class="next-command">{_e(s.command)}</code>' if s.command else "")
                    + "</li>" for s in steps)
    return f"<ol>{items}</ol>"


def _figure(caption: str, svg: str) -> str:
    return f"<figure><figcaption>{_e(caption)}</figcaption>{svg}</figure>"


def _outcomes(summary: dict[str, Any]) -> str:
    counts = summary.get("counts") or {}
    total = summary.get("rows") or sum(counts.values()) or 0
    order = sorted(counts, key=lambda s: (-counts[s], STATUS_ORDER.index(s) if s in STATUS_ORDER else 99))
    chart = svgchart.hbars([(s, counts[s], STATUS_COLOURS.get(s, "#888")) for s in order if counts[s]],
                           title="Rows by status")
    rows = "".join(f'<tr data-status="{_e(s)}"><td>{_e(s)}</td><td class="n count">{counts[s]}</td>'
                   f'<td class="n">{(100 * counts[s] / total if total else 0):.1f} %</td></tr>' for s in order)
    table = (f'<table id="by-status"><thead><tr><th>Status</th><th>Rows</th><th>Share</th></tr></thead>'
             f'<tbody>{rows}</tbody><tfoot><tr><th>total</th><td class="n" id="total-rows">{total}</td><td></td>'
             f'</tr></tfoot></table>')
    return f'<div class="charts">{_figure("Rows by status", chart)}<div>{table}</div></div>'


def _codes(summary: dict[str, Any]) -> str:
    codes = summary.get("error_codes") or {}
    if not codes:
        return "<p>No error codes.</p>"
    messages = summary.get("error_messages") or {}
    palette = svgchart.PALETTE
    chart = svgchart.hbars([(c, n, palette[i % len(palette)]) for i, (c, n) in enumerate(list(codes.items())[:25])],
                           title="Rows by error code")
    more = f'<p class="note">The chart shows the first 25 of {len(codes)} codes.</p>' if len(codes) > 25 else ""
    rows = "".join(f'<tr data-code="{_e(c)}"><td><code>{_e(c)}</code></td><td class="n count">{n}</td>'
                   f'<td>{_e(_cut(messages.get(c)))}</td></tr>' for c, n in codes.items())
    table = (f'<table id="by-code"><thead><tr><th>Error code</th><th>Rows</th><th>A message the platform or '
             f'validator gave</th></tr></thead><tbody>{rows}</tbody></table>')
    return f"{_figure('Rows by error code, largest first', chart)}{more}{table}"


def _over_time(summary: dict[str, Any], line: Timeline) -> str:
    parts: list[str] = []
    if line.empty:
        parts.append("<p>No outcomes in the journal over time.</p>")
    else:
        size = line.bucket_seconds
        every = f"{size} s" if size < 60 else f"{size // 60} min"
        parts.append(f'<p class="note">Per {every} (UTC), from the journal. Responses are those that carried '
                     'final outcomes; look-ups and responses that were retried are counted in the totals above.</p>')
        parts.append('<div class="charts">')
        parts.append(_figure(f"Rows finished per {every}", svgchart.columns(
            list(zip(line.labels, line.rows)), title=f"Rows finished per {every}", colour=svgchart.PALETTE[4])))
        budget = summary.get("budget_per_minute")
        reference = budget * size / 60 if budget else None
        parts.append(_figure(f"Responses per {every}", svgchart.columns(
            list(zip(line.labels, line.responses)), title=f"Responses per {every}", reference=reference,
            reference_label="budget")))
        parts.append("</div>")
        if budget:
            parts.append(f'<p id="budget">Budget: {budget:g} requests per minute (the dashed line, scaled to the '
                         f'interval); the busiest clock minute had {line.peak_minute_responses:,} responses with '
                         'outcomes (look-ups and retried responses also spend budget).</p>')
    usage = summary.get("api_usage")
    if usage and usage.get("limit"):
        used, limit = usage.get("used") or 0, usage["limit"]
        parts.append(_figure("Salesforce daily API usage", svgchart.hbars(
            [("daily API calls used", used, "#4e79a7"), ("daily allocation", limit, "#bab0ac")],
            title="Salesforce daily API usage")))
        parts.append(f'<p id="api-usage">Daily API usage after the run: {used:,} of {limit:,} '
                     f'({100 * used / limit:.1f} %), from the org\'s Sforce-Limit-Info header.</p>')
    return "".join(parts)


class Problems:
    """The failed and invalid rows the page shows (the first ``MAX_PROBLEM_ROWS``), their total
    and their codes; gathered a slice of results.csv at a time (`add`), so the page never needs
    the whole results frame."""

    def __init__(self) -> None:
        self.shown: pl.DataFrame | None = None
        self.total = 0
        self.codes: dict[str | None, int] = {}

    def add(self, results: pl.DataFrame) -> None:
        problems = results.filter(pl.col("_status").is_in(PROBLEM_STATUSES))
        if not problems.height:
            return
        self.total += problems.height
        for code, n in problems.group_by("_error_code").len().iter_rows():
            self.codes[code] = self.codes.get(code, 0) + n
        room = MAX_PROBLEM_ROWS - (self.shown.height if self.shown is not None else 0)
        if room > 0:
            inputs = [c for c in results.columns if not c.startswith("_")][:MAX_INPUT_COLUMNS]
            columns = ["_row", "_status", "_error_code", "_error_message", *inputs]
            head = problems.head(room).select(pl.col(c).cast(pl.String) for c in columns)
            self.shown = head if self.shown is None else pl.concat([self.shown, head])

    def html(self) -> str:
        if not self.total or self.shown is None:
            return "<p>No failed or invalid rows.</p>"
        codes = sorted(self.codes.items(), key=lambda item: (-item[1], item[0] is not None, item[0] or ""))
        options = "".join(f'<option value="{_e(c)}">{_e(c)} ({n})</option>' for c, n in codes)
        head = "".join(f"<th>{_e(c)}</th>" for c in self.shown.columns)
        body = "".join(f'<tr data-code="{_e(row[2])}">' + "".join(f"<td>{_e(_cut(v))}</td>" for v in row) + "</tr>"
                       for row in self.shown.iter_rows())
        total = self.total
        cut = (f'<p class="note" id="problems-cut">Showing the first {MAX_PROBLEM_ROWS} of {total} failed and '
               'invalid rows; errors.csv has them all.</p>' if total > MAX_PROBLEM_ROWS else "")
        return (f'<p><label>Error code <select id="code-filter"><option value="">all</option>{options}</select>'
                f'</label> <span id="problems-shown">{self.shown.height}</span> rows shown of <span '
                f'id="problems-total">{total}</span>.</p>{cut}<table id="problems"><thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table><script>{FILTER_JS}</script>")


def _problems(results: pl.DataFrame) -> str:
    problems = Problems()
    problems.add(results)
    return problems.html()


def render_html(run_dir: Path, results: pl.DataFrame | Problems, summary: dict[str, Any],
                line: Timeline | None = None) -> str:
    """The page for one run. ``results`` is the results.csv frame (or its failed and invalid rows
    gathered slice by slice, `Problems`), ``summary`` summary.json's content."""
    run_dir = Path(run_dir)
    line = read_timeline(run_dir / "journal.sqlite") if line is None else line
    title = f"batchrunner · {summary.get('job', '')} · {run_dir.name}"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "script-src 'unsafe-inline'; img-src data:\">"
            f"<style>{CSS}</style></head><body>"
            f"<h1>{_e(summary.get('job'))} <span class=\"note\">{_e(run_dir.name)}</span></h1>"
            f"{_facts(summary, run_dir)}"
            f"<h2>Next</h2>{_next(summary, run_dir)}"
            f"<h2>Outcomes by status</h2>{_outcomes(summary)}"
            f"<h2>Outcomes by error code</h2>{_codes(summary)}"
            f"<h2>The run over time</h2>{_over_time(summary, line)}"
            f"<h2>Failed and invalid rows</h2>{results.html() if isinstance(results, Problems) else _problems(results)}"
            f'<p class="note">batchrunner {_e(summary.get("batchrunner_version"))} · results.csv, errors.csv and '
            "summary.json are in the same directory.</p></body></html>\n")
