"""The Outreach platform: one JSON:API request per prospect, look-ups first, outcomes confirmed.

Sources: Outreach's OpenAPI document (https://api.outreach.io/api/v2/schema/openapi.json) and the
getting-started page (https://developers.outreach.io/api/getting-started): base
``https://api.outreach.io/api/v2``, an hourly request budget per user, OAuth only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from batchrunner.job import Job
from batchrunner.platforms.base import Catalog, bearer_client
from batchrunner.platforms.outreach.operations import CATALOG
from batchrunner.platforms.outreach.session import OutreachSession
from batchrunner.platforms.outreach.users import UserRoutedAuth, sandbox_tokens

DEFAULT_BASE_URL = "https://api.outreach.io"
SANDBOX_TOKEN = "sandbox-outreach-token"  # the seed org's default user (sample_data/sandbox/outreach_org.json)


class OutreachPlatform:
    name = "outreach"
    wall: Callable[[], float] = staticmethod(time.time)  # reads X-RateLimit-Reset (an epoch time); tests inject

    def catalog_for(self, job: Job | None = None) -> Catalog:
        return CATALOG

    def api_version(self, job: Job) -> str | None:
        return None

    def rows_per_request(self, job: Job, operation: str) -> int:
        return 1

    def budget_per_minute(self, job: Job) -> float | None:
        """A pace (``limits.requests_per_minute``), not the budget: the budget is per user per hour
        (start page) and shared with the user's other integrations, so X-RateLimit-Remaining / -Reset
        decide when everyone waits for the reset (responses.rate_signal)."""
        return float(job.limits.requests_per_minute) if job.limits.requests_per_minute else None

    def endpoint(self, job: Job) -> tuple[str | None, dict[str, str], str]:
        """(base URL or None for the in-process sandbox, auth headers, what it talks to).
        Live: checks the credentials' variables and files without contacting anything."""
        conn = job.connection
        if conn.sandbox:
            if job.outreach.users:
                sandbox_tokens(list(job.outreach.users))  # an unknown user stops here, before any row
            return conn.base_url, {"Authorization": f"Bearer {SANDBOX_TOKEN}"}, conn.base_url or "in-process sandbox"
        from batchrunner.auth import check_url

        self.token_provider(job)
        if job.outreach.users:
            from batchrunner.platforms.outreach.auth import user_providers

            user_providers(job)
        url = check_url(conn.base_url or DEFAULT_BASE_URL, "The Outreach base_url")
        return url, {}, url

    def token_provider(self, job: Job, **kw: Any):
        from batchrunner.platforms.outreach.auth import provider_for

        return provider_for(job, **kw)

    def _session(self, job: Job, client: httpx.AsyncClient) -> OutreachSession:
        return OutreachSession(client, job.outreach, reserve=float(job.limits.concurrency), wall=self.wall)

    async def open_session(self, job: Job, make_client: Callable[[str | None, dict[str, str]], httpx.AsyncClient],
                           provider: Any = None) -> OutreachSession:
        base_url, headers, _ = self.endpoint(job)
        if job.outreach.users:
            return await self._multi_user_session(job, make_client, base_url, provider)
        if job.connection.sandbox:
            return self._session(job, make_client(base_url, headers))
        provider = provider or self.token_provider(job)
        session = self._session(job, await bearer_client(provider, make_client, base_url))
        session.provider = provider
        session.target = base_url
        return session

    async def _multi_user_session(self, job: Job, make_client: Callable[..., httpx.AsyncClient],
                                  base_url: str | None, provider: Any) -> OutreachSession:
        """[outreach.users]: every user's first token is fetched before any row is sent."""
        from batchrunner.auth import StaticToken

        if job.connection.sandbox:
            provider = StaticToken(SANDBOX_TOKEN, "sandbox")
            tokens = sandbox_tokens(list(job.outreach.users))
            users: dict[str, Any] = {email: StaticToken(token, "sandbox") for email, token in tokens.items()}
        else:
            from batchrunner.platforms.outreach.auth import user_providers

            provider = provider or self.token_provider(job)
            users = user_providers(job)
        everyone = [provider, *users.values()]
        try:
            first = [await each.get_token() for each in everyone]
        except BaseException:
            for each in everyone:
                await each.aclose()
            raise
        client = make_client(base_url, {})
        client.auth = UserRoutedAuth(provider, users)
        session = self._session(job, client)
        # a user listed with the job's own token is the job's user: one budget, not two estimates of it
        session.default_users = {email for email, token in zip(users, first[1:], strict=True) if token == first[0]}
        session.provider = provider
        session.user_providers = users
        session.target = base_url or "in-process sandbox"
        return session

    async def check(self, job: Job, client: httpx.AsyncClient, result: Any) -> None:
        """`batchrunner check`: reads only. The token is accepted, the budget headers come back,
        and the job's default mailbox exists."""
        probe = await client.get("/api/v2/sequences", params={"page[size]": "1"})
        result.add("authenticate", probe.status_code == 200, "Outreach accepted the token" if probe.status_code == 200
                   else f"GET /api/v2/sequences answered HTTP {probe.status_code}")
        limit, remaining = probe.headers.get("x-ratelimit-limit"), probe.headers.get("x-ratelimit-remaining")
        result.info["budget"] = {"limit_hour": limit, "remaining_hour": remaining,
                                 "reset": probe.headers.get("x-ratelimit-reset")}
        result.add("budget headers", remaining is not None, f"{remaining} of {limit} requests left this hour"
                   if remaining is not None else "no X-RateLimit-Remaining header")
        if probe.status_code == 200 and job.outreach.mailbox_email:
            found = await client.get("/api/v2/mailboxes", params={"filter[email]": job.outreach.mailbox_email})
            emails = [str((m.get("attributes") or {}).get("email", "")).lower()
                      for m in (found.json().get("data") or [] if found.status_code == 200 else [])]
            result.add("default mailbox", job.outreach.mailbox_email.lower() in emails,
                       f"{job.outreach.mailbox_email}: " + ("found" if job.outreach.mailbox_email.lower() in emails
                                                            else f"not found (HTTP {found.status_code})"))
