"""Salesforce part of `batchrunner predict`: read the org in batches, then apply the actions' rules.

Reads (SOQL through ``GET /services/data/vXX.X/query``, followed through ``nextRecordsUrl``; each
IN list holds at most 200 IDs, far under SOQL's 100,000-character statement limit; each query is
one call of the org's daily allocation):

- ``ActionCadence (Id, Name, State)``: the cadences (assign rows), once;
- ``Lead`` / ``Contact`` / ``Account`` ``WHERE Id IN (...)``: do the targets exist?
- ``ActionCadenceTracker WHERE TargetId IN (...) AND State IN ('Running', 'Paused')`` with
  ``ActionCadence.Name``: who is on which cadence (reconcile.active_trackers);
- ``ActionCadenceTracker WHERE Id IN (...)`` and ``ActionCadenceStepTracker WHERE Id IN (...)``
  for rows naming a tracker or a step tracker;
- ``User (Id, IsActive) WHERE Id IN (...)`` for rows naming an assignee (an inactive one is refused).

The rules are the ones the actions apply (Salesforce's Sales Engagement invocable-actions
reference; docs/platforms.md) in the order the org checks them, and the codes are the ones the run
reports: an assign whose target already has an active tracker is ``skipped ALREADY_ON_CADENCE`` or
``failed ALREADY_ON_OTHER_CADENCE`` (reconcile.already_on, as the run decides it); a target that
does not exist ``INVALID_CROSS_REFERENCE_KEY``; a remove, pause, resume or reassignment of a target
with no active tracker (not on a cadence: the issue's TRACKER_NOT_FOUND) ``INVALID_INPUT``, the
code Salesforce answers with. What cannot be read this way is predicted ``apply``: a start step or
template that does not exist, the org's related-record setting, ``shouldApplyUserContext``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from batchrunner.constants import named_constants
from batchrunner.errors import JobError
from batchrunner.job import Job
from batchrunner.outcome import RowOutcome, Status
from batchrunner.platforms.base import SessionIO
from batchrunner.platforms.salesforce import reconcile
from batchrunner.platforms.salesforce.reconcile import IN_CHUNK, TRACKER_FIELDS, id18

SOBJECTS = {"00Q": "Lead", "003": "Contact", "001": "Account"}  # docs/platforms.md key prefixes of targets
ACTIVE = reconcile.ACTIVE_STATES
ON_TARGET = ("assign", "remove", "pause", "resume", "change_assignee")  # operations that name a targetId
STEP_FIELDS = "Id, State, ActionCadenceTrackerId"
Row = Any  # batchrunner.predict.PredictRow


def _ids(rows: Sequence[Row], field: str, operations: Sequence[str] | None = None) -> set[str]:
    return {i for r in rows if (operations is None or r.operation in operations) and (i := id18(r.data.get(field)))}


def _chunks(count: int) -> int:
    return math.ceil(count / IN_CHUNK)


def estimate(job: Job, rows: Sequence[Row]) -> int:
    """Queries the prediction will send: one per 200 IDs of each kind, one for the cadences, one per
    named constant (looked up first, as `run` does); more only when a result has more pages."""
    if not rows:
        return 0
    targets = _ids(rows, "targetId", ON_TARGET)
    steps = _ids(rows, "recordId") | _ids(rows, "stepTrackerId")
    trackers = _ids(rows, "actionCadenceTrackerId")
    users = _ids(rows, "userId", ("assign", "change_assignee"))
    by_object = [sum(1 for t in targets if t.startswith(prefix)) for prefix in SOBJECTS]
    return (len(named_constants(job)) + (1 if any(r.operation == "assign" for r in rows) else 0)
            + sum(_chunks(n) for n in by_object) + _chunks(len(targets)) + _chunks(len(steps))
            + (_chunks(len(trackers) + len(steps)) if trackers or steps else 0) + _chunks(len(users)))


class OrgState:
    """What the org holds for the file's records, changed as each predicted-apply row would change it."""

    def __init__(self) -> None:
        self.cadences: list[dict[str, Any]] = []
        self.targets: set[str] = set()
        self.users: set[str] = set()
        self.active: dict[str, dict[str, Any]] = {}  # target -> its Running or Paused tracker
        self.trackers: dict[str, dict[str, Any]] = {}  # tracker ID -> tracker
        self.steps: dict[str, dict[str, Any]] = {}  # step tracker ID -> step tracker

    async def read(self, io: SessionIO, version: str, rows: Sequence[Row]) -> None:
        if any(r.operation == "assign" for r in rows):
            self.cadences = await reconcile.query(io, version, "SELECT Id, Name, State FROM ActionCadence")
        targets = _ids(rows, "targetId", ON_TARGET)
        for prefix, sobject in SOBJECTS.items():
            found = await reconcile.records_by_id(io, version, sobject, "Id",
                                                  sorted(t for t in targets if t.startswith(prefix)))
            self.targets.update(found)
        self.active = await reconcile.active_trackers(io, version, sorted(targets))
        self.steps = await reconcile.records_by_id(io, version, "ActionCadenceStepTracker", STEP_FIELDS,
                                                   sorted(_ids(rows, "recordId") | _ids(rows, "stepTrackerId")))
        wanted = _ids(rows, "actionCadenceTrackerId") | {t for s in self.steps.values()
                                                          if (t := id18(s.get("ActionCadenceTrackerId")))}
        self.trackers = await reconcile.records_by_id(io, version, "ActionCadenceTracker", TRACKER_FIELDS,
                                                      sorted(wanted))
        for target, tracker in self.active.items():  # one object per tracker, whichever way it is found
            key = id18(tracker.get("Id"))
            if key in self.trackers:
                self.active[target] = self.trackers[key]
        users = await reconcile.records_by_id(io, version, "User", "Id, IsActive",
                                              sorted(_ids(rows, "userId", ("assign", "change_assignee"))))
        self.users = {i for i, user in users.items() if user.get("IsActive") is not False}  # "not found or inactive"

    def cadence(self, name_or_id: Any) -> dict[str, Any] | None:
        """The cadence an assign names, by ID (15 or 18 characters) or by its unique Name."""
        key = id18(name_or_id)
        for cadence in self.cadences:
            if (key is not None and id18(cadence.get("Id")) == key) or cadence.get("Name") == name_or_id:
                return cadence
        return None


