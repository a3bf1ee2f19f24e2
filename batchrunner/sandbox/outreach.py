"""Emulator of the Outreach API parts batchrunner uses: sequence states, prospects, sequences,
mailboxes, the OAuth token endpoint, and the per-user hourly budget.

Sources, cited beside each rule: "spec" = Outreach's OpenAPI document
(https://api.outreach.io/api/v2/schema/openapi.json), "start" = the getting-started page
(https://developers.outreach.io/api/getting-started; rate limits and OAuth, partly second-hand),
"pending" = support article 211861917 (https://support.outreach.io/hc/en-us/articles/211861917),
"jsonapi" = the JSON:API format (https://jsonapi.org/format/). Where they are silent the emulator
makes a "sandbox choice", marked so.
"""

from __future__ import annotations

import copy
import math
import re
import secrets as pysecrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from batchrunner.sandbox.base import SandboxRequest, SandboxResponse
from batchrunner.sandbox.seeds import load_seed

_STATE = re.compile(r"^/api/v2/sequenceStates/(\d+)$")
_ACTION = re.compile(r"^/api/v2/sequenceStates/(\d+)/actions/(finish|pause|resume)$")
_API = "https://api.outreach.io/api/v2"
JSONAPI = "application/vnd.api+json"
TOKEN_PATH = "/outreach/oauth/token"  # live: https://api.outreach.io/oauth/token (start); here beside Salesloft's
LIVE = ("active", "pending", "paused")
#: action -> (states it may start from, the state it leaves)  (spec: actions on a sequence state;
#: sandbox choice: which starting states each action accepts)
TRANSITIONS = {"finish": (LIVE, "finished"), "pause": (("active", "pending"), "paused"), "resume": (("paused",), "active")}
LIST_FILTERS = {"prospects": ("filter[emails]", "filter[id]"), "sequences": ("filter[name]", "filter[id]"),
                "mailboxes": ("filter[email]", "filter[id]"),
                "sequenceStates": ("filter[prospect][id]", "filter[sequence][id]", "filter[id]")}


def _error(status: int, ident: str, title: str, detail: str, pointer: str | None = None,
           headers: dict[str, str] | None = None) -> SandboxResponse:
    error: dict[str, Any] = {"id": ident, "title": title, "detail": detail}  # jsonapi: errors[] objects
    if pointer:
        error["source"] = {"pointer": pointer}
    return SandboxResponse(status, {"errors": [error]}, headers or {})


class HourlyBudget:
    """Requests per user per clock hour (start: 10,000 per hour per user, second-hand; sandbox
    choice: the window is the clock hour, and X-RateLimit-Reset is its end in epoch seconds)."""

    def __init__(self, per_hour: int, clock: Callable[[], float]) -> None:
        self.per_hour, self.clock = per_hour, clock
        self.used: dict[int, tuple[int, int]] = {}  # user -> (hour index, requests)
        self.spent: dict[tuple[int, int], int] = {}  # (user, hour index) -> requests accepted (benchmarks)

    def _hour(self) -> int:
        return math.floor(self.clock() / 3600)

    def remaining(self, user: int) -> int:
        hour, used = self.used.get(user, (self._hour(), 0))
        return self.per_hour - (used if hour == self._hour() else 0)

    def spend(self, user: int) -> bool:
        left = self.remaining(user)
        if left <= 0:
            return False
        self.used[user] = (self._hour(), self.per_hour - left + 1)
        self.spent[(user, self._hour())] = self.spent.get((user, self._hour()), 0) + 1
        return True

    def reset_at(self) -> int:
        return (self._hour() + 1) * 3600

    def headers(self, user: int) -> dict[str, str]:
        # start: every response carries X-RateLimit-Limit / -Remaining / -Reset
        return {"X-RateLimit-Limit": str(self.per_hour), "X-RateLimit-Remaining": str(max(0, self.remaining(user))),
                "X-RateLimit-Reset": str(self.reset_at())}


