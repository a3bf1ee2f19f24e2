"""Salesloft authentication. Source: docs/platforms.md (Salesloft "Auth"): an API key (``Bearer ak_...``,
acts as its creating user), or OAuth 2.0 with ``POST https://accounts.salesloft.com/oauth/token``
(``grant_type=refresh_token``, client_id, client_secret, refresh_token); access tokens last
7200 s and **refresh tokens rotate**: every refresh revokes the old one, so the new one is written
to the token file (atomically, 0600) before anything uses it.

``[connection.auth] method =``
- ``api_key``: the key from an environment variable (cannot refresh);
- ``oauth``: client id / secret from the environment, the refresh token from ``token_file``
  (JSON ``{"refresh_token": "..."}``; seeded once from ``refresh_token_env`` when the file does
  not exist yet). Refreshed ahead of the access token's expiry and once after a 401.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from batchrunner import secrets
from batchrunner.auth import (AuthError, StaticToken, TokenProvider, check_url, choose_method, from_env,
                              read_token_file, refresh_token_credentials, text_key, write_token_file)
from batchrunner.job import Job

log = logging.getLogger("batchrunner.auth")
TOKEN_URL = "https://accounts.salesloft.com/oauth/token"
METHODS = ("api_key", "oauth")
KEYS = {
    "api_key": ("token_env",),
    "oauth": ("client_id_env", "client_secret_env", "token_file", "refresh_token_env", "token_url"),
}


def method_of(job: Job) -> str:
    return choose_method(job.connection.auth, "Salesloft", KEYS, "api_key")


class OAuthRefresh(TokenProvider):
    can_refresh = True
    method = "oauth"

    def __init__(self, token_url: str, client_id: str, client_secret: str, token_file: Path,
                 refresh_token: str | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.token_url, self.client_id, self.client_secret, self.token_file = (
            token_url, client_id, client_secret, token_file)
        self._seed = refresh_token

    def current_refresh_token(self) -> str:
        stored = read_token_file(self.token_file).get("refresh_token")
        if isinstance(stored, str) and stored:
            return stored
        if self._seed:
            return self._seed
        raise AuthError(f"oauth: no refresh token in {self.token_file}")

    async def _fetch(self) -> dict[str, Any]:
        body = await self.post_form(self.token_url, {
            "grant_type": "refresh_token", "client_id": self.client_id, "client_secret": self.client_secret,
            "refresh_token": self.current_refresh_token()}, "Salesloft OAuth refresh")
        new_refresh = body.get("refresh_token")
        if isinstance(new_refresh, str) and new_refresh:
            # rotation (docs/platforms.md): the old refresh token is already revoked; store the new one
            # before the access token is used, so a crash can never lose it
            secrets.register(new_refresh)
            write_token_file(self.token_file, {"refresh_token": new_refresh})
            log.info("auth oauth: the rotated refresh token was stored in %s", self.token_file)
        return body


def provider_for(job: Job, **kw: Any) -> TokenProvider:
    auth = job.connection.auth
    method = method_of(job)
    if method == "api_key":
        token = from_env(text_key(auth, "token_env", "SALESLOFT_API_KEY"), "Salesloft API key", "Salesloft",
                         header=True)
        return StaticToken(token, "api_key")
    path, client_id, client_secret, seed = refresh_token_credentials(job, "Salesloft", "SALESLOFT",
                                                                     "salesloft-token.json")
    url = check_url(text_key(auth, "token_url", TOKEN_URL), "connection.auth.token_url")
    return OAuthRefresh(url, client_id, client_secret, path, seed, **kw)
