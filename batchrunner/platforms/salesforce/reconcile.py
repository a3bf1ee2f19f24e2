"""Did a Salesforce action whose answer was lost or garbled apply? Read the org before sending again.

The invocable actions take no idempotency key, so an answer that never came (a reset, a read
timeout), a gateway 5xx, or a 200 whose results cannot be matched to the inputs leaves each input
"maybe applied". Sending it again blindly can do it twice (a second Skip skips a second step).
Instead the session reads the records the action changes, with SOQL on the objects the Object
Reference documents (https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/
object_reference/sforce_api_objects_actioncadencetracker.htm and ..._actioncadencesteptracker.htm):

- ``ActionCadenceTracker`` (TargetId, ActionCadenceId, ActionCadence.Name, State, OwnerId,
  CreatedDate): a target has at most one tracker in State Running or Paused;
- ``ActionCadenceStepTracker`` (State 'Active' for the current step, then Complete/Skipped...).

Each maybe-applied row then ends one of three ways: decided from the state read (applied by this
run: ``succeeded`` with ``reconciled``; there before the run: ``skipped``/``failed``), sent again
because the state shows it did not apply, or ``UNKNOWN_OUTCOME`` when the state cannot be read (or
cannot tell) and a repeat is not harmless. docs/reconciliation.md has the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from batchrunner import secrets

from batchrunner import jsonio
from batchrunner.outcome import RowOutcome, Status
from batchrunner.platforms.base import SessionIO, StopRun
from batchrunner.platforms.salesforce.ids import InvalidId, to18

ACTIVE_STATES = ("Running", "Paused")  # ActionCadenceTracker.State of a target still on its cadence
TRACKER_FIELDS = "Id, TargetId, ActionCadenceId, ActionCadence.Name, State, OwnerId, CreatedDate"
IN_CHUNK = 200  # IDs per IN (...) list: a SOQL statement stays far below its 100,000-character limit
#: clocks differ: a tracker stamped up to this long before the run started still counts as the run's
CLOCK_SKEW = timedelta(seconds=60)
#: operations whose repeat is harmless (assign is refused as a duplicate; the others set a value):
#: with no state to read they may go again, marked maybe-applied
RESENDABLE = frozenset({"assign", "modify_tracker", "select_template", "change_assignee"})
UNKNOWN = "UNKNOWN_OUTCOME"


class ReadFailed(Exception):
    """The state could not be read (a transport error, an error answer)."""


@dataclass
class Decision:
    """What the state read says about some maybe-applied rows."""

    outcomes: list[RowOutcome] = field(default_factory=list)
    resend: list[int] = field(default_factory=list)  # the state shows these did not apply
    unsure: list[int] = field(default_factory=list)  # cannot tell, but a repeat is harmless


def parse_datetime(value: Any) -> datetime | None:
    """A REST dateTime (``2024-01-01T00:00:00.000+0000``) as an aware datetime, or None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None


def id18(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return to18(value)
    except InvalidId:
        return None


async def query(io: SessionIO, api_version: str, soql: str) -> list[dict[str, Any]]:
    """Every record of a SOQL query (following ``nextRecordsUrl``), or ReadFailed."""
    records: list[dict[str, Any]] = []
    url: str | None = f"/services/data/v{api_version}/query"
    params: dict[str, str] | None = {"q": soql}
    while url:
        try:
            response = await io.request("GET", url, params=params)
        except httpx.TransportError as exc:
            raise ReadFailed(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
        if response.status_code == 401:
            raise StopRun("AUTH_LOST", "Salesforce refused the session during a state read")
        try:
            body = jsonio.loads(response.content)
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            raise ReadFailed(f"the query answered HTTP {response.status_code}: {secrets.excerpt(response.text, 200)}")
        records.extend(r for r in body.get("records") or () if isinstance(r, dict))
        url, params = (body.get("nextRecordsUrl") if body.get("done") is False else None), None
    return records


def _in_list(ids: Sequence[str]) -> str:
    return ", ".join(f"'{i}'" for i in ids)  # IDs are letters and digits only: nothing to escape


async def active_trackers(io: SessionIO, api_version: str, targets: Sequence[str]) -> dict[str, dict[str, Any]]:
    """target ID (18) -> its Running or Paused ActionCadenceTracker, for the targets that have one."""
    wanted = sorted({t for t in targets if t})
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), IN_CHUNK):
        chunk = wanted[start : start + IN_CHUNK]
        soql = (f"SELECT {TRACKER_FIELDS} FROM ActionCadenceTracker WHERE TargetId IN ({_in_list(chunk)}) "
                f"AND State IN ({_in_list(ACTIVE_STATES)})")
        for record in await query(io, api_version, soql):
            target = id18(record.get("TargetId"))
            if target:
                found[target] = record
    return found


async def records_by_id(io: SessionIO, api_version: str, sobject: str, fields: str,
                        ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    wanted = sorted({i for i in ids if i})
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), IN_CHUNK):
        soql = f"SELECT {fields} FROM {sobject} WHERE Id IN ({_in_list(wanted[start : start + IN_CHUNK])})"
        for record in await query(io, api_version, soql):
            if (key := id18(record.get("Id"))) is not None:
                found[key] = record
    return found


def cadence_name(tracker: dict[str, Any]) -> str:
    parent = tracker.get("ActionCadence")
    name = parent.get("Name") if isinstance(parent, dict) else None
    return str(name or tracker.get("ActionCadenceId") or "another cadence")


