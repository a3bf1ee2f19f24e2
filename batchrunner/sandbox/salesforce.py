"""Emulator of the Salesforce Sales Engagement invocable actions (and the little around them).

Sources, cited beside each rule: "seed doc" = Salesforce's Sales Engagement invocable-actions reference (developer.salesforce.com; docs/platforms.md) (fields,
required rules, enumerations, what each action does, the response and error samples),
"API facts" = docs/platforms.md (HTTP 400 with the per-input array, request-level error shapes,
Sforce-Limit-Info, limits, all-or-none saving). Where both are silent the emulator makes a
"sandbox choice", marked so. The documentation gives the *shape* of per-input errors, and two
sample codes (UNKNOWN_EXCEPTION for "The object needs to be a valid cadence entity." and "No
template was found."); every other per-input statusCode here is a sandbox choice in the platform's
style (INVALID_INPUT, INVALID_ID_FIELD, REQUIRED_FIELD_MISSING, INVALID_CROSS_REFERENCE_KEY,
UNABLE_TO_LOCK_ROW, ALL_OR_NONE_OPERATION_ROLLED_BACK), not a documented contract.

Endpoints:
- ``GET /services/data/``                               API versions (no auth)
- ``POST /services/data/vNN.N/actions/standard/{name}``  the eight actions, ``{"inputs": [...]}``
- ``GET|HEAD /services/data/vNN.N/actions/standard/{name}``  describe of the action's inputs
- ``GET /services/data/vNN.N/limits``                    ``DailyApiRequests`` Max / Remaining
- ``GET /services/data/vNN.N/query?q=SOQL``              a tiny SOQL subset (see ``_query``)
"""

from __future__ import annotations

import copy
import functools
import re
import time
import zlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from batchrunner.platforms.salesforce.ids import to18
from batchrunner.sandbox.base import SandboxRequest, SandboxResponse
from batchrunner.sandbox.seeds import load_seed

TOKEN = "sandbox-token"
# docs/platforms.md table (seed doc: "Available in API version ..."): action name -> minimum API version
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
# sandbox choice: the versions GET /services/data/ lists (any version >= an action's minimum is served)
VERSIONS = ("45.0", "50.0", "51.0", "52.0", "53.0", "58.0", "60.0", "62.0")
_ACTION_URL = re.compile(r"^/services/data/v(\d+\.\d)/actions/standard/([A-Za-z]+)/?$")
_LIMITS_URL = re.compile(r"^/services/data/v(\d+\.\d)/limits/?$")
_QUERY_URL = re.compile(r"^/services/data/v(\d+\.\d)/query/?$")
DISPOSITIONS = ("Success", "Customer Engaged", "Customer Connected", "Contact Later", "No Response",
                "Not Interested", "Disqualified", "Bad Data", "Duplicate")  # seed doc: completionDisposition values
ATTRIBUTION = ("Activation", "Maturation", "Collected")  # seed doc: relatedToAttributionType values
# seed doc: eventType "Skip or ManualComplete"; its own sample sends "Manual Complete" (docs/platforms.md: accept both)
EVENT_TYPES = {"Skip": "Skip", "ManualComplete": "ManualComplete", "Manual Complete": "ManualComplete"}
TARGET_PREFIXES = {"00Q": "Lead", "003": "Contact", "001": "Account"}  # seed doc: contact, lead or person account
NOT_FOUND = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]  # docs/platforms.md
INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]  # docs/platforms.md
LIMIT_EXCEEDED = [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}]  # docs/platforms.md
# sandbox choice: the code of an input that did nothing wrong but was rolled back with its call
# (the client's responses.RETRYABLE_INPUT_CODES lists it, so the row is sent again)
ROLLED_BACK = "ALL_OR_NONE_OPERATION_ROLLED_BACK"

# Describe data (seed doc tables: name, type, required, enumerations). "required" follows the
# tables; the either/or of removeTargetFromSalesCadence is shown as not required on both.
_PICK = {"completionDisposition": DISPOSITIONS, "relatedToAttributionType": ATTRIBUTION,
         "completionReasonCode": ("ManuallyRemoved",), "eventType": ("Skip", "ManualComplete")}
