"""Salesforce authentication for unattended runs. Sources: docs/platforms.md ("Auth a cron job can
use"): the token endpoint is ``POST {login URL or My Domain}/services/oauth2/token``; a 401
``INVALID_SESSION_ID`` means the session is gone.

``[connection.auth] method =``
- ``env``: a ready access token and the instance URL from environment variables (cannot refresh);
- ``client_credentials``: client id + secret from the environment, My Domain token endpoint;
- ``jwt``: client id, username, private key file, login URL; an RS256 assertion signed with PyJWT;
- ``refresh_token``: a refresh token (and client id[/secret]) from the environment;
- ``sf_cli``: the Salesforce CLI's stored org: ``sf org auth show-access-token`` for the token
  (CLI 2.136.8+ redacts it in ``sf org display``) and ``sf org display`` for the instance URL.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio

from batchrunner import secrets
from batchrunner.auth import (AuthError, StaticToken, TokenProvider, check_url, choose_method, from_env,
                              read_token_file, text_key, write_token_file)
from batchrunner.errors import JobError
from batchrunner.job import Job

LOGIN_URL = "https://login.salesforce.com"
TOKEN_PATH = "/services/oauth2/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_LIFETIME = 180  # seconds: Salesforce allows a short exp (3 minutes; docs/platforms.md "short exp")
METHODS = ("env", "client_credentials", "jwt", "refresh_token", "sf_cli")
KEYS = {
    "env": ("token_env", "instance_url_env"),
    "client_credentials": ("client_id_env", "client_secret_env", "domain_url"),
    "jwt": ("client_id", "client_id_env", "username", "private_key_file", "login_url"),
    "refresh_token": ("client_id", "client_id_env", "client_secret_env", "refresh_token_env", "login_url",
                      "token_file"),
    "sf_cli": ("target_org", "sf_path"),
}


def method_of(job: Job) -> str:
    return choose_method(job.connection.auth, "Salesforce", KEYS, "env")


def _client_id(auth: dict[str, Any]) -> str:
    if auth.get("client_id_env"):
        return from_env(text_key(auth, "client_id_env"), "Salesforce client id (consumer key)", "Salesforce",
                        secret=False)
    value = text_key(auth, "client_id")
    if not value:
        raise JobError("connection.auth needs client_id (the connected app's consumer key) or client_id_env.")
    return value


def _instance_url(job: Job, env_name: str | None = None) -> str | None:
    url = job.connection.instance_url or (os.environ.get(env_name) if env_name else None)
    return check_url(url, "The Salesforce instance URL") if url else None


class ClientCredentials(TokenProvider):
    can_refresh = True
    method = "client_credentials"

    def __init__(self, domain_url: str, client_id: str, client_secret: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.domain_url, self.client_id, self.client_secret = domain_url, client_id, client_secret
        self.instance_url = domain_url

    async def _fetch(self) -> dict[str, Any]:
        return await self.post_form(self.domain_url + TOKEN_PATH, {
            "grant_type": "client_credentials", "client_id": self.client_id,
            "client_secret": self.client_secret}, "Salesforce client credentials")


class JwtBearer(TokenProvider):
    can_refresh = True  # a new assertion is a new token
    method = "jwt"

    def __init__(self, login_url: str, client_id: str, username: str, private_key: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.login_url, self.client_id, self.username, self._key = login_url, client_id, username, private_key
        try:  # the signing stack is an extra (18 MB): say how to get it before anything is read or sent
            import jwt  # noqa: F401 - PyJWT
            import cryptography  # noqa: F401
        except ImportError:
            from batchrunner.errors import JobError

            raise JobError("method = \"jwt\" signs with PyJWT and cryptography, which are not installed: "
                           "pip install 'batchrunner[jwt]'") from None

    def assertion(self) -> str:
        import jwt  # PyJWT

        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.username, "aud": self.login_url, "exp": now + JWT_LIFETIME}
        try:
            return jwt.encode(claims, self._key, algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise AuthError(f"jwt: could not sign the assertion with the private key file: {type(exc).__name__}") from None

    async def _fetch(self) -> dict[str, Any]:
        assertion = secrets.register(self.assertion()) or ""
        return await self.post_form(self.login_url + TOKEN_PATH, {"grant_type": JWT_GRANT, "assertion": assertion},
                                    "Salesforce JWT bearer")


class RefreshToken(TokenProvider):
    can_refresh = True
    method = "refresh_token"

    def __init__(self, login_url: str, client_id: str, refresh_token: str | None, client_secret: str | None = None,
                 token_file: Path | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.login_url, self.client_id, self._refresh, self._secret = login_url, client_id, refresh_token, client_secret
        self.token_file = token_file

    def current_refresh_token(self) -> str:
        if self.token_file is not None:
            stored = read_token_file(self.token_file).get("refresh_token")
            if isinstance(stored, str) and stored:
                return stored
        if not self._refresh:
            raise AuthError("refresh_token: no refresh token")
        return self._refresh

    async def _fetch(self) -> dict[str, Any]:
        form = {"grant_type": "refresh_token", "refresh_token": self.current_refresh_token(),
                "client_id": self.client_id}
        if self._secret:
            form["client_secret"] = self._secret
        body = await self.post_form(self.login_url + TOKEN_PATH, form, "Salesforce refresh token")
        if isinstance(body.get("refresh_token"), str):  # refresh token rotation, when the app enables it
            self._refresh = secrets.register(body["refresh_token"]) or self._refresh
            if self.token_file is not None:  # the old one is revoked: store the new one before using it
                write_token_file(self.token_file, {"refresh_token": self._refresh})
        return body


class SfCli(TokenProvider):
    """The Salesforce CLI's stored authorisation. Run without a terminal (stdin closed), so it
    can never prompt."""

    can_refresh = True  # the CLI refreshes its stored session when asked again
    method = "sf_cli"

    def __init__(self, sf: str, target_org: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.sf, self.target_org = sf, target_org

    async def _run(self, *args: str) -> dict[str, Any]:
        command = [self.sf, *args, "--target-org", self.target_org, "--json"]
        try:
            done = await anyio.run_process(command, stdin=subprocess.DEVNULL, check=False)
        except OSError as exc:
            raise AuthError(f"sf_cli: could not run {self.sf}: {exc.strerror}") from None
        try:
            body = json.loads(done.stdout.decode("utf-8", "replace"))
        except ValueError:
            body = {}
        result = body.get("result") if isinstance(body, dict) else None
        if done.returncode != 0 or not isinstance(result, dict):
            message = body.get("message") if isinstance(body, dict) else None
            raise AuthError(f"sf_cli: `sf {' '.join(args)} --target-org {self.target_org}` failed "
                            f"(exit {done.returncode})" + (f": {message}" if message else ""))
        if isinstance(result.get("accessToken"), str):
            secrets.register(result["accessToken"])
        return result

    async def _fetch(self) -> dict[str, Any]:
        token = await self._run("org", "auth", "show-access-token")
        display = await self._run("org", "display")
        url = display.get("instanceUrl")
        if not isinstance(url, str) or not url:
            raise AuthError(f"sf_cli: `sf org display` gave no instanceUrl for {self.target_org}")
        try:
            url = check_url(url, "The org's instance URL")
        except JobError as exc:
            raise AuthError(str(exc)) from None
        return {"access_token": token.get("accessToken"), "instance_url": url}


def provider_for(job: Job, **kw: Any) -> TokenProvider:
    """The job's token provider. Checks everything that can be checked without the network
    (variables set, files readable, URLs https) and raises JobError (exit 2) naming what is missing."""
    auth = job.connection.auth
    method = method_of(job)
    if method == "env":
        token_env = text_key(auth, "token_env", "SF_ACCESS_TOKEN")
        url_env = text_key(auth, "instance_url_env", "SF_INSTANCE_URL")
        token = from_env(token_env, "Salesforce access token", "Salesforce", header=True)
        url = _instance_url(job, url_env)
        if not url:
            raise JobError(f"No Salesforce instance URL: set [connection] instance_url or the variable {url_env}.")
        return StaticToken(token, "env", url)
    if method == "client_credentials":
        domain = text_key(auth, "domain_url") or job.connection.instance_url
        if not domain:
            raise JobError("client_credentials needs the org's My Domain URL: connection.auth.domain_url or "
                           "[connection] instance_url (https://yourdomain.my.salesforce.com).")
        domain = check_url(domain, "The My Domain URL")
        client_id = from_env(text_key(auth, "client_id_env", "SF_CLIENT_ID"), "Salesforce client id", "Salesforce",
                             secret=False)
        secret = from_env(text_key(auth, "client_secret_env", "SF_CLIENT_SECRET"), "Salesforce client secret",
                          "Salesforce")
        return ClientCredentials(domain, client_id, secret, **kw)
    if method == "jwt":
        login = check_url(text_key(auth, "login_url", LOGIN_URL), "connection.auth.login_url")
        username = text_key(auth, "username")
        key_file = text_key(auth, "private_key_file")
        if not username or not key_file:
            raise JobError("jwt needs connection.auth.username (the integration user) and private_key_file.")
        key_path = (job.path.parent / Path(key_file).expanduser()).resolve()
        try:
            key = key_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise JobError(f"Cannot read the private key file {key_path}: {exc.strerror}") from None
        secrets.register(key)
        return JwtBearer(login, _client_id(auth), username, key, **kw)
    if method == "refresh_token":
        login = check_url(text_key(auth, "login_url", LOGIN_URL), "connection.auth.login_url")
        token_file = text_key(auth, "token_file")
        path = (job.path.parent / Path(token_file).expanduser()).resolve() if token_file else None
        refresh = read_token_file(path).get("refresh_token") if path is not None else None
        if not refresh:
            refresh = from_env(text_key(auth, "refresh_token_env", "SF_REFRESH_TOKEN"), "Salesforce refresh token",
                               "Salesforce")
        secret_env = text_key(auth, "client_secret_env")
        secret = from_env(secret_env, "Salesforce client secret", "Salesforce") if secret_env else None
        auth_ = dict(auth)
        if not auth_.get("client_id") and not auth_.get("client_id_env"):
            auth_["client_id_env"] = "SF_CLIENT_ID"
        return RefreshToken(login, _client_id(auth_), refresh, secret, path, **kw)
    # sf_cli
    target = text_key(auth, "target_org")
    if not target:
        raise JobError("sf_cli needs connection.auth.target_org (the alias or username given to `sf org login`).")
    sf_path = text_key(auth, "sf_path", "sf")
    sf = shutil.which(sf_path)
    if sf is None:
        raise JobError(f"The Salesforce CLI ({sf_path!r}) was not found on PATH. Install it "
                       "(npm install -g @salesforce/cli) or choose another connection.auth.method.")
    return SfCli(sf, target, **kw)


def describe_target(job: Job, provider: TokenProvider) -> str:
    """What the job talks to, without contacting it."""
    auth = job.connection.auth
    if provider.instance_url:
        return provider.instance_url
    if isinstance(provider, JwtBearer):
        return f"org of {provider.username} via {provider.login_url}"
    if isinstance(provider, RefreshToken):
        return f"org via {provider.login_url}"
    return f"org {auth.get('target_org')} (Salesforce CLI)"
