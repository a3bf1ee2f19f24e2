"""Emulator of the Salesloft API parts batchrunner uses: cadence memberships, people, cadences, users.

Sources, cited beside each rule: "seed" = Salesloft's "Create a cadence membership" reference (developers.salesloft.com; docs/platforms.md) (query parameters,
visibility and teammate rules, one membership per person and cadence), "API facts" = docs/platforms.md
(error shapes, paging, filters, rate-limit headers and the 600-cost budget). Where both are silent
the emulator makes a "sandbox choice", marked so.
"""

from __future__ import annotations

import copy
import math
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from batchrunner.sandbox.base import SandboxRequest, SandboxResponse
from batchrunner.sandbox.seeds import load_seed

_MEMBERSHIP = re.compile(r"^/v2/cadence_memberships/(\d+)(?:\.json)?$")
_STEP = re.compile(r"^/v2/steps/(\d+)(?:\.json)?$")
_API = "https://api.salesloft.com/v2"


def _now_iso(clock: Callable[[], float]) -> str:
    # seed doc: date-times look like 2024-01-01T00:00:00.000000+00:00
    return datetime.fromtimestamp(clock(), UTC).isoformat(timespec="microseconds")


def _ref(kind: str, ident: int) -> dict[str, Any]:
    return {"id": ident, "_href": f"{_API}/{kind}/{ident}"}  # seed doc: {id, _href}


class Budget:
    """The team's cost budget per minute (docs/platforms.md: 600 per team, shared by every integration).
    "fixed" resets at each clock minute, "rolling" counts the last 60 s: which one the platform
    uses is unconfirmed (docs/platforms.md), so the sandbox can be either."""

    def __init__(self, per_minute: int, clock: Callable[[], float], window: str = "fixed",
                 window_seconds: float = 60.0) -> None:
        if window not in ("fixed", "rolling"):
            raise ValueError(f"window must be 'fixed' or 'rolling', not {window!r}")
        self.per_minute, self.clock, self.window, self.window_seconds = per_minute, clock, window, window_seconds
        self.spent: list[tuple[float, float]] = []  # (time, cost), rolling window
        self.minute = -1
        self.used = 0.0

    def _roll(self) -> None:
        now = self.clock()
        if self.window == "fixed":
            minute = math.floor(now / self.window_seconds)
            if minute != self.minute:
                self.minute, self.used = minute, 0.0
        else:
            self.spent = [(t, c) for t, c in self.spent if t > now - self.window_seconds]
            self.used = sum(c for _, c in self.spent)

    def remaining(self) -> float:
        self._roll()
        return max(0.0, self.per_minute - self.used)

    def spend(self, cost: float) -> bool:
        self._roll()
        if self.used + cost > self.per_minute:
            return False
        self.used += cost
        if self.window == "rolling":
            self.spent.append((self.clock(), cost))
        return True


