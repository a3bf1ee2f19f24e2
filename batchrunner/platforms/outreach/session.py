"""An Outreach session: look-ups first, one JSON:API request per row, outcomes confirmed.

Sources: Outreach's OpenAPI document (https://api.outreach.io/api/v2/schema/openapi.json) for the
endpoints and bodies; 422 with ``errors[]`` when the prospect is already active in the sequence or
has no deliverable email. There is no idempotency key: an answer that never came (transport error,
5xx) is reconciled by reading the sequence states before anything is sent again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from batchrunner import jsonio
from batchrunner.job import OutreachSettings
from batchrunner.outcome import RowOutcome, Status
from batchrunner.platforms.base import RateSignal, RowSource, SessionIO, StopRun, Verdict, WorkUnit
from batchrunner.platforms.outreach.lookups import LIVE_STATES, LookupFailed, Lookups, attrs
from batchrunner.platforms.outreach.operations import STATE
from batchrunner.platforms.outreach.responses import TRANSIENT, code_for, error_text, rate_signal
from batchrunner.platforms.outreach.users import EXTENSION

JSONAPI = "application/vnd.api+json"
ACTIONS = ("finish", "pause", "resume")
#: the state an action leaves behind, and the skip code when it was already there
DONE_STATE = {"finish": ({"finished"}, "ALREADY_FINISHED"), "pause": ({"paused"}, "ALREADY_PAUSED"),
              "resume": ({"active", "pending"}, "NOT_PAUSED")}
Ids = dict[str, int]


def _state_result(record: dict[str, Any], **extra: Any) -> dict[str, Any]:
    a = attrs(record)
    result = {"sequence_state_id": record.get("id"), "state": a.get("state")}
    if a.get("state") == "pending":  # support article 211861917: accepted, waiting on a sending throttle
        result["note"] = "pending: accepted, not active yet (a daily sending limit may be reached)"
    return {**result, **extra}


class OutreachSession:
    def __init__(self, client: httpx.AsyncClient, settings: OutreachSettings | None = None, *, reserve: float = 0.0,
                 wall: Callable[[], float] = time.time) -> None:
        self.client = client
        self.settings = settings or OutreachSettings()
        self.lookups = Lookups(self.settings.page_size, self.settings.lookup_batch)
        self.resolved: dict[int, Ids] = {}  # row -> ids to send
        self.sender: dict[int, str] = {}  # row -> the user it is sent as ([outreach.users]; else the token's)
        self.users = {e.lower() for e in self.settings.users}
        #: users of [outreach.users] whose token is the job's own (the same person): sent as the job
        self.default_users: set[str] = set()
        self.reserve, self.wall = reserve, wall

    def rows_per_request(self, operation: str) -> int:
        return 1

    def request_cost(self, unit: WorkUnit) -> float:
        return 1.0

    def read_rate(self, response: httpx.Response) -> RateSignal:
        """The budget signal of an answer, for the budget of the user who sent it (the budget is
        per user: one user's spent hour must not hold the others')."""
        signal = rate_signal(response, self.wall, self.reserve)
        try:
            signal.key = response.request.extensions.get(EXTENSION) or None
        except RuntimeError:  # a response built without its request (tests)
            pass
        return signal

    # -- look-ups ---------------------------------------------------------------------------
    async def prepare(self, units: list[WorkUnit], rows: RowSource, io: SessionIO) -> list[WorkUnit]:
        indices = [r for u in units for r in u.rows]
        data = dict(zip(indices, rows.rows(indices), strict=True))
        default_mailbox = self.settings.mailbox_email
        await self.lookups.prospects(io, {d["prospect_email"] for d in data.values() if d.get("prospect_email")})
        await self.lookups.sequences(io, {d["sequence_name"] for d in data.values() if d.get("sequence_name")})
        mailboxes = {d["mailbox_email"] for d in data.values() if d.get("mailbox_email")}
        if default_mailbox and any(u.operation == "add" for u in units):
            mailboxes.add(default_mailbox)
        await self.lookups.mailboxes(io, mailboxes)
        decided: list[RowOutcome] = []
        pending: list[tuple[WorkUnit, Ids]] = []
        for unit in units:
            row = unit.rows[0]
            ids, problem = self._resolve(unit.operation, data[row])
            if problem is not None:
                decided.append(RowOutcome(row, Status.FAILED, problem[0], problem[1]))
            else:
                pending.append((unit, ids))
        by_pair = [(u, ids) for u, ids in pending if u.operation != "add" and STATE not in ids]
        problem_text = ""
        try:
            states = await self.lookups.states(io, {(ids["prospect_id"], ids["sequence_id"]) for _, ids in by_pair})
        except (LookupFailed, httpx.TransportError) as exc:
            states, problem_text = None, str(exc)
        ready: list[WorkUnit] = []
        for unit, ids in pending:
            row = unit.rows[0]
            if unit.operation != "add" and STATE not in ids:
                if states is None:
                    decided.append(RowOutcome(row, Status.FAILED, "LOOKUP_FAILED",
                                              f"could not read the sequence states: {problem_text}"))
                    continue
                early = self._pick_state(unit, ids, states[(ids["prospect_id"], ids["sequence_id"])])
                if early is not None:
                    decided.append(early)
                    continue
            self.resolved[row] = ids
            user = data[row].get("user_email")
            if user:
                if user.lower() not in self.users:
                    decided.append(RowOutcome(row, Status.FAILED, "USER_NOT_CONFIGURED", f"no token for Outreach user "
                                              f"{user!r}: add it to [outreach.users]"))
                    continue
                if user.lower() not in self.default_users:  # the job's own user: its token, its budget
                    self.sender[row] = unit.rate_key = user.lower()
            if row in unit.unsure:  # sent by an earlier process, answer never read: did it happen?
                try:
                    done = await self._already_done(unit.operation, row, ids, io)
                except (LookupFailed, httpx.TransportError):
                    done = None  # sent again: a repeat is refused (422 / 404) and then reconciled
                if done is not None:
                    done.attempts = unit.attempts
                    decided.append(done)
                    continue
            ready.append(unit)
        io.record(decided)
        return ready

    def _resolve(self, operation: str, row: dict[str, Any]) -> tuple[Ids, tuple[str, str] | None]:
        ids: Ids = {k: int(row[k]) for k in ("prospect_id", "sequence_id", "mailbox_id", STATE)
                    if row.get(k) is not None}
        lk = self.lookups
        wanted = [("prospect_email", "prospect_id", lk.prospects_by_email, "prospect", "with email"),
                  ("sequence_name", "sequence_id", lk.sequences_by_name, "sequence", "named"),
                  ("mailbox_email", "mailbox_id", lk.mailboxes_by_email, "mailbox", "with email")]
        values = dict(row)
        if operation == "add" and "mailbox_id" not in ids and not row.get("mailbox_email"):
            if self.settings.mailbox_id:
                ids["mailbox_id"] = self.settings.mailbox_id
            elif self.settings.mailbox_email:
                values["mailbox_email"] = self.settings.mailbox_email
        for field, target, cache, noun, how in wanted:
            value = values.get(field)
            if value is None:
                continue
            key = value.lower() if field.endswith("email") else value
            if (field, key) in lk.errors:
                return ids, ("LOOKUP_FAILED", f"could not look up {noun} {how} {value!r}: {lk.errors[(field, key)]}")
            found = cache.get(key, [])
            if not found:
                return ids, (f"{noun.upper()}_NOT_FOUND", f"no Outreach {noun} {how} {value!r}")
            if len(found) > 1:
                return ids, (f"AMBIGUOUS_{noun.upper()}", f"{len(found)} Outreach {noun}s {how} {value!r} "
                             f"(ids {', '.join(map(str, found))}); give {target} instead")
            ids[target] = found[0]
        if operation == "add" and self.settings.require_mailbox and "mailbox_id" not in ids:
            return ids, ("MAILBOX_REQUIRED", "no mailbox: give mailbox_id or mailbox_email, or [outreach] mailbox_id")
        return ids, None

    def _pick_state(self, unit: WorkUnit, ids: Ids, records: list[dict[str, Any]]) -> RowOutcome | None:
        """For a row naming prospect + sequence: the state it acts on, or the outcome without a request."""
        row, op = unit.rows[0], unit.operation
        live = [r for r in records if attrs(r).get("state") in LIVE_STATES]
        where = f"prospect {ids['prospect_id']} in sequence {ids['sequence_id']}"
        if len(live) > 1:
            return RowOutcome(row, Status.FAILED, "AMBIGUOUS_SEQUENCE_STATE", f"{len(live)} live sequence states for "
                              f"{where} (ids {', '.join(str(r.get('id')) for r in live)}); give sequence_state_id")
        if live:
            ids[STATE] = int(live[0]["id"])
            state = attrs(live[0]).get("state")
            if op in DONE_STATE and state in DONE_STATE[op][0]:
                if row in unit.unsure:
                    return RowOutcome(row, Status.SUCCEEDED, result=_state_result(live[0], reconciled=True),
                                      attempts=unit.attempts)
                return RowOutcome(row, Status.SKIPPED, DONE_STATE[op][1], f"{where} is already {state}",
                                  result=_state_result(live[0]))
            return None
        finished = [r for r in records if attrs(r).get("state") == "finished"]
        if row in unit.unsure and (op == "remove" or (op == "finish" and finished)):
            # our request went through before the crash: the state is gone (remove) or finished
            return RowOutcome(row, Status.SUCCEEDED, result={"reconciled": True}, attempts=unit.attempts)
        if op == "finish" and finished:
            return RowOutcome(row, Status.SKIPPED, "ALREADY_FINISHED", f"{where} is already finished",
                              result=_state_result(finished[-1]))
        return RowOutcome(row, Status.SKIPPED, "NOT_IN_SEQUENCE", f"{where}: no active, pending or paused state")

    async def _states_of(self, io: SessionIO, ids: Ids) -> list[dict[str, Any]]:
        found = await self.lookups.states(io, {(ids["prospect_id"], ids["sequence_id"])})
        return found[(ids["prospect_id"], ids["sequence_id"])]

    async def _state(self, io: SessionIO, state_id: int) -> dict[str, Any] | None:
        """One sequence state, or None when it does not exist (404)."""
        response = await io.request("GET", f"/api/v2/sequenceStates/{state_id}")
        if response.status_code == 401:
            raise StopRun("AUTH_LOST", "Outreach refused the access token during a sequence state look-up")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise LookupFailed(f"sequence state {state_id} answered HTTP {response.status_code}")
        return response.json().get("data") or {}

    # -- requests ---------------------------------------------------------------------------
    def build_request(self, unit: WorkUnit, rows: list[dict[str, Any]]) -> httpx.Request:
        ids = self.resolved[unit.rows[0]]
        headers = {"Content-Type": JSONAPI, "Accept": JSONAPI}
        sender = self.sender.get(unit.rows[0])
        extensions = {EXTENSION: sender} if sender else None
        if unit.operation == "remove":
            return self.client.build_request("DELETE", f"/api/v2/sequenceStates/{ids[STATE]}", headers=headers,
                                             extensions=extensions)
        if unit.operation in ACTIONS:
            return self.client.build_request("POST", f"/api/v2/sequenceStates/{ids[STATE]}/actions/{unit.operation}",
                                             headers=headers, extensions=extensions)
        relationships = {name: {"data": {"type": name, "id": ids[f"{name}_id"]}}
                         for name in ("prospect", "sequence", "mailbox") if f"{name}_id" in ids}
        body = {"data": {"type": "sequenceState", "relationships": relationships}}
        return self.client.build_request("POST", "/api/v2/sequenceStates", headers=headers, content=jsonio.dumps(body),
                                         extensions=extensions)

    async def interpret(self, unit: WorkUnit, rows: list[dict[str, Any]], response: httpx.Response,
                        io: SessionIO) -> Verdict:
        row, op = unit.rows[0], unit.operation
        ids = self.resolved[row]
        status = response.status_code
        verdict = Verdict(rate=self.read_rate(response))
        if status in TRANSIENT:
            reason = (f"HTTP_{status}", error_text(response))
            if status == 429:  # refused before anything happened: send again after the pause
                verdict.retry, verdict.retry_reason = [row], reason
                return verdict
            return await self._lost(unit, ids, io, reason, verdict)
        if status == 401:
            verdict.stop = ("AUTH_LOST", f"Outreach answered 401: {error_text(response)}")
            return verdict
        if status in (200, 201, 204):
            verdict.outcomes.append(RowOutcome(row, Status.SUCCEEDED, result=self._success(op, ids, response)))
        elif status == 422:
            try:
                verdict.outcomes.append(await self._refused(unit, ids, response, io))
            except (LookupFailed, httpx.TransportError) as exc:  # refused, and what is true cannot be read
                verdict.outcomes.append(RowOutcome(row, Status.FAILED, "VALIDATION_ERROR", f"{error_text(response)} "
                                                   f"(could not read the sequence state to confirm: {exc})"))
        elif status == 404 and op != "add":
            gone = row in unit.unsure and op == "remove"
            verdict.outcomes.append(
                RowOutcome(row, Status.SUCCEEDED, result={"sequence_state_id": ids[STATE], "reconciled": True}) if gone
                else RowOutcome(row, Status.FAILED, "SEQUENCE_STATE_NOT_FOUND", f"no sequence state {ids[STATE]}"))
        else:
            verdict.outcomes.append(RowOutcome(row, Status.FAILED, code_for(status), error_text(response)))
        return verdict

    @staticmethod
    def _success(op: str, ids: Ids, response: httpx.Response) -> dict[str, Any]:
        try:
            record = response.json().get("data") or {} if response.content else {}
        except (ValueError, AttributeError):
            record = {}
        if op == "remove" or not record:
            return {"sequence_state_id": ids.get(STATE) or record.get("id")}
        return _state_result(record)

    async def _refused(self, unit: WorkUnit, ids: Ids, response: httpx.Response, io: SessionIO) -> RowOutcome:
        """A 422: the exact wording is unconfirmed, so ask the platform what is true instead of parsing."""
        row, op, text = unit.rows[0], unit.operation, error_text(response)
        if op == "add":
            live = [r for r in await self._states_of(io, ids) if attrs(r).get("state") in LIVE_STATES]
            if live and row in unit.unsure:  # our earlier send went through; its answer was lost
                return RowOutcome(row, Status.SUCCEEDED, result=_state_result(live[0], reconciled=True))
            if live:
                return RowOutcome(row, Status.SKIPPED, "ALREADY_IN_SEQUENCE",
                                  "the prospect is already in this sequence", result=_state_result(live[0]))
            code = "NO_DELIVERABLE_EMAIL" if "deliverable" in text.lower() else "VALIDATION_ERROR"
            return RowOutcome(row, Status.FAILED, code, text)
        if op in DONE_STATE:
            record = await self._state(io, ids[STATE])
            state = attrs(record or {}).get("state")
            if record is not None and state in DONE_STATE[op][0]:
                if row in unit.unsure:
                    return RowOutcome(row, Status.SUCCEEDED, result=_state_result(record, reconciled=True))
                return RowOutcome(row, Status.SKIPPED, DONE_STATE[op][1],
                                  f"sequence state {ids[STATE]} is already {state}", result=_state_result(record))
        return RowOutcome(row, Status.FAILED, "VALIDATION_ERROR", text)

    async def _already_done(self, op: str, row: int, ids: Ids, io: SessionIO) -> RowOutcome | None:
        """For a row whose answer was lost: did it happen? (No idempotency key.)"""
        if op == "add":
            live = [r for r in await self._states_of(io, ids) if attrs(r).get("state") in LIVE_STATES]
            return RowOutcome(row, Status.SUCCEEDED, result=_state_result(live[0], reconciled=True)) if live else None
        record = await self._state(io, ids[STATE])
        if op == "remove":
            gone = record is None
            return RowOutcome(row, Status.SUCCEEDED, result={"sequence_state_id": ids[STATE], "reconciled": True}
                              ) if gone else None
        if record is not None and attrs(record).get("state") in DONE_STATE[op][0]:
            return RowOutcome(row, Status.SUCCEEDED, result=_state_result(record, reconciled=True))
        return None

    async def _lost(self, unit: WorkUnit, ids: Ids, io: SessionIO, reason: tuple[str, str],
                    verdict: Verdict | None = None) -> Verdict:
        """No answer, or a 5xx that may have come after the change: check before any re-send."""
        verdict = verdict or Verdict(rate=RateSignal(key=unit.rate_key))  # no answer: its user's budget unchanged
        row = unit.rows[0]
        try:
            done = await self._already_done(unit.operation, row, ids, io)
        except (httpx.TransportError, LookupFailed):
            done = None
        if done is not None:
            verdict.outcomes.append(done)
            return verdict
        verdict.retry, verdict.retry_reason, verdict.maybe_applied = [row], reason, True
        return verdict

    async def transport_error(self, unit: WorkUnit, rows: list[dict[str, Any]], error: Exception,
                              io: SessionIO) -> Verdict:
        reason = ("TIMEOUT" if isinstance(error, httpx.TimeoutException) else "CONNECTION_ERROR",
                  f"{type(error).__name__}: {error}".rstrip(": "))
        return await self._lost(unit, self.resolved[unit.rows[0]], io, reason)

    async def aclose(self) -> None:
        await self.client.aclose()
        for provider in [getattr(self, "provider", None), *getattr(self, "user_providers", {}).values()]:
            if provider is not None:
                await provider.aclose()
