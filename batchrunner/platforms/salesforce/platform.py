"""The Salesforce platform: catalog, connection, and one session per run."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from batchrunner import jsonio
from batchrunner.job import Job
from batchrunner.outcome import RowOutcome, Status
from batchrunner.platforms.base import Catalog, RowSource, SessionIO, Verdict, WorkUnit
from batchrunner.platforms.salesforce import reconcile, responses
from batchrunner.platforms.salesforce.operations import build_catalog

DEFAULT_API_VERSION = "62.0"
RESENDABLE = reconcile.RESENDABLE  # operations whose repeat is harmless (kept for importers)
SANDBOX_TOKEN = "sandbox-token"


class SalesforceSession:
    def __init__(self, client: httpx.AsyncClient, catalog: Catalog, api_version: str, batch_size: int,
                 api_reserve: int = 0) -> None:
        self.client = client
        self.catalog = catalog
        self.api_version = api_version
        self.batch_size = batch_size
        self.api_reserve = api_reserve
        self._ops = {op.name: op for op in catalog.operations}
        #: when the run started (the journal's created_at), set by the runner on resume; trackers
        #: created since were made by this run. None: unknown, and a tracker found for a row this
        #: run sent is taken to be the run's own
        self.run_started_at: datetime | None = None
        self.opened_at = datetime.now(UTC)  # a lower bound for the run's own trackers in this process
        self.resumed: set[int] = set()  # rows an earlier process sent (resume): opened_at does not bound them

    def rows_per_request(self, operation: str) -> int:
        return self.batch_size

    def request_cost(self, unit: WorkUnit) -> float:
        return 1.0

    async def prepare(self, units: list[WorkUnit], rows: RowSource, io: SessionIO) -> list[WorkUnit]:
        """Rows whose earlier send has no known answer (resume): read the org's state first
        (reconcile.py); rows the state shows done are recorded, rows it shows not done are sent
        again, and rows it cannot tell about are sent again only when a repeat is harmless, else
        reported UNKNOWN_OUTCOME."""
        ready: list[WorkUnit] = []
        decided: list[RowOutcome] = []
        for unit in units:
            if not unit.unsure:
                ready.append(unit)
                continue
            unsure = [r for r in unit.rows if r in unit.unsure]
            self.resumed.update(unsure)
            decision = await reconcile.decide(io, self.api_version, unit.operation, unsure, rows.rows(unsure),
                                              self.run_started_at, "sent before the run stopped")
            for outcome in decision.outcomes:
                outcome.attempts = unit.attempts
            decided += decision.outcomes
            done = {o.row for o in decision.outcomes}
            rest = [r for r in unit.rows if r not in done]
            if rest:
                ready.append(unit.part(rest, unsure=frozenset(decision.unsure)))
        io.record(decided)
        return ready

    def inputs(self, operation: str, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        names = [f.name for f in self._ops[operation].fields if f.send]
        return [{n: v for n in names if (v := row.get(n)) is not None} for row in rows]

    def build_request(self, unit: WorkUnit, rows: list[dict[str, Any]]) -> httpx.Request:
        wire = self._ops[unit.operation].wire_name
        url = f"/services/data/v{self.api_version}/actions/standard/{wire}"
        body = jsonio.dumps({"inputs": self.inputs(unit.operation, rows)})
        return self.client.build_request("POST", url, content=body, headers={"Content-Type": "application/json"})

    async def interpret(self, unit: WorkUnit, rows: list[dict[str, Any]], response: httpx.Response,
                        io: SessionIO) -> Verdict:
        verdict = responses.interpret(unit, response, self.api_reserve)
        if verdict.maybe_applied and verdict.retry:
            verdict = await self._reconciled(unit, rows, verdict, io)
        elif unit.operation == "assign":
            await self._already_assigned(unit, rows, verdict, io)
        return verdict

    @staticmethod
    def _read_since(verdict: Verdict) -> None:
        """A state read answered after this response: its Sforce-Limit-Info, already observed, is
        the newer figure, so this response's must not overwrite it."""
        verdict.rate.api_used = verdict.rate.api_limit = None

    def _since(self, rows: Sequence[int]) -> datetime | None:
        """Since when a change counts as this run's. Rows an earlier process sent (resume) may have
        been applied before this session opened: only the run's start bounds them (None, unknown:
        a change found for them is the run's own)."""
        if self.resumed.intersection(rows):
            return self.run_started_at
        return self.run_started_at or self.opened_at

    async def _reconciled(self, unit: WorkUnit, rows: list[dict[str, Any]], verdict: Verdict,
                          io: SessionIO) -> Verdict:
        """A verdict whose retry rows may have applied: read the state, then send again only what
        did not apply (or what is harmless to repeat)."""
        position = {r: i for i, r in enumerate(unit.rows)}
        maybe = list(verdict.retry)
        why = ": ".join(verdict.retry_reason or ("NO_ANSWER", ""))
        decision = await reconcile.decide(io, self.api_version, unit.operation, maybe,
                                          [rows[position[r]] for r in maybe], self._since(maybe), why)
        self._read_since(verdict)
        verdict.outcomes += decision.outcomes
        verdict.retry = decision.resend + decision.unsure
        verdict.maybe_applied = bool(decision.unsure)
        return verdict

    async def _already_assigned(self, unit: WorkUnit, rows: list[dict[str, Any]], verdict: Verdict,
                                io: SessionIO) -> None:
        """An assign refused because the target already has an active tracker: read the tracker.
        On the requested cadence: ``skipped ALREADY_ON_CADENCE`` (as Salesloft reports it), or
        ``succeeded`` (reconciled) when this run made it (an earlier send whose answer was lost).
        On another cadence: ``failed ALREADY_ON_OTHER_CADENCE``, naming it."""
        refused = [o for o in verdict.outcomes if o.status == Status.FAILED and responses.already_assigned(o.message)]
        if not refused:
            return
        self._read_since(verdict)
        position = {r: i for i, r in enumerate(unit.rows)}
        targets = {o.row: reconcile.id18(rows[position[o.row]].get("targetId")) for o in refused}
        try:
            active = await reconcile.active_trackers(io, self.api_version, [t for t in targets.values() if t])
        except reconcile.ReadFailed:
            active = {}
        replaced: dict[int, RowOutcome] = {}
        for outcome in refused:
            requested = rows[position[outcome.row]].get("salesCadenceNameOrId")
            tracker = active.get(targets[outcome.row] or "")
            if tracker is None:  # the read failed or the tracker ended meanwhile: what the answer says
                tracker = _tracker_from_message(outcome.message)
                if tracker is None or (outcome.row not in unit.unsure and reconcile.id18(requested)):
                    continue  # nothing to compare a cadence ID with: keep the platform's answer
            mine = outcome.row in unit.unsure and reconcile.made_by_this_run(tracker, self._since([outcome.row]))
            new = reconcile.already_on(outcome.row, tracker, requested, mine, said=outcome.message)
            if new.status == Status.FAILED:
                new.message = f"{new.message}. Salesforce said: {outcome.message}"
            replaced[outcome.row] = new
        verdict.outcomes = [replaced.get(o.row, o) for o in verdict.outcomes]

    def read_rate(self, response: httpx.Response):
        return responses.rate_signal(response)

    async def transport_error(self, unit: WorkUnit, rows: list[dict[str, Any]], error: Exception,
                              io: SessionIO) -> Verdict:
        verdict = responses.transport_error(unit, error, resendable=True)
        if not verdict.maybe_applied:
            return verdict  # it never left this machine: send it again
        return await self._reconciled(unit, rows, verdict, io)

    async def aclose(self) -> None:
        await self.client.aclose()
        provider = getattr(self, "provider", None)
        if provider is not None:
            await provider.aclose()


