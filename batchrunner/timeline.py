"""The run over time, from the journal's finish events (each carries an ``at`` timestamp).

SQLite does the per-second counting (json_extract over the events table), so a million-row run's
journal becomes a few thousand (second, rows, responses) triples without a Python object per row;
they are then grouped into at most ``MAX_BUCKETS`` intervals of a readable size.

What the journal does not hold is not invented: 429s and retries are run totals (summary.json),
and a response counted here is one that carried final outcomes (one journal finish event), so
Salesloft look-ups and 429/5xx responses that were retried are not among them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

MAX_BUCKETS = 120
_SIZES = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)

_PER_SECOND = """
SELECT substr(json_extract(data, '$.at'), 1, 19) AS second,
       sum(json_array_length(data, '$.idx')) AS rows,
       sum(CASE WHEN json_extract(data, '$.attempts[0]') > 0 THEN 1 ELSE 0 END) AS responses
FROM events WHERE kind = 'finish' GROUP BY second ORDER BY second
"""


@dataclass
class Timeline:
    """Rows finished and responses per interval of ``bucket_seconds``, from ``start`` (UTC)."""

    bucket_seconds: int = 60
    start: datetime | None = None
    labels: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    responses: list[int] = field(default_factory=list)
    peak_minute_responses: int = 0  # the most responses in one clock minute (Salesloft's budget window)

    @property
    def empty(self) -> bool:
        return not self.labels


def bucket_size(span_seconds: float) -> int:
    """The smallest readable interval that draws ``span_seconds`` in at most MAX_BUCKETS columns."""
    for size in _SIZES:
        if span_seconds / size <= MAX_BUCKETS:
            return size
    return int(span_seconds // MAX_BUCKETS) + 1


def _label(moment: datetime, size: int) -> str:
    return moment.strftime("%H:%M:%S" if size < 60 else "%m-%d %H:%M")


def read_timeline(journal_path: Path) -> Timeline:
    """The journal's finish events per interval; an empty Timeline when there is no journal."""
    if not Path(journal_path).is_file():
        return Timeline()
    db = sqlite3.connect(f"file:{journal_path}?mode=ro", uri=True)
    try:
        seconds = [(s, r or 0, q or 0) for s, r, q in db.execute(_PER_SECOND) if s]
    finally:
        db.close()
    if not seconds:
        return Timeline()
    parse = [datetime.fromisoformat(s).replace(tzinfo=UTC) for s, _, _ in seconds]
    start = parse[0]
    span = (parse[-1] - start).total_seconds() + 1
    size = bucket_size(span)
    count = int((span - 1) // size) + 1
    if size > 300:  # a run resumed hours later: the intervals with activity only, sized by them, not the gap
        size, count = bucket_size(len(seconds)), 0
    minutes: dict[str, int] = {}
    for second, _, responses in seconds:
        minutes[second[:16]] = minutes.get(second[:16], 0) + responses
    line = Timeline(size, start, peak_minute_responses=max(minutes.values()))
    if count:
        line.labels = [_label(start + timedelta(seconds=i * size), size) for i in range(count)]
        line.rows, line.responses = [0] * count, [0] * count
        for moment, (_, rows, responses) in zip(parse, seconds):
            i = int((moment - start).total_seconds() // size)
            line.rows[i] += rows
            line.responses[i] += responses
        return line
    slots: dict[datetime, list[int]] = {}
    for moment, (_, rows, responses) in zip(parse, seconds):
        key = start + timedelta(seconds=int((moment - start).total_seconds() // size) * size)
        slot = slots.setdefault(key, [0, 0])
        slot[0] += rows
        slot[1] += responses
    line.labels = [_label(k, size) for k in slots]
    line.rows = [v[0] for v in slots.values()]
    line.responses = [v[1] for v in slots.values()]
    return line