INPUTS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "assignTargetToSalesCadence": (("salesCadenceNameOrId", "STRING", True), ("startStepNameOrId", "STRING", False),
                                   ("targetId", "ID", True), ("userId", "ID", False), ("relatedToId", "ID", False)),
    "removeTargetFromSalesCadence": (("targetId", "ID", False), ("actionCadenceTrackerId", "ID", False),
                                     ("completionReasonCode", "STRING", True),
                                     ("completionDisposition", "STRING", False), ("relatedToId", "ID", False),
                                     ("relatedToAttributionType", "STRING", False),
                                     ("shouldApplyUserContext", "BOOLEAN", False)),
    "pauseSalesCadenceTracker": (("targetId", "ID", True), ("resumeTime", "STRING", False)),
    "resumeSalesCadenceTracker": (("targetId", "ID", True),),
    "changeSalesCadenceTargetAssignee": (("targetId", "ID", True), ("userId", "ID", False)),
    "modifyCadenceTrackerAttributes": (("actionCadenceTrackerId", "ID", True),
                                       ("completionDisposition", "STRING", False), ("relatedToId", "ID", False),
                                       ("relatedToAttributionType", "STRING", False)),
    "sendSalesCadenceEvent": (("recordId", "ID", True), ("eventType", "STRING", True)),
    "selectTemplateForSalesCadenceStepTracker": (("stepTrackerId", "ID", True),),
}
# seed doc: selectTemplate's outputs (output: JSON, error: string)
OUTPUTS = {"selectTemplateForSalesCadenceStepTracker": (("output", "JSON"), ("error", "STRING"))}


# sandbox choice: trackers of the seed were made long before any run
SEED_CREATED_DATE = "2024-01-01T00:00:00.000+0000"


def sf_datetime(epoch: float) -> str:
    """A dateTime as the REST API writes it in query results: ``2024-01-01T00:00:00.000+0000``
    (UTC; milliseconds; an offset without a colon)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(epoch * 1000) % 1000:03d}+0000"


class InputError(Exception):
    """One input's failure: becomes that input's ``errors`` entry."""

    def __init__(self, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.fields = code, message, fields or []


def _id(value: Any) -> str | None:
    """An input ID as the org stores it (18 characters); None when it cannot be one."""
    if not isinstance(value, str) or len(value) not in (15, 18) or not value.isalnum():
        return None
    return _to18_or_none(value)


@functools.lru_cache(maxsize=4096)  # one input's ID is looked at several times (lock, target, tracker)
def _to18_or_none(value: str) -> str | None:
    try:
        return to18(value)
    except ValueError:  # docs/platforms.md: an 18-character ID whose checksum does not match is no ID
        return None


def _require(data: dict[str, Any], *names: str) -> None:
    """The platform's answer when required inputs are absent: every one of ``names`` is named when
    any is missing (the seed's REQUIRED_FIELD_MISSING sample lists the fields in brackets)."""
    if not all(data.get(name) for name in names):
        raise InputError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(names)}]", list(names))


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


