"""Turn validated rows into work: drop exact duplicates, keep each target's rows in file order,
and chunk each operation's rows into requests.

Per-target order is kept with *waves*: a row is in wave k when k earlier valid rows name the same
target. Wave k+1 starts only after wave k has an outcome for every row, so "assign then pause" for
one lead is never sent the other way round. Most files are a single wave.

The plan is held compactly (one small polars frame per wave: row, operation, request) and turned
into `WorkUnit`s a slice of ``chunk_rows`` rows (`chunks.ROWS`) at a time (`Plan.iter_waves`), each slice handed to
the executor as a wave of its own: a ten-million-row file never has ten million rows of Python
objects waiting to be sent (docs/memory.md). A slice never cuts a request in two.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import polars as pl

from batchrunner import chunks
from batchrunner.outcome import RowOutcome, Status
from batchrunner.platforms.base import Catalog, WorkUnit
from batchrunner.validate import CODE, IDX, OP

SENDABLE = "__sendable"
_UNIT = "__unit"  # a request's first row: what orders the requests of a wave (file order)


@dataclass
class Plan:
    #: one frame per wave: IDX, OP and _UNIT (the request a row goes in), in sending order
    wave_frames: list[pl.DataFrame] = field(default_factory=list)
    duplicates: list[RowOutcome] = field(default_factory=list)
    rows_by_operation: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    chunk_rows: int = 100_000
    #: applied to each unit as it is made (resume marks the rows sent by an earlier process)
    adjust: Callable[[WorkUnit], WorkUnit] | None = None
    #: called with the rows of each slice of units made (tests count what is held at a time)
    observe: Callable[[int], None] | None = None

    @property
    def rows_to_send(self) -> int:
        return sum(frame.height for frame in self.wave_frames)

    @property
    def wave_count(self) -> int:
        return len(self.wave_frames)

    @property
    def waves(self) -> list[list[WorkUnit]]:
        """Every unit at once (small plans, tests); a run uses `iter_waves`."""
        return list(self.iter_waves())

    def iter_waves(self) -> Iterator[list[WorkUnit]]:
        """The waves' units, a slice of about ``chunk_rows`` rows at a time: each slice is sent as
        a wave (it ends before the next starts), so its units are all that is held."""
        for frame in self.wave_frames:
            yield from self._slices(frame)

    def _slices(self, frame: pl.DataFrame) -> Iterator[list[WorkUnit]]:
        start, n = 0, frame.height
        while start < n:
            part = frame.slice(start, self.chunk_rows)
            end = start + part.height
            if end < n and frame[_UNIT][end] == part[_UNIT][-1]:  # never cut a request: it goes next time
                whole = part.filter(pl.col(_UNIT) != part[_UNIT][-1])
                part = whole if whole.height else part
            grouped = part.group_by(_UNIT, maintain_order=True).agg(pl.col(OP).first(), pl.col(IDX))
            units = [WorkUnit(str(op), rows) for _, op, rows in grouped.iter_rows()]
            if self.adjust is not None:
                units = [self.adjust(unit) for unit in units]
            if self.observe is not None:
                self.observe(part.height)
            start += part.height
            yield units


def target_key(catalog: Catalog, columns: list[str]) -> pl.Expr:
    """The record a row acts on: its operation's first non-empty target field."""
    expr = None
    for operation in catalog.operations:
        targets = [pl.col(name).cast(pl.String) for name in operation.target_fields if name in columns]
        value = pl.coalesce(targets) if targets else pl.lit(None, dtype=pl.String)
        expr = (pl.when(pl.col(OP) == operation.name) if expr is None else expr.when(pl.col(OP) == operation.name)).then(value)
    fallback = pl.lit("row:") + pl.col(IDX).cast(pl.String)
    return pl.coalesce(expr.otherwise(None) if expr is not None else pl.lit(None, dtype=pl.String), fallback)


def _keys(validated: pl.DataFrame, catalog: Catalog, used: list[str], only: set[int] | None,
          step: int) -> pl.DataFrame:
    """IDX, OP and two 64-bit hashes of each valid row (or those in ``only``): "__row" of its
    operation and values, "__target" of the record it acts on. Computed a slice at a time, so the
    values are never copied: 36 bytes a row, however wide the rows."""
    wanted = list(only) if only is not None else None
    parts = []
    for start in range(0, max(validated.height, 1), step):
        part = validated.slice(start, step).lazy().filter(pl.col(CODE).is_null())
        if wanted is not None:
            part = part.filter(pl.col(IDX).is_in(wanted))
        parts.append(part.select(IDX, OP, pl.struct([OP, *used]).hash(seed=0).alias("__row"),
                                 target_key(catalog, used).hash(seed=0).alias("__target")).collect())
    return pl.concat(parts) if len(parts) > 1 else parts[0]