def _tracker_from_message(message: str | None) -> dict[str, Any] | None:
    """The cadence an "already assigned to a sales cadence (NAME)" answer names, shaped like a
    tracker record (no CreatedDate: not known), when the org's state cannot be read."""
    match = re.search(r"\(([^()]+)\)\.?\s*$", message or "")
    return {"ActionCadence": {"Name": match.group(1)}} if match else None


class SalesforcePlatform:
    name = "salesforce"
    #: no published per-minute budget: how many requests an org takes at once depends on its load,
    #: triggers and sharing, so the run finds it (concurrency.py; `limits.concurrency` is the ceiling)
    adaptive_concurrency = True

    def catalog_for(self, job: Job | None = None) -> Catalog:
        return build_catalog(job.wire_values if job else None)

    def rows_per_request(self, job: Job, operation: str) -> int:
        return job.limits.batch_size

    def budget_per_minute(self, job: Job) -> float | None:
        """Salesforce has no per-minute budget (a daily allocation, tracked from Sforce-Limit-Info)."""
        return None

    def api_version(self, job: Job) -> str:
        return job.connection.api_version or DEFAULT_API_VERSION

    def endpoint(self, job: Job) -> tuple[str | None, dict[str, str], str]:
        """(base URL or None for the in-process sandbox, auth headers, what it talks to).
        Live: checks the credentials' variables and files without contacting anything (exit 2
        naming what is missing); the token itself is fetched by ``open_session``."""
        conn = job.connection
        if conn.sandbox:
            return conn.instance_url, {"Authorization": f"Bearer {SANDBOX_TOKEN}"}, conn.instance_url or "in-process sandbox"
        from batchrunner.platforms.salesforce.auth import describe_target, provider_for

        provider = provider_for(job)
        if provider.method == "env":
            return provider.instance_url, {"Authorization": f"Bearer {provider._static}"}, provider.instance_url
        return provider.instance_url, {}, describe_target(job, provider)

    def token_provider(self, job: Job, **kw: Any):
        from batchrunner.platforms.salesforce.auth import provider_for

        return provider_for(job, **kw)

    async def open_session(self, job: Job, make_client: Callable[[str | None, dict[str, str]], httpx.AsyncClient],
                           provider: Any = None) -> SalesforceSession:
        if job.connection.sandbox:
            base_url, headers, _ = self.endpoint(job)
            return SalesforceSession(make_client(base_url, headers), self.catalog_for(job), self.api_version(job),
                                     job.limits.batch_size, job.limits.api_reserve)
        from batchrunner.auth import BearerAuth, check_url

        provider = provider or self.token_provider(job)
        try:
            await provider.get_token()  # authenticates now: a refused credential stops before any row is sent
            base_url = check_url(job.connection.instance_url or provider.instance_url or "",
                                 "The Salesforce instance URL")
        except BaseException:
            await provider.aclose()
            raise
        client = make_client(base_url, {})
        client.auth = BearerAuth(provider)
        session = SalesforceSession(client, self.catalog_for(job), self.api_version(job), job.limits.batch_size,
                                    job.limits.api_reserve)
        session.provider = provider
        session.target = base_url
        return session