def same_cadence(tracker: dict[str, Any], requested: Any) -> bool:
    """Is the tracker on the cadence a row names (by ID, 15 or 18 characters, or by its unique Name)?"""
    if not isinstance(requested, str):
        return False
    wanted = id18(requested)
    if wanted is not None and wanted == id18(tracker.get("ActionCadenceId")):
        return True
    parent = tracker.get("ActionCadence")
    return isinstance(parent, dict) and parent.get("Name") == requested


def made_by_this_run(tracker: dict[str, Any], since: datetime | None) -> bool:
    """Was the tracker created after the run started? Unknown start (None): assume so, as the row
    was sent by this run."""
    if since is None:
        return True
    created = parse_datetime(tracker.get("CreatedDate"))
    return created is None or created >= since - CLOCK_SKEW


def already_on(row: int, tracker: dict[str, Any], requested: Any, mine: bool, said: str | None = None) -> RowOutcome:
    """The outcome of an assign whose target has an active tracker: made by this run (reconciled),
    already on the requested cadence (skipped), or on another one (failed, naming it)."""
    if same_cadence(tracker, requested):
        if mine:
            result = {"reconciled": True, "tracker_id": tracker.get("Id"), "created": tracker.get("CreatedDate")}
            if said:
                result["platform_said"] = said
            return RowOutcome(row, Status.SUCCEEDED, result=result)
        return RowOutcome(row, Status.SKIPPED, "ALREADY_ON_CADENCE",
                          f"the target is already on this cadence ({cadence_name(tracker)})",
                          result={"tracker_id": tracker.get("Id"), "state": tracker.get("State")})
    return RowOutcome(row, Status.FAILED, "ALREADY_ON_OTHER_CADENCE",
                      f"the target is already on another cadence ({cadence_name(tracker)}); a target can be on one "
                      "cadence at a time", result={"tracker_id": tracker.get("Id"), "state": tracker.get("State")})


def unknown(operation: str, row: int, why: str) -> RowOutcome:
    return RowOutcome(row, Status.FAILED, UNKNOWN,
                      f"{operation} was sent but its answer was lost or unreadable ({why}), and the org's state could "
                      "not tell whether it applied; check this record in Salesforce before sending it again")


def _reconciled(row: int, **result: Any) -> RowOutcome:
    return RowOutcome(row, Status.SUCCEEDED, result={"reconciled": True, **result})


async def decide(io: SessionIO, api_version: str, operation: str, rows: Sequence[int],
                 data: Sequence[dict[str, Any]], since: datetime | None, why: str) -> Decision:
    """Read the org's state for maybe-applied rows and decide each: done, to send again, or unknown."""
    decision = Decision()
    if not rows:
        return decision
    if operation in ("modify_tracker", "select_template"):
        decision.unsure = list(rows)  # a repeat sets the same values / returns the same pick: harmless
        return decision
    try:
        if operation == "send_event":
            steps = await records_by_id(io, api_version, "ActionCadenceStepTracker", "Id, State",
                                        [id18(d.get("recordId")) or "" for d in data])
        elif operation == "remove" and any(d.get("actionCadenceTrackerId") for d in data):
            trackers = await records_by_id(io, api_version, "ActionCadenceTracker", TRACKER_FIELDS,
                                           [id18(d.get("actionCadenceTrackerId")) or "" for d in data])
        if operation != "send_event":
            active = await active_trackers(io, api_version, [id18(d.get("targetId")) or "" for d in data])
    except ReadFailed as exc:
        for row in rows:
            if operation in RESENDABLE:
                decision.unsure.append(row)
            else:
                decision.outcomes.append(unknown(operation, row, f"{why}; the state read failed: {exc}"))
        return decision
    for row, d in zip(rows, data, strict=True):
        target = id18(d.get("targetId"))
        if operation == "send_event":
            step = steps.get(id18(d.get("recordId")) or "")
            if step is None:
                decision.outcomes.append(unknown(operation, row, f"{why}; its step tracker is not visible"))
            elif step.get("State") == "Active":
                decision.resend.append(row)  # still the current step: the event did not apply
            else:
                decision.outcomes.append(_reconciled(row, step_state=step.get("State")))
            continue
        if operation == "remove" and d.get("actionCadenceTrackerId"):
            tracker = trackers.get(id18(d.get("actionCadenceTrackerId")) or "")
            if tracker is not None and tracker.get("State") in ACTIVE_STATES:
                decision.resend.append(row)
            else:
                decision.outcomes.append(_reconciled(row, state=(tracker or {}).get("State")))
            continue
        tracker = active.get(target or "")
        if operation == "assign":
            if tracker is None:
                decision.resend.append(row)
            else:
                decision.outcomes.append(already_on(row, tracker, d.get("salesCadenceNameOrId"),
                                                    made_by_this_run(tracker, since)))
        elif operation == "remove":
            if tracker is None:
                decision.outcomes.append(_reconciled(row))  # no active tracker: the target is off its cadence
            else:
                decision.resend.append(row)
        elif operation in ("pause", "resume"):
            wanted = "Paused" if operation == "pause" else "Running"
            if tracker is not None and tracker.get("State") == wanted:
                decision.outcomes.append(_reconciled(row, state=wanted))
            else:
                decision.resend.append(row)  # not in the wanted state: it did not apply (or fails again, harmlessly)
        elif operation == "change_assignee":
            owner = id18(d.get("userId"))
            if tracker is not None and owner is not None and id18(tracker.get("OwnerId")) == owner:
                decision.outcomes.append(_reconciled(row, owner=owner))
            else:
                decision.resend.append(row)  # setting the owner again is harmless
        else:
            decision.outcomes.append(unknown(operation, row, why))
    return decision
