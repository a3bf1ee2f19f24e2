from pathlib import Path

import polars as pl
import pytest

from batchrunner.platforms.salesloft.operations import CATALOG
from batchrunner.source import OPERATION, LoadedInput
from batchrunner.validate import CODE, MESSAGE, validate


def one(row: dict) -> dict:
    names = sorted(row)
    frame = pl.DataFrame([row], schema={n: pl.String for n in names}).rename({"op": OPERATION})
    return validate(LoadedInput(Path("x"), "0", frame, frame), CATALOG).to_dicts()[0]


def test_add_by_ids_and_by_lookups():
    out = one({"op": "add", "person_id": "123", "cadence_id": "7"})
    assert out[CODE] is None and out["person_id"] == 123 and out["cadence_id"] == 7
    out = one({"op": "enrol", "person_email": "Ada@Example.COM", "cadence_name": "Q4 Outbound"})
    assert out[CODE] is None and out["person_email"] == "ada@example.com"


@pytest.mark.parametrize("value,fragment", [
    ("12.0", "spreadsheet"), ("1.2E+05", "spreadsheet"), ("123456.0", "spreadsheet"),
    ("-4", "not a positive whole number"), ("0", "not a positive whole number"), ("abc", "not a positive"),
])
def test_ids_are_positive_integers_never_guessed(value, fragment):
    out = one({"op": "add", "person_id": value, "cadence_id": "7"})
    assert out[CODE] == "INVALID_ID" and fragment in out[MESSAGE]


def test_add_needs_exactly_one_person_and_one_cadence():
    assert one({"op": "add", "cadence_id": "7"})[CODE] == "REQUIRED_FIELD_MISSING"
    assert one({"op": "add", "person_id": "1", "person_email": "a@b.co", "cadence_id": "7"})[CODE] == \
        "CONFLICTING_FIELDS"
    assert one({"op": "add", "person_id": "1"})[CODE] == "REQUIRED_FIELD_MISSING"
    assert one({"op": "add", "person_id": "1", "cadence_id": "2", "user_id": "3", "user_email": "u@x.io"})[CODE] == \
        "CONFLICTING_FIELDS"


def test_bad_email():
    out = one({"op": "add", "person_email": "not an email", "cadence_id": "7"})
    assert out[CODE] == "INVALID_EMAIL" and "'not an email'" in out[MESSAGE]


def test_remove_by_membership_or_person_and_cadence():
    assert one({"op": "remove", "membership_id": "55"})[CODE] is None
    assert one({"op": "remove", "person_email": "a@b.co", "cadence_name": "X"})[CODE] is None
    out = one({"op": "remove", "person_email": "a@b.co"})
    assert out[CODE] == "REQUIRED_FIELD_MISSING" and "without membership_id needs cadence_id or cadence_name" in out[MESSAGE]
    assert one({"op": "remove"})[CODE] == "REQUIRED_FIELD_MISSING"
