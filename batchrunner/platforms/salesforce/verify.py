"""Salesforce's part of `batchrunner verify`: the ActionCadenceTracker each succeeded row should have left.

Read in batches with the SOQL of reconcile.py (``TargetId IN (...)``, 200 IDs per query, paged by
``nextRecordsUrl``): a target has at most one tracker in State Running or Paused (Object Reference,
ActionCadenceTracker: https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/
object_reference/sforce_api_objects_actioncadencetracker.htm; docs/platforms.md).

| operation | promised state |
|---|---|
| assign | a Running tracker on the row's cadence (Paused, another cadence or none: mismatch) |
| pause | the target's tracker Paused |
| resume | the target's tracker Running |
| remove | no Running or Paused tracker (by target), or that tracker no longer Running/Paused (by tracker ID) |
| change_assignee | an active tracker owned by the row's userId |
| modify_tracker, send_event, select_template | not read (``unchecked``) |
"""

from __future__ import annotations

from typing import Any

from batchrunner.platforms.base import SessionIO, StopRun
from batchrunner.platforms.salesforce import reconcile
from batchrunner.platforms.salesforce.reconcile import ACTIVE_STATES, ReadFailed, id18
from batchrunner.verify import MISMATCH, OK, UNCHECKED, UNREADABLE, Check, Item

#: the fields verify.csv shows to identify a row (all IDs or a cadence name: no secrets)
IDENTITY = ("targetId", "actionCadenceTrackerId", "salesCadenceNameOrId", "userId")
CHECKED = ("assign", "pause", "resume", "remove", "change_assignee")


def record_key(operation: str, data: dict[str, Any]) -> str | None:
    """The record a row acts on: its target (or tracker). Later rows on it supersede earlier ones."""
    if operation not in CHECKED:
        return None
    target = id18(data.get("targetId")) or id18(data.get("actionCadenceTrackerId"))
    return target


def _describe(tracker: dict[str, Any] | None) -> str:
    if tracker is None:
        return "no Running or Paused tracker"
    return f"{tracker.get('State')} on {reconcile.cadence_name(tracker)}"


def judge(item: Item, active: dict[str, dict[str, Any]], by_id: dict[str, dict[str, Any]]) -> Check:
    """One row against the trackers read (``active``: target -> its Running/Paused tracker;
    ``by_id``: tracker ID -> tracker, for rows naming a tracker)."""
    op, data = item.operation, item.data
    target = id18(data.get("targetId"))
    tracker = active.get(target or "")
    if op == "remove" and target is None:
        named = by_id.get(id18(data.get("actionCadenceTrackerId")) or "")
        state = named.get("State") if named else None
        if named is None:
            return Check(item.row, "tracker not Running/Paused", "tracker not visible", UNREADABLE,
                         "the tracker could not be read (deleted, or not visible to this user)")
        ok = state not in ACTIVE_STATES
        return Check(item.row, "tracker not Running/Paused", str(state), OK if ok else MISMATCH,
                     "" if ok else f"the tracker is still {state}")
    observed = _describe(tracker)
    if op == "assign":
        cadence = data.get("salesCadenceNameOrId")
        expected = f"Running on {cadence}"
        if tracker is None:
            return Check(item.row, expected, observed, MISMATCH, "the assignment did not leave an active tracker "
                         "(it ended, or was removed since)")
        if not reconcile.same_cadence(tracker, cadence):
            return Check(item.row, expected, observed, MISMATCH, "the target is on another cadence now")
        ok = tracker.get("State") == "Running"
        return Check(item.row, expected, observed, OK if ok else MISMATCH, "" if ok else "the tracker is not running")
    if op in ("pause", "resume"):
        wanted = "Paused" if op == "pause" else "Running"
        ok = tracker is not None and tracker.get("State") == wanted
        return Check(item.row, wanted, observed, OK if ok else MISMATCH, "" if ok else f"the tracker is not {wanted}")
    if op == "remove":
        ok = tracker is None
        return Check(item.row, "no Running or Paused tracker", observed, OK if ok else MISMATCH,
                     "" if ok else "the target is on a cadence again (or still)")
    if op == "change_assignee":
        owner = id18(data.get("userId"))
        expected = f"active tracker owned by {owner}" if owner else "active tracker"
        found = id18(tracker.get("OwnerId")) if tracker else None
        ok = tracker is not None and (owner is None or found == owner)
        return Check(item.row, expected, f"{observed}, owner {found}" if tracker else observed,
                     OK if ok else MISMATCH, "" if ok else "the tracker is gone or owned by someone else")
    return Check(item.row, "", "", UNCHECKED, f"verify does not read the state {op} leaves")


async def check(session: Any, io: SessionIO, items: list[Item]) -> list[Check]:
    """Every item judged from two batched reads: active trackers by target, trackers by ID."""
    version = session.api_version
    targets = [t for i in items if i.operation in CHECKED and (t := id18(i.data.get("targetId")))]
    named = [t for i in items if i.operation == "remove" and not i.data.get("targetId")
             and (t := id18(i.data.get("actionCadenceTrackerId")))]
    try:
        active = await reconcile.active_trackers(io, version, targets) if targets else {}
        by_id = (await reconcile.records_by_id(io, version, "ActionCadenceTracker", reconcile.TRACKER_FIELDS, named)
                 if named else {})
    except (ReadFailed, StopRun) as exc:
        why = f"the trackers could not be read: {exc}"
        return [Check(i.row, "", "", UNREADABLE if i.operation in CHECKED else UNCHECKED, why) for i in items]
    return [judge(item, active, by_id) for item in items]
