"""Validation rules of every Salesforce action (seed tables + docs/platforms.md)."""

from pathlib import Path

import polars as pl
import pytest

from batchrunner.platforms.salesforce.ids import checksum
from batchrunner.platforms.salesforce.operations import build_catalog
from batchrunner.source import OPERATION, LoadedInput
from batchrunner.validate import CODE, MESSAGE, OP, validate

LEAD15 = "00Q5e00000AbCdE"
LEAD = LEAD15 + checksum(LEAD15)
CONTACT = "0035e00000XyZaB" + checksum("0035e00000XyZaB")
ACCOUNT = "0015e00000PpPpP" + checksum("0015e00000PpPpP")
USER = "0055e00000UuUuU" + checksum("0055e00000UuUuU")
OPP = "0065e00000OoOoO" + checksum("0065e00000OoOoO")
TRACKER = "0qB5e00000TtTtT" + checksum("0qB5e00000TtTtT")
STEP = "8HF5e00000SsSsS" + checksum("8HF5e00000SsSsS")
CADENCE = "77C5e00000CcCcC" + checksum("77C5e00000CcCcC")


def run(rows: list[dict], api_version: float | None = 62.0, wire=None) -> list[dict]:
    names = sorted({k for r in rows for k in r})
    frame = pl.DataFrame([{n: r.get(n) for n in names} for r in rows], schema={n: pl.String for n in names})
    frame = frame.rename({"op": OPERATION})
    loaded = LoadedInput(Path("x.csv"), "0", frame, frame)
    out = validate(loaded, build_catalog(wire), api_version)
    return out.to_dicts()


def one(row: dict, **kw) -> dict:
    return run([row], **kw)[0]


def assert_invalid(row: dict, code: str, *fragments: str, **kw) -> None:
    out = one(row, **kw)
    assert out[CODE] == code, out
    for fragment in fragments:
        assert fragment in out[MESSAGE], out[MESSAGE]


def test_assign_valid_and_normalised():
    out = one({"op": "assign", "targetId": LEAD15, "salesCadenceNameOrId": "Q4 Outbound", "userId": USER})
    assert out[CODE] is None
    assert out["targetId"] == LEAD and out["userId"] == USER and out[OP] == "assign"


@pytest.mark.parametrize("name", ["assign", "ASSIGN", "assignTargetToSalesCadence", "assign_target_to_sales_cadence"])
def test_short_and_full_names(name):
    assert one({"op": name, "targetId": LEAD, "salesCadenceNameOrId": CADENCE})[OP] == "assign"


def test_assign_rules():
    assert_invalid({"op": "assign", "targetId": LEAD}, "REQUIRED_FIELD_MISSING", "salesCadenceNameOrId is required")
    assert_invalid({"op": "assign", "salesCadenceNameOrId": "X"}, "REQUIRED_FIELD_MISSING", "targetId")
    assert_invalid({"op": "assign", "targetId": USER, "salesCadenceNameOrId": "X"}, "WRONG_OBJECT",
                   "is a User ID", "Lead / Contact / Account")
    assert_invalid({"op": "assign", "targetId": LEAD, "salesCadenceNameOrId": "X", "userId": LEAD}, "WRONG_OBJECT",
                   "userId", "is a Lead ID")
    assert_invalid({"op": "assign", "targetId": LEAD, "salesCadenceNameOrId": "X", "relatedToId": USER},
                   "WRONG_OBJECT", "Opportunity / Invoice")
    assert_invalid({"op": "assign", "targetId": LEAD[:15] + "AAA", "salesCadenceNameOrId": "X"}, "INVALID_ID",
                   "bad checksum", f"ends in {LEAD[15:]}")
    assert_invalid({"op": "assign", "targetId": "00Q123", "salesCadenceNameOrId": "X"}, "INVALID_ID",
                   "got 6 characters")
    for target in (CONTACT, ACCOUNT):
        assert one({"op": "assign", "targetId": target, "salesCadenceNameOrId": "X"})[CODE] is None


def test_remove_one_of_and_default_reason():
    ok = one({"op": "remove", "targetId": LEAD})
    assert ok[CODE] is None and ok["completionReasonCode"] == "ManuallyRemoved"
    assert one({"op": "remove", "actionCadenceTrackerId": TRACKER})[CODE] is None
    assert_invalid({"op": "remove"}, "REQUIRED_FIELD_MISSING", "targetId or actionCadenceTrackerId")
    assert_invalid({"op": "remove", "targetId": LEAD, "actionCadenceTrackerId": TRACKER}, "CONFLICTING_FIELDS")
    assert_invalid({"op": "remove", "targetId": LEAD, "completionReasonCode": "Done"}, "INVALID_VALUE",
                   "ManuallyRemoved")


