"""Salesloft part of `batchrunner predict`: the run's own look-ups, then the memberships, in batches.

Reads (GET only; list pages of 100; a page costs 1 of the team's 600-a-minute budget, pages beyond
100 cost more: docs/platforms.md):

- what the run looks up anyway (lookups.py): people by ``email_addresses[]`` / ``crm_id[]``
  (100 a request), cadences by ``name[]`` (20 a request), the team's users when a row names one;
- ``GET /v2/me``: the user the API key acts as (who enrols, when a row names no user);
- people and cadences a row gives by ID (``ids[]``, 100 a request): visible to the key?
- ``GET /v2/cadence_memberships?person_id[]=…&cadence_id[]=…&currently_on_cadence=true``: who is
  on the file's cadences now, 100 people a request. The answer is checked on the client: a
  membership of someone not asked for means the array filters were ignored (Salesloft ignores an
  unknown filter silently), and the people of that batch are then asked one by one with the
  documented ``person_id=`` filter;
- ``GET /v2/cadence_memberships/{id}`` for rows that name a membership.

The rules are the ones the run meets, in the order Salesloft checks them (the "Create a cadence
membership" reference; docs/platforms.md), with the codes the run reports: a look-up miss
(``PERSON_NOT_FOUND``, ``CADENCE_NOT_FOUND``, ``AMBIGUOUS_*``, ``USER_NOT_FOUND``), a person or
cadence ID not visible (``NOT_FOUND``), a cadence the acting user may not add to (``FORBIDDEN``),
already on the cadence (``skipped ALREADY_ON_CADENCE``), a removal of someone not on it (``skipped
NOT_ON_CADENCE``). Salesloft lets a person be on several cadences, so being on another cadence is
no failure here: such a row is predicted ``apply``, as the run would do it. What cannot be read
this way is predicted ``apply``: a step that is not the cadence's, the Personal Cadence Admin
permission of the acting user (a personal cadence of someone else is predicted ``FORBIDDEN``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from batchrunner.errors import JobError
from batchrunner.job import Job
from batchrunner.outcome import RowOutcome, Status
from batchrunner.platforms.base import SessionIO
from batchrunner.platforms.salesloft.lookups import BATCH, LookupFailed, get_all, read

NAMES_PER_REQUEST = 20  # lookups.Lookups.cadences
Row = Any  # batchrunner.predict.PredictRow


def _values(rows: Sequence[Row], field: str) -> set[Any]:
    return {v for r in rows if (v := r.data.get(field)) is not None}


def _n(count: int, size: int = BATCH) -> int:
    return math.ceil(count / size)


def estimate(job: Job, rows: Sequence[Row]) -> int:
    """Requests (each a cost of 1: first pages) the prediction will spend: the look-ups, one
    ``/v2/me``, the memberships of the file's people 100 at a time, one per membership ID."""
    if not rows:
        return 0
    people = len(_values(rows, "person_email")) + len(_values(rows, "person_crm_id")) + len(_values(rows, "person_id"))
    return (_n(len(_values(rows, "person_email"))) + _n(len(_values(rows, "person_crm_id")))
            + _n(len(_values(rows, "cadence_name")), NAMES_PER_REQUEST)
            + (1 if _values(rows, "user_email") or _values(rows, "user_id") else 0)
            + (1 if any(r.operation == "add" for r in rows) else 0)
            + _n(len(_values(rows, "person_id"))) + _n(len(_values(rows, "cadence_id")))
            + _n(people) + len(_values(rows, "membership_id")))


class TeamState:
    """What the team holds for the file's people and cadences, changed as each predicted-apply row
    would change it."""

    def __init__(self, session: Any) -> None:
        self.session = session  # its Lookups and _resolve: rows are resolved exactly as the run resolves them
        self.me: int | None = None
        self.people: set[int] = set()  # person IDs visible to the key
        self.cadences: dict[int, dict[str, Any]] = {}  # visible cadence ID -> its record
        self.users: set[int] | None = None
        self.on: dict[tuple[int, int], int] = {}  # (person, cadence) currently on -> membership ID
        self.memberships: dict[int, dict[str, Any] | None] = {}  # membership ID -> record (None: not visible)

    async def read(self, io: SessionIO, rows: Sequence[Row]) -> None:
        lookups = self.session.lookups
        await lookups.people(io, emails=_values(rows, "person_email"), crm_ids=_values(rows, "person_crm_id"))
        names = _values(rows, "cadence_name")
        await lookups.cadences(io, names)
        for found in lookups.cadences_by_name.values():
            self.cadences.update({int(c["id"]): c for c in found})
        if _values(rows, "user_email") or _values(rows, "user_id"):
            await lookups.users(io)
            self.users = {i for ids in (lookups.users_by_email or {}).values() for i in ids}
        if any(r.operation == "add" for r in rows):
            me = (await read(io, "/v2/me", "the /v2/me look-up")).json().get("data") or {}
            self.me = int(me["id"]) if me.get("id") is not None else None
        given = sorted(_values(rows, "person_id"))
        for start in range(0, len(given), BATCH):
            chunk = given[start:start + BATCH]
            found = await get_all(io, "/v2/people", [("ids[]", p) for p in chunk])
            self.people.update(int(p["id"]) for p in found if p.get("id") in chunk)
        wanted = sorted(set(_values(rows, "cadence_id")) - set(self.cadences))
        for start in range(0, len(wanted), BATCH):
            chunk = wanted[start:start + BATCH]
            found = await get_all(io, "/v2/cadences", [("ids[]", c) for c in chunk])
            self.cadences.update({int(c["id"]): c for c in found if c.get("id") in chunk})
        people = sorted(set(given) | {i for ids in (*lookups.people_by_email.values(),
                                                     *lookups.people_by_crm.values()) for i in ids})
        await self._memberships(io, people, sorted(self.cadences))
        for membership_id in sorted(_values(rows, "membership_id")):
            try:
                response = await read(io, f"/v2/cadence_memberships/{membership_id}", "a membership look-up")
                self.memberships[membership_id] = response.json().get("data")
            except LookupFailed:
                self.memberships[membership_id] = None  # the run's DELETE answers 404 too: NOT_FOUND

    async def _memberships(self, io: SessionIO, people: list[int], cadences: list[int]) -> None:
        if not people or not cadences:
            return
        for start in range(0, len(people), BATCH):
            chunk = people[start:start + BATCH]
            params: list[tuple[str, Any]] = [("person_id[]", p) for p in chunk]
            params += [("cadence_id[]", c) for c in cadences] + [("currently_on_cadence", "true")]
            found = await get_all(io, "/v2/cadence_memberships", params)
            if any(_ids(m)[0] not in chunk for m in found):  # the array filter was ignored: one by one
                found = []
                for person in chunk:
                    found += await get_all(io, "/v2/cadence_memberships",
                                           [("person_id", person), ("currently_on_cadence", "true")])
            for membership in found:
                person, cadence = _ids(membership)
                if membership.get("currently_on_cadence") and person in chunk and cadence in self.cadences:
                    self.on[(person, cadence)] = int(membership["id"])


