"""``[mappings]``: fill an operation field by joining an input column with a lookup CSV (polars joins).

Typical uses: a Salesloft cadence name -> the Salesforce cadence name, an email -> a Salesforce
lead or contact ID. The field is first read from the input column ``on`` (so the job's field checks
see it mapped), then replaced by the lookup file's ``value`` for the row whose ``lookup`` column
equals it (after trimming; ``ignore_case`` compares lower-cased). A row whose key has no match is
``invalid`` with ``MAPPING_NO_MATCH`` naming the key; an empty key is left to validation (a
required field is reported missing). A lookup file that maps one key to two different values stops
the job (exit 2): nothing is guessed.
"""

from __future__ import annotations

import dataclasses

import polars as pl

from batchrunner.errors import JobError, did_you_mean
from batchrunner.job import Job, Mapping
from batchrunner.source import LoadedInput, clean, read_csv
from batchrunner.validate import CODE, MESSAGE

NO_MATCH = "MAPPING_NO_MATCH"
_KEY, _VALUE, _ROW = "__map_key", "__map_value", "__map_row"


def load_lookup(mapping: Mapping, encoding: str = "utf-8") -> pl.DataFrame:
    """The lookup file as unique (key, value) pairs; a JobError for a missing column or a key
    that maps to two different values."""
    frame = read_csv(mapping.file, encoding)
    for column in {mapping.lookup, mapping.value}:
        if column not in frame.columns:
            raise JobError(f"The lookup file {mapping.file} has no column {column!r}."
                           f"{did_you_mean(column, frame.columns)}")
    key = clean(pl.col(mapping.lookup))
    if mapping.ignore_case:
        key = key.str.to_lowercase()
    pairs = frame.select(key.alias(_KEY), clean(pl.col(mapping.value)).alias(_VALUE)).filter(
        pl.col(_KEY).is_not_null()).unique(maintain_order=True)
    clashes = pairs.group_by(_KEY, maintain_order=True).agg(pl.col(_VALUE)).filter(pl.col(_VALUE).list.len() > 1)
    if clashes.height:
        key_value, values = clashes.row(0)
        raise JobError(f"The lookup file {mapping.file} maps {mapping.lookup} = {key_value!r} to more than one "
                       f"{mapping.value} ({', '.join(repr(v) for v in values)}); make each key appear once.")
    return pairs


def apply_mappings(job: Job, loaded: LoadedInput) -> tuple[LoadedInput, pl.DataFrame | None]:
    """Replace each mapped field by its looked-up value. Returns the new input and, when the job
    has mappings, a frame (one row per input row) of CODE / MESSAGE: the row's first mapping problem."""
    if not job.mappings:
        return loaded, None
    fields = loaded.fields.with_row_index(_ROW)
    code = pl.Series(CODE, [None] * fields.height, dtype=pl.String)
    message = pl.Series(MESSAGE, [None] * fields.height, dtype=pl.String)
    for name, mapping in job.mappings.items():
        pairs = load_lookup(mapping, job.encoding)
        key = pl.col(name).str.to_lowercase() if mapping.ignore_case else pl.col(name)
        joined = (fields.select(_ROW, pl.col(name).alias("__raw"), key.alias(_KEY))
                  .join(pairs, on=_KEY, how="left").sort(_ROW))
        missing = joined[_KEY].is_not_null() & joined[_VALUE].is_null()
        text = joined.select(
            pl.format(f"no row of {mapping.file.name} has {mapping.lookup} = '{{}}' (input column {mapping.on!r}, "
                      f"for {name})", pl.col("__raw"))).to_series()
        first = missing & code.is_null()
        code = pl.select(pl.when(first).then(pl.lit(NO_MATCH)).otherwise(code)).to_series().alias(CODE)
        message = pl.select(pl.when(first).then(text).otherwise(message)).to_series().alias(MESSAGE)
        fields = fields.with_columns(joined[_VALUE].alias(name))
    fields = fields.drop(_ROW)
    return dataclasses.replace(loaded, fields=fields), pl.DataFrame([code, message])


def overlay(validated: pl.DataFrame, problems: pl.DataFrame | None) -> pl.DataFrame:
    """Make a row's mapping problem its invalid code and message (it explains the row best)."""
    if problems is None:
        return validated
    has = problems[CODE].is_not_null()
    return validated.with_columns(
        pl.when(has).then(problems[CODE]).otherwise(pl.col(CODE)).alias(CODE),
        pl.when(has).then(problems[MESSAGE]).otherwise(pl.col(MESSAGE)).alias(MESSAGE),
    )
