"""Outreach authentication. Source: Outreach's getting-started page
(https://developers.outreach.io/api/getting-started): OAuth 2.0 authorization-code flow only (no
static API keys); ``POST https://api.outreach.io/oauth/token`` with ``grant_type=refresh_token``,
client_id, client_secret, redirect_uri and the refresh token; access tokens last about 7200 s,
refresh tokens about 14 days; **at most one new access token per user and app every 60 s** (else
429). Whether refresh tokens rotate is unconfirmed: a new one that comes back is stored (atomically,
0600) before anything uses it, exactly as for Salesloft.

``[connection.auth] method =``
- ``oauth`` (default): client id / secret from the environment, the refresh token from
  ``token_file`` (JSON ``{"refresh_token": "..."}``; seeded once from ``refresh_token_env``);
- ``env``: an access token from an environment variable that something else keeps fresh
  (cannot refresh: a 401 stops the run resumably).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from batchrunner import secrets
from batchrunner.auth import (AuthError, StaticToken, TokenProvider, check_url, choose_method, from_env,
                              read_token_file, refresh_token_credentials, text_key, write_token_file)
from batchrunner.platforms.salesloft.auth import OAuthRefresh
from batchrunner.errors import JobError
from batchrunner.job import Job

log = logging.getLogger("batchrunner.auth")
TOKEN_URL = "https://api.outreach.io/oauth/token"
MIN_INTERVAL = 60.0  # getting-started page: one new access token per user/app per 60 s
METHODS = ("oauth", "env")
KEYS = {
    "env": ("token_env",),
    "oauth": ("client_id_env", "client_secret_env", "token_file", "refresh_token_env", "token_url", "redirect_uri"),
}


def method_of(job: Job) -> str:
    return choose_method(job.connection.auth, "Outreach", KEYS, "oauth")


class OutreachOAuth(OAuthRefresh):
    """The Salesloft refresh-token flow (token file, seed, storing a new refresh token), with
    Outreach's redirect_uri and its one-new-token-per-60-s rule."""

    def __init__(self, token_url: str, client_id: str, client_secret: str, token_file: Path,
                 refresh_token: str | None = None, redirect_uri: str | None = None,
                 min_interval: float = MIN_INTERVAL, **kw: Any) -> None:
        super().__init__(token_url, client_id, client_secret, token_file, refresh_token, **kw)
        self.redirect_uri, self.min_interval = redirect_uri, min_interval
        self._last_fetch: float | None = None

    async def _fetch(self) -> dict[str, Any]:
        form = {"grant_type": "refresh_token", "client_id": self.client_id, "client_secret": self.client_secret,
                "refresh_token": self.current_refresh_token()}
        if self.redirect_uri:
            form["redirect_uri"] = self.redirect_uri
        for attempt in (1, 2):
            if self._last_fetch is not None:  # never ask twice within the platform's 60 s
                wait = self._last_fetch + self.min_interval - self.clock.now()
                if wait > 0:
                    log.info("auth oauth: waiting %.0f s before asking Outreach for a new token (one per 60 s)", wait)
                    await self.clock.sleep(wait)
            self._last_fetch = self.clock.now()
            try:
                body = await self.post_form(self.token_url, form, "Outreach OAuth refresh")
                break
            except AuthError as exc:
                # another process of the same user and app took this minute's token: wait once, ask again
                if attempt == 2 or "HTTP 429" not in str(exc):
                    raise
        new_refresh = body.get("refresh_token")
        if isinstance(new_refresh, str) and new_refresh and new_refresh != form["refresh_token"]:
            # rotation is unconfirmed: if a new one came back, the old one may already be dead, so
            # store it before the access token is used and a crash can never lose it
            secrets.register(new_refresh)
            write_token_file(self.token_file, {"refresh_token": new_refresh})
            log.info("auth oauth: the new refresh token was stored in %s", self.token_file)
        return body


def provider_for(job: Job, **kw: Any) -> TokenProvider:
    auth = job.connection.auth
    if method_of(job) == "env":
        token = from_env(text_key(auth, "token_env", "OUTREACH_ACCESS_TOKEN"), "Outreach access token", "Outreach",
                         header=True)
        return StaticToken(token, "env")
    path, client_id, client_secret, seed = refresh_token_credentials(job, "Outreach", "OUTREACH",
                                                                     "outreach-token.json")
    url = check_url(text_key(auth, "token_url", TOKEN_URL), "connection.auth.token_url")
    return OutreachOAuth(url, client_id, client_secret, path, seed, text_key(auth, "redirect_uri"), **kw)


USER_KEYS = {"oauth": ("token_file", "refresh_token_env"), "env": ("token_env",)}


def user_providers(job: Job, **kw: Any) -> dict[str, TokenProvider]:
    """``[outreach.users]``: one provider per user whose rows go with their own token. With
    ``oauth`` they share the job's client id and secret, each with their own refresh-token file;
    with ``env`` each names the variable holding their access token."""
    auth, method = job.connection.auth, method_of(job)
    out: dict[str, TokenProvider] = {}
    for email, spec in job.outreach.users.items():
        where = f"[outreach.users.\"{email}\"]"
        if not isinstance(spec, dict):
            raise JobError(f"{where} must be a table, e.g. {{ {USER_KEYS[method][0]} = \"...\" }}.")
        for key in spec:
            if key not in USER_KEYS[method]:
                raise JobError(f"Unknown key {key!r} in {where} for method {method!r} "
                               f"(use {', '.join(USER_KEYS[method])}).")
        if method == "env":
            name = text_key(spec, "token_env")
            if not name:
                raise JobError(f"{where} needs token_env: the variable holding that user's access token.")
            out[email.lower()] = StaticToken(from_env(name, f"Outreach access token of {email}", "Outreach"), "env")
            continue
        token_file = text_key(spec, "token_file")
        if not token_file:
            raise JobError(f"{where} needs token_file: where that user's refresh token is kept.")
        path = (job.path.parent / Path(token_file).expanduser()).resolve()
        seed = None
        if not read_token_file(path).get("refresh_token"):
            seed = from_env(text_key(spec, "refresh_token_env") or "", f"refresh token of {email} ({path} does not "
                            "exist yet; name its variable with refresh_token_env)", "Outreach")
        client_id = from_env(text_key(auth, "client_id_env", "OUTREACH_CLIENT_ID"), "Outreach OAuth client id",
                             "Outreach", secret=False)
        client_secret = from_env(text_key(auth, "client_secret_env", "OUTREACH_CLIENT_SECRET"),
                                 "Outreach OAuth client secret", "Outreach")
        url = check_url(text_key(auth, "token_url", TOKEN_URL), "connection.auth.token_url")
        out[email.lower()] = OutreachOAuth(url, client_id, client_secret, path, seed, text_key(auth, "redirect_uri"),
                                           **kw)
    return out
