"""Outreach part of `batchrunner predict`: the run's own look-ups, then the sequence states, in batches.

Reads (JSON:API lists, GET only, ``[outreach] lookup_batch`` values a filter, ``page[size]`` a
page; Outreach's OpenAPI document, https://api.outreach.io/api/v2/schema/openapi.json):

- what the run looks up anyway (lookups.py): prospects by ``filter[emails]``, sequences by
  ``filter[name]``, mailboxes by ``filter[email]`` (the job's default mailbox included);
- prospects, sequences and mailboxes an add row gives by ID: ``filter[id]`` — do they exist, has
  the prospect an email?
- sequence states of the file's (prospect, sequence) pairs: ``filter[prospect][id]`` and
  ``filter[sequence][id]``, one request per sequence and batch of prospects (lookups.states);
  states given by ID: ``filter[id]``.

Rows are resolved and their states picked by the run's own code (session.py ``_resolve`` and
``_pick_state``), so the codes are the run's: a look-up miss (``PROSPECT_NOT_FOUND``,
``SEQUENCE_NOT_FOUND``, ``MAILBOX_NOT_FOUND``, ``AMBIGUOUS_*``), ``MAILBOX_REQUIRED``,
``USER_NOT_CONFIGURED``; already in the sequence ``skipped ALREADY_IN_SEQUENCE``; no live state
``skipped NOT_IN_SEQUENCE``; already paused / finished / not paused ``skipped ALREADY_PAUSED`` /
``ALREADY_FINISHED`` / ``NOT_PAUSED``; a state ID that does not exist
``SEQUENCE_STATE_NOT_FOUND``; a related record that does not exist, or an action the state does
not accept, ``VALIDATION_ERROR``. Which states an action accepts, and that a sequence with email
steps needs a mailbox and a prospect with an email, are not readable through the API: the
prediction assumes every sequence has email steps (an ``add`` with no mailbox fails
``VALIDATION_ERROR``, a prospect with no email ``NO_DELIVERABLE_EMAIL``), and a bounced or opted-out
address, which the list does not show, is predicted ``apply`` (docs/predict.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from batchrunner.errors import JobError
from batchrunner.job import Job
from batchrunner.outcome import RowOutcome, Status
from batchrunner.platforms.base import SessionIO, WorkUnit
from batchrunner.platforms.outreach.lookups import LIVE_STATES, LookupFailed, attrs, chunks, get_all, related_id
from batchrunner.platforms.outreach.operations import STATE
from batchrunner.platforms.outreach.session import DONE_STATE

#: the states each action starts from (Outreach answers 422 otherwise; docs/outreach.md)
STARTS = {"finish": LIVE_STATES, "pause": frozenset({"active", "pending"}), "resume": frozenset({"paused"})}
LEAVES = {"finish": "finished", "pause": "paused", "resume": "active"}
KINDS = {"prospect_id": "prospects", "sequence_id": "sequences", "mailbox_id": "mailboxes"}
Row = Any  # batchrunner.predict.PredictRow


def _values(rows: Sequence[Row], field: str) -> set[Any]:
    return {v for r in rows if (v := r.data.get(field)) is not None}


def estimate(job: Job, rows: Sequence[Row]) -> int:
    """Requests (first pages): one per batch of emails, names and state IDs; for add rows one per
    batch of the prospect, sequence and mailbox IDs they give (do they exist?); one per sequence and
    batch of prospects for the states."""
    if not rows:
        return 0
    batch = max(1, job.outreach.lookup_batch)
    adds = [r for r in rows if r.operation == "add"]
    mailboxes = _values(rows, "mailbox_email") | ({job.outreach.mailbox_email} if job.outreach.mailbox_email and adds
                                                   else set())
    lookups = [_values(rows, "prospect_email"), _values(rows, "sequence_name"), mailboxes, _values(rows, STATE)]
    existence = [_values(adds, "prospect_id"), _values(adds, "sequence_id"),
                 _values(adds, "mailbox_id") | ({job.outreach.mailbox_id} if adds else set())]
    sequences = len(_values(rows, "sequence_name") | _values(rows, "sequence_id"))
    prospects = len(_values(rows, "prospect_email") | _values(rows, "prospect_id"))
    return (sum(math.ceil(len(v - {None, 0}) / batch) for v in lookups + existence)
            + sequences * math.ceil(prospects / batch))


class OrgState:
    """The records the file names, and the sequence states of its pairs, moving with each row
    predicted to apply."""

    def __init__(self, session: Any) -> None:
        self.session = session  # its Lookups, _resolve and _pick_state: rows are read as the run reads them
        self.known: dict[str, set[int]] = {kind: set() for kind in KINDS.values()}
        self.emails: dict[int, list[str]] = {}  # prospect -> its emails
        self.states: dict[int, dict[str, Any]] = {}  # sequence state ID -> record
        self._next = -1  # IDs of the states the prediction adds

    async def read(self, io: SessionIO, job: Job, rows: Sequence[Row]) -> None:
        lookups, batch = self.session.lookups, max(1, job.outreach.lookup_batch)
        await lookups.prospects(io, _values(rows, "prospect_email"))
        await lookups.sequences(io, _values(rows, "sequence_name"))
        mailboxes = _values(rows, "mailbox_email")
        if job.outreach.mailbox_email and any(r.operation == "add" for r in rows):
            mailboxes.add(job.outreach.mailbox_email)
        await lookups.mailboxes(io, mailboxes)
        found = {"prospects": lookups.prospects_by_email, "sequences": lookups.sequences_by_name,
                 "mailboxes": lookups.mailboxes_by_email}
        for kind, cache in found.items():  # found by a look-up: they exist (and a prospect has that email)
            self.known[kind].update(i for ids in cache.values() for i in ids)
        resolved = [self.session._resolve(r.operation, r.data)[0] for r in rows]
        for field, kind in KINDS.items():  # IDs an add row gives itself (or the job's mailbox_id): exist?
            wanted = sorted({ids[field] for r, ids in zip(rows, resolved)
                             if r.operation == "add" and field in ids and ids[field] not in self.known[kind]})
            for chunk in chunks(wanted, batch):
                for record in await get_all(io, f"/api/v2/{kind}", {"filter[id]": ",".join(map(str, chunk))},
                                            job.outreach.page_size):
                    self.known[kind].add(int(record["id"]))
                    if kind == "prospects":
                        self.emails[int(record["id"])] = list(attrs(record).get("emails") or [])
        pairs = {(ids["prospect_id"], ids["sequence_id"]) for ids in resolved
                 if "prospect_id" in ids and "sequence_id" in ids}
        for records in (await lookups.states(io, pairs)).values():
            self.states.update({int(r["id"]): r for r in records})
        for chunk in chunks(sorted({ids[STATE] for ids in resolved if STATE in ids}), batch):
            for record in await get_all(io, "/api/v2/sequenceStates", {"filter[id]": ",".join(map(str, chunk))},
                                        job.outreach.page_size):
                self.states[int(record["id"])] = record

    def of_pair(self, prospect: int, sequence: int) -> list[dict[str, Any]]:
        return [r for r in self.states.values()
                if related_id(r, "prospect") == prospect and related_id(r, "sequence") == sequence]

    def add(self, prospect: int, sequence: int) -> None:
        self.states[self._next] = {"id": self._next, "attributes": {"state": "active"}, "relationships": {
            "prospect": {"data": {"id": prospect}}, "sequence": {"data": {"id": sequence}}}}
        self._next -= 1


class Predictor:
    def __init__(self, state: OrgState) -> None:
        self.org = state

    def outcome(self, row: Row) -> RowOutcome:
        session, op, idx = self.org.session, row.operation, row.idx
        ids, problem = session._resolve(op, row.data)
        if problem is not None:
            return RowOutcome(idx, Status.FAILED, problem[0], problem[1])
        if op != "add" and STATE not in ids:
            early = session._pick_state(WorkUnit(op, [idx]), ids, self.org.of_pair(ids["prospect_id"],
                                                                                    ids["sequence_id"]))
            if early is not None:
                return early
        user = row.data.get("user_email")
        if user and user.lower() not in session.users:
            return RowOutcome(idx, Status.FAILED, "USER_NOT_CONFIGURED", f"no token for Outreach user {user!r}: "
                              "add it to [outreach.users]")
        return self._add(idx, ids) if op == "add" else self._act(idx, op, ids)

    def _add(self, row: int, ids: dict[str, int]) -> RowOutcome:
        org = self.org
        prospect, sequence = ids["prospect_id"], ids["sequence_id"]
        # every refusal of an add is a 422, after which the run reads the pair's states: a live one skips
        if any(attrs(r).get("state") in LIVE_STATES for r in org.of_pair(prospect, sequence)):
            return RowOutcome(row, Status.SKIPPED, "ALREADY_IN_SEQUENCE", "the prospect is already in this sequence")
        for field, kind in KINDS.items():
            if field in ids and ids[field] not in org.known[kind]:
                return RowOutcome(row, Status.FAILED, "VALIDATION_ERROR", f"{field[:-3]} {ids[field]} does not exist")
        if "mailbox_id" not in ids:
            return RowOutcome(row, Status.FAILED, "VALIDATION_ERROR", "no mailbox: a sequence with email steps "
                              "needs one (predicted: whether the sequence has email steps is not read)")
        if not org.emails.get(prospect, ["?"]):
            return RowOutcome(row, Status.FAILED, "NO_DELIVERABLE_EMAIL", "the prospect has no email address")
        org.add(prospect, sequence)
        return RowOutcome(row, Status.SUCCEEDED)

    def _act(self, row: int, op: str, ids: dict[str, int]) -> RowOutcome:
        record = self.org.states.get(ids[STATE])
        if record is None:
            return RowOutcome(row, Status.FAILED, "SEQUENCE_STATE_NOT_FOUND", f"no sequence state {ids[STATE]}")
        if op == "remove":
            del self.org.states[ids[STATE]]
            return RowOutcome(row, Status.SUCCEEDED)
        state = attrs(record).get("state")
        if state not in STARTS[op]:
            if state in DONE_STATE[op][0]:
                return RowOutcome(row, Status.SKIPPED, DONE_STATE[op][1], f"sequence state {ids[STATE]} is already "
                                  f"{state}")
            return RowOutcome(row, Status.FAILED, "VALIDATION_ERROR", f"Cannot {op} a sequence state that is {state}")
        record["attributes"] = {**attrs(record), "state": LEAVES[op]}
        return RowOutcome(row, Status.SUCCEEDED)


async def predict(job: Job, session: Any, io: SessionIO, rows: Sequence[Row]) -> list[RowOutcome]:
    """One outcome per row, from the run's look-ups and the states of the file's pairs."""
    state = OrgState(session)
    try:
        await state.read(io, job, rows)
    except LookupFailed as exc:
        raise JobError(f"predict could not read Outreach: {exc}; nothing was sent") from None
    predictor = Predictor(state)
    return [predictor.outcome(row) for row in rows]
