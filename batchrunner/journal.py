"""The run's journal: an append-only log in SQLite of what happened to the rows, written as it happens.

It is the truth the reports are built from and that `resume` reads. Three kinds of event, each
committed on its own before the run goes on:

- ``start``: these rows' request is about to be sent (a row whose last start has no outcome
  after it is *in flight*: its request may or may not have been applied);
- ``release``: the platform refused to process them (auth lost, budget stop): pending again;
- ``finish``: final outcomes, one event per response, stored column-wise.

One small insert per request instead of one update per row is what keeps a million-row run's
bookkeeping at a few seconds: a row's state is derived (in bulk, with polars) when it is read,
which happens once at the end of a run and once at `resume`. WAL mode keeps the commits cheap;
``synchronous=NORMAL`` survives a killed process (not a power cut mid-commit).
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from batchrunner.outcome import RowOutcome, Status
from batchrunner import chunks, jsonio, secrets

PENDING, IN_FLIGHT, DONE = "pending", "in_flight", "done"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,       -- order of events
    kind TEXT NOT NULL,           -- start | release | finish
    data TEXT NOT NULL            -- JSON: a list of row indices, or outcome columns (finish)
);
"""

#: the columns of `Journal.frame()`, in order
ROW_SCHEMA: dict[str, Any] = {
    "idx": pl.Int64, "state": pl.String, "status": pl.String, "code": pl.String, "message": pl.String,
    "attempts": pl.Int64, "result": pl.String, "finished_at": pl.String,
}


_INDICES = {"idx": pl.List(pl.Int64), "event": pl.Int64}
_STATE = pl.Enum([PENDING, IN_FLIGHT, DONE])
_STATES = {"idx": pl.List(pl.Int64), "status": pl.List(pl.Categorical), "code": pl.List(pl.Categorical),
           "attempts": pl.List(pl.Int64), "event": pl.Int64}
_TEXTS = {"message": pl.List(pl.String), "result": pl.List(pl.String), "at": pl.String, "event": pl.Int64,
          "idx": pl.List(pl.Int64)}