def _first_of_same(keys: pl.DataFrame, validated: pl.DataFrame, used: list[str]) -> pl.DataFrame:
    """IDX and "__first": the first row with the same operation and values. Rows are compared by
    their hash (`_keys`), and every match is then checked value by value; only if a hash collision
    is ever found are the values grouped themselves."""
    keyed = keys.select(IDX, pl.col(IDX).min().over("__row").alias("__first"))
    dupes = keyed.filter(pl.col("__first") != pl.col(IDX))
    if not dupes.height:
        return keyed
    values = validated.select(IDX, OP, *used)
    pairs = (dupes.join(values, on=IDX, how="left")
             .join(values.rename({c: f"{c}__first" for c in [OP, *used]}), left_on="__first", right_on=IDX, how="left"))
    same = pl.all_horizontal([pl.col(c).eq_missing(pl.col(f"{c}__first")) for c in [OP, *used]])
    if pairs.select(same.all()).item():
        return keyed
    valid = values.join(keys.select(IDX), on=IDX, how="semi", maintain_order="left")
    return valid.select(IDX, pl.col(IDX).min().over([OP, *used], mapping_strategy="group_to_rows").alias("__first"))


def plan(validated: pl.DataFrame, catalog: Catalog, rows_per_request: dict[str, int],
         only: set[int] | None = None, chunk_rows: int | None = None) -> Plan:
    """Plan the valid rows (or only those in ``only``, for resume) into waves of work units."""
    # a field empty in every row cannot tell rows apart nor name a target: only the others are read
    used = [c for c in validated.columns
            if not c.startswith("__") and c != OP and validated[c].null_count() < validated.height]
    keys = _keys(validated, catalog, used, only, chunks.validate_rows())
    first = _first_of_same(keys, validated, used)
    result = Plan(chunk_rows=chunks.rows(chunk_rows))
    dupes = first.filter(pl.col("__first") != pl.col(IDX))
    for idx, first_row in dupes.iter_rows():
        result.duplicates.append(RowOutcome(
            idx, Status.SKIPPED, "DUPLICATE_ROW", f"same operation and values as row {first_row + 1}; sent once"))
    # the target as a hash: a collision only makes a row wait for another's wave, never reorders
    target = keys.filter(first["__first"] == first[IDX]).select("__target", IDX, OP)
    del keys, first
    if target["__target"].n_unique() == target.height:  # the common case: one row per target, one wave
        target = target.with_columns(pl.lit(0, dtype=pl.UInt32).alias("__wave"))
    else:
        target = target.with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).over("__target").alias("__wave"))
    size = pl.col(OP).replace_strict(list(rows_per_request), [max(1, n) for n in rows_per_request.values()],
                                     default=1, return_dtype=pl.Int64)
    for (wave,), rows in sorted(target.drop("__target").partition_by("__wave", as_dict=True, maintain_order=True)
                                .items()):
        position = pl.int_range(pl.len(), dtype=pl.Int64).over(OP) // size
        frame = (rows.select(IDX, OP, pl.col(IDX).first().over(OP, position).alias(_UNIT))
                 .sort([_UNIT, IDX]).with_columns(pl.col(OP).cast(pl.Categorical)))
        result.wave_frames.append(frame)
        result.requests += frame[_UNIT].n_unique()
    for operation, n in target.group_by(OP, maintain_order=True).len().iter_rows():
        result.rows_by_operation[operation] = n
    return result


def plan_rest(validated: pl.DataFrame, catalog: Catalog, rows_per_request: dict[str, int],
              journal_rows: pl.DataFrame) -> tuple[Plan, int, int]:
    """Plan what a stopped run still owes (`Journal.states()` rows): its pending rows, and the rows
    that were in flight, marked ``unsure`` so the session checks them with the platform before
    sending them again. Returns the plan and how many rows were pending and in flight."""
    from batchrunner.journal import IN_FLIGHT, PENDING

    pending = set(journal_rows.filter(pl.col("state") == PENDING)["idx"].to_list())
    in_flight = journal_rows.filter(pl.col("state") == IN_FLIGHT)
    unsure = set(in_flight["idx"].to_list())
    attempts = dict(in_flight.select("idx", "attempts").iter_rows())
    the_plan = plan(validated, catalog, rows_per_request, only=pending | unsure)

    def sent_before(unit: WorkUnit) -> WorkUnit:  # rows in flight when it stopped: checked first
        mine = frozenset(unit.rows) & unsure
        if not mine:
            return unit
        return unit.part(unit.rows, unsure=mine, attempts=max(attempts[r] for r in mine))

    the_plan.adjust = sent_before  # units are made a slice at a time (Plan.iter_waves)
    return the_plan, len(pending), len(unsure)
