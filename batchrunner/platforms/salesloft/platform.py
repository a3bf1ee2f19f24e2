"""The Salesloft platform: one request per person, look-ups first, outcomes confirmed.

Sources: Salesloft's "Create a cadence membership" reference (developers.salesloft.com; docs/platforms.md) and docs/platforms.md (Salesloft section): query
parameters on POST, `{"data":...}` / `{"error":...}` / `{"errors":{field:[...]}}` bodies, the
per-team cost budget and its headers, and no idempotency key (a POST whose answer was lost is
checked with a GET before it is sent again).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from batchrunner import secrets
from batchrunner.job import Job
from batchrunner.outcome import RowOutcome, Status
from batchrunner.platforms.base import (Catalog, RateSignal, RowSource, SessionIO, StopRun, Verdict, WorkUnit,
                                       bearer_client)
from batchrunner.platforms.salesloft.lookups import LookupFailed, Lookups, error_text, read
from batchrunner.platforms.salesloft.operations import CATALOG

DEFAULT_BASE_URL = "https://api.salesloft.com"
PLURAL = {"person": "people", "user": "users"}
SANDBOX_TOKEN = "sandbox-key"  # the seed team's default API key (sample_data/sandbox/salesloft_team.json)
TRANSIENT = frozenset({429, 500, 502, 503, 504})
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)  # failed before the request left
#: answers after which the request may have been carried out (no idempotency key: docs/platforms.md). A
#: 429 is refused before any work; for the 5xx nothing is documented, so each may have applied
MAYBE_APPLIED = frozenset({500, 502, 503, 504})
#: clocks differ: a membership added up to this long before the run started still counts as the run's
CLOCK_SKEW = timedelta(seconds=60)
__all__ = ["SalesloftPlatform", "SalesloftSession", "error_text", "rate_signal"]


def rate_signal(response: httpx.Response) -> RateSignal:
    signal = RateSignal()
    headers = response.headers
    for name, attr in (("x-ratelimit-remaining-minute", "remaining"), ("x-ratelimit-endpoint-cost", "cost")):
        try:
            setattr(signal, attr, float(headers[name]))
        except (KeyError, ValueError):
            pass
    try:
        signal.retry_after = max(0.0, float(headers["retry-after"]))
    except (KeyError, ValueError):
        pass
    signal.pause_all = response.status_code == 429
    return signal


class SalesloftSession:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.lookups = Lookups()
        self.resolved: dict[int, dict[str, int]] = {}  # row -> ids to send
        #: when the run started (the journal's created_at), set by the runner on resume; memberships
        #: added since were added by this run. None: unknown, and a membership found for a row this
        #: run sent is taken to be the run's own
        self.run_started_at: datetime | None = None
        self.opened_at = datetime.now(UTC)  # a lower bound for the run's own enrolments in this process
        self.resumed: set[int] = set()  # rows an earlier process sent (resume): opened_at does not bound them

    def rows_per_request(self, operation: str) -> int:
        return 1

    def request_cost(self, unit: WorkUnit) -> float:
        return 1.0

    def read_rate(self, response: httpx.Response) -> RateSignal:
        return rate_signal(response)

    # -- look-ups ---------------------------------------------------------------------------
    async def prepare(self, units: list[WorkUnit], rows: RowSource, io: SessionIO) -> list[WorkUnit]:
        indices = [r for u in units for r in u.rows]
        data = dict(zip(indices, rows.rows(indices), strict=True))
        emails = {d["person_email"] for d in data.values() if d.get("person_email")}
        crm_ids = {d["person_crm_id"] for d in data.values() if d.get("person_crm_id")}
        names = {d["cadence_name"] for d in data.values() if d.get("cadence_name")}
        await self.lookups.people(io, emails=emails, crm_ids=crm_ids)
        await self.lookups.cadences(io, names)
        if any(d.get("user_email") for d in data.values()):
            await self.lookups.users(io)
        ready: list[WorkUnit] = []
        failed: list[RowOutcome] = []  # outcomes decided here (misses, skips, reconciled)
        for unit in units:
            row = unit.rows[0]
            ids, problem = self._resolve(data[row])
            if problem is not None:
                failed.append(RowOutcome(row, Status.FAILED, problem[0], problem[1]))
                continue
            if unit.operation == "remove" and "membership_id" not in ids:
                try:
                    membership = await self.current_membership(io, ids["person_id"], ids["cadence_id"])
                except LookupFailed as exc:
                    failed.append(RowOutcome(row, Status.FAILED, exc.code, exc.message))
                    continue
                if membership is None and row in unit.unsure:  # our DELETE went through before the crash
                    failed.append(RowOutcome(row, Status.SUCCEEDED, result={"reconciled": True}, attempts=unit.attempts))
                    continue
                if membership is None:
                    failed.append(RowOutcome(row, Status.SKIPPED, "NOT_ON_CADENCE",
                                             f"person {ids['person_id']} is not currently on cadence {ids['cadence_id']}"))
                    continue
                ids["membership_id"] = int(membership["id"])
            self.resolved[row] = ids
            if row in unit.unsure:
                self.resumed.add(row)
                done = await self._check(unit, ids, io)
                if done is not None:
                    failed.append(done)
                    continue
            ready.append(unit)
        io.record(failed)
        return ready

    def _resolve(self, row: dict[str, Any]) -> tuple[dict[str, int], tuple[str, str] | None]:
        ids: dict[str, int] = {k: int(row[k]) for k in ("person_id", "cadence_id", "user_id", "step_id", "task_id",
                                                         "membership_id") if row.get(k) is not None}
        lk = self.lookups
        checks = (
            ("person_email", "person_id", lk.people_by_email, "person", "with email"),
            ("person_crm_id", "person_id", lk.people_by_crm, "person", "with crm_id"),
            ("user_email", "user_id", lk.users_by_email or {}, "user", "with email"),
        )
        for field, target, cache, noun, how in checks:
            value = row.get(field)
            if value is None:
                continue
            if (failed := lk.failure(field, value)) is not None:
                return ids, (failed.code, f"could not look up {noun} {how} {value}: {failed.message}")
            found = cache.get(value, [])
            if not found:
                return ids, (f"{noun.upper()}_NOT_FOUND", f"no Salesloft {noun} {how} {value}")
            if len(found) > 1:
                return ids, (f"AMBIGUOUS_{noun.upper()}",
                             f"{len(found)} Salesloft {PLURAL[noun]} {how} {value} (ids {', '.join(map(str, found))}); "
                             f"give {target} instead")
            ids[target] = found[0]
        name = row.get("cadence_name")
        if name is not None:
            if (failed := lk.failure("cadence_name", name)) is not None:
                return ids, (failed.code, f"could not look up cadence {name!r}: {failed.message}")
            found_cadences = lk.cadences_by_name.get(name, [])
            if not found_cadences:
                return ids, ("CADENCE_NOT_FOUND", f"no Salesloft cadence named {name!r} visible to this API key")
            if len(found_cadences) > 1:
                listed = ", ".join(str(c.get("id")) for c in found_cadences)
                return ids, ("AMBIGUOUS_CADENCE",
                             f"{len(found_cadences)} cadences are named {name!r} (ids {listed}); give cadence_id instead")
            ids["cadence_id"] = int(found_cadences[0]["id"])
        return ids, None

    async def current_membership(self, io: SessionIO, person_id: int, cadence_id: int) -> dict[str, Any] | None:
        """The person's membership currently on the cadence, None when there is none, or
        LookupFailed when the platform cannot be asked (never mistaken for "none")."""
        response = await read(io, "/v2/cadence_memberships", "a membership look-up", params={
            "person_id": person_id, "cadence_id": cadence_id, "currently_on_cadence": "true", "per_page": 100})
        for membership in response.json().get("data") or []:
            if (membership.get("currently_on_cadence") and (membership.get("person") or {}).get("id") == person_id
                    and (membership.get("cadence") or {}).get("id") == cadence_id):
                return membership
        return None

    def _added_by_this_run(self, membership: dict[str, Any], row: int) -> bool:
        """Was the membership added after the run started? (``added_at`` is the latest add:
        docs/platforms.md.) A row an earlier process sent (resume) may have been applied before
        this session opened: only the run's start bounds it (unknown: the membership is the run's)."""
        since = self.run_started_at if row in self.resumed else (self.run_started_at or self.opened_at)
        if since is None:
            return True
        try:
            added = datetime.fromisoformat(str(membership.get("added_at")).replace("Z", "+00:00"))
        except ValueError:
            return True
        if added.tzinfo is None:
            added = added.replace(tzinfo=UTC)
        return added >= since - CLOCK_SKEW

    def _on_cadence(self, row: int, membership: dict[str, Any], mine: bool, said: str | None = None) -> RowOutcome:
        """A person found on the cadence: enrolled by this run (succeeded, reconciled) or before it (skipped)."""
        result = {"membership_id": membership.get("id"), "current_state": membership.get("current_state"),
                  "added_at": membership.get("added_at")}
        if mine:
            return RowOutcome(row, Status.SUCCEEDED, result={**result, "reconciled": True,
                                                             **({"platform_said": said} if said else {})})
        return RowOutcome(row, Status.SKIPPED, "ALREADY_ON_CADENCE", "the person is already on this cadence",
                          result=result)

    # -- requests ---------------------------------------------------------------------------
    def build_request(self, unit: WorkUnit, rows: list[dict[str, Any]]) -> httpx.Request:
        ids = self.resolved[unit.rows[0]]
        if unit.operation == "remove":
            return self.client.build_request("DELETE", f"/v2/cadence_memberships/{ids['membership_id']}")
        params = {k: ids[k] for k in ("person_id", "cadence_id", "user_id", "step_id", "task_id") if k in ids}
        # seed doc: the parameters go in the query string; the sample sends an empty body
        return self.client.build_request("POST", "/v2/cadence_memberships", params=params)

    async def interpret(self, unit: WorkUnit, rows: list[dict[str, Any]], response: httpx.Response,
                        io: SessionIO) -> Verdict:
        row = unit.rows[0]
        ids = self.resolved[row]
        status = response.status_code
        verdict = Verdict(rate=rate_signal(response))
        if status in TRANSIENT:
            verdict.retry, verdict.retry_reason = [row], (f"HTTP_{status}", error_text(response))
            if status in MAYBE_APPLIED:  # read before sending again: no idempotency key
                done = await self._check(unit, ids, io)
                if done is not None:
                    verdict.retry, verdict.outcomes = [], [done]
                # not seen applied (or unreadable): sent again, its answer read as maybe-applied (a
                # gateway may have answered while the platform was still at work)
                verdict.maybe_applied = True
            return verdict
        if status == 401:
            verdict.stop = ("AUTH_LOST", f"Salesloft answered 401: {error_text(response)}")
            return verdict
        if unit.operation == "add":
            if status in (200, 201):
                verdict.outcomes.append(RowOutcome(row, Status.SUCCEEDED, result=_membership_result(response)))
            elif status == 422:
                # the exact "already on cadence" answer is unconfirmed (docs/platforms.md): ask, don't parse
                try:
                    membership = await self.current_membership(io, ids["person_id"], ids["cadence_id"])
                except LookupFailed as exc:  # cannot tell: a repeat is harmless (one membership per person)
                    verdict.retry, verdict.retry_reason = [row], (exc.code, exc.message)
                    return verdict
                if membership is not None:
                    # an earlier send of this row may have enrolled the person (its answer a 5xx or lost)
                    mine = row in unit.unsure and self._added_by_this_run(membership, row)
                    verdict.outcomes.append(self._on_cadence(row, membership, mine, said=error_text(response)))
                else:
                    verdict.outcomes.append(RowOutcome(row, Status.FAILED, "VALIDATION_ERROR", error_text(response)))
            else:
                verdict.outcomes.append(RowOutcome(row, Status.FAILED, _code(status), error_text(response)))
            return verdict
        # remove
        if status in (200, 204):
            verdict.outcomes.append(RowOutcome(row, Status.SUCCEEDED, result={"membership_id": ids["membership_id"]}))
        elif status == 404 and await self._membership_ended(io, ids["membership_id"]):
            if row in unit.unsure:  # our earlier DELETE, whose answer was a 5xx or lost, did it
                verdict.outcomes.append(RowOutcome(row, Status.SUCCEEDED, result={
                    "membership_id": ids["membership_id"], "reconciled": True}))
            else:
                verdict.outcomes.append(RowOutcome(row, Status.SKIPPED, "NOT_ON_CADENCE",
                                                   f"membership {ids['membership_id']} is not currently on its cadence"))
        else:
            verdict.outcomes.append(RowOutcome(row, Status.FAILED, _code(status), error_text(response)))
        return verdict

    async def _membership_ended(self, io: SessionIO, membership_id: int) -> bool:
        """Is the membership no longer on its cadence? False also when it cannot be read."""
        try:
            response = await read(io, f"/v2/cadence_memberships/{membership_id}", "a membership look-up")
        except LookupFailed:
            return False
        return not (response.json().get("data") or {}).get("currently_on_cadence", True)

    async def _check(self, unit: WorkUnit, ids: dict[str, int], io: SessionIO) -> RowOutcome | None:
        """For a row sent with no usable answer (lost, a 5xx, before a crash): did it happen? (No
        idempotency key: docs/platforms.md.) An outcome when the state says so; None to send it again (a
        repeat is harmless: one membership per person and cadence, and its 422 is read again)."""
        row = unit.rows[0]
        try:
            if unit.operation == "add":
                membership = await self.current_membership(io, ids["person_id"], ids["cadence_id"])
                if membership is not None:
                    outcome = self._on_cadence(row, membership, self._added_by_this_run(membership, row))
                    outcome.attempts = unit.attempts
                    return outcome
                return None
        except LookupFailed:
            return None
        if await self._membership_ended(io, ids["membership_id"]):
            return RowOutcome(row, Status.SUCCEEDED, result={"membership_id": ids["membership_id"], "reconciled": True},
                              attempts=unit.attempts)
        return None

    async def transport_error(self, unit: WorkUnit, rows: list[dict[str, Any]], error: Exception,
                              io: SessionIO) -> Verdict:
        """No idempotency key (docs/platforms.md): before sending again, ask whether it already happened."""
        row = unit.rows[0]
        ids = self.resolved[row]
        reason = ("TIMEOUT" if isinstance(error, httpx.TimeoutException) else "CONNECTION_ERROR",
                  f"{type(error).__name__}: {error}".rstrip(": "))
        done = await self._check(unit, ids, io)
        if done is not None:
            return Verdict(outcomes=[done])
        return Verdict(retry=[row], retry_reason=reason, maybe_applied=not isinstance(error, NOT_SENT))

    async def aclose(self) -> None:
        await self.client.aclose()
        provider = getattr(self, "provider", None)
        if provider is not None:
            await provider.aclose()


def _code(status: int) -> str:
    return {404: "NOT_FOUND", 403: "FORBIDDEN", 422: "VALIDATION_ERROR"}.get(status, f"HTTP_{status}")


def _membership_result(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json().get("data") or {}
    except (ValueError, AttributeError):
        return {}
    return {"membership_id": data.get("id"), "current_state": data.get("current_state"),
            "added_at": data.get("added_at")}


class SalesloftPlatform:
    name = "salesloft"

    def catalog_for(self, job: Job | None = None) -> Catalog:
        return CATALOG

    def api_version(self, job: Job) -> str | None:
        return None

    def rows_per_request(self, job: Job, operation: str) -> int:
        return 1

    def budget_per_minute(self, job: Job) -> float | None:
        return float(job.limits.requests_per_minute)

    def endpoint(self, job: Job) -> tuple[str | None, dict[str, str], str]:
        """(base URL or None for the in-process sandbox, auth headers, what it talks to).
        Live: checks the credentials' variables and files without contacting anything."""
        conn = job.connection
        if conn.sandbox:
            return conn.base_url, {"Authorization": f"Bearer {SANDBOX_TOKEN}"}, conn.base_url or "in-process sandbox"
        from batchrunner.auth import check_url

        provider = self.token_provider(job)
        url = check_url(conn.base_url or DEFAULT_BASE_URL, "The Salesloft base_url")
        headers = {"Authorization": f"Bearer {provider._static}"} if provider.method == "api_key" else {}
        return url, headers, url

    def token_provider(self, job: Job, **kw: Any):
        from batchrunner.platforms.salesloft.auth import provider_for

        return provider_for(job, **kw)

    async def open_session(self, job: Job, make_client: Callable[[str | None, dict[str, str]], httpx.AsyncClient],
                           provider: Any = None) -> SalesloftSession:
        base_url, headers, _ = self.endpoint(job)
        if job.connection.sandbox:
            return SalesloftSession(make_client(base_url, headers))
        provider = provider or self.token_provider(job)
        session = SalesloftSession(await bearer_client(provider, make_client, base_url))
        session.provider = provider
        session.target = base_url
        return session
