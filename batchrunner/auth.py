"""What every platform's authentication shares: token providers, the httpx hook that puts the
token on each request (and refreshes once on a 401), the https rule, and safe token files.

A provider has a small interface: ``can_refresh``, ``async get_token()`` (a valid access token,
fetched or refreshed ahead of its expiry when the method knows it), ``async refresh(stale)`` (a
new one after the platform refused ``stale``; concurrent callers share one refresh), and
``target`` (what it talks to, for the first line of output). Tokens are registered with
``batchrunner.secrets`` the moment they are read or received.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import tempfile
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx

from batchrunner import secrets
from batchrunner.clock import Clock, SystemClock
from batchrunner.errors import JobError, did_you_mean

log = logging.getLogger("batchrunner.auth")


SECRET_FIELDS = ("access_token", "refresh_token", "id_token", "signature")


class AuthError(Exception):
    """Authentication failed (a token endpoint said no, the CLI failed). The message is redacted."""

    def __init__(self, message: str) -> None:
        super().__init__(secrets.redact(message))


# -- job-file helpers -----------------------------------------------------------------------------
def choose_method(auth: dict[str, Any], platform: str, keys: dict[str, tuple[str, ...]], default: str) -> str:
    """The job's ``[connection.auth] method`` (checked, with its keys) for one platform."""
    method = auth.get("method", default)
    if method not in keys:
        hint = did_you_mean(str(method), list(keys))
        raise JobError(f"Unknown connection.auth.method {method!r} for {platform}.{hint}")
    check_keys(auth, method, keys[method])
    return method


def check_keys(auth: dict[str, Any], method: str, allowed: tuple[str, ...]) -> None:
    for key in auth:
        if key != "method" and key not in allowed:
            raise JobError(f"Unknown key {key!r} in [connection.auth] for method {method!r}."
                           f"{did_you_mean(key, allowed)} Secrets are never written in the job file: "
                           "name the environment variable (…_env) or file that holds them.")


def text_key(auth: dict[str, Any], key: str, default: str | None = None) -> str | None:
    value = auth.get(key, default)
    if value is not None and not isinstance(value, str):
        raise JobError(f"connection.auth.{key} must be a string.")
    return value


def unusable_character(value: str, *, header: bool = False) -> str | None:
    """What is wrong with a credential's characters, or None. A control character (a pasted line
    break, a tab, NUL) is never part of a real credential, and in a header it makes httpx refuse
    every request with the value in the message. A token sent as ``Authorization: Bearer ...``
    (``header=True``) must moreover be visible ASCII, no spaces (RFC 6750 section 2.1)."""
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value):
        return "a control character (a line break, tab or similar)"
    if header and any(not 0x21 <= ord(c) <= 0x7E for c in value):
        return "a space or a non-ASCII character, which a bearer token cannot contain"
    return None


def check_credential(value: str, where: str, *, header: bool = False) -> str:
    """``value`` if its characters can be a credential; else a JobError (exit 2) that names
    ``where`` it came from (a variable, a file) and never shows the value."""
    problem = unusable_character(value, header=header)
    if problem is not None:
        raise JobError(f"{where} holds {problem} inside the value; it cannot be a credential. Set it again "
                       "without it (the value is not shown).")
    return value


def from_env(name: str, what: str, platform: str, *, secret: bool = True, header: bool = False) -> str:
    """A value from the environment (registered as a secret unless ``secret=False``, e.g. a client
    id); a JobError (exit 2) naming the variable when it is unset or holds a character no
    credential has (``header=True``: the value is sent as a bearer token)."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise JobError(f"No {what}: set the environment variable {name} "
                       f"(or set [connection] sandbox = true to use the {platform} emulator).")
    if secret:
        secrets.register(value)
    return check_credential(value, f"The environment variable {name} ({what})", header=header)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(url: str, what: str) -> str:
    """Live endpoints must be https; plain http only for loopback (a served sandbox)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return url.rstrip("/")
    raise JobError(f"{what} must be an https:// URL (plain http is allowed only for 127.0.0.1 / localhost, "
                   f"e.g. a served sandbox); got {url!r}.")


# -- token files (Salesloft refresh-token rotation) -------------------------------------------------
def refresh_token_credentials(job: Any, platform: str, prefix: str, example: str
                              ) -> tuple[Path, str, str, str | None]:
    """What an OAuth refresh-token method needs from the job (Salesloft, Outreach): the token
    file (relative to the job file), the client id and secret from their variables, and the first
    refresh token when the file has none yet. ``prefix``
    names the default variables (``SALESLOFT`` -> ``SALESLOFT_CLIENT_ID`` ...)."""
    auth = job.connection.auth
    token_file = text_key(auth, "token_file")
    if not token_file:
        raise JobError("oauth needs connection.auth.token_file: where the refresh token is kept "
                       f"(created 0600; e.g. \"~/.config/batchrunner/{example}\").")
    path = (job.path.parent / Path(token_file).expanduser()).resolve()
    client_id = from_env(text_key(auth, "client_id_env", f"{prefix}_CLIENT_ID"), f"{platform} OAuth client id",
                         platform, secret=False)
    client_secret = from_env(text_key(auth, "client_secret_env", f"{prefix}_CLIENT_SECRET"),
                             f"{platform} OAuth client secret", platform)
    seed = None
    if not read_token_file(path).get("refresh_token"):
        seed = from_env(text_key(auth, "refresh_token_env", f"{prefix}_REFRESH_TOKEN"),
                        f"{platform} refresh token ({path} does not exist yet)", platform)
    return path, client_id, client_secret, seed


