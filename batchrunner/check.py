"""``batchrunner check JOB.toml``: is this job ready to run? Authenticates, resolves the API version
against the org, checks the job's actions exist, looks up the constants that name a cadence or a
user (a misspelt cadence name would fail every row), and reports the budget left. Every problem
found is reported, not just the first. Only GET requests: nothing that changes data is sent.

Salesforce (docs/platforms.md "Discovery"): ``GET /services/data/`` lists the versions (no auth);
``GET .../actions/standard/{name}`` describes an action; ``GET .../limits`` gives
``DailyApiRequests`` (Max, Remaining); ``Sforce-Limit-Info`` rides on every response.
Salesloft: ``GET /v2/me`` (who the credential acts as) and the budget headers
``x-ratelimit-remaining-minute`` / ``x-ratelimit-endpoint-cost`` (docs/platforms.md "Rate limits").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from batchrunner import secrets
from batchrunner.auth import AuthError
from batchrunner.constants import check_constants
from batchrunner.errors import JobError
from batchrunner.job import Job
from batchrunner.platforms import get_platform
from batchrunner.validate import check_job


@dataclass
class CheckResult:
    mode: str  # SANDBOX | LIVE
    platform: str
    endpoint: str
    checks: list[dict[str, Any]] = field(default_factory=list)  # {"name", "ok", "detail"}
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append({"name": name, "ok": ok, "detail": secrets.redact(detail)})

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "platform": self.platform, "endpoint": self.endpoint, "ok": self.ok,
                "checks": self.checks, **self.info}


def _operations(job: Job, catalog: Any) -> list[Any]:
    """The actions to describe: the job's operation, or every one (an operation column). An unknown
    operation is reported by the "job file" check, not here."""
    if job.operation:
        op = catalog.resolve(job.operation)
        return [op] if op is not None else []
    return list(catalog.operations)  # an operation column: any of them may appear


def _job_file(job: Job, platform: Any, result: CheckResult) -> None:
    """What ``validate`` would refuse about the job itself (operation, columns), as one check among
    the others rather than an error that hides them."""
    version = platform.api_version(job)
    try:
        check_job(job, platform.catalog_for(job), float(version) if version else None)
    except JobError as exc:
        result.add("job file", False, str(exc))


async def _constants(job: Job, client: httpx.AsyncClient, result: CheckResult) -> None:
    """Each ``{ value = ... }`` naming a cadence or user, looked up (constants.py): a misspelt
    cadence name fails here, not on every row of the run."""
    for item in await check_constants(job, client):
        result.add(f"constant {item.field}", item.ok is True, f"{item.value!r}: {item.detail}")


async def check(job: Job, *, sandbox_app: Any | None = None) -> CheckResult:
    from batchrunner.runner import _client_factory

    platform = get_platform(job.platform)
    _, _, target = platform.endpoint(job)  # exit 2 naming a missing variable, before any request
    result = CheckResult("SANDBOX" if job.is_sandbox else "LIVE", job.platform, target)
    _job_file(job, platform, result)
    try:
        session = await platform.open_session(job, _client_factory(job, sandbox_app))
    except (AuthError, JobError) as exc:
        result.add("authenticate", False, str(exc))
        return result
    result.endpoint = getattr(session, "target", None) or target
    try:
        client: httpx.AsyncClient = session.client
        if job.platform == "salesforce":
            await _salesforce(job, platform, client, result)
        elif hasattr(platform, "check"):  # a platform that brings its own read-only checks
            await platform.check(job, client, result)
        else:
            await _salesloft(client, result)
        if all(c["ok"] for c in result.checks if c["name"] == "authenticate"):
            await _constants(job, client, result)
    except httpx.HTTPError as exc:
        result.add("connection", False, f"{type(exc).__name__} talking to {result.endpoint}")
    finally:
        await session.aclose()
    return result


async def _salesforce(job: Job, platform: Any, client: httpx.AsyncClient, result: CheckResult) -> None:
    version = platform.api_version(job)
    response = await client.get("/services/data/")
    versions: list[str] = []
    if response.status_code == 200 and isinstance(response.json(), list):
        versions = [str(v.get("version")) for v in response.json() if isinstance(v, dict)]
    latest = max(versions, key=float) if versions else None
    result.info["api_versions"] = {"configured": version, "latest": latest}
    result.add("api version", version in versions,
               f"v{version} is served by the org (latest v{latest})" if version in versions
               else f"v{version} is not among the org's versions ({', '.join(versions) or 'none listed'})")
    limits = await client.get(f"/services/data/v{version}/limits")
    result.add("authenticate", limits.status_code != 401,
               "the org accepted the token" if limits.status_code != 401 else f"HTTP 401: {secrets.excerpt(limits.text, 200)}")
    if limits.status_code == 401:
        return
    for op in _operations(job, platform.catalog_for(job)):
        describe = await client.get(f"/services/data/v{version}/actions/standard/{op.wire_name}")
        ok = describe.status_code == 200
        result.add(f"action {op.wire_name}", ok, f"{op.name}: described" if ok else
                   f"{op.name}: HTTP {describe.status_code} (needs API {op.min_api_version}+; the org may lack "
                   "Sales Engagement)")
    if limits.status_code == 200:
        daily = (limits.json() or {}).get("DailyApiRequests") or {}
        result.info["daily_api_requests"] = {"max": daily.get("Max"), "remaining": daily.get("Remaining")}
        reserve = job.limits.api_reserve
        remaining = daily.get("Remaining")
        result.add("daily API calls", remaining is None or remaining > reserve,
                   f"{remaining} of {daily.get('Max')} remaining today (reserve {reserve})")
    else:
        result.add("daily API calls", False, f"GET limits answered HTTP {limits.status_code}")


async def _salesloft(client: httpx.AsyncClient, result: CheckResult) -> None:
    me = await client.get("/v2/me")
    ok = me.status_code == 200
    data = (me.json() or {}).get("data") or {} if ok else {}
    result.add("authenticate", ok, f"acting as {data.get('name')} <{data.get('email')}>" if ok
               else f"GET /v2/me answered HTTP {me.status_code}")
    remaining = me.headers.get("x-ratelimit-remaining-minute")
    cost = me.headers.get("x-ratelimit-endpoint-cost")
    result.info["budget"] = {"remaining_minute": remaining, "endpoint_cost": cost}
    result.add("budget headers", remaining is not None,
               f"{remaining} cost left this minute (a request cost {cost})" if remaining is not None
               else "no x-ratelimit-remaining-minute header")