_TEXT_LISTS = ["idx", "message", "result"]
#: the most outcomes one finish event holds: a slice of the reports reads only the events its rows
#: are in, so a file of a million invalid rows is journaled as many events, not one huge one
EVENT_ROWS = 10_000


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JournalLost(Exception):
    """The journal can no longer record outcomes (its file was deleted or replaced, the disk is
    full, SQLite failed): the run must stop before another request goes out, or it would send
    rows whose outcomes nobody can ever read."""


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():  # 0600 whatever the umask: it holds platform answers about people
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._inode = os.stat(path).st_ino

    def check(self) -> None:
        """Raise `JournalLost` when the file this journal writes is no longer the run's journal.
        SQLite goes on writing to a deleted file without a word (the open inode lives on), so a
        run whose directory was removed would send every row into a journal no one can read."""
        try:
            same = os.stat(self.path).st_ino == self._inode
        except OSError:
            same = False
        if not same:
            raise JournalLost(f"the run's journal {self.path} was deleted or replaced while the run was going on")

    def rescue(self, path: Path) -> None:
        """Copy the journal as it is (every committed event) to ``path``: after `JournalLost`, the
        outcomes known so far survive in a new file that `resume` can read."""
        path.parent.mkdir(parents=True, exist_ok=True)
        target = sqlite3.connect(path)
        try:
            self.db.backup(target)
        finally:
            target.close()
        path.chmod(0o600)

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

    # -- writing ----------------------------------------------------------------------------
    def add_rows(self, count: int) -> None:
        """Register the input's rows (0 .. count-1); every one starts pending."""
        self.set_meta(rows=int(count))

    def _event(self, kind: str, data: Any) -> None:
        self.check()
        try:
            self._insert(kind, data)
        except sqlite3.Error as exc:
            raise JournalLost(f"the run's journal {self.path} cannot be written: {exc}") from exc

    def _insert(self, kind: str, data: Any) -> None:
        """Append one event. Its text passes through secret redaction here, the one door every
        stored outcome goes through: a platform that echoes the token in an error message or a
        result never gets it into the journal, nor into the reports built from it."""
        text = jsonio.dumps_text(data)
        if secrets.contains_secret(text):  # one scan of the event; value by value only when needed
            text = jsonio.dumps_text(secrets.redact_value(data))
        self.db.execute("INSERT INTO events(kind, data) VALUES (?, ?)", (kind, text))

    def start(self, indices: Sequence[int]) -> None:
        """Mark rows in flight: their request is about to be sent."""
        self._event("start", [int(i) for i in indices])

    def release(self, indices: Sequence[int]) -> None:
        """Rows whose request the platform refused to process (auth lost, budget stop): pending
        again, so `resume` sends them. Their attempt still counts: it was sent."""
        if indices:
            self._event("release", [int(i) for i in indices])

    def finish(self, outcomes: Sequence[RowOutcome]) -> None:
        """Commit final outcomes: one event for a whole response."""
        if not outcomes:
            return
        self.finish_columns(
            [o.row for o in outcomes], [str(o.status) for o in outcomes], [o.code for o in outcomes],
            [o.message for o in outcomes], [o.attempts for o in outcomes],
            [None if o.result is None else jsonio.dumps_text(o.result) for o in outcomes],
        )

    def finish_columns(self, idx: Sequence[int], status: Sequence[str], code: Sequence[str | None],
                       message: Sequence[str | None], attempts: Sequence[int] | None = None,
                       result: Sequence[str | None] | None = None) -> None:
        """`finish` for outcomes already held column-wise (invalid rows from the validator):
        no per-row objects for a file with a million bad rows. ``result`` holds JSON text."""
        if not idx:
            return
        n = len(idx)
        at = utc_now()
        events = [{
            "idx": list(idx[s:s + EVENT_ROWS]), "status": list(status[s:s + EVENT_ROWS]),
            "code": list(code[s:s + EVENT_ROWS]), "message": list(message[s:s + EVENT_ROWS]),
            "attempts": list(attempts[s:s + EVENT_ROWS]) if attempts is not None else [0] * min(EVENT_ROWS, n - s),
            "result": list(result[s:s + EVENT_ROWS]) if result is not None else [None] * min(EVENT_ROWS, n - s),
            "at": at} for s in range(0, n, EVENT_ROWS)]
        if len(events) == 1:
            self._event("finish", events[0])
            return
        self.check()
        try:  # one transaction: the outcomes of one call are all recorded or none is
            self.db.execute("BEGIN")
            for event in events:
                self._insert("finish", event)
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self.db.in_transaction:
                self.db.rollback()
            raise JournalLost(f"the run's journal {self.path} cannot be written: {exc}") from exc

    # -- reading ----------------------------------------------------------------------------
    def row_count(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'rows'").fetchone()
        return int(json.loads(row[0])) if row else 0

    def _events(self, sql: str, schema: dict[str, Any], explode: list[str],
                params: Sequence[Any] = ()) -> pl.DataFrame:
        """Events as one frame, parsed by polars from JSON lines SQLite builds (a few hundred events
        at a time): a million rows never become a million Python objects."""
        chunks = [pl.DataFrame(schema=schema).explode(explode)]
        cursor = self.db.execute(sql, params)
        while batch := cursor.fetchmany(512):
            lines = "\n".join(line for (line,) in batch).encode("utf-8")
            chunks.append(pl.read_ndjson(io.BytesIO(lines), schema=schema).explode(explode))
        return pl.concat(chunks, rechunk=False)

    def states(self) -> pl.DataFrame:
        """Every row's state without its texts: ``idx``, ``state``, ``status``, ``code``,
        ``attempts``, and the finish event its final outcome is stored in (``event``). Compact (about
        30 bytes a row; codes and statuses categorical) because it is the one per-row table a big
        run holds whole: the texts (messages, results) are read per slice by `frame_chunks`."""
        indices = "SELECT json_object('event', id, 'idx', json(data)) FROM events WHERE kind = ? ORDER BY id"
        sent = (self._events(indices.replace("?", "'start'"), _INDICES, ["idx"])
                .group_by("idx").agg(pl.len().cast(pl.Int32).alias("sent"),
                                     pl.col("event").max().cast(pl.Int32).alias("last_start")))
        released = (self._events(indices.replace("?", "'release'"), _INDICES, ["idx"])
                    .group_by("idx").agg(pl.col("event").max().cast(pl.Int32).alias("last_release")))
        done = (self._events("SELECT json_object('event', id, 'idx', json_extract(data, '$.idx'), 'status', "
                             "json_extract(data, '$.status'), 'code', json_extract(data, '$.code'), 'attempts', "
                             "json_extract(data, '$.attempts')) FROM events WHERE kind = 'finish' ORDER BY id",
                             _STATES, ["idx", "status", "code", "attempts"])
                .with_columns(pl.col("event").cast(pl.Int32), pl.col("attempts").cast(pl.Int32)))
        if done["idx"].n_unique() < done.height:  # a row finished twice (resume): the last outcome wins
            done = done.unique("idx", keep="last", maintain_order=True)
        rows = pl.DataFrame({"idx": pl.int_range(self.row_count(), eager=True, dtype=pl.Int64)})
        joined = rows.join(done, on="idx", how="left", maintain_order="left")
        del rows, done  # each step's inputs go as soon as it is made: this is a big run's largest table
        joined = joined.join(sent, on="idx", how="left", maintain_order="left")
        del sent
        joined = joined.join(released, on="idx", how="left", maintain_order="left")
        del released
        in_flight = pl.col("last_start").is_not_null() & (pl.col("last_start") > pl.col("last_release").fill_null(-1))
        state = (pl.when(pl.col("status").is_not_null()).then(pl.lit(DONE))
                 .when(in_flight).then(pl.lit(IN_FLIGHT)).otherwise(pl.lit(PENDING)))
        attempts = pl.max_horizontal(pl.col("attempts").fill_null(0), pl.col("sent").fill_null(0))
        return joined.select(pl.col("idx"), state.cast(_STATE).alias("state"), "status", "code",
                             attempts.cast(pl.Int64).alias("attempts"), "event")

    def _texts(self, events: list[int]) -> pl.DataFrame:
        """message, result and finished_at of the outcomes stored in these finish events."""
        parts = [pl.DataFrame(schema=_TEXTS).explode(_TEXT_LISTS)]
        for start in range(0, len(events), 500):
            some = events[start:start + 500]
            sql = ("SELECT json_object('event', id, 'message', json_extract(data, '$.message'), 'result', "
                   "json_extract(data, '$.result'), 'at', json_extract(data, '$.at'), 'idx', "
                   "json_extract(data, '$.idx')) FROM events WHERE id IN (" + ",".join("?" * len(some)) + ")")
            parts.append(self._events(sql, _TEXTS, _TEXT_LISTS, some))
        return pl.concat(parts, rechunk=False).unique(["event", "idx"], keep="last", maintain_order=True)

    def frame_chunks(self, chunk_rows: int | None = None, states: pl.DataFrame | None = None) -> Iterator[pl.DataFrame]:
        """`frame()` in slices of ``chunk_rows`` rows, in row order: the texts of one slice at a
        time are read (the finish events its rows' outcomes are in), so writing the reports of a
        ten-million-row run never holds ten million messages."""
        states = self.states() if states is None else states
        chunk_rows = chunks.rows(chunk_rows)
        for start in range(0, max(states.height, 1), chunk_rows):
            part = states.slice(start, chunk_rows)
            events = part["event"].drop_nulls().unique().sort().to_list()
            texts = self._texts(events) if events else pl.DataFrame(schema=_TEXTS).explode(_TEXT_LISTS)
            joined = part.join(texts.select(pl.col("event").cast(pl.Int32), "idx", "message", "result",
                                            pl.col("at").alias("finished_at")),
                               on=["event", "idx"], how="left", maintain_order="left")
            yield joined.select(
                "idx", pl.col("state").cast(pl.String), pl.col("status").cast(pl.String),
                pl.col("code").cast(pl.String), "message", "attempts", "result", "finished_at")
            if states.height == 0:
                return

    def frame(self) -> pl.DataFrame:
        """Every row's state, derived from the events: one line per input row, in row order."""
        states = self.states()
        return pl.concat(list(self.frame_chunks(max(states.height, 1), states)), rechunk=False)

    def counts(self, frame: pl.DataFrame | None = None) -> dict[str, int]:
        """Rows per final status; rows without one count as not_attempted. ``frame``: `frame()`
        or `states()`."""
        frame = self.states() if frame is None else frame
        status = (pl.when(pl.col("state").cast(pl.String) == DONE).then(pl.col("status").cast(pl.String))
                  .otherwise(pl.lit(Status.NOT_ATTEMPTED.value)))
        return dict(frame.group_by(status.alias("s")).len().iter_rows())

    def indices(self, state: str) -> list[int]:
        return self.states().filter(pl.col("state").cast(pl.String) == state)["idx"].to_list()

    def all_rows(self) -> list[tuple]:
        """(idx, state, status, code, message, attempts, result, finished_at) per row, in row order."""
        return self.frame().rows()
