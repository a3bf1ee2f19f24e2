"""Several Outreach users in one run: each row marked with ``user_email`` is sent with that user's
token (their own OAuth refresh token or access token, [outreach.users]); everything else, look-ups
included, goes as the job's own user. Outreach's budget is per user per hour (getting-started page,
https://developers.outreach.io/api/getting-started), so each user spends from their own.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import httpx

from batchrunner.auth import BearerAuth

EXTENSION = "batchrunner.outreach_user"  # request extension naming the user a request is sent as


class UserRoutedAuth(httpx.Auth):
    """Puts the right user's token on each request (refreshing that user's token once after a 401)."""

    requires_response_body = True

    def __init__(self, default: Any, users: dict[str, Any]) -> None:
        self.default = BearerAuth(default)
        self.users = {email: BearerAuth(provider) for email, provider in users.items()}

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        auth = self.users.get(request.extensions.get(EXTENSION) or "", self.default)
        flow = auth.async_auth_flow(request)
        outgoing = await flow.__anext__()
        while True:
            response = yield outgoing
            try:
                outgoing = await flow.asend(response)
            except StopAsyncIteration:
                return

    def sync_auth_flow(self, request: httpx.Request):  # pragma: no cover - the runner is async only
        raise RuntimeError("UserRoutedAuth is async only")


def sandbox_tokens(emails: list[str]) -> dict[str, str]:
    """The emulator's static token of each seeded user (sample_data/sandbox/outreach_org.json)."""
    from batchrunner.errors import JobError
    from batchrunner.sandbox.seeds import load_seed

    seed = load_seed("outreach_org.json")
    by_id = {uid: token for token, uid in seed.get("tokens", {}).items()}
    by_email = {str(u["email"]).lower(): by_id.get(u["id"]) for u in seed.get("users", [])}
    out = {}
    for email in emails:
        token = by_email.get(email.lower())
        if token is None:
            raise JobError(f"[outreach.users]: the sandbox has no user {email!r} with a token "
                           f"(it has {', '.join(e for e, t in by_email.items() if t)}).")
        out[email.lower()] = token
    return out
