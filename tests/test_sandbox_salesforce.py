"""The Salesforce emulator answers as the documentation says (no HTTP: SandboxRequest directly)."""

from __future__ import annotations

import json

import pytest

from batchrunner.platforms.salesforce.ids import checksum, to18
from batchrunner.platforms.salesforce.responses import already_assigned
from batchrunner.sandbox.base import SandboxRequest
from batchrunner.sandbox.salesforce import SalesforceEmulator
from batchrunner.sandbox.seeds import load_seed

AUTH = {"authorization": "Bearer sandbox-token"}
ORG = load_seed("salesforce_org.json")
LEADS = [lead["id"] for lead in ORG["leads"]]
TRACKED = {t["target_id"]: t for t in ORG["trackers"]}
FREE = [lead for lead in LEADS if lead not in TRACKED]
PAUSED = [t["target_id"] for t in ORG["trackers"] if t["state"] == "Paused"]
RUNNING = [t["target_id"] for t in ORG["trackers"] if t["state"] == "Running"]


def post(emu: SalesforceEmulator, action: str, *inputs: dict, version: str = "62.0", headers=AUTH):
    request = SandboxRequest("POST", f"/services/data/v{version}/actions/standard/{action}", [], dict(headers),
                             json.dumps({"inputs": list(inputs)}).encode())
    return emu.handle(request)


def test_seed_ids_are_valid_18_character_ids() -> None:
    def ids(value):
        if isinstance(value, dict):
            for k, v in value.items():
                if k == "id" or k.endswith("_id"):
                    if isinstance(v, str):
                        yield v
                yield from ids(v)
        elif isinstance(value, list):
            for v in value:
                yield from ids(v)

    found = list(ids(ORG))
    assert len(found) > 60
    assert all(len(i) == 18 and i[15:] == checksum(i[:15]) for i in found)


