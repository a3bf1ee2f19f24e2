"""The Salesforce emulator answers as the documentation says (no HTTP: SandboxRequest directly),
and the weekly demo job runs end to end against it in-process."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import anyio
import httpx
import pytest

from batchrunner.job import load_job
from batchrunner.platforms.base import WorkUnit
from batchrunner.platforms.salesforce import responses
from batchrunner.platforms.salesforce.ids import checksum, to18
from batchrunner.platforms.salesforce.responses import RETRYABLE_INPUT_CODES, already_assigned
from batchrunner.runner import prepare, run_prepared
from batchrunner.sandbox.base import SandboxRequest
from batchrunner.sandbox.salesforce import ROLLED_BACK, SalesforceEmulator
from batchrunner.sandbox.seeds import load_seed

REPO = Path(__file__).resolve().parents[1]
AUTH = {"authorization": "Bearer sandbox-token"}
ORG = load_seed("salesforce_org.json")
LEADS = [lead["id"] for lead in ORG["leads"]]
TRACKED = {t["target_id"]: t for t in ORG["trackers"]}
FREE = [lead for lead in LEADS if lead not in TRACKED]
PAUSED = [t["target_id"] for t in ORG["trackers"] if t["state"] == "Paused"]
RUNNING = [t["target_id"] for t in ORG["trackers"] if t["state"] == "Running"]
USERS = [u["id"] for u in ORG["users"]]
CADENCES = {c["name"]: c for c in ORG["cadences"]}
Q4 = CADENCES["Q4 Outbound"]
UNKNOWN_LEAD = to18("00Q5e0000000998")  # a well-formed lead ID the org does not have
ASSIGN = "assignTargetToSalesCadence"
REMOVE = "removeTargetFromSalesCadence"
PAUSE, RESUME = "pauseSalesCadenceTracker", "resumeSalesCadenceTracker"
CHANGE, MODIFY = "changeSalesCadenceTargetAssignee", "modifyCadenceTrackerAttributes"
EVENT, SELECT = "sendSalesCadenceEvent", "selectTemplateForSalesCadenceStepTracker"


def request(method: str, path: str, body: bytes = b"", headers=AUTH, query=()) -> SandboxRequest:
    return SandboxRequest(method, path, list(query), dict(headers), body)


def post(emu: SalesforceEmulator, action: str, *inputs: dict, version: str = "62.0", headers=AUTH):
    return emu.handle(request("POST", f"/services/data/v{version}/actions/standard/{action}",
                              json.dumps({"inputs": list(inputs)}).encode(), headers))


def org(**changes) -> dict:
    seeded = copy.deepcopy(ORG)
    seeded.update(changes)
    return seeded


def error(response, i: int = 0) -> dict:
    return response.body[i]["errors"][0]


def tracker_of(emu: SalesforceEmulator, target: str) -> dict | None:
    return emu._active_tracker(to18(target))


def state(emu: SalesforceEmulator) -> str:
    return json.dumps([emu.trackers, emu.step_trackers, emu.assignments], sort_keys=True, default=str)


# -- the seed ------------------------------------------------------------------------------------
def test_seed_ids_are_valid_18_character_ids() -> None:
    def ids(value):
        if isinstance(value, dict):
            for k, v in value.items():
                if (k == "id" or k.endswith("_id")) and isinstance(v, str):
                    yield v
                yield from ids(v)
        elif isinstance(value, list):
            for v in value:
                yield v if isinstance(v, str) and len(v) == 18 else None
                yield from ids(v)

    found = [i for i in ids(ORG) if i is not None]
    assert len(found) > 60
    assert all(len(i) == 18 and i[15:] == checksum(i[:15]) for i in found)
    assert {i[:3] for i in found} >= {"005", "77C", "00Q", "003", "001", "0qB", "8HF", "00X"}


def test_seed_is_the_org_the_brief_describes() -> None:
    assert len(ORG["users"]) >= 3 and 35 <= len(ORG["leads"]) <= 45 and len(ORG["person_accounts"]) == 3
    assert Q4["state"] == "Active" and len(Q4["steps"]) == 3
    assert sorted(t["split"] for t in Q4["steps"][0]["templates"]) == [30, 70]
    assert CADENCES["Legacy Q2"]["state"] == "Inactive"
    assert {"Webinar Follow-up", "Inbound Nurture"} <= set(CADENCES)
    assert PAUSED and RUNNING and ORG["related_records_enabled"] is False
    names = [c["name"] for c in ORG["cadences"]]
    assert len(names) == len(set(names))  # docs/platforms.md: ActionCadence.Name is unique
    assert len(TRACKED) == len(ORG["trackers"])  # at most one active tracker per target


# -- assign --------------------------------------------------------------------------------------
def test_assign_creates_a_running_tracker_on_the_first_step() -> None:
    emu = SalesforceEmulator()
    ok = post(emu, ASSIGN, {"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[0]})
    assert ok.status == 200
    assert ok.body == [{"actionName": ASSIGN, "isSuccess": True, "errors": None, "outputValues": None}]
    tracker = tracker_of(emu, FREE[0])
    assert tracker["state"] == "Running" and tracker["cadence_id"] == Q4["id"] and tracker["owner_id"] == USERS[0]
    assert tracker["id"].startswith("0qB") and tracker["id"][15:] == checksum(tracker["id"][:15])
    step = emu.step_trackers[tracker["step_tracker_id"]]
    assert step["state"] == "Active" and step["step"] == 0 and step["step_id"] == Q4["steps"][0]["id"]
    assert step["id"].startswith("8HF") and step["id"][15:] == checksum(step["id"][:15])
    assert emu.calls == [(ASSIGN, 1)]


def test_assign_by_id_15_chars_start_step_and_assignee() -> None:
    emu = SalesforceEmulator()
    response = post(emu, ASSIGN,
                    {"salesCadenceNameOrId": Q4["id"][:15], "targetId": FREE[0][:15], "userId": USERS[2],
                     "startStepNameOrId": "Follow-up call"},
                    {"salesCadenceNameOrId": Q4["id"], "targetId": FREE[1], "startStepNameOrId": Q4["steps"][2]["id"]})
    assert response.status == 200 and all(r["isSuccess"] for r in response.body)
    first, second = tracker_of(emu, FREE[0]), tracker_of(emu, FREE[1])
    assert first["owner_id"] == USERS[2] and first["current_step"] == 1
    assert second["current_step"] == 2
    assert emu.calls == [(ASSIGN, 2)]


def test_assign_already_assigned_is_a_per_input_failure_the_client_recognises() -> None:
    emu = SalesforceEmulator()
    assert post(emu, ASSIGN, {"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[0]}).status == 200
    mixed = post(emu, ASSIGN, {"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[1][:15]},
                 {"salesCadenceNameOrId": "Inbound Nurture", "targetId": FREE[0]},
                 {"salesCadenceNameOrId": "Q4 Outbound", "targetId": RUNNING[0]})
    assert mixed.status == 400  # docs/platforms.md: partial failure is HTTP 400 with the per-input array
    assert [r["isSuccess"] for r in mixed.body] == [True, False, False]  # in input order
    assert all(r["actionName"] == ASSIGN for r in mixed.body)
    for entry in mixed.body[1:]:
        assert already_assigned(entry["errors"][0]["message"])  # the client's regex matches
        assert entry["outputValues"] == {"error": entry["errors"][0]["message"]}  # seed doc error sample
    assert emu.assignments == {FREE[0]: 1, to18(FREE[1][:15]): 1}  # partial save: the success stays


@pytest.mark.parametrize("data, code, field", [
    ({"salesCadenceNameOrId": "No Such Cadence", "targetId": FREE[0]}, "UNKNOWN_EXCEPTION", None),
    ({"salesCadenceNameOrId": "Legacy Q2", "targetId": FREE[0]}, "INVALID_INPUT", "salesCadenceNameOrId"),
    ({"salesCadenceNameOrId": "Q4 Outbound", "targetId": UNKNOWN_LEAD}, "INVALID_CROSS_REFERENCE_KEY", "targetId"),
    ({"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[0][:15] + "ZZZ"}, "INVALID_ID_FIELD", "targetId"),
    ({"salesCadenceNameOrId": "Q4 Outbound", "targetId": USERS[1]}, "INVALID_INPUT", "targetId"),
    ({"salesCadenceNameOrId": "Q4 Outbound"}, "REQUIRED_FIELD_MISSING", "targetId"),
    ({"targetId": FREE[0]}, "REQUIRED_FIELD_MISSING", "salesCadenceNameOrId"),
    ({"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[0], "userId": to18("0055e0000000099")},
     "INVALID_CROSS_REFERENCE_KEY", "userId"),
    ({"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[0], "startStepNameOrId": "Step 9"},
     "INVALID_INPUT", "startStepNameOrId"),
    ({"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[0], "relatedToId": ORG["related_records"][0]},
     "INVALID_INPUT", "relatedToId"),
])
def test_assign_errors_change_nothing(data: dict, code: str, field: str | None) -> None:
    emu = SalesforceEmulator()
    before = state(emu)
    response = post(emu, ASSIGN, data)
    assert response.status == 400 and response.body[0]["isSuccess"] is False
    assert error(response)["statusCode"] == code
    assert error(response)["fields"] == ([field] if field else [])
    assert state(emu) == before and emu.assignments == {}


def test_unknown_cadence_answers_the_documented_message() -> None:
    response = post(SalesforceEmulator(), ASSIGN, {"salesCadenceNameOrId": "Nope", "targetId": FREE[0]})
    assert response.body == [{"actionName": ASSIGN, "isSuccess": False,  # seed doc: the error sample
                              "errors": [{"statusCode": "UNKNOWN_EXCEPTION", "fields": [],
                                          "message": "The object needs to be a valid cadence entity."}],
                              "outputValues": {"error": "The object needs to be a valid cadence entity."}}]


def test_related_record_accepted_when_the_org_setting_is_on() -> None:
    emu = SalesforceEmulator(org(related_records_enabled=True))
    opportunity = ORG["related_records"][0]
    assert post(emu, ASSIGN, {"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[0],
                              "relatedToId": opportunity}).status == 200
    assert tracker_of(emu, FREE[0])["related_to"] == opportunity
    missing = post(emu, ASSIGN, {"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[1],
                                 "relatedToId": to18("0065e0000000077")})
    assert error(missing)["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"


# -- remove, pause, resume, change assignee, modify ---------------------------------------------------
def test_remove_by_target_or_tracker() -> None:
    emu = SalesforceEmulator()
    removed = post(emu, REMOVE, {"targetId": RUNNING[0], "completionReasonCode": "ManuallyRemoved",
                                 "completionDisposition": "No Response"},
                   {"actionCadenceTrackerId": TRACKED[PAUSED[0]]["id"], "completionReasonCode": "ManuallyRemoved"})
    assert removed.status == 200
    first = emu.trackers[TRACKED[RUNNING[0]]["id"]]
    assert first["state"] == "Complete" and first["disposition"] == "No Response"
    assert first["completion_reason"] == "ManuallyRemoved"
    assert emu.step_trackers[first["step_tracker_id"]]["state"] != "Active"
    assert tracker_of(emu, RUNNING[0]) is None and tracker_of(emu, PAUSED[0]) is None
    again = post(emu, REMOVE, {"targetId": RUNNING[0], "completionReasonCode": "ManuallyRemoved"})
    assert again.status == 400 and "no active" in error(again)["message"]
    # a removed target can be assigned again
    assert post(emu, ASSIGN, {"salesCadenceNameOrId": "Inbound Nurture", "targetId": RUNNING[0]}).status == 200


@pytest.mark.parametrize("data, code", [
    ({"targetId": RUNNING[0]}, "REQUIRED_FIELD_MISSING"),
    ({"targetId": RUNNING[0], "completionReasonCode": "Bored"}, "INVALID_INPUT"),
    ({"completionReasonCode": "ManuallyRemoved"}, "REQUIRED_FIELD_MISSING"),
    ({"targetId": RUNNING[0], "actionCadenceTrackerId": TRACKED[RUNNING[0]]["id"],
      "completionReasonCode": "ManuallyRemoved"}, "INVALID_INPUT"),
    ({"targetId": RUNNING[0], "completionReasonCode": "ManuallyRemoved", "completionDisposition": "Thrilled"},
     "INVALID_INPUT"),
    ({"actionCadenceTrackerId": to18("0qB5e0000000999"), "completionReasonCode": "ManuallyRemoved"},
     "INVALID_CROSS_REFERENCE_KEY"),
    ({"targetId": FREE[0], "completionReasonCode": "ManuallyRemoved"}, "INVALID_INPUT"),
    # the running user (the first user) owns none of the seeded trackers
    ({"targetId": RUNNING[0], "completionReasonCode": "ManuallyRemoved", "shouldApplyUserContext": True},
     "INVALID_INPUT"),
])
def test_remove_errors(data: dict, code: str) -> None:
    emu = SalesforceEmulator()
    before = state(emu)
    response = post(emu, REMOVE, data)
    assert response.status == 400 and error(response)["statusCode"] == code
    assert state(emu) == before


def test_pause_then_resume() -> None:
    emu = SalesforceEmulator()
    paused = post(emu, PAUSE, {"targetId": RUNNING[0], "resumeTime": "2026-12-01T08:00:00Z"})
    assert paused.status == 200
    assert tracker_of(emu, RUNNING[0])["state"] == "Paused"
    assert tracker_of(emu, RUNNING[0])["resume_time"] == "2026-12-01T08:00:00Z"
    again = post(emu, PAUSE, {"targetId": RUNNING[0]})
    assert again.status == 400 and "already paused" in error(again)["message"]
    assert post(emu, RESUME, {"targetId": RUNNING[0]}).status == 200
    assert tracker_of(emu, RUNNING[0])["state"] == "Running"
    not_paused = post(emu, RESUME, {"targetId": RUNNING[0]})
    assert not_paused.status == 400 and error(not_paused)["statusCode"] == "INVALID_INPUT"
    assert post(emu, RESUME, {"targetId": PAUSED[0][:15]}).status == 200  # 15-character IDs work
    for bad in ({"targetId": FREE[0]}, {"targetId": RUNNING[1], "resumeTime": "2021-06-15T05:30:00:521917Z"},
                {"targetId": UNKNOWN_LEAD}):
        assert post(emu, PAUSE, bad).status == 400
    assert tracker_of(emu, RUNNING[1])["state"] == "Running"


def test_change_assignee() -> None:
    emu = SalesforceEmulator()
    assert post(emu, CHANGE, {"targetId": RUNNING[0], "userId": USERS[3]}).status == 200
    assert tracker_of(emu, RUNNING[0])["owner_id"] == USERS[3]
    assert post(emu, CHANGE, {"targetId": RUNNING[0]}).status == 200  # defaults to the running user
    assert tracker_of(emu, RUNNING[0])["owner_id"] == USERS[0]
    unknown_user = post(emu, CHANGE, {"targetId": RUNNING[0], "userId": to18("0055e0000000099")})
    assert error(unknown_user)["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert error(post(emu, CHANGE, {"targetId": FREE[0], "userId": USERS[1]}))["statusCode"] == "INVALID_INPUT"
    assert tracker_of(emu, RUNNING[0])["owner_id"] == USERS[0]


def test_modify_tracker() -> None:
    emu = SalesforceEmulator()
    tracker = ORG["trackers"][0]["id"]
    ok = post(emu, MODIFY, {"actionCadenceTrackerId": tracker, "completionDisposition": "Customer Engaged"})
    assert ok.status == 200 and emu.trackers[tracker]["disposition"] == "Customer Engaged"
    bad = post(emu, MODIFY, {"actionCadenceTrackerId": tracker, "completionDisposition": "Thrilled"},
               {"actionCadenceTrackerId": to18("0qB5e0000000999")},
               {"actionCadenceTrackerId": tracker, "relatedToId": ORG["related_records"][0],
                "relatedToAttributionType": "Activation"})
    assert bad.status == 400
    assert [e["errors"][0]["statusCode"] for e in bad.body] == ["INVALID_INPUT", "INVALID_CROSS_REFERENCE_KEY",
                                                                "INVALID_INPUT"]
    assert emu.trackers[tracker]["disposition"] == "Customer Engaged"
    enabled = SalesforceEmulator(org(related_records_enabled=True))
    assert post(enabled, MODIFY, {"actionCadenceTrackerId": tracker, "relatedToId": ORG["related_records"][0],
                                  "relatedToAttributionType": "Activation"}).status == 200
    assert enabled.trackers[tracker]["attribution"] == "Activation"
    assert post(enabled, MODIFY, {"actionCadenceTrackerId": tracker,
                                  "relatedToAttributionType": "Sideways"}).status == 400


# -- send event, select template ---------------------------------------------------------------------
def test_send_event_advances_then_completes_the_tracker() -> None:
    emu = SalesforceEmulator()
    target = next(t for t in RUNNING if TRACKED[t]["cadence_id"] == Q4["id"] and TRACKED[t]["current_step"] == 0)
    step = TRACKED[target]["step_tracker_id"]
    assert post(emu, EVENT, {"recordId": step, "eventType": "Manual Complete"}).status == 200  # seed doc sample
    assert emu.step_trackers[step]["state"] == "Complete"
    stale = post(emu, EVENT, {"recordId": step, "eventType": "Skip"})
    assert stale.status == 400 and "active step" in error(stale)["message"]
    second = tracker_of(emu, target)["step_tracker_id"]
    assert second != step and emu.step_trackers[second]["step"] == 1 and emu.step_trackers[second]["state"] == "Active"
    assert post(emu, EVENT, {"recordId": second, "eventType": "Skip"}).status == 200
    assert emu.step_trackers[second]["state"] == "Skipped"
    third = tracker_of(emu, target)["step_tracker_id"]
    assert post(emu, EVENT, {"recordId": third, "eventType": "ManualComplete"}).status == 200
    assert tracker_of(emu, target) is None  # the last step done: the tracker is Complete
    assert emu.trackers[TRACKED[target]["id"]]["state"] == "Complete"


def test_send_event_errors() -> None:
    emu = SalesforceEmulator()
    running_step = TRACKED[RUNNING[0]]["step_tracker_id"]
    paused_step = TRACKED[PAUSED[0]]["step_tracker_id"]
    before = state(emu)
    response = post(emu, EVENT, {"recordId": running_step, "eventType": "Pause"},
                    {"recordId": paused_step, "eventType": "Skip"},
                    {"recordId": to18("8HF5e0000000999"), "eventType": "Skip"},
                    {"recordId": running_step})
    assert response.status == 400
    assert [e["errors"][0]["statusCode"] for e in response.body] == [
        "INVALID_INPUT", "INVALID_INPUT", "INVALID_CROSS_REFERENCE_KEY", "REQUIRED_FIELD_MISSING"]
    assert state(emu) == before


def test_select_template_answers_the_documented_output_and_is_stable() -> None:
    emu = SalesforceEmulator()
    steps = [t["step_tracker_id"] for t in ORG["trackers"]]
    first = post(emu, SELECT, *({"stepTrackerId": s} for s in steps))
    again = post(SalesforceEmulator(), SELECT, *({"stepTrackerId": s} for s in steps))
    assert [r["outputValues"] for r in first.body] == [r["outputValues"] for r in again.body]  # deterministic
    assert post(emu, SELECT, {"stepTrackerId": steps[0]}).body[0]["outputValues"] == first.body[0]["outputValues"]
    for tracker, entry in zip(ORG["trackers"], first.body, strict=True):
        cadence = next(c for c in ORG["cadences"] if c["id"] == tracker["cadence_id"])
        templates = {t["id"]: t["split"] for t in cadence["steps"][tracker["current_step"]]["templates"]}
        if templates:
            output = entry["outputValues"]["output"]  # seed doc: outputValues.output
            assert entry["isSuccess"] is True and set(output) == {"TemplateId", "SplitPercentage"}
            assert templates[output["TemplateId"]] == output["SplitPercentage"]
        else:  # seed doc: the failure sample, word for word
            assert entry["isSuccess"] is False and entry["outputValues"] == {"error": "No template was found."}
            assert entry["errors"] == [{"statusCode": "UNKNOWN_EXCEPTION", "message": "No template was found.",
                                        "fields": []}]
    assert first.status == 400  # the seed has one step tracker on a step without template
    missing = post(emu, SELECT, {"stepTrackerId": to18("8HF5e0000000777")})
    assert error(missing)["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"


def test_select_template_splits_between_both_templates() -> None:
    emu = SalesforceEmulator()
    for lead in FREE[:20]:
        assert post(emu, ASSIGN, {"salesCadenceNameOrId": "Q4 Outbound", "targetId": lead}).status == 200
    steps = [tracker_of(emu, lead)["step_tracker_id"] for lead in FREE[:20]]
    chosen = post(emu, SELECT, *({"stepTrackerId": s} for s in steps))
    splits = {r["outputValues"]["output"]["SplitPercentage"] for r in chosen.body}
    assert splits == {70.0, 30.0}


def test_the_client_reads_select_template_output() -> None:
    response = post(SalesforceEmulator(), SELECT, {"stepTrackerId": ORG["trackers"][0]["step_tracker_id"]})
    verdict = responses.interpret(WorkUnit("select_template", [0]),
                                  httpx.Response(response.status, json=response.body, headers=response.headers))
    assert set(verdict.outcomes[0].result) == {"TemplateId", "SplitPercentage"}


# -- all-or-none, locks --------------------------------------------------------------------------------
def test_all_or_none_rolls_back_and_the_client_retries_the_innocent_inputs() -> None:
    emu = SalesforceEmulator(partial_save_allowed=False)
    before = state(emu)
    response = post(emu, ASSIGN, {"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[0]},
                    {"salesCadenceNameOrId": "Nope", "targetId": FREE[1]},
                    {"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[2]})
    assert response.status == 400
    codes = [r["errors"][0]["statusCode"] for r in response.body]
    assert codes == [ROLLED_BACK, "UNKNOWN_EXCEPTION", ROLLED_BACK] and not any(r["isSuccess"] for r in response.body)
    assert state(emu) == before and emu.assignments == {}
    assert ROLLED_BACK in RETRYABLE_INPUT_CODES
    verdict = responses.interpret(WorkUnit("assign", [0, 1, 2]),
                                  httpx.Response(400, json=response.body, headers=response.headers))
    assert verdict.retry == [0, 2] and [o.code for o in verdict.outcomes] == ["UNKNOWN_EXCEPTION"]
    retry = post(emu, ASSIGN, {"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[0]},
                 {"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[2]})
    assert retry.status == 200 and emu.assignments == {FREE[0]: 1, FREE[2]: 1}


def test_all_or_none_all_succeeding_saves() -> None:
    emu = SalesforceEmulator(partial_save_allowed=False)
    assert post(emu, PAUSE, {"targetId": RUNNING[0]}, {"targetId": RUNNING[1]}).status == 200
    assert tracker_of(emu, RUNNING[0])["state"] == tracker_of(emu, RUNNING[1])["state"] == "Paused"


def test_locked_row_fails_once_then_succeeds() -> None:
    emu = SalesforceEmulator(org(locked_targets=[FREE[0], RUNNING[0]]))
    data = {"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[0]}
    first = post(emu, ASSIGN, data, {"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[1]})
    assert first.status == 400 and error(first)["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert first.body[1]["isSuccess"] is True
    assert "UNABLE_TO_LOCK_ROW" in RETRYABLE_INPUT_CODES
    assert post(emu, ASSIGN, data).status == 200
    # the lock applies to any action on the target; here reached through its tracker id
    locked = post(emu, MODIFY, {"actionCadenceTrackerId": TRACKED[RUNNING[0]]["id"],
                                "completionDisposition": "Success"})
    assert error(locked)["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert post(emu, MODIFY, {"actionCadenceTrackerId": TRACKED[RUNNING[0]]["id"]}).status == 200


def test_locked_row_in_an_all_or_none_call_clears_for_the_retry() -> None:
    emu = SalesforceEmulator(org(locked_targets=[RUNNING[0]]), partial_save_allowed=False)
    first = post(emu, PAUSE, {"targetId": RUNNING[0]}, {"targetId": RUNNING[1]})
    assert [e["errors"][0]["statusCode"] for e in first.body] == ["UNABLE_TO_LOCK_ROW", ROLLED_BACK]
    assert tracker_of(emu, RUNNING[1])["state"] == "Running"
    assert post(emu, PAUSE, {"targetId": RUNNING[0]}, {"targetId": RUNNING[1]}).status == 200


# -- request-level answers --------------------------------------------------------------------------
def test_versions_need_no_auth_and_cost_nothing() -> None:
    emu = SalesforceEmulator()
    response = emu.handle(request("GET", "/services/data/", headers={}))
    assert response.status == 200 and "62.0" in [v["version"] for v in response.body]
    assert emu.api_used == 0


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer wrong"}, {"authorization": "sandbox-token"}])
def test_bad_token_is_401_and_changes_nothing(headers: dict) -> None:
    emu = SalesforceEmulator()
    before = state(emu)
    response = post(emu, ASSIGN, {"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[0]}, headers=headers)
    assert response.status == 401
    assert response.body == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    assert response.headers["Sforce-Limit-Info"] == "api-usage=0/15000"
    assert state(emu) == before and emu.api_used == 0 and emu.calls == []


def test_unknown_action_and_low_version_are_404() -> None:
    emu = SalesforceEmulator()
    unknown = post(emu, "assignTargetToSomething", {})
    assert unknown.status == 404
    assert unknown.body == [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
    for action, low, ok in ((SELECT, "52.0", "53.0"), (EVENT, "51.0", "52.0"), (MODIFY, "50.0", "51.0"),
                            (PAUSE, "49.0", "50.0"), (ASSIGN, "44.0", "45.0")):
        assert post(emu, action, {}, version=low).status == 404
        assert post(emu, action, {}, version=ok).status == 400  # reaches the action: a per-input error
    assert emu.calls == [(SELECT, 1), (EVENT, 1), (MODIFY, 1), (PAUSE, 1), (ASSIGN, 1)]


def test_limit_info_counts_and_the_spent_allocation_is_403() -> None:
    emu = SalesforceEmulator(api_limit=5, api_used=2)
    first = post(emu, PAUSE, {"targetId": RUNNING[0]})
    assert first.headers["Sforce-Limit-Info"] == "api-usage=3/5"
    not_found = post(emu, "noSuchAction", {})
    assert not_found.headers["Sforce-Limit-Info"] == "api-usage=4/5"
    limits = emu.handle(request("GET", "/services/data/v62.0/limits"))
    assert limits.body == {"DailyApiRequests": {"Max": 5, "Remaining": 0}}
    assert limits.headers["Sforce-Limit-Info"] == "api-usage=5/5"
    before = state(emu)
    spent = post(emu, RESUME, {"targetId": RUNNING[0]})
    assert spent.status == 403
    assert spent.body == [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}]
    assert spent.headers["Sforce-Limit-Info"] == "api-usage=5/5"
    assert state(emu) == before and tracker_of(emu, RUNNING[0])["state"] == "Paused"
    assert emu.calls == [(PAUSE, 1)]
    verdict = responses.interpret(WorkUnit("resume", [0]), httpx.Response(403, json=spent.body, headers=spent.headers))
    assert verdict.stop is not None and verdict.stop[0] == "API_LIMIT_REACHED"


@pytest.mark.parametrize("body, code", [(b"{not json", "JSON_PARSER_ERROR"), (b"[1,2]", "INVALID_INPUT"),
                                        (b'{"inputs": {"targetId": "x"}}', "INVALID_INPUT"),
                                        (b'{"inputs": [1]}', "INVALID_INPUT"), (b"", "INVALID_INPUT")])
def test_malformed_body_is_a_request_level_400(body: bytes, code: str) -> None:
    emu = SalesforceEmulator()
    response = emu.handle(request("POST", f"/services/data/v62.0/actions/standard/{PAUSE}", body))
    assert response.status == 400 and response.body[0]["errorCode"] == code and "message" in response.body[0]
    assert "isSuccess" not in response.body[0] and emu.calls == []
    assert response.headers["Sforce-Limit-Info"] == "api-usage=1/15000"


def test_describe_lists_inputs() -> None:
    emu = SalesforceEmulator()
    described = emu.handle(request("GET", f"/services/data/v62.0/actions/standard/{REMOVE}"))
    assert described.status == 200
    inputs = {i["name"]: i for i in described.body["inputs"]}
    assert inputs["completionReasonCode"]["required"] is True
    assert [p["value"] for p in inputs["completionReasonCode"]["picklistValues"]] == ["ManuallyRemoved"]
    assert len(inputs["completionDisposition"]["picklistValues"]) == 9
    assert inputs["targetId"]["type"] == "ID" and inputs["targetId"]["required"] is False
    head = emu.handle(request("HEAD", f"/services/data/v62.0/actions/standard/{ASSIGN}"))
    assert head.status == 200 and head.body is None
    assert emu.handle(request("GET", f"/services/data/v52.0/actions/standard/{SELECT}")).status == 404
    assert emu.handle(request("DELETE", f"/services/data/v62.0/actions/standard/{ASSIGN}")).status == 405


def test_query_subset() -> None:
    emu = SalesforceEmulator()
    assert post(emu, ASSIGN, {"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[0]}).status == 200
    soql = (f"SELECT Id, ActionCadenceId, IsTrackerActive, CurrentStepId FROM ActionCadenceTracker "
            f"WHERE TargetId = '{FREE[0][:15]}' AND IsTrackerActive = true")
    found = emu.handle(request("GET", "/services/data/v62.0/query", query=[("q", soql)]))
    assert found.status == 200 and found.body["totalSize"] == 1
    record = found.body["records"][0]
    assert record["ActionCadenceId"] == Q4["id"] and record["CurrentStepId"] == Q4["steps"][0]["id"]
    names = emu.handle(request("GET", "/services/data/v62.0/query",
                               query=[("q", "SELECT Name FROM ActionCadence WHERE State = 'Active'")]))
    assert sorted(r["Name"] for r in names.body["records"]) == ["Inbound Nurture", "Q4 Outbound", "Webinar Follow-up"]
    bad = emu.handle(request("GET", "/services/data/v62.0/query", query=[("q", "SELECT Nope FROM ActionCadence")]))
    assert bad.status == 400 and bad.body[0]["errorCode"] == "INVALID_FIELD"


def test_query_of_active_trackers_with_cadence_name_and_created_date() -> None:
    # the read reconciliation makes (docs/reconciliation.md): a relationship field comes back nested
    # under its relationship, CreatedDate in the REST dateTime form, stamped by the org's clock
    emu = SalesforceEmulator(clock=lambda: 1_795_000_000.25)
    assert post(emu, ASSIGN, {"salesCadenceNameOrId": "Q4 Outbound", "targetId": FREE[0]}).status == 200
    seeded = "00Q5e0000000031EAA"  # on Q4 Outbound in the seed
    targets = ", ".join(f"'{t}'" for t in (FREE[0], seeded, FREE[1]))
    soql = ("SELECT Id, TargetId, ActionCadenceId, ActionCadence.Name, State, CreatedDate FROM ActionCadenceTracker "
            f"WHERE TargetId IN ({targets}) AND State IN ('Running', 'Paused')")
    found = emu.handle(request("GET", "/services/data/v62.0/query", query=[("q", soql)]))
    assert found.status == 200, found.body
    by_target = {r["TargetId"]: r for r in found.body["records"]}
    assert set(by_target) == {FREE[0], seeded}  # FREE[1] has no tracker
    mine = by_target[FREE[0]]
    assert mine["ActionCadence"] == {"attributes": {"type": "ActionCadence"}, "Name": "Q4 Outbound"}
    assert mine["CreatedDate"] == "2026-11-18T11:06:40.250+0000" and mine["State"] == "Running"
    assert by_target[seeded]["CreatedDate"] == "2024-01-01T00:00:00.000+0000"  # the seed's: long before
    by_name = emu.handle(request("GET", "/services/data/v62.0/query", query=[(
        "q", "SELECT Id FROM ActionCadenceTracker WHERE ActionCadence.Name = 'Q4 Outbound' AND State = 'Running'")]))
    assert {emu.trackers[r["Id"]]["target_id"] for r in by_name.body["records"]} >= {FREE[0], seeded}


# -- end to end: the weekly demo job in-process -------------------------------------------------------
def test_weekly_assign_demo_end_to_end(tmp_path: Path) -> None:
    job = load_job(REPO / "jobs" / "salesforce-weekly-assign.toml")
    prepared = prepare(job)
    result = anyio.run(lambda: run_prepared(prepared, output_dir=tmp_path, progress=False))
    assert result.run_dir.parent == tmp_path and result.exit_code == 1  # failed and invalid rows on purpose
    with (REPO / "sample_data" / "salesforce_weekly_leads.csv").open(newline="", encoding="utf-8") as f:
        source = list(csv.DictReader(f))
    with (result.run_dir / "results.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(source) and [r["Lead Id"] for r in rows] == [r["Lead Id"] for r in source]
    by_status: dict[str, list[dict]] = {}
    for row in rows:
        by_status.setdefault(row["_status"], []).append(row)
    assert set(by_status) == {"succeeded", "failed", "invalid", "skipped"}
    assert len(by_status["failed"]) == 1 and len(by_status["invalid"]) == 3 and len(by_status["skipped"]) == 2
    assert len(by_status["succeeded"]) == len(source) - 6
    failed = {r["Lead Id"]: r for r in by_status["failed"]}
    assert {r["_error_code"] for r in failed.values()} == {"INVALID_CROSS_REFERENCE_KEY"}
    assert {r["_error_code"] for r in by_status["invalid"]} == {"INVALID_ID", "WRONG_OBJECT", "REQUIRED_FIELD_MISSING"}
    # a lead already on the very cadence requested is skipped, as Salesloft reports it (issue 14 item 6)
    assert {r["_error_code"] for r in by_status["skipped"]} == {"DUPLICATE_ROW", "ALREADY_ON_CADENCE"}
    summary = json.loads((result.run_dir / "summary.json").read_text())
    # the action, then the tracker read of the already-assigned lead (both counted as sent), and the one
    # SOQL query that looked up the cadence constant before the run (constants.py): the org counts all three
    assert summary["target"] == "sandbox" and summary["api_usage"]["used"] == summary["requests_sent"] + 1 == 3