def _fail(row: int, code: str, message: str) -> RowOutcome:
    return RowOutcome(row, Status.FAILED, code, message)


class Predictor:
    """Each row's outcome, in file order, the org's state moving with the rows predicted to apply."""

    def __init__(self, state: OrgState) -> None:
        self.org = state

    def outcome(self, row: Row) -> RowOutcome:
        rule = getattr(self, f"_{row.operation}", None)
        if rule is None:
            return RowOutcome(row.idx, Status.SUCCEEDED)
        return rule(row.idx, row.data)

    # -- what several actions check first ---------------------------------------------------------
    def _target(self, row: int, data: dict[str, Any]) -> tuple[str | None, RowOutcome | None]:
        target = id18(data.get("targetId"))
        if target is None or target[:3] not in SOBJECTS:
            return None, _fail(row, "INVALID_INPUT", f"targetId {data.get('targetId')} must be the ID of a lead, "
                                                     "contact or person account")
        if target not in self.org.targets:
            return None, _fail(row, "INVALID_CROSS_REFERENCE_KEY",
                               f"targetId {data.get('targetId')} does not exist or you can't see it")
        return target, None

    def _tracker(self, row: int, data: dict[str, Any], what: str) -> tuple[dict[str, Any] | None, RowOutcome | None]:
        target, problem = self._target(row, data)
        if problem is not None:
            return None, problem
        tracker = self.org.active.get(target or "")
        if tracker is None:
            return None, _fail(row, "INVALID_INPUT", f"{data.get('targetId')} has no active sales cadence tracker "
                                                     f"to {what} (it is not on a cadence)")
        return tracker, None

    def _user(self, row: int, data: dict[str, Any]) -> RowOutcome | None:
        user = data.get("userId")
        if user and id18(user) not in self.org.users:
            return _fail(row, "INVALID_CROSS_REFERENCE_KEY", f"User not found or inactive: {user}")
        return None

    # -- the actions ------------------------------------------------------------------------------
    def _assign(self, row: int, data: dict[str, Any]) -> RowOutcome:
        requested = data.get("salesCadenceNameOrId")
        cadence = self.org.cadence(requested)
        if cadence is None:
            return _fail(row, "UNKNOWN_EXCEPTION", "The object needs to be a valid cadence entity.")
        if (cadence.get("State") or "Active") != "Active":
            return _fail(row, "INVALID_INPUT", f"The sales cadence {cadence.get('Name')} isn't active.")
        target, problem = self._target(row, data)
        if problem is not None:
            return problem
        current = self.org.active.get(target or "")
        if current is not None:  # what the run reads after the org's "already assigned" answer
            return reconcile.already_on(row, current, requested, mine=False)
        if (problem := self._user(row, data)) is not None:
            return problem
        self.org.active[target or ""] = {"Id": None, "TargetId": target, "ActionCadenceId": cadence.get("Id"),
                                         "ActionCadence": {"Name": cadence.get("Name")}, "State": "Running",
                                         "OwnerId": id18(data.get("userId"))}
        return RowOutcome(row, Status.SUCCEEDED)

    def _remove(self, row: int, data: dict[str, Any]) -> RowOutcome:
        if data.get("actionCadenceTrackerId"):
            tracker = self.org.trackers.get(id18(data["actionCadenceTrackerId"]) or "")
            if tracker is None:
                return _fail(row, "INVALID_CROSS_REFERENCE_KEY",
                             f"Cadence tracker not found: {data['actionCadenceTrackerId']}")
            if tracker.get("State") not in ACTIVE:
                return _fail(row, "INVALID_INPUT", f"Cadence tracker {data['actionCadenceTrackerId']} is no active "
                                                   "sales cadence tracker to remove")
        else:
            tracker, problem = self._tracker(row, data, "remove")
            if problem is not None:
                return problem
        assert tracker is not None
        tracker["State"] = "Complete"
        target = id18(tracker.get("TargetId")) or ""
        if self.org.active.get(target) is tracker:
            del self.org.active[target]
        return RowOutcome(row, Status.SUCCEEDED)

    def _pause_or_resume(self, row: int, data: dict[str, Any], pause: bool) -> RowOutcome:
        tracker, problem = self._tracker(row, data, "pause" if pause else "resume")
        if problem is not None:
            return problem
        assert tracker is not None
        paused = tracker.get("State") == "Paused"
        if pause and paused:
            return _fail(row, "INVALID_INPUT", f"{data.get('targetId')} is already paused in its sales cadence.")
        if not pause and not paused:
            return _fail(row, "INVALID_INPUT", f"{data.get('targetId')} isn't paused in its sales cadence.")
        tracker["State"] = "Running" if paused else "Paused"
        return RowOutcome(row, Status.SUCCEEDED)

    def _pause(self, row: int, data: dict[str, Any]) -> RowOutcome:
        return self._pause_or_resume(row, data, pause=True)

    def _resume(self, row: int, data: dict[str, Any]) -> RowOutcome:
        return self._pause_or_resume(row, data, pause=False)

    def _change_assignee(self, row: int, data: dict[str, Any]) -> RowOutcome:
        tracker, problem = self._tracker(row, data, "reassign")
        if problem is None:
            problem = self._user(row, data)
        if problem is not None:
            return problem
        assert tracker is not None
        tracker["OwnerId"] = id18(data.get("userId"))
        return RowOutcome(row, Status.SUCCEEDED)

    def _modify_tracker(self, row: int, data: dict[str, Any]) -> RowOutcome:
        if id18(data.get("actionCadenceTrackerId")) not in self.org.trackers:
            return _fail(row, "INVALID_CROSS_REFERENCE_KEY",
                         f"Cadence tracker not found: {data.get('actionCadenceTrackerId')}")
        return RowOutcome(row, Status.SUCCEEDED)

    def _step(self, row: int, value: Any) -> tuple[dict[str, Any] | None, RowOutcome | None]:
        step = self.org.steps.get(id18(value) or "")
        if step is None:
            return None, _fail(row, "INVALID_CROSS_REFERENCE_KEY", f"Cadence step tracker not found: {value}")
        return step, None

    def _send_event(self, row: int, data: dict[str, Any]) -> RowOutcome:
        step, problem = self._step(row, data.get("recordId"))
        if problem is not None:
            return problem
        assert step is not None
        if step.get("State") != "Active":  # docs/platforms.md: only the current step's tracker is Active
            return _fail(row, "INVALID_INPUT", f"{data.get('recordId')} isn't the active step of its cadence tracker.")
        tracker = self.org.trackers.get(id18(step.get("ActionCadenceTrackerId")) or "") or {}
        if tracker.get("State") == "Paused":
            return _fail(row, "INVALID_INPUT", f"The cadence tracker of {data.get('recordId')} is paused.")
        step["State"] = "Complete"  # the target moves on to a step this prediction does not know
        return RowOutcome(row, Status.SUCCEEDED)

    def _select_template(self, row: int, data: dict[str, Any]) -> RowOutcome:
        _, problem = self._step(row, data.get("stepTrackerId"))
        return problem or RowOutcome(row, Status.SUCCEEDED)


async def predict(job: Job, session: Any, io: SessionIO, rows: Sequence[Row]) -> list[RowOutcome]:
    """One outcome per row, from a handful of queries per 200 rows."""
    state = OrgState()
    try:
        await state.read(io, session.api_version, rows)
    except reconcile.ReadFailed as exc:
        raise JobError(f"predict could not read the org: {exc}; nothing was sent") from None
    predictor = Predictor(state)
    return [predictor.outcome(row) for row in rows]