def test_assign_succeeds_then_already_assigned_per_input_with_400() -> None:
    emu = SalesforceEmulator()
    ok = post(emu, "assignTargetToSalesCadence", {"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[0]})
    assert ok.status == 200 and ok.body[0]["isSuccess"] is True
    mixed = post(emu, "assignTargetToSalesCadence",
                 {"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[1][:15]},
                 {"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[0]})
    assert mixed.status == 400  # API-FACTS: partial failure is HTTP 400 with the per-input array
    assert [r["isSuccess"] for r in mixed.body] == [True, False]
    assert already_assigned(mixed.body[1]["errors"][0]["message"])  # the client recognises it
    assert emu.assignments == {FREE[0]: 1, to18(FREE[1][:15]): 1}


@pytest.mark.parametrize("data, code", [
    ({"salesCadenceNameOrId": "No Such Cadence", "targetId": FREE[0]}, "INVALID_INPUT"),
    ({"salesCadenceNameOrId": "Legacy Q2", "targetId": FREE[0]}, "INVALID_INPUT"),
    ({"salesCadenceNameOrId": "Q4 Outbound", "targetId": to18("00Q5e0000000998")}, "INVALID_CROSS_REFERENCE_KEY"),
    ({"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[0], "userId": to18("0055e0000000099")},
     "INVALID_CROSS_REFERENCE_KEY"),
    ({"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[0], "relatedToId": to18("0065e0000000001")},
     "INVALID_INPUT"),
])
def test_assign_errors(data: dict, code: str) -> None:
    emu = SalesforceEmulator()
    response = post(emu, "assignTargetToSalesCadence", data)
    assert response.status == 400 and response.body[0]["errors"][0]["statusCode"] == code
    assert emu.assignments == {}


def test_pause_resume_remove_change_assignee() -> None:
    emu = SalesforceEmulator()
    assert post(emu, "pauseSalesCadenceTracker", {"targetId": RUNNING[0], "resumeTime": "2026-12-01T08:00:00Z"}).status == 200
    assert post(emu, "pauseSalesCadenceTracker", {"targetId": RUNNING[0]}).status == 400  # already paused
    assert post(emu, "resumeSalesCadenceTracker", {"targetId": RUNNING[0]}).status == 200
    assert post(emu, "resumeSalesCadenceTracker", {"targetId": RUNNING[0]}).status == 400  # not paused
    user = ORG["users"][2]["id"]
    assert post(emu, "changeSalesCadenceTargetAssignee", {"targetId": RUNNING[0], "userId": user}).status == 200
    assert emu._active_tracker(RUNNING[0])["owner_id"] == user
    removed = post(emu, "removeTargetFromSalesCadence", {"targetId": RUNNING[0], "completionReasonCode":
                                                         "ManuallyRemoved", "completionDisposition": "No Response"})
    assert removed.status == 200 and emu._active_tracker(RUNNING[0]) is None
    again = post(emu, "removeTargetFromSalesCadence", {"targetId": RUNNING[0], "completionReasonCode": "ManuallyRemoved"})
    assert again.status == 400 and "no active" in again.body[0]["errors"][0]["message"]
    both = post(emu, "removeTargetFromSalesCadence", {"targetId": PAUSED[0], "actionCadenceTrackerId":
                                                      TRACKED[PAUSED[0]]["id"], "completionReasonCode": "ManuallyRemoved"})
    assert both.status == 400  # exactly one of targetId / actionCadenceTrackerId


def test_send_event_advances_and_select_template_answers() -> None:
    emu = SalesforceEmulator()
    tracker = TRACKED[RUNNING[0]]
    step = tracker["step_tracker_id"]
    chosen = post(emu, "selectTemplateForSalesCadenceStepTracker", {"stepTrackerId": step})
    assert chosen.status == 200 and set(chosen.body[0]["outputValues"]) == {"TemplateId", "SplitPercentage"}
    assert post(emu, "sendSalesCadenceEvent", {"recordId": step, "eventType": "Manual Complete"}).status == 200
    assert post(emu, "sendSalesCadenceEvent", {"recordId": step, "eventType": "Skip"}).status == 400  # not active now
    current = emu._active_tracker(RUNNING[0])["step_tracker_id"]
    assert current != step
    assert post(emu, "sendSalesCadenceEvent", {"recordId": current, "eventType": "Pause"}).status == 400


def test_modify_tracker() -> None:
    emu = SalesforceEmulator()
    tracker = ORG["trackers"][0]["id"]
    assert post(emu, "modifyCadenceTrackerAttributes", {"actionCadenceTrackerId": tracker,
                                                        "completionDisposition": "Customer Engaged"}).status == 200
    assert emu.trackers[tracker]["disposition"] == "Customer Engaged"
    bad = post(emu, "modifyCadenceTrackerAttributes", {"actionCadenceTrackerId": tracker,
                                                       "completionDisposition": "Thrilled"})
    assert bad.status == 400


def test_all_or_none_rolls_back_and_marks_retryable() -> None:
    emu = SalesforceEmulator(partial_save_allowed=False)
    response = post(emu, "assignTargetToSalesCadence", {"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[0]},
                    {"salesCadenceNameOrId": "Nope", "targetId": FREE[1]})
    assert response.status == 400
    assert response.body[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert emu.assignments == {} and emu._active_tracker(FREE[0]) is None


def test_request_level_answers_and_limit_info() -> None:
    emu = SalesforceEmulator(api_limit=3)
    assert post(emu, "assignTargetToSalesCadence", {}, headers={"authorization": "Bearer wrong"}).status == 401
    unknown = post(emu, "assignTargetToSomething", {})
    assert unknown.status == 404 and unknown.body[0]["errorCode"] == "NOT_FOUND"
    low = post(emu, "selectTemplateForSalesCadenceStepTracker", {"stepTrackerId": "x"}, version="52.0")
    assert low.status == 404  # the action exists from API 53.0
    last = post(emu, "resumeSalesCadenceTracker", {"targetId": PAUSED[0]})
    assert last.headers["Sforce-Limit-Info"] == "api-usage=3/3"
    spent = post(emu, "resumeSalesCadenceTracker", {"targetId": PAUSED[1]})
    assert spent.status == 403 and spent.body[0]["message"] == "TotalRequests Limit exceeded."
    garbage = SalesforceEmulator().handle(SandboxRequest("POST", "/services/data/v62.0/actions/standard/"
                                                         "pauseSalesCadenceTracker", [], AUTH, b"[1,2]"))
    assert garbage.status == 400 and garbage.body[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_locked_row_fails_once() -> None:
    org = json.loads(json.dumps(ORG))
    org["locked_targets"] = [FREE[0]]
    emu = SalesforceEmulator(org)
    data = {"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[0]}
    assert post(emu, "assignTargetToSalesCadence", data).body[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert post(emu, "assignTargetToSalesCadence", data).status == 200