class SalesforceEmulator:
    prefixes = ("/services/",)

    def __init__(self, org: dict[str, Any] | None = None, *, token: str = TOKEN, api_limit: int = 15000,
                 api_used: int = 0, partial_save_allowed: bool = True,
                 clock: Callable[[], float] = time.time, not_started: Iterable[str] = ()) -> None:
        seed = copy.deepcopy(org if org is not None else load_seed("salesforce_org.json"))
        self.clock = clock  # stamps CreatedDate on the trackers assign makes
        self.token = token
        self.api_limit = api_limit
        self.api_used = api_used
        self.partial_save_allowed = partial_save_allowed  # docs/platforms.md: InvocableActionSettings.isPartialSaveAllowed
        # docs/platforms.md / seed doc: relatedToId works only with "Relate Opportunities to Cadences" or
        # "Use Cadences for Collections" turned on
        self.related_records_enabled = bool(seed.get("related_records_enabled", False))
        self.users = {to18(u["id"]): u for u in seed.get("users", [])}
        self.running_user = next(iter(self.users)) if self.users else None  # sandbox choice: the first user
        self.cadences = {to18(c["id"]): c for c in seed.get("cadences", [])}
        self.targets: dict[str, dict[str, Any]] = {}
        self.target_kind: dict[str, str] = {}
        for kind, sobject in (("leads", "Lead"), ("contacts", "Contact"), ("person_accounts", "Account")):
            for record in seed.get(kind, []):
                self.targets[to18(record["id"])] = record
                self.target_kind[to18(record["id"])] = sobject
        self.related = {to18(r) for r in seed.get("related_records", [])}
        self.trackers: dict[str, dict[str, Any]] = {}
        self.by_target: dict[str, list[str]] = {}
        self.step_trackers: dict[str, dict[str, Any]] = {}
        self._serial = 0
        for tracker in seed.get("trackers", []):
            tracker = dict(tracker)
            for key in ("id", "target_id", "cadence_id", "owner_id"):
                tracker[key] = to18(tracker[key])
            tracker.setdefault("created_date", SEED_CREATED_DATE)
            self._add_tracker(tracker)
            if tracker["state"] in ("Running", "Paused"):
                self._open_step(tracker, tracker.get("current_step", 0), tracker.get("step_tracker_id"))
        # sandbox choice: targets whose first action attempt answers UNABLE_TO_LOCK_ROW (then cleared)
        self.locked_targets = {to18(t) for t in seed.get("locked_targets", [])}
        # fault injection for `verify` ([sandbox] not_started): an assign to these targets is accepted, then
        # the tracker ends at once, Complete / AutomaticallyExited ("a global exit condition occurred":
        # https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_actioncadencetracker.htm)
        self.not_started = {i for i in (_to18_or_none(str(t).strip()) for t in not_started) if i}
        self.calls: list[tuple[str, int]] = []  # (action name, number of inputs) per actions POST
        self.assignments: dict[str, int] = {}  # target -> trackers created by assign (crash tests)
        self.applied: dict[str, int] = {}  # "action:target:record" -> times applied (double-send tests)
        self.received: dict[str, int] = {}  # "action:target:record" -> times sent to the org, applied or not

    # -- ids and state helpers ----------------------------------------------------------------
    def _new_id(self, prefix: str) -> str:
        self._serial += 1
        return to18(f"{prefix}9Z{self._serial:010d}")  # sandbox choice: "9Z" marks emulator-made records

    def _steps(self, tracker: dict[str, Any]) -> list[dict[str, Any]]:
        return self.cadences[tracker["cadence_id"]].get("steps", [])

    def _open_step(self, tracker: dict[str, Any], step: int, step_tracker_id: str | None = None) -> None:
        """Make ``step`` the tracker's current step: a step tracker in state Active (docs/platforms.md:
        ActionCadenceStepTracker State = 'Active' for the current step)."""
        self._close_steps(tracker)
        tracker["current_step"] = step
        sid = to18(step_tracker_id) if step_tracker_id else self._new_id("8HF")
        steps = self._steps(tracker)
        self.step_trackers[sid] = {"id": sid, "tracker_id": tracker["id"], "target_id": tracker["target_id"],
                                   "step": step, "step_id": to18(steps[step]["id"]) if step < len(steps) else None,
                                   "state": "Active", "template_id": None}
        tracker["step_tracker_id"] = sid

    def _close_steps(self, tracker: dict[str, Any], state: str = "Complete") -> None:
        step = self.step_trackers.get(tracker.get("step_tracker_id") or "")
        if step is not None and step["state"] == "Active":
            step["state"] = state

    def _active_tracker(self, target_id: str) -> dict[str, Any] | None:
        # docs/platforms.md: a target has at most one active tracker
        for tracker_id in reversed(self.by_target.get(target_id, [])):
            tracker = self.trackers.get(tracker_id)
            if tracker is not None and tracker["state"] in ("Running", "Paused"):
                return tracker
        return None

    def _add_tracker(self, tracker: dict[str, Any]) -> None:
        self.trackers[tracker["id"]] = tracker
        self.by_target.setdefault(tracker["target_id"], []).append(tracker["id"])

    def _cadence(self, name_or_id: Any) -> dict[str, Any]:
        # seed doc: salesCadenceNameOrId is the cadence's name or ID (docs/platforms.md: Name is unique)
        key = _id(name_or_id)
        if key and key in self.cadences:
            return self.cadences[key]
        for cadence in self.cadences.values():
            if cadence["name"] == name_or_id:
                return cadence
        # seed doc: the assign error sample (UNKNOWN_EXCEPTION, "The object needs to be a valid cadence entity.")
        raise InputError("UNKNOWN_EXCEPTION", "The object needs to be a valid cadence entity.")

    def _target(self, value: Any, field: str = "targetId") -> str:
        if value is None or value == "":
            raise InputError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{field}]", [field])
        target = _id(value)
        if target is None:
            raise InputError("INVALID_ID_FIELD", f"Invalid id value for {field}: {value}", [field])
        if target[:3] not in TARGET_PREFIXES:  # seed doc: the ID of a contact, a lead, or person account
            raise InputError("INVALID_INPUT", f"{field} {value} must be the ID of a lead, contact or person account",
                             [field])
        if target not in self.targets:
            raise InputError("INVALID_CROSS_REFERENCE_KEY", f"{field} {value} does not exist or you can't see it",
                             [field])
        return target

    def _user(self, value: Any) -> str:
        user = _id(value)
        if user is None or user not in self.users or not self.users[user].get("active", True):
            raise InputError("INVALID_CROSS_REFERENCE_KEY", f"User not found or inactive: {value}", ["userId"])
        return user

    def _disposition(self, data: dict[str, Any]) -> str | None:
        disposition = data.get("completionDisposition")
        if disposition is not None and disposition not in DISPOSITIONS:  # seed doc: valid values
            raise InputError("INVALID_INPUT", f"bad value for completionDisposition: {disposition}",
                             ["completionDisposition"])
        return disposition

    def _related(self, data: dict[str, Any]) -> dict[str, Any]:
        related, attribution = data.get("relatedToId"), data.get("relatedToAttributionType")
        if related is None and attribution is None:
            return {}
        # seed doc / docs/platforms.md: only when the org's related-record setup is on; else a per-input error
        if not self.related_records_enabled:
            raise InputError("INVALID_INPUT", "Relate Opportunities to Cadences or Use Cadences for Collections "
                             "isn't turned on in Sales Engagement Setup", ["relatedToId"])
        if attribution is not None and attribution not in ATTRIBUTION:  # seed doc: valid values
            raise InputError("INVALID_INPUT", f"bad value for relatedToAttributionType: {attribution}",
                             ["relatedToAttributionType"])
        if related is not None and _id(related) not in self.related:
            raise InputError("INVALID_CROSS_REFERENCE_KEY", f"related record not found: {related}", ["relatedToId"])
        out: dict[str, Any] = {}
        if related is not None:
            out["related_to"] = _id(related)
        if attribution is not None:
            out["attribution"] = attribution
        return out

    def _tracker_for(self, data: dict[str, Any], what: str) -> dict[str, Any]:
        target = self._target(data.get("targetId"))
        tracker = self._active_tracker(target)
        if tracker is None:
            raise InputError("INVALID_INPUT", f"{data.get('targetId')} has no active sales cadence tracker to {what}",
                             ["targetId"])
        return tracker

    def _target_of(self, data: dict[str, Any]) -> str | None:
        """The target an input is about, whatever ID it names (for the lock injection)."""
        if _id(data.get("targetId")):
            return _id(data.get("targetId"))
        tracker = self.trackers.get(_id(data.get("actionCadenceTrackerId")) or "")
        if tracker is not None:
            return tracker["target_id"]
        step = self.step_trackers.get(_id(data.get("recordId") or data.get("stepTrackerId")) or "")
        return step["target_id"] if step is not None else None

    # -- the eight actions (seed doc: one section each) -----------------------------------------
    def assign(self, data: dict[str, Any]) -> dict[str, Any] | None:
        _require(data, "salesCadenceNameOrId")  # seed doc: Required
        cadence = self._cadence(data["salesCadenceNameOrId"])
        if cadence.get("state", "Active") != "Active":  # docs/platforms.md: ActionCadence.State; sandbox choice: Active only
            raise InputError("INVALID_INPUT", f"The sales cadence {cadence['name']} isn't active.",
                             ["salesCadenceNameOrId"])
        target = self._target(data.get("targetId"))  # seed doc: Required
        current = self._active_tracker(target)
        if current is not None:  # docs/platforms.md: at most one active tracker; wording matches responses.already_assigned
            name = self.cadences.get(current["cadence_id"], {}).get("name", current["cadence_id"])
            raise InputError("INVALID_INPUT", f"Target {data['targetId']} is already assigned to a sales cadence "
                             f"({name}).", ["targetId"])
        # seed doc: userId is the target assignee; sandbox choice: the running user by default
        owner = self._user(data["userId"]) if data.get("userId") else self.running_user
        steps = cadence.get("steps", [])
        start = 0
        if data.get("startStepNameOrId"):  # seed doc: the name or ID of the step to start on
            wanted = data["startStepNameOrId"]
            names = [s.get("name") for s in steps]
            ids = [_id(s.get("id")) for s in steps]
            if wanted in names:
                start = names.index(wanted)
            elif _id(wanted) is not None and _id(wanted) in ids:
                start = ids.index(_id(wanted))
            else:
                raise InputError("INVALID_INPUT", f"No step {wanted} in the sales cadence {cadence['name']}.",
                                 ["startStepNameOrId"])
        if not steps:  # sandbox choice: a cadence without steps cannot run
            raise InputError("INVALID_INPUT", f"The sales cadence {cadence['name']} has no steps.",
                             ["salesCadenceNameOrId"])
        extra = self._related(data)
        tracker = {"id": self._new_id("0qB"), "target_id": target, "cadence_id": to18(cadence["id"]),
                   "owner_id": owner, "state": "Running", "created_date": sf_datetime(self.clock()), **extra}
        self._add_tracker(tracker)
        self._open_step(tracker, start)
        if target in self.not_started:
            tracker.update(state="Complete", completion_reason="AutomaticallyExited")
            self._close_steps(tracker)
        self.assignments[target] = self.assignments.get(target, 0) + 1
        return None  # seed doc: the success sample has no output values

    def remove(self, data: dict[str, Any]) -> None:
        given = [k for k in ("targetId", "actionCadenceTrackerId") if data.get(k)]
        if not given:  # seed doc: targetId required if actionCadenceTrackerId is null, and the reverse
            raise InputError("REQUIRED_FIELD_MISSING",
                             "Required fields are missing: [targetId, actionCadenceTrackerId]",
                             ["targetId", "actionCadenceTrackerId"])
        if len(given) == 2:  # docs/platforms.md: exactly one of targetId / actionCadenceTrackerId
            raise InputError("INVALID_INPUT", "Specify either targetId or actionCadenceTrackerId, not both.", given)
        _require(data, "completionReasonCode")  # seed doc: Required
        if data["completionReasonCode"] != "ManuallyRemoved":  # seed doc: the only valid value
            raise InputError("INVALID_INPUT", f"bad value for completionReasonCode: {data['completionReasonCode']}",
                             ["completionReasonCode"])
        disposition = self._disposition(data)
        if given == ["targetId"]:
            tracker = self._tracker_for(data, "remove")
        else:
            key = _id(data["actionCadenceTrackerId"])
            if key is None or key not in self.trackers:
                raise InputError("INVALID_CROSS_REFERENCE_KEY", f"Cadence tracker not found: "
                                 f"{data['actionCadenceTrackerId']}", ["actionCadenceTrackerId"])
            tracker = self.trackers[key]
            if tracker["state"] not in ("Running", "Paused"):
                raise InputError("INVALID_INPUT", f"Cadence tracker {data['actionCadenceTrackerId']} is no active "
                                 "sales cadence tracker to remove", ["actionCadenceTrackerId"])
        # seed doc: shouldApplyUserContext true = remove only trackers owned by the running user
        if _truthy(data.get("shouldApplyUserContext")) and tracker["owner_id"] != self.running_user:
            raise InputError("INVALID_INPUT", "The running user doesn't own the active sales cadence tracker of "
                             f"{tracker['target_id']}.", ["shouldApplyUserContext"])
        extra = self._related(data)
        tracker.update(state="Complete", completion_reason="ManuallyRemoved", disposition=disposition, **extra)
        self._close_steps(tracker, "Removed")  # sandbox choice: the open step tracker ends "Removed"

    def pause(self, data: dict[str, Any]) -> None:
        tracker = self._tracker_for(data, "pause")
        if tracker["state"] == "Paused":  # sandbox choice: pausing a paused target is an error
            raise InputError("INVALID_INPUT", f"{data['targetId']} is already paused in its sales cadence.",
                             ["targetId"])
        resume = data.get("resumeTime")
        # docs/platforms.md: resumeTime as ISO 8601 UTC "...Z" (the seed doc's sample format is not ISO 8601)
        if resume is not None and not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", str(resume)):
            raise InputError("INVALID_INPUT", f"bad value for resumeTime: {resume}", ["resumeTime"])
        tracker.update(state="Paused", resume_time=resume)

    def resume(self, data: dict[str, Any]) -> None:
        tracker = self._tracker_for(data, "resume")
        if tracker["state"] != "Paused":  # sandbox choice: resuming a running target is an error
            raise InputError("INVALID_INPUT", f"{data['targetId']} isn't paused in its sales cadence.", ["targetId"])
        tracker.update(state="Running", resume_time=None)

    def change_assignee(self, data: dict[str, Any]) -> None:
        tracker = self._tracker_for(data, "reassign")
        # seed doc: userId is optional; sandbox choice: the running user by default
        tracker["owner_id"] = self._user(data["userId"]) if data.get("userId") else self.running_user

    def modify_tracker(self, data: dict[str, Any]) -> None:
        _require(data, "actionCadenceTrackerId")  # seed doc: Required
        tracker = self.trackers.get(_id(data["actionCadenceTrackerId"]) or "")
        if tracker is None:
            raise InputError("INVALID_CROSS_REFERENCE_KEY", f"Cadence tracker not found: "
                             f"{data['actionCadenceTrackerId']}", ["actionCadenceTrackerId"])
        disposition = self._disposition(data)
        extra = self._related(data)
        # sandbox choice: any tracker (active or complete) can be modified, as the seed doc's example
        # sets a completion disposition
        if disposition is not None:
            tracker["disposition"] = disposition
        tracker.update(extra)

    def send_event(self, data: dict[str, Any]) -> None:
        _require(data, "recordId", "eventType")  # seed doc: both Required
        event = EVENT_TYPES.get(data["eventType"])
        if event is None:
            raise InputError("INVALID_INPUT", f"bad value for eventType: {data['eventType']}", ["eventType"])
        step = self.step_trackers.get(_id(data["recordId"]) or "")
        if step is None:
            raise InputError("INVALID_CROSS_REFERENCE_KEY", f"Cadence step tracker not found: {data['recordId']}",
                             ["recordId"])
        if step["state"] != "Active":  # docs/platforms.md: only the current step's tracker is Active
            raise InputError("INVALID_INPUT", f"{data['recordId']} isn't the active step of its cadence tracker.",
                             ["recordId"])
        tracker = self.trackers[step["tracker_id"]]
        if tracker["state"] == "Paused":  # sandbox choice: a paused target's steps wait for the resume
            raise InputError("INVALID_INPUT", f"The cadence tracker of {data['recordId']} is paused.", ["recordId"])
        # seed doc: Skip or manually complete the step; the target then moves to the next step
        step["state"] = "Skipped" if event == "Skip" else "Complete"
        if step["step"] + 1 < len(self._steps(tracker)):
            self._open_step(tracker, step["step"] + 1)
        else:  # sandbox choice: after the last step the tracker completes
            tracker.update(state="Complete", completion_reason="CompletedAllSteps")

    def select_template(self, data: dict[str, Any]) -> dict[str, Any]:
        _require(data, "stepTrackerId")  # seed doc: Required
        step = self.step_trackers.get(_id(data["stepTrackerId"]) or "")
        if step is None:
            raise InputError("INVALID_CROSS_REFERENCE_KEY", f"Cadence step tracker not found: "
                             f"{data['stepTrackerId']}", ["stepTrackerId"])
        steps = self._steps(self.trackers[step["tracker_id"]])
        templates = (steps[step["step"]].get("templates") or []) if step["step"] < len(steps) else []
        if not templates:  # seed doc: the failure sample (UNKNOWN_EXCEPTION, "No template was found.")
            raise InputError("UNKNOWN_EXCEPTION", "No template was found.")
        chosen = next((t for t in templates if to18(t["id"]) == step["template_id"]), None)
        if chosen is None:
            # sandbox choice: a stable pick weighted by the split (crc32 of the step tracker id), kept
            # on the step tracker, so every later call answers the same
            point = zlib.crc32(step["id"].encode()) % max(1, sum(t["split"] for t in templates))
            chosen = templates[-1]
            for template in templates:
                point -= template["split"]
                if point < 0:
                    chosen = template
                    break
            step["template_id"] = to18(chosen["id"])
        # seed doc: outputValues.output = {SplitPercentage, TemplateId}
        return {"output": {"SplitPercentage": float(chosen["split"]), "TemplateId": to18(chosen["id"])}}

    ACTIONS = {
        "assignTargetToSalesCadence": assign, "removeTargetFromSalesCadence": remove,
        "pauseSalesCadenceTracker": pause, "resumeSalesCadenceTracker": resume,
        "changeSalesCadenceTargetAssignee": change_assignee, "modifyCadenceTrackerAttributes": modify_tracker,
        "sendSalesCadenceEvent": send_event, "selectTemplateForSalesCadenceStepTracker": select_template,
    }

    # -- HTTP ---------------------------------------------------------------------------------
    def _limit_info(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.api_used}/{self.api_limit}"}  # docs/platforms.md: every response

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        if request.path.rstrip("/") == "/services/data":  # docs/platforms.md: the version list needs no auth
            return SandboxResponse(200, [{"label": f"API {v}", "version": v, "url": f"/services/data/v{v}"}
                                         for v in VERSIONS])
        if request.bearer_token() != self.token:  # docs/platforms.md: 401 INVALID_SESSION_ID
            return SandboxResponse(401, INVALID_SESSION, self._limit_info())
        if self.api_used >= self.api_limit:  # docs/platforms.md: the daily allocation is spent; nothing changes
            return SandboxResponse(403, LIMIT_EXCEEDED, self._limit_info())
        self.api_used += 1  # docs/platforms.md: every authenticated REST call counts against the daily allocation
        headers = self._limit_info()
        if _LIMITS_URL.match(request.path) and request.method == "GET":
            # docs/platforms.md: GET .../limits -> DailyApiRequests (Max, Remaining)
            return SandboxResponse(200, {"DailyApiRequests": {"Max": self.api_limit,
                                                              "Remaining": self.api_limit - self.api_used}}, headers)
        if (q := _QUERY_URL.match(request.path)) and request.method == "GET":
            return self._query(request.param("q") or "", headers, q.group(1))
        m = _ACTION_URL.match(request.path)
        if m is None or m.group(2) not in self.ACTIONS or float(m.group(1)) < MIN_VERSION[m.group(2)]:
            return SandboxResponse(404, NOT_FOUND, headers)  # docs/platforms.md: unknown action or version too low
        name = m.group(2)
        if request.method in ("GET", "HEAD"):  # seed doc: GET, HEAD, POST
            return SandboxResponse(200, None if request.method == "HEAD" else self._describe(name), headers)
        if request.method != "POST":
            return SandboxResponse(405, [{"errorCode": "METHOD_NOT_ALLOWED",
                                          "message": f"HTTP Method '{request.method}' not allowed. "
                                                     "Allowed are GET,HEAD,POST"}], headers)
        try:
            body = request.json()
        except ValueError as exc:  # sandbox choice: unparseable JSON -> JSON_PARSER_ERROR
            return SandboxResponse(400, [{"errorCode": "JSON_PARSER_ERROR", "message": f"Unexpected body: {exc}"}],
                                   headers)
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
            # sandbox choice: JSON without an "inputs" list of objects -> INVALID_INPUT, request-level
            return SandboxResponse(400, [{"errorCode": "INVALID_INPUT",
                                          "message": "The request body must be {\"inputs\": [ {...}, ... ]}"}],
                                   headers)
        self.calls.append((name, len(inputs)))
        for data in inputs:  # every input that reached the org, applied or refused (re-send tests)
            key = self._record_key(name, data)
            self.received[key] = self.received.get(key, 0) + 1
        return self._run(name, inputs, headers)

    def _record_key(self, name: str, data: dict[str, Any]) -> str:
        """``action:target:record`` of an input, for the audit counters."""
        return f"{name}:{self._target_of(data) or ''}:{_id(data.get('recordId')) or ''}"

    def _run(self, name: str, inputs: list[dict[str, Any]], headers: dict[str, str]) -> SandboxResponse:
        snapshot = None if self.partial_save_allowed else self._snapshot()
        action = self.ACTIONS[name]
        results: list[dict[str, Any]] = []
        for data in inputs:  # seed doc / docs/platforms.md: one result per input, in input order
            try:
                target = self._target_of(data) if self.locked_targets else None
                if target is not None and target in self.locked_targets:
                    # sandbox choice: the seeded lock answers once, then is gone (a retry succeeds)
                    self.locked_targets.discard(target)
                    raise InputError("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record or 1 "
                                     "records: " + target)
                output = action(self, data)
                key = self._record_key(name, data)
                self.applied[key] = self.applied.get(key, 0) + 1
                results.append({"actionName": name, "isSuccess": True, "errors": None, "outputValues": output})
            except InputError as exc:
                # seed doc: the error samples carry errors[] and outputValues.error
                results.append({"actionName": name, "isSuccess": False, "outputValues": {"error": exc.message},
                                "errors": [{"statusCode": exc.code, "message": exc.message, "fields": exc.fields}]})
        failed = any(not r["isSuccess"] for r in results)
        if failed and snapshot is not None:  # docs/platforms.md: with partial save off, one failure rolls back all
            self._restore(snapshot)
            message = "Rolled back: another input of this all-or-none call failed; this input was not applied."
            for r in results:
                if r["isSuccess"]:
                    r.update(isSuccess=False, outputValues={"error": message},
                             errors=[{"statusCode": ROLLED_BACK, "message": message, "fields": []}])
        # docs/platforms.md: HTTP 400 with the same per-input array when some or all inputs fail
        return SandboxResponse(400 if failed else 200, results, headers)

    def _snapshot(self) -> tuple[Any, ...]:
        # sandbox choice: locked_targets is not part of the rollback (the lock was a passing condition
        # the attempt used up), so an all-or-none call with a locked row succeeds when sent again
        return copy.deepcopy((self.trackers, self.by_target, self.step_trackers, self.assignments, self.applied,
                              self._serial))

    def _restore(self, snapshot: tuple[Any, ...]) -> None:
        (self.trackers, self.by_target, self.step_trackers, self.assignments, self.applied,
         self._serial) = snapshot

    def _describe(self, name: str) -> dict[str, Any]:
        """docs/platforms.md: the describe lists the action's inputs (name, type, required, picklistValues)."""
        return {
            "name": name, "label": name, "type": "STANDARD", "minimumApiVersion": MIN_VERSION[name],
            "inputs": [{"name": n, "label": n, "type": t, "required": r, "sobjectType": None,
                        "picklistValues": [{"label": v, "value": v} for v in _PICK.get(n, ())] or None}
                       for n, t, r in INPUTS[name]],
            "outputs": [{"name": n, "type": t} for n, t in OUTPUTS.get(name, ())],
        }

    # -- a tiny SOQL subset (sandbox choice; docs/platforms.md names the objects and fields) -----------------
    def _records(self, sobject: str) -> list[dict[str, Any]] | None:
        if sobject == "ActionCadence":
            return [{"Id": to18(c["id"]), "Name": c["name"], "State": c.get("state", "Active")}
                    for c in self.cadences.values()]
        if sobject == "ActionCadenceTracker":
            out = []
            for t in self.trackers.values():
                step = self.step_trackers.get(t.get("step_tracker_id") or "")
                active = t["state"] in ("Running", "Paused")
                # ActionCadenceTracker fields (object reference, sforce_api_objects_actioncadencetracker.htm):
                # ActionCadenceId and its relationship ActionCadence (so ActionCadence.Name), TargetId,
                # OwnerId, State, IsTrackerActive, CurrentStepId...; CreatedDate is a system field of every object
                out.append({"Id": t["id"], "TargetId": t["target_id"], "ActionCadenceId": t["cadence_id"],
                            "ActionCadence.Name": self.cadences.get(t["cadence_id"], {}).get("name"),
                            "CreatedDate": t.get("created_date"),
                            "OwnerId": t["owner_id"], "State": t["state"], "IsTrackerActive": active,
                            "CurrentStepId": step["step_id"] if step is not None and active else None,
                            "CompletionDisposition": t.get("disposition"),
                            "CompletionReason": t.get("completion_reason"), "RelatedToId": t.get("related_to")})
            return out
        if sobject == "ActionCadenceStepTracker":
            return [{"Id": s["id"], "ActionCadenceTrackerId": s["tracker_id"], "TargetId": s["target_id"],
                     "ActionCadenceStepId": s["step_id"], "State": s["state"]} for s in self.step_trackers.values()]
        if sobject in ("Lead", "Contact", "Account"):
            return [{"Id": i, "FirstName": r.get("first_name"), "LastName": r.get("last_name"),
                     "Company": r.get("company"), "Email": r.get("email")}
                    for i, r in self.targets.items() if self.target_kind[i] == sobject]
        if sobject == "User":
            # User.IsActive (object reference); sandbox choice: the seed's users are active unless "active": false
            return [{"Id": i, "Name": u.get("name"), "Email": u.get("email"), "IsActive": u.get("active", True)}
                    for i, u in self.users.items()]
        return None

    def _query(self, soql: str, headers: dict[str, str], version: str = "62.0") -> SandboxResponse:
        """``SELECT f1, f2 FROM Object [WHERE f = 'v' [AND f IN ('a','b') ...]] [LIMIT n]``; field
        names case-insensitive, ID values compared in their 18-character form."""
        def malformed(message: str) -> SandboxResponse:
            return SandboxResponse(400, [{"errorCode": "MALFORMED_QUERY", "message": message}], headers)

        m = re.fullmatch(r"\s*SELECT\s+(.+?)\s+FROM\s+(\w+)(?:\s+WHERE\s+(.+?))?(?:\s+LIMIT\s+(\d+))?\s*",
                         soql, re.I | re.S)
        if m is None:
            return malformed(f"unsupported query (the sandbox knows SELECT ... FROM ... WHERE ... LIMIT): {soql}")
        records = self._records(m.group(2))
        if records is None:
            return SandboxResponse(400, [{"errorCode": "INVALID_TYPE", "message": f"sObject type '{m.group(2)}' is "
                                          "not supported."}], headers)
        known = {k.lower(): k for k in records[0]} if records else {}
        fields = [f.strip() for f in m.group(1).split(",")]
        for f in fields:
            if known and f.lower() not in known:
                return SandboxResponse(400, [{"errorCode": "INVALID_FIELD", "message": f"No such column '{f}' on "
                                              f"entity '{m.group(2)}'."}], headers)

        def norm(value: Any) -> Any:
            return _id(value) or value if isinstance(value, str) else value

        conditions = []
        for part in re.split(r"\s+AND\s+", m.group(3) or "", flags=re.I) if m.group(3) else []:
            c = re.fullmatch(r"([\w.]+)\s*(=|!=|IN)\s*(.+)", part.strip(), re.I | re.S)
            if c is None or (known and c.group(1).lower() not in known):
                return malformed(f"unsupported condition: {part}")
            raw = c.group(3).strip()
            items = raw[1:-1].split(",") if c.group(2).upper() == "IN" and raw.startswith("(") else [raw]
            values = []
            for item in items:
                item = item.strip()
                if item.lower() in ("true", "false"):
                    values.append(item.lower() == "true")
                elif item.lower() == "null":
                    values.append(None)
                elif len(item) >= 2 and item[0] == item[-1] == "'":
                    values.append(norm(item[1:-1]))
                else:
                    return malformed(f"unsupported value: {item}")
            conditions.append((known.get(c.group(1).lower(), c.group(1)), c.group(2).upper(), values))
        hits = []
        for record in records:
            ok = True
            for field_name, op, values in conditions:
                inside = norm(record.get(field_name)) in values
                ok = ok and (not inside if op == "!=" else inside)
            if ok:
                hits.append(record)
        if m.group(4):
            hits = hits[: int(m.group(4))]
        out = [self._shape(m.group(2), r, [known.get(f.lower(), f) for f in fields], version) for r in hits]
        return SandboxResponse(200, {"totalSize": len(out), "done": True, "records": out}, headers)

    def _shape(self, sobject: str, record: dict[str, Any], fields: list[str], version: str) -> dict[str, Any]:
        """One query result record: a relationship field (``ActionCadence.Name``) comes back nested
        under the relationship's name with its own ``attributes``, as the REST query resource returns it."""
        out: dict[str, Any] = {"attributes": {"type": sobject,
                                              "url": f"/services/data/v{version}/sobjects/{sobject}/{record['Id']}"}}
        for name in fields:
            if "." not in name:
                out[name] = record.get(name)
                continue
            relation, field = name.split(".", 1)
            parent = out.setdefault(relation, {"attributes": {"type": relation}})
            parent[field] = record.get(name)
        return out

    def audit(self) -> dict[str, Any]:
        """The org's own record of what was done, for tests that must prove nothing happened twice."""
        return {"assignments": dict(self.assignments), "applied": dict(self.applied),
                "received": dict(self.received), "api_used": self.api_used,
                "calls": len(self.calls)}
