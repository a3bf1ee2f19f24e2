"""Read back Salesforce enrolments a run reported: is the target on the requested cadence now?

Used by the migration hand-off (handoff.py) before anyone is taken off the source tool. One SOQL
query per 200 targets on ``ActionCadenceTracker`` (State Running or Paused: the target is still on
its cadence; https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/
sforce_api_objects_actioncadencetracker.htm), through reconcile.py's reads.
"""

from __future__ import annotations

from typing import Any

from batchrunner.platforms.base import SessionIO
from batchrunner.platforms.salesforce import reconcile

READ_ERRORS = (reconcile.ReadFailed,)  # the org could not be read: the hand-off waits


async def confirm_enrolled(io: SessionIO, session: Any, rows: list[tuple[int, dict[str, Any], dict[str, Any]]]
                           ) -> dict[int, tuple[bool, str]]:
    """row -> (active on the requested cadence?, what was found), for (row, sent fields, result)."""
    targets = {idx: reconcile.id18(fields.get("targetId")) for idx, fields, _ in rows}
    active = await reconcile.active_trackers(io, session.api_version, [t for t in targets.values() if t])
    out: dict[int, tuple[bool, str]] = {}
    for idx, fields, _ in rows:
        tracker = active.get(targets[idx] or "")
        cadence = fields.get("salesCadenceNameOrId")
        if tracker is None:
            out[idx] = (False, f"no Running or Paused cadence tracker for {fields.get('targetId')}")
        elif not reconcile.same_cadence(tracker, cadence):
            out[idx] = (False, f"its active tracker is on {reconcile.cadence_name(tracker)}, not {cadence}")
        else:
            out[idx] = (True, f"tracker {tracker.get('Id')} {tracker.get('State')}")
    return out
