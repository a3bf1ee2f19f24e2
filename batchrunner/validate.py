"""Validate every row against the platform's operation catalog, in bulk.

Rules are compiled into polars expressions (one pass over the frame, no Python per row), which is
what lets a million-row file be checked in seconds. A row's first problem becomes its `invalid`
code and message; valid rows carry each field's normalised wire value (18-character IDs, the
documented enumeration spelling, UTC date-times).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from batchrunner import chunks
from batchrunner.errors import JobError, did_you_mean
from batchrunner.fieldtypes import Problem
from batchrunner.job import Job
from batchrunner.platforms.base import Catalog, Field, operation_key_expr
from batchrunner.source import OPERATION, ROW_PROBLEM, LoadedInput

IDX = "__idx"  # 0-based row index into the input
OP = "_operation"  # the row's operation: the catalog's short name, or what the row said if unknown
CODE = "__code"
MESSAGE = "__message"


def suggest_operation(word: str, catalog: Catalog) -> str:
    """" Did you mean 'add'? Valid: add, remove." — the closest of every accepted spelling (so a
    misspelled alias such as 'enrolll' leads to its operation), named by its short name."""
    import difflib

    spellings: dict[str, str] = {}
    for op in catalog.operations:
        for name in (op.name, op.wire_name, *op.aliases):
            spellings.setdefault(name.lower(), op.name)
    names = ", ".join(op.name for op in catalog.operations)
    close = difflib.get_close_matches(word.lower(), list(spellings), n=1, cutoff=0.6)
    return f" Did you mean {spellings[close[0]]!r}? Valid: {names}." if close else f" Valid: {names}."


def _unknown_operation_message(frame: pl.DataFrame, catalog: Catalog) -> pl.Expr:
    """"unknown operation 'enrolll'. Did you mean 'add'? …": one suggestion per distinct unknown
    spelling (a million rows with the same typo cost one look-up)."""
    unknown = frame.filter(pl.col("__op").is_null() & pl.col(OPERATION).is_not_null())[OPERATION].unique().to_list()
    texts = {word: f"unknown operation '{word}'.{suggest_operation(word, catalog)}" for word in unknown}
    if not texts:
        return pl.lit(None, dtype=pl.String)
    return pl.col(OPERATION).replace_strict(list(texts), list(texts.values()), default=None, return_dtype=pl.String)


def check_job(job: Job, catalog: Catalog, api_version: float | None) -> None:
    """Job-level checks that need the catalog: the default operation and mapped field names."""
    names = [op.name for op in catalog.operations]
    if job.operation is not None:
        op = catalog.resolve(job.operation)
        if op is None:
            raise JobError(f"Unknown operation {job.operation!r} for {catalog.platform}."
                           f"{suggest_operation(job.operation, catalog)}")
        if api_version is not None and op.min_api_version and api_version < op.min_api_version:
            raise JobError(
                f"{op.name} ({op.wire_name}) needs API version {op.min_api_version} or later; "
                f"the job uses {api_version}."
            )
    fields = catalog.field_names()
    for key in job.columns:
        if key not in fields:
            raise JobError(f"columns.{key} is not a field of any {catalog.platform} operation.{did_you_mean(key, fields)}")
    if job.operation is not None and job.operation_column is None:
        op = catalog.resolve(job.operation)
        assert op is not None
        for f in op.fields:
            if f.required and f.default is None and f.name not in job.columns and not _in_one_of(op, f.name):
                raise JobError(f"{op.name} needs {f.name}: map it in [columns] to a CSV column or a {{ value = ... }}.")
        for group in op.one_of:
            if not any(name in job.columns for name in group):
                raise JobError(f"{op.name} needs one of {', '.join(group)}: map one in [columns].")


def _in_one_of(op, name: str) -> bool:
    return any(name in group for group in op.one_of) or any(name in g for _, g in op.one_of_unless)


@dataclass
class _Rule:
    when: pl.Expr
    code: str
    message: pl.Expr


def validate(loaded: LoadedInput, catalog: Catalog, api_version: float | None = None, *,
             chunk_rows: int | None = None, observe: Callable[[int], None] | None = None) -> pl.DataFrame:
    """Return a frame with IDX, OP, CODE, MESSAGE (null when valid) and one column per field.
    Rows are checked ``chunk_rows`` (`chunks.VALIDATE_ROWS`) at a time (each row's checks need only the row
    itself), so the work columns of a big file's rules exist for one slice; ``observe`` is told
    each slice's rows."""
    fields = loaded.fields
    chunk_rows = chunks.validate_rows(chunk_rows)
    parts = []
    for start in range(0, max(fields.height, 1), chunk_rows):
        part = fields.slice(start, chunk_rows)
        if observe is not None:
            observe(part.height)
        parts.append(_validate_slice(part, start, catalog, api_version))
    return pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]


