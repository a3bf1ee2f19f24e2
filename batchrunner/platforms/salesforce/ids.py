"""Salesforce record IDs: 15-character (case-sensitive) and 18-character (case-safe) forms.

Source: docs/platforms.md "Record IDs". Every ID is normalised to 18 characters before it is sent, an
18-character ID whose checksum does not match is rejected, and the 3-character key prefix says
which object an ID belongs to, so a User ID in a target column is caught before anything is sent.
"""

from __future__ import annotations

import re

import polars as pl

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_SHAPE = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")

#: key prefix -> object name (docs/platforms.md "Key prefixes")
KEY_PREFIXES: dict[str, str] = {
    "001": "Account",
    "003": "Contact",
    "00Q": "Lead",
    "005": "User",
    "006": "Opportunity",
    "3tt": "Invoice",
    "77C": "ActionCadence",
    "0qB": "ActionCadenceTracker",
    "8HF": "ActionCadenceStepTracker",
}


class InvalidId(ValueError):
    """Raised with a message a person can act on (what is wrong with which value)."""


def checksum(id15: str) -> str:
    """The 3-character suffix that makes a 15-character ID case-safe."""
    suffix = []
    for start in (0, 5, 10):
        bits = 0
        for i, char in enumerate(id15[start : start + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << i
        suffix.append(_ALPHABET[bits])
    return "".join(suffix)


def to18(value: str) -> str:
    """Normalise a 15- or 18-character ID to 18 characters, or raise ``InvalidId``."""
    if not _SHAPE.fullmatch(value):
        raise InvalidId(
            f"{value!r} is not a Salesforce ID (15 or 18 letters and digits, got {len(value)} characters)"
        )
    expected = checksum(value[:15])
    if len(value) == 18 and value[15:].upper() != expected:
        raise InvalidId(f"{value!r} has a bad checksum (an 18-character ID for {value[:15]} ends in {expected})")
    return value[:15] + expected


def object_of(value: str) -> str | None:
    """The object an ID's key prefix names, or None for a prefix not in ``KEY_PREFIXES``."""
    return KEY_PREFIXES.get(value[:3])


def to18_expr(column: pl.Expr) -> pl.Expr:
    """Vectorised ``to18`` for polars: the 18-character form, or null where the value is not an ID
    or its checksum does not match. Used to validate millions of rows without a Python loop."""
    shaped = column.str.contains(r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")
    base = column.str.slice(0, 15)
    capitals = list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")  # is_in on one character: 3x faster than a regex
    parts = []
    for start in (0, 5, 10):
        bits = pl.sum_horizontal([
            base.str.slice(start + i, 1).is_in(capitals).cast(pl.Int32) * (1 << i) for i in range(5)
        ])
        parts.append(bits.replace_strict(list(range(32)), list(_ALPHABET), return_dtype=pl.String))
    suffix = pl.concat_str(parts)
    given = column.str.slice(15, 3).str.to_uppercase()
    ok = shaped & ((column.str.len_chars() == 15) | (given == suffix))
    return pl.when(ok).then(pl.concat_str([base, suffix])).otherwise(None)


class SalesforceId:
    """Field type: a record ID of one of ``objects``, normalised to 18 characters."""

    def __init__(self, *objects: str) -> None:
        self.objects = objects
        self.prefixes = [p for p, obj in KEY_PREFIXES.items() if obj in objects]
        self.label = "a Salesforce ID of " + " / ".join(objects) + f" ({', '.join(self.prefixes)}…)"

    def __repr__(self) -> str:
        return f"SalesforceId{self.objects!r}"

    def derive(self, value: pl.Expr) -> pl.Expr:
        """The costly part, computed once per column by the validator (see ``check``'s ``derived``)."""
        return to18_expr(value)

    def check(self, value: pl.Expr, name: str, derived: pl.Expr | None = None):  # -> (pl.Expr, list[Problem])
        from batchrunner.fieldtypes import Problem, quoted

        shaped = value.str.contains(r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")
        out = to18_expr(value) if derived is None else derived
        prefix = value.str.slice(0, 3)
        names = list(KEY_PREFIXES)
        objects = list(KEY_PREFIXES.values())
        found = prefix.replace_strict(names, objects, default=None, return_dtype=pl.String)
        wrong_object = pl.format(
            f"{name} {{}} is {{}} ID; {name} takes {' / '.join(self.objects)}",
            quoted(value),
            pl.when(found.is_null()).then(pl.lit("not a known kind of")).otherwise(
                pl.lit("a ") + found.fill_null("")
            ),
        )
        return out, [
            Problem(
                ~shaped,
                "INVALID_ID",
                pl.format(
                    f"{name} {{}} is not a Salesforce ID (15 or 18 letters and digits, got {{}} characters)",
                    quoted(value),
                    value.str.len_chars(),
                ),
            ),
            Problem(
                out.is_null(),
                "INVALID_ID",
                pl.format(
                    f"{name} {{}} has a bad checksum (the 18-character ID for {{}} ends in {{}})",
                    quoted(value),
                    value.str.slice(0, 15),
                    to18_expr(value.str.slice(0, 15)).str.slice(15, 3),
                ),
            ),
            Problem(~prefix.is_in(self.prefixes), "WRONG_OBJECT", wrong_object),
        ]
