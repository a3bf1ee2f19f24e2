"""``batchrunner export salesforce-trackers``: active cadence trackers, with the cadence's name and the
target (ID, object, email), as CSV.

SOQL through ``GET /services/data/vXX.X/query?q=`` (docs/platforms.md: ActionCadenceTracker(TargetId,
ActionCadenceId, OwnerId, State, IsTrackerActive, CurrentStepId), ActionCadence(Name)); the cadence
names and the targets' emails are read with separate queries and joined here (no relationship
fields, so the sandbox's small SOQL subset serves it too). Results are followed through
``nextRecordsUrl`` while ``done`` is false. Every query counts against the daily API allocation.
"""

from __future__ import annotations

import random
from typing import Any

from batchrunner.clock import Clock
from batchrunner.errors import JobError
from batchrunner.export.common import ExportResult, Reader
from batchrunner.job import Job
from batchrunner.platforms.salesforce import responses
from batchrunner.platforms.salesforce.ids import InvalidId, to18
from batchrunner.platforms.salesforce.platform import SalesforcePlatform

COLUMNS = ["tracker_id", "target_id", "target_type", "target_email", "cadence_id", "cadence_name", "owner_id",
           "state", "current_step_id"]
TARGET_TYPES = {"00Q": "Lead", "003": "Contact", "001": "Account"}  # docs/platforms.md key prefixes
IN_CHUNK = 200  # IDs per IN (...) list: keeps each query well under SOQL's length limit


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


async def query(reader: Reader, version: str, soql: str) -> list[dict[str, Any]]:
    response = await reader.get(f"/services/data/v{version}/query", params={"q": soql})
    body = response.json()
    records = list(body.get("records") or [])
    while not body.get("done", True) and body.get("nextRecordsUrl"):
        response = await reader.get(body["nextRecordsUrl"])
        body = response.json()
        records.extend(body.get("records") or [])
    return records


async def export_trackers(job: Job, *, cadences: list[str] | None = None, sandbox_app: Any | None = None,
                          clock: Clock | None = None, rng: random.Random | None = None) -> ExportResult:
    from batchrunner.runner import _client_factory

    platform = SalesforcePlatform()
    version = platform.api_version(job)
    base_url, headers, _ = platform.endpoint(job)
    client = _client_factory(job, sandbox_app)(base_url, headers)
    reader = Reader(client, responses.rate_signal, per_minute=None, limits=job.limits, clock=clock, rng=rng)
    try:
        all_cadences = await query(reader, version, "SELECT Id, Name FROM ActionCadence")
        names = {to18(c["Id"]): c["Name"] for c in all_cadences}
        where = "IsTrackerActive = true"
        if cadences:
            wanted = []
            for item in cadences:
                try:
                    as_id = to18(item)
                except InvalidId:
                    as_id = None
                found = [i for i, n in names.items() if n == item or i == as_id]
                if not found:
                    raise JobError(f"export: no Salesforce cadence named {item!r} (or with that ID).")
                wanted.extend(found)
            where += f" AND ActionCadenceId IN ({', '.join(_quote(i) for i in dict.fromkeys(wanted))})"
        trackers = await query(reader, version, "SELECT Id, TargetId, ActionCadenceId, OwnerId, State, CurrentStepId "
                                                f"FROM ActionCadenceTracker WHERE {where}")
        emails: dict[str, str | None] = {}
        targets = sorted({to18(t["TargetId"]) for t in trackers if t.get("TargetId")})
        for sobject, prefix in (("Lead", "00Q"), ("Contact", "003")):
            ids = [t for t in targets if t.startswith(prefix)]
            for start in range(0, len(ids), IN_CHUNK):
                chunk = ", ".join(_quote(i) for i in ids[start:start + IN_CHUNK])
                for r in await query(reader, version, f"SELECT Id, Email FROM {sobject} WHERE Id IN ({chunk})"):
                    emails[to18(r["Id"])] = r.get("Email")
    finally:
        await client.aclose()
    rows = []
    for t in sorted(trackers, key=lambda t: str(t["Id"])):
        target = to18(t["TargetId"]) if t.get("TargetId") else None
        cadence = to18(t["ActionCadenceId"]) if t.get("ActionCadenceId") else None
        rows.append({"tracker_id": t["Id"], "target_id": target,
                     "target_type": TARGET_TYPES.get((target or "")[:3], "other"),
                     "target_email": emails.get(target or ""), "cadence_id": cadence,
                     "cadence_name": names.get(cadence or ""), "owner_id": t.get("OwnerId"), "state": t.get("State"),
                     "current_step_id": t.get("CurrentStepId")})
    reader.result.rows = rows
    return reader.result