def _validate_slice(fields: pl.DataFrame, offset: int, catalog: Catalog, api_version: float | None) -> pl.DataFrame:
    spellings = catalog.spellings()
    raw_op = pl.col(OPERATION)
    resolved = operation_key_expr(raw_op).replace_strict(
        list(spellings), list(spellings.values()), default=None, return_dtype=pl.String
    )
    frame = fields.with_columns(resolved.alias("__op")).with_row_index(IDX, offset=offset)
    present = set(fields.columns)
    # An expensive normalisation (an ID's 18-character form) is computed once per column and
    # shared by every operation whose field uses it, instead of once per operation and rule.
    derived: dict[tuple[str, str, str | None], pl.Expr] = {}
    for operation in catalog.operations:
        for f in operation.fields:
            derive = getattr(f.type, "derive", None)
            key = (f.name, type(f.type).__name__, f.default)
            if derive is not None and f.name in present and key not in derived:
                derived[key] = derive(_raw(f, present)).alias(f"__derived{len(derived)}")
    frame = frame.with_columns(derived.values()) if derived else frame
    op = pl.col("__op")
    valid_names = ", ".join(o.name for o in catalog.operations)
    rules: list[_Rule] = []
    if ROW_PROBLEM in fields.columns:  # the line itself is unusable (ragged, NUL byte): nothing else matters
        rules.append(_Rule(pl.col(ROW_PROBLEM).is_not_null(), "MALFORMED_ROW", pl.col(ROW_PROBLEM)))
    rules += [
        _Rule(raw_op.is_null(), "MISSING_OPERATION", pl.lit(f"this row names no operation; use one of: {valid_names}")),
        _Rule(op.is_null(), "UNKNOWN_OPERATION", _unknown_operation_message(frame, catalog)),
    ]
    checked: dict[tuple[str, int, str | None], tuple[pl.Expr, list[Problem]]] = {}
    values: dict[str, list[tuple[str, pl.Expr]]] = {}
    for operation in catalog.operations:
        is_op = op == operation.name
        if api_version is not None and operation.min_api_version and api_version < operation.min_api_version:
            rules.append(_Rule(is_op, "API_VERSION_TOO_LOW", pl.lit(
                f"{operation.name} needs API version {operation.min_api_version} or later; the job uses {api_version}")))
        for f in operation.fields:
            raw = _raw(f, present)
            key = (f.name, id(f.type), f.default)
            if key not in checked:
                hint = derived.get((f.name, type(f.type).__name__, f.default))
                checked[key] = (f.type.check(raw, f.name) if hint is None
                                else f.type.check(raw, f.name, derived=pl.col(hint.meta.output_name())))
            wire, problems = checked[key]
            if f.required and not _in_one_of(operation, f.name):
                rules.append(_Rule(is_op & raw.is_null(), "REQUIRED_FIELD_MISSING",
                                   pl.lit(f"{f.name} is required for {operation.name} and this row has none")))
            for p in problems:
                rules.append(_Rule(is_op & raw.is_not_null() & p.when, p.code, p.message))
            values.setdefault(f.name, []).append((operation.name, wire))  # look-up inputs too
        for group in operation.one_of:
            given = pl.sum_horizontal([_raw(operation.field(n), present).is_not_null().cast(pl.Int32) for n in group])
            names = " or ".join(group)
            rules.append(_Rule(is_op & (given == 0), "REQUIRED_FIELD_MISSING",
                               pl.lit(f"{operation.name} needs {names}; this row has neither")))
            rules.append(_Rule(is_op & (given > 1), "CONFLICTING_FIELDS",
                               pl.lit(f"{operation.name} takes only one of {names}; this row gives both")))
        for group in operation.at_most_one:
            given = pl.sum_horizontal([_raw(operation.field(n), present).is_not_null().cast(pl.Int32) for n in group])
            rules.append(_Rule(is_op & (given > 1), "CONFLICTING_FIELDS",
                               pl.lit(f"{operation.name} takes only one of {' or '.join(group)}; this row gives more")))
        for unless, group in operation.one_of_unless:
            absent = _raw(operation.field(unless), present).is_null()
            given = pl.sum_horizontal([_raw(operation.field(n), present).is_not_null().cast(pl.Int32) for n in group])
            names = " or ".join(group)
            rules.append(_Rule(is_op & absent & (given == 0), "REQUIRED_FIELD_MISSING",
                               pl.lit(f"{operation.name} without {unless} needs {names}; this row has neither")))
            rules.append(_Rule(is_op & absent & (given > 1), "CONFLICTING_FIELDS",
                               pl.lit(f"{operation.name} takes only one of {names}; this row gives both")))
    code = pl.when(rules[0].when).then(pl.lit(rules[0].code))
    message = pl.when(rules[0].when).then(rules[0].message)
    for rule in rules[1:]:
        code = code.when(rule.when).then(pl.lit(rule.code))
        message = message.when(rule.when).then(rule.message)
    outputs = [pl.col(CODE), pl.coalesce(op, raw_op).alias(OP)]
    for name, per_op in values.items():
        expr = pl.when(op == per_op[0][0]).then(per_op[0][1])
        for op_name, wire in per_op[1:]:
            expr = expr.when(op == op_name).then(wire)
        outputs.append(expr.otherwise(None).alias(name))
    # Messages are formatted only for the rows that broke a rule: formatting every rule's message
    # for every row (most of them valid) was most of the time on a big file.
    coded = frame.with_columns(code.otherwise(None).alias(CODE))
    messages = coded.filter(pl.col(CODE).is_not_null()).select(IDX, message.otherwise(None).alias(MESSAGE))
    result = coded.select(pl.col(IDX), *outputs).join(messages, on=IDX, how="left", maintain_order="left")
    return result.select(IDX, CODE, MESSAGE, pl.exclude(IDX, CODE, MESSAGE))


def _raw(f: Field | None, present: set[str]) -> pl.Expr:
    assert f is not None
    raw = pl.col(f.name) if f.name in present else pl.lit(None, dtype=pl.String)
    if f.default is not None:
        raw = raw.fill_null(pl.lit(f.default))
    return raw
