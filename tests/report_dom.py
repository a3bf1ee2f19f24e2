"""Read report.html (as written, or as a browser's DOM dump) back into numbers a test can compare
with summary.json: text by element id, status and code counts, the bars each chart drew."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from test_messy_input import SF_JOB  # the Salesforce job template (name "messy")

REPO = Path(__file__).resolve().parents[1]


def demo_job(tmp_path: Path, extra: str = "", more_rows: str = "") -> Path:
    """The Salesforce demo CSV (20 succeeded, 2 failed, 3 invalid, 1 skipped) plus ``more_rows``, and a
    job for it in tmp_path running against the in-process sandbox."""
    csv = (REPO / "sample_data" / "salesforce_weekly_leads.csv").read_text(encoding="utf-8")
    (tmp_path / "input.csv").write_text(csv.rstrip("\n") + "\n" + textwrap.dedent(more_rows).lstrip(), encoding="utf-8")
    job = tmp_path / "rep.toml"
    job.write_text(SF_JOB.format(extra=extra, columns=""), encoding="utf-8")
    return job


@dataclass
class Dom(HTMLParser):
    by_id: dict[str, str] = field(default_factory=dict)
    status_counts: dict[str, int] = field(default_factory=dict)
    code_counts: dict[str, int] = field(default_factory=dict)
    bars: list[dict[str, str]] = field(default_factory=list)
    problem_rows: list[dict[str, str]] = field(default_factory=list)  # data-code and style of each row
    scripts_with_src: int = 0
    external: list[str] = field(default_factory=list)
    _open: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    _text: list[list[str]] = field(default_factory=list)
    _table: str | None = None
    _row: dict[str, str] | None = None

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        for key in ("src", "href"):
            if a.get(key, "").startswith(("http:", "https:", "//")):
                self.external.append(a[key])
        if tag == "script" and "src" in a:
            self.scripts_with_src += 1
        if tag == "table" and a.get("id"):
            self._table = a["id"]
        if tag == "tr" and self._table in ("by-status", "by-code", "problems"):
            self._row = a
            if self._table == "problems" and "data-code" in a:
                self.problem_rows.append({"code": a["data-code"], "style": a.get("style", "")})
        if tag == "rect" and "bar" in a.get("class", "").split():
            self.bars.append(a)
        if tag == "td" and "count" in a.get("class", "").split() and self._row is not None:
            self._open.append(("count", dict(self._row)))
            self._text.append([])
        elif a.get("id"):
            self._open.append((a["id"], a))
            self._text.append([])
        else:
            self._open.append(("", a))
            self._text.append([])
        if tag in ("meta", "br"):  # void elements without a closing tag (svg ones are closed explicitly)
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        if not self._open:
            return
        key, attrs = self._open.pop()
        text = "".join(self._text.pop())
        if self._text:
            self._text[-1].append(text)
        if key == "count":
            if "data-status" in attrs:
                self.status_counts[attrs["data-status"]] = int(text)
            elif "data-code" in attrs:
                self.code_counts[attrs["data-code"]] = int(text)
        elif key:
            self.by_id[key] = text.strip()

    def handle_data(self, data: str) -> None:
        if self._text:
            self._text[-1].append(data)


def parse(html: str) -> Dom:
    dom = Dom()
    dom.feed(html)
    dom.close()
    return dom
