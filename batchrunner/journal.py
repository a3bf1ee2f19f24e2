"""The run's journal: every row's state in SQLite, written as outcomes arrive.

It is the truth the reports are built from and that `resume` reads. A row goes pending ->
in_flight (before its request is sent) -> done (its outcome committed as soon as the response is
read, one transaction per response). WAL mode keeps those small commits cheap.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchrunner.outcome import RowOutcome, Status

PENDING, IN_FLIGHT, DONE = "pending", "in_flight", "done"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rows (
    idx INTEGER PRIMARY KEY,      -- 0-based input row
    operation TEXT,
    state TEXT NOT NULL,          -- pending | in_flight | done
    status TEXT,                  -- final status once done
    code TEXT,
    message TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT,                  -- JSON
    finished_at TEXT
);
-- no index on state: every outcome updates it twice, while only resume reads by state (one scan)
"""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- meta -------------------------------------------------------------------------------
    def set_meta(self, **values: Any) -> None:
        with self.db:
            self.db.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [(k, json.dumps(v)) for k, v in values.items()],
            )

    def meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    # -- rows -------------------------------------------------------------------------------
    def add_rows(self, rows: Iterable[tuple[int, str | None]]) -> None:
        """Register every input row as pending (idx, operation)."""
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO rows(idx, operation, state) VALUES (?, ?, 'pending')", rows)

    def start(self, indices: Sequence[int]) -> None:
        """Mark rows in flight: their request is about to be sent."""
        with self.db:
            self.db.executemany(
                "UPDATE rows SET state = 'in_flight', attempts = attempts + 1 WHERE idx = ?",
                [(i,) for i in indices],
            )

    def release(self, indices: Sequence[int]) -> None:
        """Rows whose request the platform refused to process (auth lost, budget stop): pending
        again, so `resume` sends them. Their attempt still counts: it was sent."""
        with self.db:
            self.db.executemany(
                "UPDATE rows SET state = 'pending' WHERE idx = ? AND state = 'in_flight'", [(i,) for i in indices]
            )

    def finish(self, outcomes: Sequence[RowOutcome]) -> None:
        """Commit final outcomes, one transaction for a whole response."""
        if not outcomes:
            return
        now = utc_now()
        with self.db:
            self.db.executemany(
                "UPDATE rows SET state = 'done', status = ?, code = ?, message = ?, result = ?, finished_at = ?,"
                " attempts = MAX(attempts, ?) WHERE idx = ?",
                [
                    (str(o.status), o.code, o.message, None if o.result is None else json.dumps(o.result, default=str),
                     now, o.attempts, o.row)
                    for o in outcomes
                ],
            )

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for state, status, n in self.db.execute("SELECT state, status, COUNT(*) FROM rows GROUP BY state, status"):
            key = status if state == DONE else Status.NOT_ATTEMPTED.value
            out[key] = out.get(key, 0) + n
        return out

    def indices(self, state: str) -> list[int]:
        return [i for (i,) in self.db.execute("SELECT idx FROM rows WHERE state = ? ORDER BY idx", (state,))]

    def all_rows(self) -> list[tuple]:
        return self.db.execute(
            "SELECT idx, operation, state, status, code, message, attempts, result, finished_at FROM rows ORDER BY idx"
        ).fetchall()
