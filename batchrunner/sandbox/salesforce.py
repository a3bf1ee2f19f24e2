"""Emulator of the Salesforce Sales Engagement invocable actions (and the little around them).

Sources, cited beside each rule: "seed" = salesforce-sales-engagement-actions.txt (fields, required
rules, what each action does), "API-FACTS" = API-FACTS.md (HTTP 400 with the per-input array,
request-level error shapes, Sforce-Limit-Info, limits). Where both are silent the emulator makes a
"sandbox choice", marked so; exact per-input statusCode strings are sandbox choices in the
platform's style (the docs give the shape, not a list of codes).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from batchrunner.platforms.salesforce.ids import to18
from batchrunner.sandbox.base import SandboxRequest, SandboxResponse
from batchrunner.sandbox.seeds import load_seed

TOKEN = "sandbox-token"
# API-FACTS: action name -> minimum API version
MIN_VERSION = {
    "assignTargetToSalesCadence": 45.0,
    "removeTargetFromSalesCadence": 45.0,
    "pauseSalesCadenceTracker": 50.0,
    "resumeSalesCadenceTracker": 50.0,
    "changeSalesCadenceTargetAssignee": 50.0,
    "modifyCadenceTrackerAttributes": 51.0,
    "sendSalesCadenceEvent": 52.0,
    "selectTemplateForSalesCadenceStepTracker": 53.0,
}
VERSIONS = ("45.0", "50.0", "51.0", "52.0", "53.0", "58.0", "60.0", "62.0")
_ACTION_URL = re.compile(r"^/services/data/v(\d+\.\d)/actions/standard/([A-Za-z]+)$")
_LIMITS_URL = re.compile(r"^/services/data/v(\d+\.\d)/limits/?$")
DISPOSITIONS = {"Success", "Customer Engaged", "Customer Connected", "Contact Later", "No Response",
                "Not Interested", "Disqualified", "Bad Data", "Duplicate"}  # seed: completionDisposition values
ATTRIBUTION = {"Activation", "Maturation", "Collected"}  # seed: relatedToAttributionType values
NOT_FOUND = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]  # API-FACTS
ROLLED_BACK = "ALL_OR_NONE_OPERATION_ROLLED_BACK"  # sandbox choice (the client retries it)


class InputError(Exception):
    def __init__(self, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.fields = code, message, fields or []


def _id(value: Any) -> str | None:
    """An input ID as the org stores it (18 characters); None when it cannot be one."""
    if not isinstance(value, str) or len(value) not in (15, 18) or not value.isalnum():
        return None
    try:
        return to18(value)
    except ValueError:
        return None


class SalesforceEmulator:
    prefixes = ("/services/",)

    def __init__(self, org: dict[str, Any] | None = None, *, token: str = TOKEN, api_limit: int = 15000,
                 api_used: int = 0, partial_save_allowed: bool = True) -> None:
        seed = copy.deepcopy(org if org is not None else load_seed("salesforce_org.json"))
        self.token = token
        self.api_limit = api_limit
        self.api_used = api_used
        self.partial_save_allowed = partial_save_allowed  # API-FACTS: InvocableActionSettings.isPartialSaveAllowed
        self.related_records_enabled = bool(seed.get("related_records_enabled", False))
        self.users = {to18(u["id"]): u for u in seed.get("users", [])}
        self.running_user = next(iter(self.users)) if self.users else None
        self.cadences = {to18(c["id"]): c for c in seed.get("cadences", [])}
        self.targets: dict[str, dict[str, Any]] = {}
        for kind in ("leads", "contacts", "person_accounts"):
            for record in seed.get(kind, []):
                self.targets[to18(record["id"])] = record
        self.related = {to18(r) for r in seed.get("related_records", [])}
        self.trackers: dict[str, dict[str, Any]] = {}
        self.by_target: dict[str, list[str]] = {}
        self.step_trackers: dict[str, dict[str, Any]] = {}
        self._serial = 0
        for tracker in seed.get("trackers", []):
            tracker = dict(tracker)
            tracker["id"] = to18(tracker["id"])
            self._add_tracker(tracker)
            self._open_step(tracker, tracker.get("current_step", 0), tracker.get("step_tracker_id"))
        self.locked_targets = {to18(t) for t in seed.get("locked_targets", [])}
        self.calls: list[tuple[str, int]] = []  # (action, inputs) per actions POST
        self.assignments: dict[str, int] = {}  # target -> trackers created by assign (crash tests)

    # -- ids and state helpers ----------------------------------------------------------------
    def _new_id(self, prefix: str) -> str:
        self._serial += 1
        return to18(f"{prefix}9Z{self._serial:010d}")

    def _open_step(self, tracker: dict[str, Any], step: int, step_tracker_id: str | None = None) -> None:
        """Make ``step`` the tracker's active step: a new step tracker in state Active (seed:
        ActionCadenceStepTracker, State = 'Active' for the current step)."""
        self._close_steps(tracker)
        tracker["current_step"] = step
        sid = to18(step_tracker_id) if step_tracker_id else self._new_id("8HF")
        self.step_trackers[sid] = {"id": sid, "tracker_id": tracker["id"], "target_id": tracker["target_id"],
                                   "step": step, "state": "Active"}
        tracker["step_tracker_id"] = sid

    def _active_tracker(self, target_id: str) -> dict[str, Any] | None:
        # API-FACTS: a target has at most one active tracker
        for tracker_id in reversed(self.by_target.get(target_id, [])):
            tracker = self.trackers.get(tracker_id)
            if tracker is not None and tracker["state"] in ("Running", "Paused"):
                return tracker
        return None

    def _add_tracker(self, tracker: dict[str, Any]) -> None:
        self.trackers[tracker["id"]] = tracker
        self.by_target.setdefault(tracker["target_id"], []).append(tracker["id"])

    def _cadence(self, name_or_id: Any) -> dict[str, Any]:
        # seed: salesCadenceNameOrId is the cadence's name or ID
        key = _id(name_or_id)
        if key and key in self.cadences:
            return self.cadences[key]
        for cadence in self.cadences.values():
            if cadence["name"] == name_or_id:
                return cadence
        raise InputError("INVALID_INPUT", f"Sales cadence not found: {name_or_id}", ["salesCadenceNameOrId"])

    def _target(self, value: Any, field: str = "targetId") -> str:
        target = _id(value)
        if target is None:
            raise InputError("INVALID_ID_FIELD", f"invalid ID for {field}: {value}", [field])
        if target not in self.targets:
            raise InputError("INVALID_CROSS_REFERENCE_KEY", f"{field} {value} does not exist or you can't see it", [field])
        return target

    def _user(self, value: Any) -> str:
        user = _id(value)
        if user is None or user not in self.users:
            raise InputError("INVALID_CROSS_REFERENCE_KEY", f"User not found or inactive: {value}", ["userId"])
        return user

    def _related(self, data: dict[str, Any]) -> dict[str, Any]:
        related, attribution = data.get("relatedToId"), data.get("relatedToAttributionType")
        if related is None and attribution is None:
            return {}
        # API-FACTS: related records work only when the org has the matching setup turned on
        if not self.related_records_enabled:
            raise InputError("INVALID_INPUT", "Related record attribution isn't enabled in this org", ["relatedToId"])
        if attribution is not None and attribution not in ATTRIBUTION:
            raise InputError("INVALID_INPUT", f"bad relatedToAttributionType: {attribution}", ["relatedToAttributionType"])
        if related is not None and _id(related) not in self.related:
            raise InputError("INVALID_CROSS_REFERENCE_KEY", f"related record not found: {related}", ["relatedToId"])
        return {"related_to": _id(related) if related else None, "attribution": attribution}

    def _tracker_for(self, data: dict[str, Any], what: str) -> dict[str, Any]:
        target = self._target(data.get("targetId"))
        tracker = self._active_tracker(target)
        if tracker is None:
            raise InputError("INVALID_INPUT", f"{data.get('targetId')} has no active sales cadence tracker to {what}",
                             ["targetId"])
        return tracker

    # -- the eight actions (seed: one section each) ----------------------------------------------
    def assign(self, data: dict[str, Any]) -> dict[str, Any] | None:
        if not data.get("salesCadenceNameOrId") or not data.get("targetId"):  # seed: both required
            raise InputError("REQUIRED_FIELD_MISSING", "salesCadenceNameOrId and targetId are required",
                             ["salesCadenceNameOrId", "targetId"])
        cadence = self._cadence(data["salesCadenceNameOrId"])
        if cadence.get("state", "Active") != "Active":
            raise InputError("INVALID_INPUT", f"Sales cadence {cadence['name']} isn't active", ["salesCadenceNameOrId"])
        target = self._target(data["targetId"])
        if target in self.locked_targets:  # sandbox choice: a seeded lock, once, to exercise retries
            self.locked_targets.discard(target)
            raise InputError("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")
        current = self._active_tracker(target)
        if current is not None:
            raise InputError("INVALID_INPUT", f"Target {data['targetId']} is already assigned to a sales cadence "
                             f"({self.cadences.get(current['cadence_id'], {}).get('name', current['cadence_id'])})",
                             ["targetId"])
        owner = self._user(data["userId"]) if data.get("userId") else self.running_user  # seed: defaults to running user
        steps = cadence.get("steps", [])
        start = 0
        if data.get("startStepNameOrId"):
            names = [s.get("name") for s in steps]
            ids = [to18(s["id"]) if s.get("id") else None for s in steps]
            wanted = data["startStepNameOrId"]
            if wanted in names:
                start = names.index(wanted)
            elif _id(wanted) in ids:
                start = ids.index(_id(wanted))
            else:
                raise InputError("INVALID_INPUT", f"step not found in {cadence['name']}: {wanted}", ["startStepNameOrId"])
        extra = self._related(data)
        tracker = {"id": self._new_id("0qB"), "target_id": target, "cadence_id": to18(cadence["id"]),
                   "owner_id": owner, "state": "Running", **extra}
        self._add_tracker(tracker)
        self._open_step(tracker, start)
        self.assignments[target] = self.assignments.get(target, 0) + 1
        return None  # seed: assign has no output values

    def remove(self, data: dict[str, Any]) -> None:
        given = [k for k in ("targetId", "actionCadenceTrackerId") if data.get(k)]
        if len(given) != 1:  # API-FACTS: exactly one of targetId / actionCadenceTrackerId
            raise InputError("INVALID_INPUT", "give exactly one of targetId or actionCadenceTrackerId", given)
        if data.get("completionReasonCode") != "ManuallyRemoved":  # seed: the only valid value
            raise InputError("INVALID_INPUT", f"bad completionReasonCode: {data.get('completionReasonCode')}",
                             ["completionReasonCode"])
        disposition = data.get("completionDisposition")
        if disposition is not None and disposition not in DISPOSITIONS:
            raise InputError("INVALID_INPUT", f"bad completionDisposition: {disposition}", ["completionDisposition"])
        if given == ["targetId"]:
            tracker = self._tracker_for(data, "remove")
        else:
            tracker = self.trackers.get(_id(data["actionCadenceTrackerId"]) or "")
            if tracker is None or tracker["state"] not in ("Running", "Paused"):
                raise InputError("INVALID_INPUT", f"no active tracker {data['actionCadenceTrackerId']}",
                                 ["actionCadenceTrackerId"])
        extra = self._related(data)
        tracker.update(state="Complete", completion_reason="ManuallyRemoved", disposition=disposition, **extra)
        self._close_steps(tracker)

    def _close_steps(self, tracker: dict[str, Any]) -> None:
        step = self.step_trackers.get(tracker.get("step_tracker_id") or "")
        if step is not None and step["state"] == "Active":
            step["state"] = "Complete"

    def pause(self, data: dict[str, Any]) -> None:
        tracker = self._tracker_for(data, "pause")
        if tracker["state"] == "Paused":
            raise InputError("INVALID_INPUT", f"{data['targetId']} is already paused", ["targetId"])
        resume = data.get("resumeTime")
        if resume is not None and not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", str(resume)):
            raise InputError("INVALID_INPUT", f"bad resumeTime: {resume}", ["resumeTime"])
        tracker.update(state="Paused", resume_time=resume)

    def resume(self, data: dict[str, Any]) -> None:
        tracker = self._tracker_for(data, "resume")
        if tracker["state"] != "Paused":
            raise InputError("INVALID_INPUT", f"{data['targetId']} isn't paused", ["targetId"])
        tracker.update(state="Running", resume_time=None)

    def change_assignee(self, data: dict[str, Any]) -> None:
        tracker = self._tracker_for(data, "reassign")
        # seed: userId is optional; the running user by default
        tracker["owner_id"] = self._user(data["userId"]) if data.get("userId") else self.running_user

    def modify_tracker(self, data: dict[str, Any]) -> None:
        tracker = self.trackers.get(_id(data.get("actionCadenceTrackerId")) or "")
        if tracker is None:
            raise InputError("INVALID_CROSS_REFERENCE_KEY", f"tracker not found: {data.get('actionCadenceTrackerId')}",
                             ["actionCadenceTrackerId"])
        disposition = data.get("completionDisposition")
        if disposition is not None and disposition not in DISPOSITIONS:
            raise InputError("INVALID_INPUT", f"bad completionDisposition: {disposition}", ["completionDisposition"])
        tracker.update({"disposition": disposition} if disposition else {}, **self._related(data))

    def send_event(self, data: dict[str, Any]) -> None:
        event = data.get("eventType")
        # seed table: Skip or ManualComplete; its own sample sends "Manual Complete" (API-FACTS: accept both)
        if event not in ("Skip", "ManualComplete", "Manual Complete"):
            raise InputError("INVALID_INPUT", f"bad eventType: {event}", ["eventType"])
        step = self.step_trackers.get(_id(data.get("recordId")) or "")
        if step is None or step["state"] != "Active":
            raise InputError("INVALID_INPUT", f"{data.get('recordId')} isn't an active step tracker", ["recordId"])
        tracker = self.trackers[step["tracker_id"]]
        step["state"] = "Skipped" if event == "Skip" else "Complete"
        steps = self.cadences[tracker["cadence_id"]].get("steps", [])
        if step["step"] + 1 < len(steps):
            self._open_step(tracker, step["step"] + 1)
        else:
            tracker["state"] = "Complete"

    def select_template(self, data: dict[str, Any]) -> dict[str, Any]:
        step = self.step_trackers.get(_id(data.get("stepTrackerId")) or "")
        if step is None:
            raise InputError("INVALID_CROSS_REFERENCE_KEY", f"step tracker not found: {data.get('stepTrackerId')}",
                             ["stepTrackerId"])
        tracker = self.trackers[step["tracker_id"]]
        templates = self.cadences[tracker["cadence_id"]]["steps"][step["step"]].get("templates") or []
        if not templates:
            raise InputError("INVALID_INPUT", "this step has no email template or call script to select",
                             ["stepTrackerId"])
        # sandbox choice: a stable pick weighted by split, so a rerun gives the same answer
        point = sum(map(ord, step["id"])) % 100
        for template in templates:
            point -= template["split"]
            if point < 0:
                break
        return {"TemplateId": to18(template["id"]), "SplitPercentage": template["split"]}  # seed: output values

    ACTIONS = {
        "assignTargetToSalesCadence": assign, "removeTargetFromSalesCadence": remove,
        "pauseSalesCadenceTracker": pause, "resumeSalesCadenceTracker": resume,
        "changeSalesCadenceTargetAssignee": change_assignee, "modifyCadenceTrackerAttributes": modify_tracker,
        "sendSalesCadenceEvent": send_event, "selectTemplateForSalesCadenceStepTracker": select_template,
    }

    # -- HTTP ---------------------------------------------------------------------------------
    def _limit_info(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.api_used}/{self.api_limit}"}  # API-FACTS: every response

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        if request.path.rstrip("/") == "/services/data":  # API-FACTS: versions need no auth
            return SandboxResponse(200, [{"version": v, "url": f"/services/data/v{v}"} for v in VERSIONS])
        if request.bearer_token() != self.token:  # API-FACTS: 401 INVALID_SESSION_ID
            return SandboxResponse(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
        if self.api_used >= self.api_limit:  # API-FACTS: the daily allocation is spent
            return SandboxResponse(403, [{"errorCode": "REQUEST_LIMIT_EXCEEDED",
                                          "message": "TotalRequests Limit exceeded."}], self._limit_info())
        self.api_used += 1  # API-FACTS: every REST call counts against the daily allocation
        headers = self._limit_info()
        if m := _LIMITS_URL.match(request.path):
            return SandboxResponse(200, {"DailyApiRequests": {"Max": self.api_limit,
                                                              "Remaining": self.api_limit - self.api_used}}, headers)
        m = _ACTION_URL.match(request.path)
        if m is None or m.group(2) not in self.ACTIONS or float(m.group(1)) < MIN_VERSION[m.group(2)]:
            return SandboxResponse(404, NOT_FOUND, headers)  # API-FACTS: unknown action or version too low
        name = m.group(2)
        if request.method == "GET":
            return SandboxResponse(200, {"name": name, "minimumApiVersion": MIN_VERSION[name]}, headers)
        if request.method != "POST":
            return SandboxResponse(405, [{"errorCode": "METHOD_NOT_ALLOWED",
                                          "message": f"HTTP Method '{request.method}' not allowed"}], headers)
        try:
            body = request.json()
        except ValueError:
            body = None
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
            return SandboxResponse(400, [{"errorCode": "JSON_PARSER_ERROR",
                                          "message": "the body must be {\"inputs\": [ {...}, ... ]}"}], headers)
        self.calls.append((name, len(inputs)))
        return self._run(name, inputs, headers)

    def _run(self, name: str, inputs: list[dict[str, Any]], headers: dict[str, str]) -> SandboxResponse:
        snapshot = None if self.partial_save_allowed else self._snapshot()
        action = self.ACTIONS[name]
        results: list[dict[str, Any]] = []
        for data in inputs:
            try:
                output = action(self, data)
                results.append({"actionName": name, "isSuccess": True, "errors": None, "outputValues": output})
            except InputError as exc:
                results.append({"actionName": name, "isSuccess": False, "outputValues": None,
                                "errors": [{"statusCode": exc.code, "message": exc.message, "fields": exc.fields}]})
        failed = any(not r["isSuccess"] for r in results)
        if failed and snapshot is not None:  # API-FACTS: with partial save off, one failure rolls back all
            self._restore(snapshot)
            for r in results:
                if r["isSuccess"]:
                    r.update(isSuccess=False, outputValues=None, errors=[{
                        "statusCode": ROLLED_BACK, "fields": [],
                        "message": "rolled back because another input of this call failed"}])
        # API-FACTS: HTTP 400 with the same per-input array when some or all inputs fail
        return SandboxResponse(400 if failed else 200, results, headers)

    def _snapshot(self) -> tuple[Any, ...]:
        return copy.deepcopy((self.trackers, self.by_target, self.step_trackers, self.assignments, self.locked_targets,
                              self._serial))

    def _restore(self, snapshot: tuple[Any, ...]) -> None:
        (self.trackers, self.by_target, self.step_trackers, self.assignments, self.locked_targets,
         self._serial) = snapshot

    def audit(self) -> dict[str, Any]:
        """The org's own record of what was done, for tests that must prove nothing happened twice."""
        return {"assignments": dict(self.assignments), "api_used": self.api_used, "calls": len(self.calls)}