def _ids(membership: dict[str, Any]) -> tuple[Any, Any]:
    return (membership.get("person") or {}).get("id"), (membership.get("cadence") or {}).get("id")


class Predictor:
    """Each row's outcome, in file order, the team's memberships moving with the rows predicted to apply."""

    def __init__(self, state: TeamState) -> None:
        self.team = state

    def outcome(self, row: Row) -> RowOutcome:
        ids, problem = self.team.session._resolve(row.data)  # the run's own resolution (platform.py)
        if problem is not None:
            return RowOutcome(row.idx, Status.FAILED, problem[0], problem[1])
        if row.operation == "add":
            return self._add(row.idx, row.data, ids)
        return self._remove(row.idx, ids)

    def _add(self, row: int, data: dict[str, Any], ids: dict[str, int]) -> RowOutcome:
        team = self.team
        person, cadence_id = ids["person_id"], ids["cadence_id"]
        if data.get("person_id") is not None and person not in team.people:
            return RowOutcome(row, Status.FAILED, "NOT_FOUND", f"person {person}: Not Found")
        cadence = team.cadences.get(cadence_id)
        if cadence is None:
            return RowOutcome(row, Status.FAILED, "NOT_FOUND", f"cadence {cadence_id}: Not Found")
        on = (person, cadence_id) in team.on
        acting = ids.get("user_id", team.me)
        if data.get("user_id") is not None and team.users is not None and acting not in team.users:
            # a 422 on user_id; the run then finds the person on the cadence (skipped) or not (failed)
            return (self._already(row) if on else
                    RowOutcome(row, Status.FAILED, "VALIDATION_ERROR", "user_id is not a user on this team"))
        owner = (cadence.get("owner") or {}).get("id")
        if not cadence.get("team_cadence") and owner != acting:
            return RowOutcome(row, Status.FAILED, "FORBIDDEN", f"cadence {cadence_id} ({cadence.get('name')}) is "
                              f"neither a team cadence nor owned by the acting user {acting}")
        if on:
            return self._already(row)
        team.on[(person, cadence_id)] = 0
        return RowOutcome(row, Status.SUCCEEDED)

    @staticmethod
    def _already(row: int) -> RowOutcome:
        return RowOutcome(row, Status.SKIPPED, "ALREADY_ON_CADENCE", "the person is already on this cadence")

    def _remove(self, row: int, ids: dict[str, int]) -> RowOutcome:
        team = self.team
        if "membership_id" in ids:
            membership = team.memberships.get(ids["membership_id"])
            if membership is None:
                return RowOutcome(row, Status.FAILED, "NOT_FOUND", f"membership {ids['membership_id']}: Not Found")
            key = _ids(membership)
            if not membership.get("currently_on_cadence"):
                return RowOutcome(row, Status.SKIPPED, "NOT_ON_CADENCE",
                                  f"membership {ids['membership_id']} is not currently on its cadence")
            membership["currently_on_cadence"] = False
            team.on.pop(key, None)
            return RowOutcome(row, Status.SUCCEEDED)
        key = (ids["person_id"], ids["cadence_id"])
        if key not in team.on:
            return RowOutcome(row, Status.SKIPPED, "NOT_ON_CADENCE",
                              f"person {key[0]} is not currently on cadence {key[1]}")
        del team.on[key]
        return RowOutcome(row, Status.SUCCEEDED)


async def predict(job: Job, session: Any, io: SessionIO, rows: Sequence[Row]) -> list[RowOutcome]:
    """One outcome per row, from the run's look-ups plus the memberships, 100 people a request."""
    state = TeamState(session)
    try:
        await state.read(io, rows)
    except LookupFailed as exc:
        raise JobError(f"predict could not read Salesloft: {exc.message}; nothing was sent") from None
    predictor = Predictor(state)
    return [predictor.outcome(row) for row in rows]
