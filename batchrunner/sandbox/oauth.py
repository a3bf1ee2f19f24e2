"""Token endpoints of both platforms, and the gate that lets the emulators accept the tokens they
issue. Sources: docs/platforms.md "Auth a cron job can use" (Salesforce) and "Auth" (Salesloft).

- ``POST /services/oauth2/token`` (Salesforce; form-encoded) with ``grant_type``
  ``client_credentials`` (client_id, client_secret), ``urn:ietf:params:oauth:grant-type:jwt-bearer``
  (an RS256 ``assertion``: iss = client id, sub = a username, aud = the login URL, short exp) and
  ``refresh_token`` (refresh_token, client_id[, client_secret]). Answers ``access_token``,
  ``instance_url``, ``token_type``, ``issued_at`` (docs/platforms.md: "-> access_token, instance_url").
- ``POST /oauth/token`` (Salesloft's ``https://accounts.salesloft.com/oauth/token``):
  ``grant_type=refresh_token`` with client_id, client_secret, refresh_token. Answers a new
  ``access_token`` with ``expires_in`` 7200 and a **new refresh token; the old one is revoked**
  (docs/platforms.md: "refresh tokens rotate").
- ``POST /_sandbox/oauth/expire`` expires every issued access token (tests of the 401 path).

Issued access tokens are accepted by the emulators (the gate swaps them for the emulator's own
key) until they expire (``oauth_token_ttl`` seconds, or after ``oauth_token_uses`` requests);
an expired one gets the platform's 401: Salesforce ``[{"message": "Session expired or invalid",
"errorCode": "INVALID_SESSION_ID"}]`` (docs/platforms.md), Salesloft ``{"error": ...}`` (docs/platforms.md: 401
bodies are ``{"error": "..."}``). Error bodies of the token endpoints follow OAuth 2.0
(``{"error", "error_description"}``); their exact wording is a sandbox choice.
"""

from __future__ import annotations

import secrets as pysecrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from batchrunner.sandbox.base import SandboxRequest, SandboxResponse

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SF_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")  # docs/platforms.md: aud = login URL
SF_NATIVE = "sandbox-token"
SL_NATIVE = "sandbox-key"
SF_EXPIRED = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]  # docs/platforms.md
SL_EXPIRED = {"error": "Unauthorized"}  # docs/platforms.md: 401 is {"error": "..."}
SL_TTL = 7200  # docs/platforms.md: Salesloft access tokens last 7200 s
JWT_MAX_LIFETIME = 300  # sandbox choice: Salesforce wants a short exp (docs/platforms.md); refuse > 5 minutes ahead


@dataclass
class Issued:
    platform: str  # "salesforce" | "salesloft"
    expires_at: float
    uses: int = 0