def read_token_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise JobError(f"Cannot read the token file {path}: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise JobError(f"The token file {path} must hold a JSON object.")
    if path.stat().st_mode & 0o077:
        log.warning("the token file %s is readable by other users; batchrunner rewrites it 0600 at the "
                    "next refresh (chmod 600 it now)", path)
    for key, value in data.items():
        if isinstance(value, str):
            secrets.register(value)
            check_credential(value, f"The token file {path} ({key!r})")
    return data


def write_token_file(path: Path, data: dict[str, Any]) -> None:
    """Atomically replace ``path`` with ``data``: a 0600 temporary file in the same directory,
    flushed to disk, then renamed over the old one, so a crash leaves the old or the new file,
    never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# -- providers --------------------------------------------------------------------------------------
class TokenProvider:
    """Base: subclasses implement ``_fetch()`` returning the token response (a dict with at least
    ``access_token``) and set ``can_refresh``."""

    can_refresh = False
    method = "?"
    refresh_ahead = 300.0  # seconds before a known expiry at which get_token() refreshes

    def __init__(self, *, clock: Clock | None = None, http: httpx.AsyncClient | None = None,
                 timeout: float = 60.0) -> None:
        self.clock = clock or SystemClock()
        self._http = http
        self._own_http = http is None
        self._timeout = timeout
        self._token: str | None = None
        self._expires_at: float | None = None
        self._lock = anyio.Lock()
        self.instance_url: str | None = None
        self.refreshes = 0  # how many times a token was fetched after the first

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout)
        return self._http

    async def _fetch(self) -> dict[str, Any]:
        raise NotImplementedError

    async def _obtain(self) -> str:
        body = await self._fetch()
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError(f"{self.method}: the token endpoint answered without an access_token")
        secrets.register(token)
        if (problem := unusable_character(token, header=True)) is not None:
            raise AuthError(f"{self.method}: the access token received holds {problem}; refused "
                            "(the value is not shown)")
        if self._token is not None:
            self.refreshes += 1
        self._token = token
        expires_in = body.get("expires_in")
        self._expires_at = (self.clock.now() + float(expires_in)) if isinstance(expires_in, (int, float)) else None
        if isinstance(body.get("instance_url"), str):
            self.instance_url = body["instance_url"].rstrip("/")
        log.info("auth %s: access token %s", self.method, "refreshed" if self.refreshes else "obtained")
        return token

    def _expiring(self) -> bool:
        return self._expires_at is not None and self.clock.now() >= self._expires_at - self.refresh_ahead

    async def get_token(self) -> str:
        if self._token is not None and not self._expiring():
            return self._token
        async with self._lock:
            if self._token is None or self._expiring():
                return await self._obtain()
            return self._token

    async def refresh(self, stale: str | None = None) -> str:
        """A new token after ``stale`` was refused; callers that raced share one refresh."""
        if not self.can_refresh:
            raise AuthError(f"{self.method}: the access token was refused and this method cannot refresh it")
        async with self._lock:
            if self._token is not None and stale is not None and self._token != stale:
                return self._token
            return await self._obtain()

    async def aclose(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.aclose()

    async def post_form(self, url: str, form: dict[str, str], what: str) -> dict[str, Any]:
        """POST a token request; errors name the endpoint and the platform's error code only."""
        try:
            response = await self.http.post(url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise AuthError(f"{what}: could not reach the token endpoint {url}: {type(exc).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            detail = body.get("error_description") if isinstance(body, dict) else None
            raise AuthError(f"{what}: the token endpoint {url} answered HTTP {response.status_code}"
                            + (f" {error}" if error else "") + (f": {detail}" if detail else ""))
        for key in SECRET_FIELDS:  # tokens, signatures: never shown (URLs and ids stay readable)
            if isinstance(body.get(key), str):
                secrets.register(body[key])
                if (problem := unusable_character(body[key])) is not None:  # before a rotated one is stored
                    raise AuthError(f"{what}: the token endpoint {url} answered with a {key} that holds "
                                    f"{problem}; refused (the value is not shown)")
        return body


class StaticToken(TokenProvider):
    """A ready token (environment variable, sandbox key): nothing to refresh."""

    def __init__(self, token: str, method: str, instance_url: str | None = None) -> None:
        super().__init__()
        self.method = method
        self._static = secrets.register(token) or token
        self.instance_url = instance_url

    async def _fetch(self) -> dict[str, Any]:
        return {"access_token": self._static}


class BearerAuth(httpx.Auth):
    """Puts the provider's token on every request; on a 401 asks for one refresh (when the method
    can) and sends the request again once. A second 401 goes back to the session, which stops
    the run resumably."""

    requires_response_body = True

    def __init__(self, provider: TokenProvider, is_auth_failure: Callable[[httpx.Response], bool] | None = None
                 ) -> None:
        self.provider = provider
        self.is_auth_failure = is_auth_failure or (lambda r: r.status_code == 401)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.provider.get_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if not self.is_auth_failure(response) or not self.provider.can_refresh:
            return
        try:
            fresh = await self.provider.refresh(token)
        except AuthError as exc:
            log.warning("auth %s: refresh after a 401 failed: %s", self.provider.method, exc)
            return
        log.info("auth %s: the platform answered 401; sending the request again with a new token",
                 self.provider.method)
        request.headers["Authorization"] = f"Bearer {fresh}"
        yield request

    def sync_auth_flow(self, request: httpx.Request):  # pragma: no cover - the runner is async only
        raise RuntimeError("BearerAuth is async only")
