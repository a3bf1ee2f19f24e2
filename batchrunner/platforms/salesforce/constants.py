"""Salesforce job constants that name records: the cadence (by name or ID) and the assignee.

SOQL through ``GET /services/data/vXX.X/query?q=`` on ``ActionCadence(Id, Name, State)`` and
``User(Id, Name)`` (the Salesforce Object Reference: ActionCadence's Name is unique, State says
whether it is active). Each query is one call of the org's daily allocation. The step
(``startStepNameOrId``) is not looked up: it depends on the cadence and is left to the action.
"""

from __future__ import annotations

from typing import Any

from batchrunner.constants import ConstantCheck, suggest
from batchrunner.errors import JobError
from batchrunner.export.common import Reader
from batchrunner.export.salesforce import query
from batchrunner.job import Job
from batchrunner.platforms.salesforce import responses
from batchrunner.platforms.salesforce.ids import InvalidId, to18

DEFAULT_API_VERSION = "62.0"
#: fields whose constant names a record the org must have
NAMED = ("salesCadenceNameOrId", "userId")


async def resolve(job: Job, client: Any, constants: dict[str, str]) -> list[ConstantCheck]:
    """One verdict per constant; a failed query gives ``ok = None`` (not checked), never a guess."""
    reader = Reader(client, responses.rate_signal, per_minute=None, limits=job.limits)
    version = job.connection.api_version or DEFAULT_API_VERSION
    out = []
    for name, value in constants.items():
        try:
            if name == "salesCadenceNameOrId":
                out.append(await _cadence(reader, version, name, value))
            else:
                out.append(await _user(reader, version, name, value))
        except JobError as exc:
            out.append(ConstantCheck(name, value, None, f"not checked: {str(exc).removeprefix('export: ')}"))
    return out


def _as_id(value: str) -> str | None:
    try:
        return to18(value)
    except InvalidId:
        return None


async def _cadence(reader: Reader, version: str, name: str, value: str) -> ConstantCheck:
    cadences = await query(reader, version, "SELECT Id, Name, State FROM ActionCadence")
    as_id = _as_id(value)
    found = [c for c in cadences if c.get("Name") == value or (as_id is not None and _as_id(str(c["Id"])) == as_id)]
    if not found:
        names = sorted(str(c.get("Name")) for c in cadences)
        return ConstantCheck(name, value, False, f"no cadence with this name or ID.{suggest(value, names)}")
    cadence = found[0]
    state = cadence.get("State") or "Active"
    if state != "Active":
        return ConstantCheck(name, value, False, f"cadence {cadence['Name']} ({cadence['Id']}) is {state}: only an "
                             "active cadence takes new targets")
    return ConstantCheck(name, value, True, f"cadence {cadence['Name']} ({cadence['Id']}), {state}")


async def _user(reader: Reader, version: str, name: str, value: str) -> ConstantCheck:
    as_id = _as_id(value)
    if as_id is None or not as_id.startswith("005"):
        return ConstantCheck(name, value, False, "not a User ID (005…): every row is invalid")
    users = await query(reader, version, f"SELECT Id, Name FROM User WHERE Id = '{as_id}'")
    if not users:
        return ConstantCheck(name, value, False, "no user with this ID in the org (or not visible to this user)")
    return ConstantCheck(name, value, True, f"user {users[0].get('Name')} ({as_id})")
