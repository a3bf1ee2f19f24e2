"""Salesloft's part of `batchrunner verify`: the cadence membership each succeeded row should have left.

A membership says where the person is (Salesloft, "Create a cadence membership", response fields
``currently_on_cadence`` and ``current_state``: https://developers.salesloft.com/docs/api/cadence-memberships-create/;
docs/platforms.md): ``processing``, ``active`` and ``scheduled`` mean the cadence has begun with the
person; ``staged`` means "waiting for the first step in the cadence to occur" — accepted, not active
yet; ``completed``, ``removed``, ``removed_no_action``, ``reassigned``, ``archived`` mean off the cadence.

| operation | promised state |
|---|---|
| add | ``currently_on_cadence`` and ``current_state`` processing, active or scheduled (staged: mismatch) |
| remove | not ``currently_on_cadence`` |

The membership is read by the id the run's answer gave (``GET /v2/cadence_memberships/{id}``, one
request per row, cost 1 — what the run spent on it); a row without one (an older run's result) is
found by person and cadence, with the run's own look-ups.
"""

from __future__ import annotations

from typing import Any

from batchrunner.platforms.base import SessionIO, StopRun
from batchrunner.platforms.salesloft.lookups import LookupFailed, read
from batchrunner.verify import MISMATCH, OK, UNCHECKED, UNREADABLE, Check, Item

#: the fields verify.csv shows to identify a row (IDs, an email, a cadence name: no secrets)
IDENTITY = ("person_email", "person_id", "person_crm_id", "cadence_name", "cadence_id", "membership_id")
STARTED = frozenset({"processing", "active", "scheduled"})  # the cadence has begun with the person
EXPECTED = {"add": "on cadence: processing, active or scheduled", "remove": "off the cadence"}


def record_key(operation: str, data: dict[str, Any]) -> str | None:
    """One person on one cadence (a person may be on several cadences at once)."""
    person = data.get("person_id") or data.get("person_email") or data.get("person_crm_id")
    cadence = data.get("cadence_id") or data.get("cadence_name")
    if data.get("membership_id"):
        return f"m:{data['membership_id']}"
    return f"{str(person).lower()}|{cadence}" if person and cadence else None


def judge(item: Item, membership: dict[str, Any]) -> Check:
    on = bool(membership.get("currently_on_cadence"))
    state = str(membership.get("current_state") or "")
    observed = f"{state or 'unknown state'}, {'on' if on else 'not on'} the cadence"
    if item.operation == "remove":
        return Check(item.row, EXPECTED["remove"], observed, MISMATCH if on else OK,
                     "the person is on the cadence again (or still)" if on else "")
    if on and state in STARTED:
        return Check(item.row, EXPECTED["add"], observed, OK)
    if on and state == "staged":
        why = ("staged: waiting for the cadence's first step, not active yet; someone added minutes ago may "
               "still be staged, so verify again later")
    elif on:
        why = f"{state}: not a started state"
    else:
        why = "the membership is no longer on the cadence"
    return Check(item.row, EXPECTED["add"], observed, MISMATCH, why)


async def _membership(session: Any, io: SessionIO, item: Item) -> dict[str, Any] | None:
    """The row's membership: by the id the run recorded, else by person and cadence (None: none)."""
    mid = item.result.get("membership_id") or item.data.get("membership_id")
    if mid:
        response = await read(io, f"/v2/cadence_memberships/{int(mid)}", "a membership read")
        return response.json().get("data") or None
    data = item.data
    await session.lookups.people(io, emails={data["person_email"]} if data.get("person_email") else set(),
                                 crm_ids={data["person_crm_id"]} if data.get("person_crm_id") else set())
    if data.get("cadence_name"):
        await session.lookups.cadences(io, {data["cadence_name"]})
    ids, problem = session._resolve(data)  # the run's own resolution rules (platform.py)
    if problem is not None:
        raise LookupFailed(problem[0], problem[1])
    response = await read(io, "/v2/cadence_memberships", "a membership look-up",
                          params={"person_id": ids["person_id"], "cadence_id": ids["cadence_id"], "per_page": 100})
    for membership in response.json().get("data") or []:
        if ((membership.get("person") or {}).get("id") == ids["person_id"]
                and (membership.get("cadence") or {}).get("id") == ids["cadence_id"]):
            return membership
    return None


async def check(session: Any, io: SessionIO, items: list[Item]) -> list[Check]:
    """Every item judged from its membership; one that cannot be read is ``unreadable``."""
    checks: list[Check] = []
    for item in items:
        expected = EXPECTED.get(item.operation)
        if expected is None:
            checks.append(Check(item.row, "", "", UNCHECKED, f"verify does not read the state {item.operation} leaves"))
            continue
        try:
            membership = await _membership(session, io, item)
        except LookupFailed as exc:
            checks.append(Check(item.row, expected, "", UNREADABLE, exc.message))
            continue
        except ValueError:  # a 200 whose body is not JSON
            checks.append(Check(item.row, expected, "", UNREADABLE, "the membership read answered no JSON"))
            continue
        except StopRun as exc:  # the key was refused: nothing more can be read
            done = {c.row for c in checks}
            checks += [Check(i.row, EXPECTED.get(i.operation, ""), "", UNREADABLE, exc.message)
                       for i in items if i.row not in done]
            break
        if membership is None:
            verdict = OK if item.operation == "remove" else MISMATCH
            checks.append(Check(item.row, expected, "no membership", verdict,
                                "" if verdict == OK else "no membership of the person on the cadence"))
            continue
        checks.append(judge(item, membership))
    return checks