class SalesloftEmulator:
    prefixes = ("/v2/",)

    def __init__(self, team: dict[str, Any] | None = None, *, budget_per_minute: int = 600,
                 clock: Callable[[], float] = time.time, window: str = "fixed", window_seconds: float = 60.0,
                 not_started: Iterable[str] = ()) -> None:
        seed = copy.deepcopy(team if team is not None else load_seed("salesloft_team.json"))
        self.clock = clock
        self.budget = Budget(budget_per_minute, clock, window, window_seconds)
        self.users = {u["id"]: u for u in seed.get("users", [])}
        self.keys = dict(seed.get("api_keys", {}))  # API key -> user id (docs/platforms.md: a key acts as its user)
        self.people = {p["id"]: p for p in seed.get("people", [])}
        self.cadences = {c["id"]: c for c in seed.get("cadences", [])}
        self.memberships: dict[int, dict[str, Any]] = {}
        self._next_id = 9_000_001
        for m in seed.get("memberships", []):
            on = m.get("currently_on_cadence", True)
            record = self._membership_record(m["id"], m["person_id"], m["cadence_id"], m["user_id"], on)
            # seed may give its own timestamps/state; else "now", "active" (sandbox choice)
            record.update({k: m[k] for k in ("created_at", "added_at", "updated_at", "current_state") if k in m})
            self.memberships[m["id"]] = record
            self._next_id = max(self._next_id, m["id"] + 1)
        self.calls: list[tuple[str, str]] = []
        self.enrolments: dict[str, int] = {}  # "person:cadence" -> successful adds (crash tests)
        self.posts: dict[str, int] = {}  # "person:cadence" -> add requests received, whatever their answer
        self.rejected_429 = 0
        #: fault injection for `verify` ([sandbox] not_started): people (email or id) whose accepted
        #: membership never starts: it stays "staged", waiting for a first step that never comes
        self.not_started = {str(v).strip().lower() for v in not_started if str(v).strip()}

    # -- budget -------------------------------------------------------------------------------
    def spend_external(self, cost: float) -> None:
        """Another integration of the same team spends from the shared budget (fault injection)."""
        self.budget.spend(min(cost, self.budget.remaining()))

    @staticmethod
    def _cost(request: SandboxRequest) -> float:
        # docs/platforms.md: most requests cost 1; list pages beyond page 100 cost 3 to 30 (sandbox choice: 3)
        page = request.param("page")
        return 3.0 if request.method == "GET" and page and page.isdigit() and int(page) > 100 else 1.0

    # -- HTTP ---------------------------------------------------------------------------------
    def handle(self, request: SandboxRequest) -> SandboxResponse:
        self.calls.append((request.method, request.path))
        cost = self._cost(request)
        user_id = self.keys.get(request.bearer_token() or "")
        if user_id is None:  # docs/platforms.md: 401 is {"error": "..."}
            # sandbox choice: an unknown key is charged nothing (no team to charge), but the answer still
            # carries the headers (docs/platforms.md: every response), showing this one team's budget
            return self._with_headers(SandboxResponse(401, {"error": "Unauthorized"}), cost)
        if not self.budget.spend(cost):  # docs/platforms.md: exhaustion answers 429; no Retry-After is documented
            # sandbox choice: a refused request changes nothing (no budget spent, no state touched)
            self.rejected_429 += 1
            return self._with_headers(SandboxResponse(429, {"error": "Rate limit exceeded"}), cost)
        user = self.users[user_id]
        response = self._route(request, user)
        # sandbox choice: answers are snapshots; a client (or a test) holding one never sees later changes
        response.body = copy.deepcopy(response.body)
        return self._with_headers(response, cost)

    def _with_headers(self, response: SandboxResponse, cost: float) -> SandboxResponse:
        # docs/platforms.md: every response carries the cost and what is left of the minute's budget
        response.headers.update({"x-ratelimit-endpoint-cost": str(int(cost)),
                                 "x-ratelimit-remaining-minute": str(int(self.budget.remaining()))})
        return response

    def _route(self, request: SandboxRequest, user: dict[str, Any]) -> SandboxResponse:
        path, method = request.path.rstrip("/"), request.method
        if path in ("/v2/cadence_memberships", "/v2/cadence_memberships.json"):
            if method == "POST":
                return self.add(request, user)
            if method == "GET":
                return self.list_memberships(request, user)
        if m := _MEMBERSHIP.match(path):
            if method == "GET":
                return self.show_membership(int(m.group(1)), user)
            if method == "DELETE":
                return self.delete_membership(int(m.group(1)), user)
        if path == "/v2/people" and method == "GET":
            return self.list_people(request, user)
        if path == "/v2/cadences" and method == "GET":
            return self.list_cadences(request, user)
        if path == "/v2/users" and method == "GET":
            return self.list_users(request)
        if path == "/v2/steps" and method == "GET":
            return self.list_steps(request, user)
        if (m := _STEP.match(path)) and method == "GET":
            step = self._visible_step(int(m.group(1)), user)
            return SandboxResponse(200, {"data": step}) if step else SandboxResponse(404, {"error": "Not Found"})
        if path == "/v2/me" and method == "GET":
            return SandboxResponse(200, {"data": self._user_json(user)})
        # sandbox choice: any other path or method answers 404 in the docs/platforms.md error shape
        return SandboxResponse(404, {"error": "Not Found"})

    # -- visibility (seed: person and cadence must be visible to the token's user) ----------------
    def _cadence_visible(self, cadence: dict[str, Any], user: dict[str, Any]) -> bool:
        # sandbox choice: team cadences and shared cadences are visible to the team; a personal
        # cadence only to its owner and to holders of the Personal Cadence Admin permission
        return (cadence.get("team_cadence") or cadence.get("shared") or cadence["owner_id"] == user["id"]
                or user.get("personal_cadence_admin", False))

    def _person_visible(self, person: dict[str, Any], user: dict[str, Any]) -> bool:
        # sandbox choice: people marked private are visible only to their owner (and admins)
        return not person.get("private") or person.get("owner_id") == user["id"] or user.get("admin", False)

    @staticmethod
    def _may_act_on(cadence: dict[str, Any], acting: dict[str, Any]) -> bool:
        # seed: "cannot be added ... on behalf of a teammate unless the cadence is a team cadence, the
        # cadence is owned by the teammate, or the teammate has the Personal Cadence Admin permission";
        # seed (user_id): "The associated cadence must be owned by the user, or it must be a team cadence".
        # user_id defaults to the token's user, so the same rule applies to the token's own user.
        return bool(cadence.get("team_cadence") or cadence["owner_id"] == acting["id"]
                    or acting.get("personal_cadence_admin", False))

    # -- memberships ------------------------------------------------------------------------------
    def _membership_record(self, mid: int, person_id: int, cadence_id: int, user_id: int, on: bool) -> dict[str, Any]:
        stamp = _now_iso(self.clock)
        # seed doc: the membership fields; sandbox choice: no actions happen here, so latest_action is null
        return {"id": mid, "added_at": stamp, "created_at": stamp, "updated_at": stamp, "person_deleted": False,
                "currently_on_cadence": on, "current_state": "active" if on else "removed",
                "cadence": _ref("cadences", cadence_id), "person": _ref("people", person_id),
                "user": _ref("users", user_id), "latest_action": None,
                "counts": {"views": 0, "clicks": 0, "replies": 0, "calls": 0, "sent_emails": 0, "bounces": 0}}

    @staticmethod
    def _errors(field: str, message: str) -> SandboxResponse:
        return SandboxResponse(422, {"errors": {field: [message]}})  # docs/platforms.md: 422 shape

    @staticmethod
    def _int(value: str | None) -> int | None:
        return int(value) if value is not None and value.isascii() and value.isdigit() else None

    def add(self, request: SandboxRequest, user: dict[str, Any]) -> SandboxResponse:
        # seed: person_id and cadence_id are required query parameters (the sample sends an empty body;
        # sandbox choice: any body is ignored)
        for field in ("person_id", "cadence_id", "user_id", "step_id", "task_id"):
            raw = request.param(field)
            if raw is None and field in ("person_id", "cadence_id"):
                return self._errors(field, "is required")  # docs/platforms.md: 422 {"errors": {field: [...]}}
            if raw is not None and self._int(raw) is None:
                return self._errors(field, "must be an integer")  # sandbox choice: 422 as above
        person_id, cadence_id = self._int(request.param("person_id")), self._int(request.param("cadence_id"))
        assert person_id is not None and cadence_id is not None
        self.posts[f"{person_id}:{cadence_id}"] = self.posts.get(f"{person_id}:{cadence_id}", 0) + 1
        person, cadence = self.people.get(person_id), self.cadences.get(cadence_id)
        # seed: person and cadence must be visible; docs/platforms.md: 404 {"error"} also when a record exists
        # but is not visible (sandbox choice: 404 rather than a 422 on person_id / cadence_id)
        if person is None or not self._person_visible(person, user):
            return SandboxResponse(404, {"error": "Not Found"})
        if cadence is None or not self._cadence_visible(cadence, user):
            return SandboxResponse(404, {"error": "Not Found"})
        acting = user  # seed: user_id defaults to the authenticated user
        if request.param("user_id") is not None:
            # seed: user_id can be "any visible user on the authenticated team"; sandbox choice: an unknown
            # user is a 422 on user_id
            acting = self.users.get(self._int(request.param("user_id")) or -1)
            if acting is None:
                return self._errors("user_id", "is not a user on this team")
        if not self._may_act_on(cadence, acting):
            # sandbox choice: 403 {"error"} (docs/platforms.md shape for 403) rather than 422
            who = "you" if acting["id"] == user["id"] else f"user {acting['id']}"
            return SandboxResponse(403, {"error": f"Cannot add people to cadence {cadence_id} for {who}: it is not a "
                                                  "team cadence, not owned by that user, and the user lacks the "
                                                  "Personal Cadence Admin permission"})
        step = request.param("step_id")
        if step is not None and self._int(step) not in cadence.get("step_ids", []):
            return self._errors("step_id", "does not belong to this cadence")  # seed: a step of that cadence
        existing = next((m for m in self.memberships.values()
                         if m["person"]["id"] == person_id and m["cadence"]["id"] == cadence_id), None)
        if existing is not None and existing["currently_on_cadence"]:
            # docs/platforms.md: the exact answer is unconfirmed, most likely 422
            return self._errors("base", "person is already on this cadence")
        stamp = _now_iso(self.clock)
        if existing is None:
            existing = self._membership_record(self._next_id, person_id, cadence_id, acting["id"], True)
            self._next_id += 1
            self.memberships[existing["id"]] = existing
        # docs/platforms.md: one record per (person, cadence); re-adding reuses it (created_at kept, added_at now)
        # seed doc: "staged" = waiting for the first step, which is where a just-added person is
        existing.update(added_at=stamp, updated_at=stamp, currently_on_cadence=True, current_state="staged",
                        user=_ref("users", acting["id"]))
        key = f"{person_id}:{cadence_id}"
        self.enrolments[key] = self.enrolments.get(key, 0) + 1
        answer = SandboxResponse(200, {"data": copy.deepcopy(existing)})  # seed doc: 200 with the membership
        # sandbox choice: the first step runs right after the answer ("active": begun, idle), except for
        # the people of [sandbox] not_started, who stay "staged" (fault injection for `verify`)
        if not ({str(person_id), person["email_address"].lower()} & self.not_started):
            existing["current_state"] = "active"
        return answer

    def _visible_membership(self, mid: int, user: dict[str, Any]) -> dict[str, Any] | None:
        m = self.memberships.get(mid)
        if m is None or not self._cadence_visible(self.cadences[m["cadence"]["id"]], user):
            return None
        return m

    def show_membership(self, mid: int, user: dict[str, Any]) -> SandboxResponse:
        m = self._visible_membership(mid, user)
        return SandboxResponse(200, {"data": m}) if m else SandboxResponse(404, {"error": "Not Found"})

    def delete_membership(self, mid: int, user: dict[str, Any]) -> SandboxResponse:
        m = self._visible_membership(mid, user)
        # sandbox choice: a membership no longer on its cadence answers 404, like a missing one
        if m is None or not m["currently_on_cadence"]:
            return SandboxResponse(404, {"error": "Not Found"})
        m.update(currently_on_cadence=False, current_state="removed", updated_at=_now_iso(self.clock))
        return SandboxResponse(204)  # docs/platforms.md: 204 (older spec)

    def list_memberships(self, request: SandboxRequest, user: dict[str, Any]) -> SandboxResponse:
        items = [m for m in self.memberships.values() if self._visible_membership(m["id"], user)]
        # docs/platforms.md: filters person_id, cadence_id, currently_on_cadence; unknown filters are ignored
        if (pid := self._int(request.param("person_id"))) is not None:
            items = [m for m in items if m["person"]["id"] == pid]
        if (cid := self._int(request.param("cadence_id"))) is not None:
            items = [m for m in items if m["cadence"]["id"] == cid]
        # sandbox choice: the array forms person_id[] / cadence_id[] (Salesloft's list convention, as
        # ids[] on people; not in docs/platforms.md) filter too; a client must check the answer anyway
        if people := {self._int(p) for p in request.params("person_id[]")}:
            items = [m for m in items if m["person"]["id"] in people]
        if cadences := {self._int(c) for c in request.params("cadence_id[]")}:
            items = [m for m in items if m["cadence"]["id"] in cadences]
        if (on := request.param("currently_on_cadence")) in ("true", "false"):
            items = [m for m in items if m["currently_on_cadence"] == (on == "true")]
        return self._page(request, self._by_updated_at(request, items))

    @staticmethod
    def _by_updated_at(request: SandboxRequest, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``updated_at[gt|gte|lt|lte]`` filters and ``sort_by=updated_at|created_at|id`` with
        ``sort_direction=ASC|DESC``: Salesloft's list conventions, not in docs/platforms.md (sandbox choice:
        supported on memberships; ties broken by id; without sort_by the order is creation order)."""
        for op, keep in (("gt", lambda a, b: a > b), ("gte", lambda a, b: a >= b),
                         ("lt", lambda a, b: a < b), ("lte", lambda a, b: a <= b)):
            bound = request.param(f"updated_at[{op}]")
            if bound is not None:
                try:
                    when = datetime.fromisoformat(bound.replace("Z", "+00:00"))
                except ValueError:
                    continue  # sandbox choice: an unparseable bound is ignored, like an unknown filter
                items = [m for m in items if keep(datetime.fromisoformat(m["updated_at"].replace("Z", "+00:00")),
                                                  when)]
        sort_by = request.param("sort_by")
        if sort_by in ("updated_at", "created_at", "id"):
            def key(m: dict[str, Any]) -> tuple[Any, int]:
                value = m["id"] if sort_by == "id" else datetime.fromisoformat(m[sort_by].replace("Z", "+00:00"))
                return (value, m["id"])

            items = sorted(items, key=key, reverse=(request.param("sort_direction") or "DESC").upper() == "DESC")
        return items

    # -- look-ups ---------------------------------------------------------------------------------
    def list_people(self, request: SandboxRequest, user: dict[str, Any]) -> SandboxResponse:
        items = [p for p in self.people.values() if self._person_visible(p, user)]
        # docs/platforms.md: email_addresses[] and crm_id[] filters; unknown filters silently ignored
        if emails := {e.strip().lower() for e in request.params("email_addresses[]")}:
            items = [p for p in items if p["email_address"].lower() in emails]
        if crm := set(request.params("crm_id[]")):
            items = [p for p in items if p.get("crm_id") in crm]
        if ids := {self._int(i) for i in request.params("ids[]")}:
            items = [p for p in items if p["id"] in ids]
        return self._page(request, [self._person_json(p) for p in items])

    def list_cadences(self, request: SandboxRequest, user: dict[str, Any]) -> SandboxResponse:
        items = [c for c in self.cadences.values() if self._cadence_visible(c, user)]
        if names := set(request.params("name[]")):  # docs/platforms.md: exact match unconfirmed; the sandbox is exact
            items = [c for c in items if c["name"] in names]
        if ids := {self._int(i) for i in request.params("ids[]")}:
            items = [c for c in items if c["id"] in ids]
        return self._page(request, [self._cadence_json(c) for c in items])

    def list_users(self, request: SandboxRequest) -> SandboxResponse:
        items = list(self.users.values())
        if search := (request.param("search") or "").lower():  # docs/platforms.md: substring of name or email
            items = [u for u in items if search in u["name"].lower() or search in u["email"].lower()]
        data = [self._user_json(u) for u in items]
        if request.param("page") is None:  # docs/platforms.md: without `page`, every user
            # sandbox choice: paging then describes one page holding everything, next_page null
            paging = {"per_page": len(data), "current_page": 1, "next_page": None, "prev_page": None}
            return SandboxResponse(200, {"data": data, "metadata": {"paging": paging}})
        return self._page(request, data)

    # -- steps (optional; sandbox choice: the seed lists step ids per cadence, numbered in order) ----
    def _steps(self, cadence: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"id": sid, "step_number": n, "cadence": _ref("cadences", cadence["id"])}
                for n, sid in enumerate(cadence.get("step_ids", []), start=1)]

    def _visible_step(self, step_id: int, user: dict[str, Any]) -> dict[str, Any] | None:
        for cadence in self.cadences.values():
            if step_id in cadence.get("step_ids", []) and self._cadence_visible(cadence, user):
                return next(s for s in self._steps(cadence) if s["id"] == step_id)
        return None

    def list_steps(self, request: SandboxRequest, user: dict[str, Any]) -> SandboxResponse:
        cid = self._int(request.param("cadence_id"))  # filter cadence_id; unknown filters ignored (docs/platforms.md)
        items = [s for c in self.cadences.values() if self._cadence_visible(c, user)
                 and (cid is None or c["id"] == cid) for s in self._steps(c)]
        return self._page(request, items)

    def _page(self, request: SandboxRequest, items: list[dict[str, Any]]) -> SandboxResponse:
        # docs/platforms.md: per_page 1-100 (default 25), page from 1, next_page null at the end
        per_page = min(100, max(1, self._int(request.param("per_page")) or 25))
        page = max(1, self._int(request.param("page")) or 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        more = page * per_page < len(items)
        paging = {"per_page": per_page, "current_page": page, "next_page": page + 1 if more else None,
                  "prev_page": page - 1 if page > 1 else None}
        return SandboxResponse(200, {"data": chunk, "metadata": {"paging": paging}})

    @staticmethod
    def _person_json(p: dict[str, Any]) -> dict[str, Any]:
        return {"id": p["id"], "first_name": p["first_name"], "last_name": p["last_name"],
                "email_address": p["email_address"], "crm_id": p.get("crm_id"), "company_name": p.get("company"),
                "display_name": f"{p['first_name']} {p['last_name']}".strip(),
                "owner": _ref("users", p["owner_id"]) if p.get("owner_id") else None}

    @staticmethod
    def _cadence_json(c: dict[str, Any]) -> dict[str, Any]:
        return {"id": c["id"], "name": c["name"], "team_cadence": c.get("team_cadence", False),
                "shared": c.get("shared", False), "owner": _ref("users", c["owner_id"]),
                "archived_at": c.get("archived_at"), "draft": c.get("draft", False)}

    @staticmethod
    def _user_json(u: dict[str, Any]) -> dict[str, Any]:
        return {"id": u["id"], "name": u["name"], "email": u["email"], "active": True}

    def audit(self) -> dict[str, Any]:
        """The team's own record of what was done, for tests that must prove nothing happened twice."""
        return {"enrolments": dict(self.enrolments), "posts": dict(self.posts), "requests": len(self.calls),
                "rejected_429": self.rejected_429,
                "on_cadence": sum(m["currently_on_cadence"] for m in self.memberships.values())}
