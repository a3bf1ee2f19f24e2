"""Turn validated rows into work: drop exact duplicates, keep each target's rows in file order,
and chunk each operation's rows into requests.

Per-target order is kept with *waves*: a row is in wave k when k earlier valid rows name the same
target. Wave k+1 starts only after wave k has an outcome for every row, so "assign then pause" for
one lead is never sent the other way round. Most files are a single wave.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from batchrunner.outcome import RowOutcome, Status
from batchrunner.platforms.base import Catalog, WorkUnit
from batchrunner.validate import CODE, IDX, OP

SENDABLE = "__sendable"


@dataclass
class Plan:
    waves: list[list[WorkUnit]] = field(default_factory=list)
    duplicates: list[RowOutcome] = field(default_factory=list)
    rows_by_operation: dict[str, int] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(len(wave) for wave in self.waves)

    @property
    def rows_to_send(self) -> int:
        return sum(len(unit.rows) for wave in self.waves for unit in wave)


def target_key(catalog: Catalog, columns: list[str]) -> pl.Expr:
    """The record a row acts on: its operation's first non-empty target field."""
    expr = None
    for operation in catalog.operations:
        targets = [pl.col(name).cast(pl.String) for name in operation.target_fields if name in columns]
        value = pl.coalesce(targets) if targets else pl.lit(None, dtype=pl.String)
        expr = (pl.when(pl.col(OP) == operation.name) if expr is None else expr.when(pl.col(OP) == operation.name)).then(value)
    fallback = pl.lit("row:") + pl.col(IDX).cast(pl.String)
    return pl.coalesce(expr.otherwise(None) if expr is not None else pl.lit(None, dtype=pl.String), fallback)


def plan(validated: pl.DataFrame, catalog: Catalog, rows_per_request: dict[str, int],
         only: set[int] | None = None) -> Plan:
    """Plan the valid rows (or only those in ``only``, for resume) into waves of work units."""
    field_columns = [c for c in validated.columns if not c.startswith("__") and c != OP]
    valid = validated.filter(pl.col(CODE).is_null())
    if only is not None:
        valid = valid.filter(pl.col(IDX).is_in(list(only)))
    used = [c for c in field_columns if valid[c].null_count() < valid.height]  # the rest cannot differ
    valid = valid.with_columns(
        pl.col(IDX).min().over([OP, *used], mapping_strategy="group_to_rows").alias("__first"),
    )
    dupes = valid.filter(pl.col("__first") != pl.col(IDX)).select(IDX, "__first", OP)
    result = Plan()
    for idx, first, _ in dupes.iter_rows():
        result.duplicates.append(RowOutcome(
            idx, Status.SKIPPED, "DUPLICATE_ROW", f"same operation and values as row {first + 1}; sent once"))
    keep = valid.filter(pl.col("__first") == pl.col(IDX))
    keep = keep.with_columns(target_key(catalog, field_columns).alias("__target"))
    if keep["__target"].n_unique() == keep.height:  # the common case: one row per target, one wave
        keep = keep.with_columns(pl.lit(0, dtype=pl.Int64).alias("__wave"))
    else:
        keep = keep.with_columns(pl.int_range(pl.len()).over("__target").alias("__wave"))
    grouped = (
        keep.group_by("__wave", OP, maintain_order=True)
        .agg(pl.col(IDX))
        .sort("__wave", maintain_order=True)
    )
    waves: dict[int, list[WorkUnit]] = {}
    for wave, operation, indices in grouped.iter_rows():
        size = max(1, rows_per_request.get(operation, 1))
        units = waves.setdefault(wave, [])
        for start in range(0, len(indices), size):
            units.append(WorkUnit(operation, list(indices[start : start + size])))
        result.rows_by_operation[operation] = result.rows_by_operation.get(operation, 0) + len(indices)
    result.waves = [waves[w] for w in sorted(waves)]
    for wave_units in result.waves:
        wave_units.sort(key=lambda u: u.rows[0])  # file order
    return result


def plan_rest(validated: pl.DataFrame, catalog: Catalog, rows_per_request: dict[str, int],
              journal_rows: pl.DataFrame) -> tuple[Plan, int, int]:
    """Plan what a stopped run still owes (`Journal.frame()` rows): its pending rows, and the rows
    that were in flight, marked ``unsure`` so the session checks them with the platform before
    sending them again. Returns the plan and how many rows were pending and in flight."""
    from batchrunner.journal import IN_FLIGHT, PENDING

    pending = set(journal_rows.filter(pl.col("state") == PENDING)["idx"].to_list())
    in_flight = journal_rows.filter(pl.col("state") == IN_FLIGHT)
    unsure = set(in_flight["idx"].to_list())
    attempts = dict(in_flight.select("idx", "attempts").iter_rows())
    the_plan = plan(validated, catalog, rows_per_request, only=pending | unsure)
    for wave in the_plan.waves:
        for i, unit in enumerate(wave):
            mine = frozenset(unit.rows) & unsure
            if mine:
                wave[i] = unit.part(unit.rows, unsure=mine, attempts=max(attempts[r] for r in mine))
    return the_plan, len(pending), len(unsure)
