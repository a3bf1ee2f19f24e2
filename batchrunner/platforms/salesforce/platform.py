"""The Salesforce platform: catalog, connection, and one session per run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import httpx

from batchrunner import jsonio
from batchrunner.job import Job
from batchrunner.outcome import RowOutcome, Status
from batchrunner.platforms.base import Catalog, RowSource, SessionIO, Verdict, WorkUnit
from batchrunner.platforms.salesforce import responses
from batchrunner.platforms.salesforce.operations import build_catalog

DEFAULT_API_VERSION = "62.0"
#: operations that may be sent again when an earlier send's answer was lost
RESENDABLE = frozenset({"assign", "modify_tracker", "select_template", "change_assignee"})
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

    def rows_per_request(self, operation: str) -> int:
        return self.batch_size

    def request_cost(self, unit: WorkUnit) -> float:
        return 1.0

    async def prepare(self, units: list[WorkUnit], rows: RowSource, io: SessionIO) -> list[WorkUnit]:
        """Rows whose earlier send has no known answer (resume): assign, modify_tracker and
        select_template are sent again (assign's "already in a cadence" answer then means it was
        done); the others are not idempotent (a second Skip skips a second step), so they are
        reported UNKNOWN_OUTCOME for a person to check rather than risk doing them twice."""
        ready: list[WorkUnit] = []
        unknown: list[RowOutcome] = []
        for unit in units:
            if not unit.unsure or unit.operation in RESENDABLE:
                ready.append(unit)
                continue
            unknown += [RowOutcome(r, Status.FAILED, "UNKNOWN_OUTCOME",
                                   f"{unit.operation} was sent before the run stopped and its answer was lost; "
                                   "check this target in Salesforce before sending it again", attempts=unit.attempts)
                        for r in unit.rows if r in unit.unsure]
            rest = [r for r in unit.rows if r not in unit.unsure]
            if rest:
                ready.append(unit.part(rest))
        io.record(unknown)
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
        if unit.unsure and unit.operation == "assign":
            for outcome in verdict.outcomes:
                if outcome.row in unit.unsure and outcome.status == Status.FAILED and responses.already_assigned(
                        outcome.message):
                    outcome.status, outcome.code = Status.SUCCEEDED, None
                    outcome.result = {"reconciled": True, "platform_said": outcome.message}
                    outcome.message = None
        return verdict

    def read_rate(self, response: httpx.Response):
        return responses.rate_signal(response)

    async def transport_error(self, unit: WorkUnit, rows: list[dict[str, Any]], error: Exception,
                              io: SessionIO) -> Verdict:
        return responses.transport_error(unit, error, resendable=unit.operation in RESENDABLE)

    async def aclose(self) -> None:
        await self.client.aclose()
        provider = getattr(self, "provider", None)
        if provider is not None:
            await provider.aclose()


class SalesforcePlatform:
    name = "salesforce"

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