class OutreachEmulator:
    prefixes = ("/api/v2/", TOKEN_PATH)

    def __init__(self, org: dict[str, Any] | None = None, *, budget_per_hour: int = 10000,
                 clock: Callable[[], float] = time.time, token_interval: float = 60.0, rotate_refresh: bool = False,
                 client_id: str = "sandbox-client-id", client_secret: str = "sandbox-client-secret",
                 token_ttl: float = 7200.0) -> None:
        seed = copy.deepcopy(org if org is not None else load_seed("outreach_org.json"))
        self.clock = clock
        self.budget = HourlyBudget(budget_per_hour, clock)
        self.users = {u["id"]: u for u in seed.get("users", [])}
        self.tokens: dict[str, int] = dict(seed.get("tokens", {}))  # static sandbox tokens -> user id
        self.refresh_tokens: dict[str, int] = dict(seed.get("refresh_tokens", {}))
        self.prospects = {p["id"]: p for p in seed.get("prospects", [])}
        self.sequences = {s["id"]: s for s in seed.get("sequences", [])}
        self.mailboxes = {m["id"]: m for m in seed.get("mailboxes", [])}
        self.states: dict[int, dict[str, Any]] = {}
        self.by_pair: dict[tuple[int, int], list[int]] = {}  # (prospect, sequence) -> state ids ever created
        self._next_id = 700_001
        for s in seed.get("sequence_states", []):
            self.by_pair.setdefault((s["prospect_id"], s["sequence_id"]), []).append(s["id"])
            self.states[s["id"]] = self._record(s["id"], s["prospect_id"], s["sequence_id"], s.get("mailbox_id"),
                                                s.get("state", "active"))
            self._next_id = max(self._next_id, s["id"] + 1)
        self.client_id, self.client_secret, self.token_ttl = client_id, client_secret, token_ttl
        self.token_interval, self.rotate_refresh = token_interval, rotate_refresh
        self.issued: dict[str, tuple[int, float]] = {}  # access token -> (user, expires at)
        self.last_token: dict[int, float] = {}  # user -> when the last access token was issued
        self.enrolments: dict[str, int] = {}  # "prospect:sequence" -> states created (crash tests)
        self.acting: int | None = None
        self.enrolled_by: dict[str, int] = {}  # user id -> states that user's requests created
        self.posts: dict[str, int] = {}  # "prospect:sequence" -> enrol requests received (re-sends show here)
        self.actions: dict[str, int] = {}  # "state:action" -> transitions made
        self.deletes: dict[int, int] = {}
        self.requests = 0
        self.rejected_429 = 0
        self.token_429 = 0

    # -- HTTP -------------------------------------------------------------------------------------
    def handle(self, request: SandboxRequest) -> SandboxResponse:
        if request.path == TOKEN_PATH:
            return self.token(request)
        self.requests += 1
        user = self._user(request.bearer_token() or "")
        if user is None:  # sandbox choice: 401 in the jsonapi error shape, no budget headers
            return _error(401, "unauthorized", "Unauthorized", "The access token is missing, invalid or expired")
        if not self.budget.spend(user):
            # start: over the budget, 429 rateLimitExceeded (with Retry-After); nothing is changed
            self.rejected_429 += 1
            wait = str(max(1, self.budget.reset_at() - math.floor(self.clock())))
            return _error(429, "rateLimitExceeded", "Rate Limit Exceeded", "You have exceeded your permitted rate "
                          "limit; try again after the reset", headers={**self.budget.headers(user), "Retry-After": wait})
        self.acting = user  # whose request this is (sandbox audit: who enrolled whom)
        response = self._route(request)
        # sandbox choice: answers are snapshots; a holder never sees later changes
        response.body = copy.deepcopy(response.body)
        response.headers.update(self.budget.headers(user))
        return response

    def _user(self, token: str) -> int | None:
        if token in self.tokens:
            return self.tokens[token]
        issued = self.issued.get(token)
        if issued is None or self.clock() >= issued[1]:  # start: access tokens last about 7200 s
            return None
        return issued[0]

    def _route(self, request: SandboxRequest) -> SandboxResponse:
        path, method = request.path.rstrip("/"), request.method
        if method in ("POST", "PATCH") and request.body and not request.headers.get("content-type", "").startswith(
                JSONAPI):
            # jsonapi: a request body must be sent as application/vnd.api+json; else 415
            return _error(415, "unsupportedMediaType", "Unsupported Media Type",
                          f"Content-Type must be {JSONAPI}")
        if path == "/api/v2/sequenceStates" and method == "POST":
            return self.create_state(request)
        if (m := _ACTION.match(path)) and method == "POST":
            return self.act(int(m.group(1)), m.group(2))
        if m := _STATE.match(path):
            if method == "GET":
                state = self.states.get(int(m.group(1)))
                return SandboxResponse(200, {"data": state}) if state else self._not_found("sequenceState")
            if method == "DELETE":
                return self.delete_state(int(m.group(1)))
        kind = path.removeprefix("/api/v2/")
        if kind in LIST_FILTERS and method == "GET":
            return self.list(kind, request)
        return _error(404, "resourceNotFound", "Resource Not Found", f"No route {method} {path}")  # sandbox choice

    @staticmethod
    def _not_found(kind: str) -> SandboxResponse:
        return _error(404, "resourceNotFound", "Resource Not Found", f"Could not find {kind} with that id")

    # -- sequence states ----------------------------------------------------------------------------
    def _record(self, sid: int, prospect: int, sequence: int, mailbox: int | None, state: str) -> dict[str, Any]:
        stamp = datetime.fromtimestamp(self.clock(), UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        rel = {"prospect": {"data": {"type": "prospect", "id": prospect}},
               "sequence": {"data": {"type": "sequence", "id": sequence}},
               "mailbox": {"data": {"type": "mailbox", "id": mailbox} if mailbox else None}}
        # spec: state, pauseReason, errorReason, stateChangedAt are read-only attributes
        return {"type": "sequenceState", "id": sid, "attributes": {
            "state": state, "pauseReason": None, "errorReason": None, "stateChangedAt": stamp, "createdAt": stamp},
            "relationships": rel, "links": {"self": f"{_API}/sequenceStates/{sid}"}}

    def create_state(self, request: SandboxRequest) -> SandboxResponse:
        try:
            data = (request.json() or {}).get("data") or {}
        except (ValueError, AttributeError):
            data = {}
        if data.get("type") != "sequenceState":  # jsonapi: the primary data names its type
            return _error(422, "validationError", "Validation Error", "data.type must be sequenceState", "/data/type")
        rel = data.get("relationships") or {}
        ids: dict[str, int | None] = {}
        for name in ("prospect", "sequence", "mailbox"):
            ref = (rel.get(name) or {}).get("data") or {}
            raw = ref.get("id")
            ids[name] = int(raw) if isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit()) else None
            pointer = f"/data/relationships/{name}"
            if ids[name] is None and name != "mailbox":  # spec: prospect and sequence are required
                return _error(422, "validationError", "Validation Error", f"{name} is required", pointer)
            table = {"prospect": self.prospects, "sequence": self.sequences, "mailbox": self.mailboxes}[name]
            if ids[name] is not None and ids[name] not in table:
                # sandbox choice: an unknown related record is a 422 pointing at the relationship
                return _error(422, "validationError", "Validation Error", f"{name} {ids[name]} does not exist", pointer)
        prospect, sequence = self.prospects[ids["prospect"]], self.sequences[ids["sequence"]]
        key = f"{prospect['id']}:{sequence['id']}"
        self.posts[key] = self.posts.get(key, 0) + 1
        pair = (prospect["id"], sequence["id"])
        if any(sid in self.states and self.states[sid]["attributes"]["state"] in LIVE
               for sid in self.by_pair.get(pair, ())):
            # spec/practice: 422 when the prospect is already active in the sequence (wording: sandbox choice)
            return _error(422, "validationError", "Validation Error",
                          "Prospect is already active in this sequence", "/data/relationships/prospect")
        if sequence.get("email_steps", True):
            if ids["mailbox"] is None:
                # practitioners report a mailbox is needed for sequences with email steps (unconfirmed)
                return _error(422, "validationError", "Validation Error",
                              "A mailbox is required to add prospects to a sequence with email steps",
                              "/data/relationships/mailbox")
            if not prospect.get("emails") or prospect.get("undeliverable"):
                # spec/practice: 422 when the prospect has no deliverable email (wording: sandbox choice)
                return _error(422, "validationError", "Validation Error",
                              "Prospect has no deliverable email address", "/data/relationships/prospect")
        mailbox = self.mailboxes.get(ids["mailbox"] or -1) or {}
        # pending: a state waits in "pending" when a daily sending throttle is reached
        state = "pending" if mailbox.get("daily_limit_reached") else "active"
        record = self._record(self._next_id, prospect["id"], sequence["id"], ids["mailbox"], state)
        self.states[self._next_id] = record
        self.by_pair.setdefault(pair, []).append(self._next_id)
        self._next_id += 1
        self.enrolments[key] = self.enrolments.get(key, 0) + 1
        self.enrolled_by[str(self.acting)] = self.enrolled_by.get(str(self.acting), 0) + 1
        return SandboxResponse(201, {"data": record})  # spec: 201 with the new state

    def act(self, sid: int, action: str) -> SandboxResponse:
        record = self.states.get(sid)
        if record is None:
            return self._not_found("sequenceState")
        starts, ends = TRANSITIONS[action]
        current = record["attributes"]["state"]
        if current not in starts:  # sandbox choice: an action that does not apply is a 422
            return _error(422, "validationError", "Validation Error", f"Cannot {action} a sequence state that is "
                          f"{current}")
        record["attributes"].update(state=ends, stateChangedAt=datetime.fromtimestamp(
            self.clock(), UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            pauseReason="manual" if action == "pause" else None)
        key = f"{sid}:{action}"
        self.actions[key] = self.actions.get(key, 0) + 1
        return SandboxResponse(200, {"data": record})  # sandbox choice: 200 with the state as it now is

    def delete_state(self, sid: int) -> SandboxResponse:
        if self.states.pop(sid, None) is None:
            return self._not_found("sequenceState")
        self.deletes[sid] = self.deletes.get(sid, 0) + 1
        return SandboxResponse(204)  # jsonapi: 204 No Content for a deletion without a body

    # -- lists --------------------------------------------------------------------------------------
    def list(self, kind: str, request: SandboxRequest) -> SandboxResponse:
        filters = {k: v for k, v in request.query if k.startswith("filter[")}
        for key in filters:
            if key not in LIST_FILTERS[kind]:  # jsonapi: an unsupported parameter is a 400 (sandbox: strict)
                return _error(400, "unsupportedFilter", "Bad Request", f"{key} is not supported on {kind}")
        wanted = {k: set(v.split(",")) for k, v in filters.items()}  # spec: filters take comma-separated lists
        items = [self._json(kind, r) for r in self._table(kind).values()]
        items = [r for r in items if self._matches(kind, r, wanted)]
        items.sort(key=lambda r: r["id"])
        try:  # jsonapi paging; spec: page[size] at most 1000 (unconfirmed); sandbox choice: default 50
            size = min(1000, max(1, int(request.param("page[size]") or 50)))
            after = int(request.param("page[after]") or 0)
        except ValueError:
            return _error(400, "badPage", "Bad Request", "page[size] and page[after] must be integers")
        rest = [r for r in items if r["id"] > after]
        page = rest[:size]
        links: dict[str, str] = {}
        if len(rest) > size:  # jsonapi: links.next, absent on the last page (sandbox choice: a cursor)
            query = [(k, v) for k, v in request.query if k != "page[after]"] + [("page[after]", str(page[-1]["id"]))]
            links["next"] = f"{_API}/{kind}?{urlencode(query)}"
        return SandboxResponse(200, {"data": page, "links": links, "meta": {"count": len(items)}})

    def _table(self, kind: str) -> dict[int, dict[str, Any]]:
        return {"prospects": self.prospects, "sequences": self.sequences, "mailboxes": self.mailboxes,
                "sequenceStates": self.states}[kind]

    @staticmethod
    def _json(kind: str, r: dict[str, Any]) -> dict[str, Any]:
        if kind == "sequenceStates":
            return r
        if kind == "prospects":
            attributes = {"emails": r.get("emails", []), "firstName": r.get("first_name"),
                          "lastName": r.get("last_name"), "company": r.get("company")}
        elif kind == "sequences":
            attributes = {"name": r["name"], "enabled": r.get("enabled", True)}
        else:
            attributes = {"email": r["email"], "userId": r.get("user_id")}
        return {"type": kind.rstrip("s"), "id": r["id"], "attributes": attributes}

    @staticmethod
    def _matches(kind: str, r: dict[str, Any], wanted: dict[str, set[str]]) -> bool:
        a = r.get("attributes") or {}
        for key, values in wanted.items():
            if key == "filter[emails]" and not {e.lower() for e in a.get("emails", [])} & {v.lower() for v in values}:
                return False
            if key == "filter[id]" and str(r["id"]) not in values:  # spec: filter by id, a list
                return False
            if key == "filter[name]" and a.get("name") not in values:
                return False
            if key == "filter[email]" and str(a.get("email", "")).lower() not in {v.lower() for v in values}:
                return False
            if key.startswith("filter[prospect]") or key.startswith("filter[sequence]"):
                # spec: filtering on a relationship's id (other attributes deprecated in May 2023)
                name = "prospect" if key.startswith("filter[prospect]") else "sequence"
                if str(r["relationships"][name]["data"]["id"]) not in values:
                    return False
        return True

    # -- OAuth --------------------------------------------------------------------------------------
    def token(self, request: SandboxRequest) -> SandboxResponse:
        """start: POST /oauth/token, grant_type=refresh_token; at most one new access token per user
        and app per 60 s (else 429); whether the refresh token rotates is unconfirmed (a setting)."""
        if request.method != "POST":
            return SandboxResponse(405, {"error": "invalid_request", "error_description": "POST only"})
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return SandboxResponse(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
        if form.get("grant_type") != "refresh_token":
            return SandboxResponse(400, {"error": "unsupported_grant_type",
                                         "error_description": "only refresh_token is served by the sandbox"})
        presented = form.get("refresh_token", "")
        user = self.refresh_tokens.get(presented)
        if user is None:
            return SandboxResponse(400, {"error": "invalid_grant", "error_description": "The refresh token is invalid"})
        now = self.clock()
        last = self.last_token.get(user)
        if last is not None and now - last < self.token_interval:
            self.token_429 += 1
            wait = str(math.ceil(self.token_interval - (now - last)))
            return SandboxResponse(429, {"error": "rateLimitExceeded", "error_description":
                                         "one new access token per user and application per minute"},
                                   {"Retry-After": wait})
        self.last_token[user] = now
        access = pysecrets.token_urlsafe(32)
        self.issued[access] = (user, now + self.token_ttl)
        body: dict[str, Any] = {"access_token": access, "token_type": "bearer", "expires_in": int(self.token_ttl),
                                "created_at": int(now)}
        if self.rotate_refresh:
            del self.refresh_tokens[presented]
            body["refresh_token"] = pysecrets.token_urlsafe(32)
            self.refresh_tokens[body["refresh_token"]] = user
        else:
            body["refresh_token"] = presented
        return SandboxResponse(200, body)

    def expire_tokens(self) -> None:
        """Every issued access token expires now (tests of the 401 path)."""
        self.issued = {t: (u, self.clock() - 1) for t, (u, _) in self.issued.items()}

    def audit(self) -> dict[str, Any]:
        """The org's own record of what was done, for tests that must prove nothing happened twice."""
        return {"enrolments": dict(self.enrolments), "posts": dict(self.posts), "enrolled_by": dict(self.enrolled_by),
                "actions": dict(self.actions),
                "deletes": {str(k): v for k, v in self.deletes.items()}, "requests": self.requests,
                "rejected_429": self.rejected_429, "token_429": self.token_429, "tokens_issued": len(self.issued),
                "live": sum(s["attributes"]["state"] in LIVE for s in self.states.values())}