class OAuthServer:
    prefixes = ("/services/oauth2/", "/oauth/", "/_sandbox/oauth/")

    def __init__(self, *, client_id: str = "sandbox-client-id", client_secret: str = "sandbox-client-secret",
                 refresh_token: str = "sandbox-refresh-token", jwt_public_key: str | None = None,
                 usernames: tuple[str, ...] = (), token_ttl: float = 7200.0, token_uses: int = 0,
                 sf_rotate: bool = False, clock: Callable[[], float] = time.time) -> None:
        self.sf_rotate = sf_rotate  # Salesforce: refresh token rotation is a connected-app option
        self.client_id, self.client_secret = client_id, client_secret
        self.jwt_public_key = jwt_public_key
        self.usernames = set(usernames)
        self.token_ttl, self.token_uses, self.clock = token_ttl, token_uses, clock
        self.sf_refresh_tokens = {refresh_token}
        self.sl_refresh_tokens = {refresh_token}  # the one currently valid (rotation)
        self.revoked: set[str] = set()
        self.issued: dict[str, Issued] = {}
        self.grants: list[str] = []  # grant types served, in order (tests)

    # -- the gate ---------------------------------------------------------------------------------
    def rewrite(self, request: SandboxRequest) -> SandboxResponse | None:
        """Swap an issued token for the emulator's key, or answer 401 when it has expired."""
        token = request.bearer_token()
        issued = self.issued.get(token or "")
        if issued is None:
            return None
        issued.uses += 1
        expired = self.clock() >= issued.expires_at or (self.token_uses and issued.uses > self.token_uses)
        if expired:
            if issued.platform == "salesforce":
                return SandboxResponse(401, SF_EXPIRED)
            return SandboxResponse(401, SL_EXPIRED)
        native = SF_NATIVE if issued.platform == "salesforce" else SL_NATIVE
        request.headers["authorization"] = f"Bearer {native}"
        return None

    def _issue(self, platform: str, ttl: float) -> str:
        prefix = "00DSANDBOX!" if platform == "salesforce" else ""  # sandbox choice: SF tokens start with the org id
        token = prefix + pysecrets.token_urlsafe(32)
        self.issued[token] = Issued(platform, self.clock() + ttl)
        return token

    # -- HTTP -------------------------------------------------------------------------------------
    def handle(self, request: SandboxRequest) -> SandboxResponse:
        path = request.path.rstrip("/")
        if path == "/_sandbox/oauth/expire" and request.method == "POST":
            for issued in self.issued.values():
                issued.expires_at = self.clock() - 1
            return SandboxResponse(200, {"expired": len(self.issued)})
        if request.method != "POST":
            return SandboxResponse(405, {"error": "invalid_request", "error_description": "POST only"})
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        if path == "/services/oauth2/token":
            return self._salesforce(form, request)
        if path == "/oauth/token":
            return self._salesloft(form)
        return SandboxResponse(404, {"error": "not_found"})

    def _sf_ok(self, request: SandboxRequest) -> SandboxResponse:
        host = request.headers.get("host", "127.0.0.1")
        token = self._issue("salesforce", self.token_ttl)
        return SandboxResponse(200, {
            "access_token": token, "instance_url": f"http://{host}",
            "id": f"http://{host}/id/00D5e0000000001AAA/0055e0000000001AAA", "token_type": "Bearer",
            "issued_at": str(int(self.clock() * 1000)), "signature": pysecrets.token_urlsafe(24), "scope": "api"})

    def _salesforce(self, form: dict[str, str], request: SandboxRequest) -> SandboxResponse:
        grant = form.get("grant_type", "")
        self.grants.append(grant)

        def bad(error: str, description: str) -> SandboxResponse:
            return SandboxResponse(400, {"error": error, "error_description": description})

        if grant == "client_credentials":
            if form.get("client_id") != self.client_id:
                return bad("invalid_client_id", "client identifier invalid")
            if form.get("client_secret") != self.client_secret:
                return bad("invalid_client", "invalid client credentials")
            return self._sf_ok(request)
        if grant == JWT_GRANT:
            return self._jwt(form.get("assertion", ""), request, bad)
        if grant == "refresh_token":
            if form.get("client_id") != self.client_id:
                return bad("invalid_client_id", "client identifier invalid")
            if "client_secret" in form and form["client_secret"] != self.client_secret:
                return bad("invalid_client", "invalid client credentials")
            if form.get("refresh_token") not in self.sf_refresh_tokens:
                return bad("invalid_grant", "expired access/refresh token")
            answer = self._sf_ok(request)
            if self.sf_rotate:  # with rotation on, each refresh issues a new refresh token, the old one dies
                self.sf_refresh_tokens.discard(form["refresh_token"])
                self.revoked.add(form["refresh_token"])
                answer.body["refresh_token"] = pysecrets.token_urlsafe(32)
                self.sf_refresh_tokens.add(answer.body["refresh_token"])
            return answer
        return bad("unsupported_grant_type", "grant type not supported")

    def _jwt(self, assertion: str, request: SandboxRequest, bad: Callable[[str, str], SandboxResponse]
             ) -> SandboxResponse:
        try:
            import jwt  # PyJWT (the [jwt] extra)
        except ImportError:
            return bad("invalid_grant", "this sandbox cannot check JWT assertions: pip install 'batchrunner[jwt]'")
        if not self.jwt_public_key:
            return bad("invalid_grant", "no certificate is configured for this client (sandbox: jwt_public_key_file)")
        own = f"http://{request.headers.get('host', '127.0.0.1')}"
        try:
            claims = jwt.decode(assertion, self.jwt_public_key, algorithms=["RS256"],
                                audience=[*SF_AUDIENCES, own], options={"require": ["iss", "sub", "aud", "exp"]})
        except jwt.ExpiredSignatureError:
            return bad("invalid_grant", "expired authorization code")
        except jwt.PyJWTError:
            return bad("invalid_grant", "invalid assertion")
        if claims["iss"] != self.client_id:
            return bad("invalid_client_id", "client identifier invalid")
        if claims["exp"] > self.clock() + JWT_MAX_LIFETIME:
            return bad("invalid_grant", "expiration time too far in the future")
        if self.usernames and claims["sub"] not in self.usernames:
            return bad("invalid_grant", "user hasn't approved this consumer")
        return self._sf_ok(request)

    def _salesloft(self, form: dict[str, str]) -> SandboxResponse:
        grant = form.get("grant_type", "")
        self.grants.append(f"salesloft:{grant}")
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return SandboxResponse(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
        if grant != "refresh_token":
            return SandboxResponse(400, {"error": "unsupported_grant_type",
                                         "error_description": "The authorization grant type is not supported"})
        presented = form.get("refresh_token", "")
        if presented not in self.sl_refresh_tokens:
            return SandboxResponse(400, {"error": "invalid_grant", "error_description":
                                         "The provided authorization grant is invalid, expired, revoked, does not "
                                         "match the redirection URI used in the authorization request, or was "
                                         "issued to another client."})
        # docs/platforms.md: rotation: this refresh revokes the old refresh token
        self.sl_refresh_tokens.discard(presented)
        self.revoked.add(presented)
        new_refresh = pysecrets.token_urlsafe(32)
        self.sl_refresh_tokens.add(new_refresh)
        token = self._issue("salesloft", SL_TTL if self.token_ttl == 7200.0 else self.token_ttl)
        return SandboxResponse(200, {"access_token": token, "token_type": "bearer", "expires_in": SL_TTL,
                                     "refresh_token": new_refresh, "scope": "",
                                     "created_at": int(self.clock())})

    def audit(self) -> dict[str, Any]:
        # tests only (a sandbox has no secrets worth keeping): what was issued, to look for leaks
        return {"grants": list(self.grants), "issued": list(self.issued), "revoked": sorted(self.revoked),
                "refresh_tokens": sorted(self.sl_refresh_tokens | self.sf_refresh_tokens)}