def test_remove_enumerations():
    out = one({"op": "remove", "targetId": LEAD, "completionDisposition": "customer engaged",
               "relatedToAttributionType": "MATURATION", "relatedToId": OPP, "shouldApplyUserContext": "yes"})
    assert out[CODE] is None
    assert out["completionDisposition"] == "Customer Engaged"
    assert out["relatedToAttributionType"] == "Maturation"
    assert out["shouldApplyUserContext"] is True
    assert_invalid({"op": "remove", "targetId": LEAD, "completionDisposition": "Happy"}, "INVALID_VALUE",
                   "completionDisposition 'Happy' is not allowed", "Not Interested")
    assert_invalid({"op": "remove", "targetId": LEAD, "relatedToAttributionType": "Won"}, "INVALID_VALUE",
                   "Activation, Maturation, Collected")
    assert_invalid({"op": "remove", "targetId": LEAD, "shouldApplyUserContext": "maybe"}, "INVALID_VALUE")


def test_pause_resume_time():
    out = one({"op": "pause", "targetId": LEAD, "resumeTime": "2026-12-01T10:00:00+01:00"})
    assert out[CODE] is None and out["resumeTime"] == "2026-12-01T09:00:00Z"
    assert one({"op": "pause", "targetId": LEAD, "resumeTime": "2026-12-01T09:00:00.5Z"})["resumeTime"] == \
        "2026-12-01T09:00:00Z"
    assert_invalid({"op": "pause", "targetId": LEAD, "resumeTime": "2026-12-01 09:00"}, "MISSING_TIME_ZONE")
    assert_invalid({"op": "pause", "targetId": LEAD, "resumeTime": "next tuesday"}, "INVALID_DATETIME")
    assert one({"op": "pause", "targetId": LEAD})[CODE] is None


def test_resume_change_assignee():
    assert one({"op": "resume", "targetId": LEAD})[CODE] is None
    assert_invalid({"op": "resume"}, "REQUIRED_FIELD_MISSING")
    assert one({"op": "change_assignee", "targetId": LEAD, "userId": USER})[CODE] is None
    assert_invalid({"op": "change_assignee", "targetId": LEAD, "userId": CONTACT}, "WRONG_OBJECT")


def test_modify_tracker():
    assert one({"op": "modify_tracker", "actionCadenceTrackerId": TRACKER, "completionDisposition": "Success"})[CODE] \
        is None
    assert_invalid({"op": "modify_tracker", "actionCadenceTrackerId": LEAD}, "WRONG_OBJECT", "ActionCadenceTracker")
    assert_invalid({"op": "modify_tracker"}, "REQUIRED_FIELD_MISSING", "actionCadenceTrackerId")


@pytest.mark.parametrize("spelling", ["ManualComplete", "Manual Complete", "manual_complete", "MANUAL COMPLETE"])
def test_send_event_spellings(spelling):
    assert one({"op": "send_event", "recordId": STEP, "eventType": spelling})["eventType"] == "ManualComplete"


def test_send_event_rules_and_wire_override():
    assert one({"op": "send_event", "recordId": STEP, "eventType": "skip"})["eventType"] == "Skip"
    assert_invalid({"op": "send_event", "recordId": STEP, "eventType": "Complete"}, "INVALID_VALUE", "Skip, ManualComplete")
    assert_invalid({"op": "send_event", "recordId": STEP}, "REQUIRED_FIELD_MISSING", "eventType")
    wire = {"eventType": {"ManualComplete": "Manual Complete"}}
    assert one({"op": "send_event", "recordId": STEP, "eventType": "ManualComplete"}, wire=wire)["eventType"] == \
        "Manual Complete"


def test_select_template():
    assert one({"op": "select_template", "stepTrackerId": STEP})[CODE] is None
    assert_invalid({"op": "select_template", "stepTrackerId": TRACKER}, "WRONG_OBJECT", "ActionCadenceStepTracker")


@pytest.mark.parametrize("op,version", [("assign", 45.0), ("pause", 50.0), ("resume", 50.0),
                                        ("change_assignee", 50.0), ("modify_tracker", 51.0),
                                        ("send_event", 52.0), ("select_template", 53.0)])
def test_minimum_api_versions(op, version):
    row = {"op": op, "targetId": LEAD, "salesCadenceNameOrId": "X", "actionCadenceTrackerId": TRACKER,
           "recordId": STEP, "eventType": "Skip", "stepTrackerId": STEP}
    assert one(row, api_version=version)[CODE] is None
    assert_invalid(row, "API_VERSION_TOO_LOW", f"needs API version {version}", api_version=version - 1)


def test_unknown_and_missing_operation():
    assert_invalid({"op": "enroll", "targetId": LEAD}, "UNKNOWN_OPERATION", "'enroll'", "assign, remove")
    assert_invalid({"op": None, "targetId": LEAD}, "MISSING_OPERATION")


def test_mixed_operations_do_not_leak_fields():
    rows = run([
        {"op": "assign", "targetId": LEAD, "salesCadenceNameOrId": "X", "completionDisposition": "nonsense"},
        {"op": "remove", "targetId": LEAD, "completionDisposition": "nonsense"},
    ])
    assert rows[0][CODE] is None  # assign has no completionDisposition: ignored, not sent
    assert rows[1][CODE] == "INVALID_VALUE"
