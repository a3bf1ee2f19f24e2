"""Field types: how one operation field's raw CSV text is checked and normalised.

Each type turns a polars column into (normalised value, problems) *expressions*, so a million rows
are validated by polars in bulk rather than one Python call per cell. Platforms add their own
types (Salesforce IDs) by implementing the same ``FieldType`` protocol.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

import polars as pl


@dataclass(frozen=True)
class Problem:
    """A rule a value can break: where ``when`` is true, the row is invalid with code + message."""

    when: pl.Expr
    code: str
    message: pl.Expr


class FieldType(Protocol):
    label: str  # what is allowed, in words, for `operations` and error messages

    def check(self, value: pl.Expr, name: str) -> tuple[pl.Expr, list[Problem]]:
        """``value`` is a trimmed, non-null string column; returns the wire value and problems.

        A type whose normalisation is costly may also define ``derive(value) -> pl.Expr``: the
        validator then computes it once per column and passes it to ``check`` as ``derived=``,
        however many operations share the field."""
        ...


def quoted(value: pl.Expr, limit: int = 60) -> pl.Expr:
    """The value as shown in an error message: quoted, and cut short if it is huge."""
    short = pl.when(value.str.len_chars() > limit).then(value.str.slice(0, limit) + "…").otherwise(value)
    return pl.lit("'") + short + pl.lit("'")


@dataclass(frozen=True)
class Text:
    max_length: int = 255
    label: str = "text"

    def check(self, value: pl.Expr, name: str) -> tuple[pl.Expr, list[Problem]]:
        too_long = value.str.len_chars() > self.max_length
        msg = pl.format(f"{name} is {{}} characters long; at most {self.max_length} allowed", value.str.len_chars())
        return value, [Problem(too_long, "VALUE_TOO_LONG", msg)]


def _spelling_key(value: str) -> str:
    return re.sub(r"[\s_\-]+", "", value).lower()


@dataclass(frozen=True)
class Choice:
    """An enumeration. Matching ignores case, spaces, underscores and hyphens, so
    ``customer engaged`` and ``Manual Complete`` find ``Customer Engaged`` and ``ManualComplete``;
    the documented spelling (or a job-chosen wire value) is what gets sent."""

    choices: tuple[str, ...]
    wire: dict[str, str] = field(default_factory=dict)  # documented value -> value sent

    @property
    def label(self) -> str:
        return "one of: " + ", ".join(self.choices)

    def check(self, value: pl.Expr, name: str) -> tuple[pl.Expr, list[Problem]]:
        keys = [_spelling_key(c) for c in self.choices]
        sent = [self.wire.get(c, c) for c in self.choices]
        normalised = value.str.replace_all(r"[\s_\-]+", "").str.to_lowercase()
        out = normalised.replace_strict(keys, sent, default=None, return_dtype=pl.String)
        msg = pl.format(f"{name} {{}} is not allowed; use {self.label}", quoted(value))
        return out, [Problem(out.is_null(), "INVALID_VALUE", msg)]


@dataclass(frozen=True)
class Boolean:
    label: str = "true or false"

    def check(self, value: pl.Expr, name: str) -> tuple[pl.Expr, list[Problem]]:
        low = value.str.to_lowercase()
        out = low.replace_strict(
            ["true", "yes", "1", "false", "no", "0"], [True, True, True, False, False, False], default=None,
            return_dtype=pl.Boolean,
        )
        msg = pl.format(f"{name} {{}} is not a yes/no value; use true or false", quoted(value))
        return out, [Problem(out.is_null(), "INVALID_VALUE", msg)]


@dataclass(frozen=True)
class DateTimeUTC:
    """ISO 8601 date-time with an offset or Z, sent normalised to UTC ``YYYY-MM-DDTHH:MM:SSZ``
    (docs/platforms.md: the seed's own sample is not ISO 8601, so we send a clean form). A value without a
    time zone is refused rather than guessed."""

    label: str = "an ISO 8601 date-time with a time zone, e.g. 2026-12-01T09:00:00Z"

    def check(self, value: pl.Expr, name: str) -> tuple[pl.Expr, list[Problem]]:
        has_zone = value.str.contains(r"(?i)(z|[+-]\d{2}:?\d{2})$")
        iso = value.str.replace(r"(?i)z$", "+00:00").str.replace(r"([+-]\d{2})(\d{2})$", "$1:$2")
        parsed = iso.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_zone="UTC")
        out = parsed.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        no_zone = pl.format(f"{name} {{}} has no time zone; add Z or an offset such as +01:00", quoted(value))
        bad = pl.format(f"{name} {{}} is not a date-time; use {self.label}", quoted(value))
        return out, [
            Problem(~has_zone & value.str.contains(r"^\d{4}-\d{2}-\d{2}"), "MISSING_TIME_ZONE", no_zone),
            Problem(out.is_null(), "INVALID_DATETIME", bad),
        ]


@dataclass(frozen=True)
class PositiveInt:
    """A platform record ID that is a positive integer. Excel-mangled forms (``12.0``,
    ``1.2E+05``) are refused, not repaired: a guessed ID could enrol the wrong person."""

    label: str = "a positive whole number"

    def check(self, value: pl.Expr, name: str) -> tuple[pl.Expr, list[Problem]]:
        ok = value.str.contains(r"^[0-9]+$")
        out = pl.when(ok).then(value.str.to_integer(strict=False)).otherwise(None)
        excel = value.str.contains(r"^[0-9.]+(?i:e\+?[0-9]+)?$") & ~ok
        msg_excel = pl.format(
            f"{name} {{}} looks like a number a spreadsheet reformatted; give the whole-number ID", quoted(value)
        )
        msg = pl.format(f"{name} {{}} is not {self.label}", quoted(value))
        return out, [
            Problem(excel, "INVALID_ID", msg_excel),
            Problem(out.is_null() | (out <= 0), "INVALID_ID", msg),
        ]


@dataclass(frozen=True)
class Email:
    label: str = "an email address"

    def check(self, value: pl.Expr, name: str) -> tuple[pl.Expr, list[Problem]]:
        out = value.str.to_lowercase()
        ok = out.str.contains(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
        msg = pl.format(f"{name} {{}} is not an email address", quoted(value))
        return out, [Problem(~ok, "INVALID_EMAIL", msg)]
