"""Look-ups that let a CSV say what people know (an email, a cadence name) instead of IDs.

Batched (up to 100 emails or CRM IDs per request), cached for the run, paid for from the same
budget as every other request, and matched exactly on the client: the server silently ignores a
misspelt filter and returns an unfiltered list (API-FACTS), so a server answer is never trusted
to be a match by itself. A miss or an ambiguity fails the row and says so; nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from batchrunner import secrets
from batchrunner.platforms.base import SessionIO, StopRun

PER_PAGE = 100
BATCH = 100  # values per look-up request (API-FACTS: up to 100 emails per request)


class LookupFailed(Exception):
    pass


def page_cost(page: int) -> float:
    """Budget cost of a list page: 1, more beyond page 100 (API-FACTS: 3 to 30)."""
    return 1.0 if page <= 100 else 3.0


async def get_all(io: SessionIO, path: str, params: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """Every record of a list endpoint, following metadata.paging.next_page."""
    records: list[dict[str, Any]] = []
    page = 1
    while True:
        response = await io.request("GET", path, cost=page_cost(page),
                                    params=[*params, ("per_page", PER_PAGE), ("page", page)])
        if response.status_code == 401:
            raise StopRun("AUTH_LOST", f"Salesloft refused the API key during a look-up of {path}")
        if response.status_code != 200:
            raise LookupFailed(f"look-up {path} answered HTTP {response.status_code}: {secrets.excerpt(response.text, 200)}")
        page = collect_page(response.json(), records)
        if page is None:
            return records


def collect_page(body: dict[str, Any], records: list[dict[str, Any]]) -> int | None:
    """Add a list page's records to ``records``; the next page to read, or None at the end
    (API-FACTS: ``metadata.paging.next_page`` is null on the last page)."""
    records.extend(body.get("data") or [])
    next_page = ((body.get("metadata") or {}).get("paging") or {}).get("next_page")
    return int(next_page) if next_page else None


def _chunks(values: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class Lookups:
    """The run's cache of resolved names. Keys are normalised (emails lower-cased)."""

    def __init__(self) -> None:
        self.people_by_email: dict[str, list[int]] = {}
        self.people_by_crm: dict[str, list[int]] = {}
        self.cadences_by_name: dict[str, list[dict[str, Any]]] = {}
        self.users_by_email: dict[str, list[int]] | None = None
        self.errors: dict[tuple[str, str], str] = {}  # (kind, key) -> why the look-up itself failed

    async def people(self, io: SessionIO, *, emails: set[str], crm_ids: set[str]) -> None:
        await self._people(io, "email_addresses[]", sorted(emails - set(self.people_by_email)), "email_address",
                           self.people_by_email, lower=True)
        await self._people(io, "crm_id[]", sorted(crm_ids - set(self.people_by_crm)), "crm_id", self.people_by_crm,
                           lower=False)

    async def _people(self, io: SessionIO, param: str, wanted: list[str], field: str,
                      cache: dict[str, list[int]], lower: bool) -> None:
        for chunk in _chunks(wanted, BATCH):
            try:
                records = await get_all(io, "/v2/people", [(param, v) for v in chunk])
            except LookupFailed as exc:
                for value in chunk:
                    self.errors[(field, value)] = str(exc)
                continue
            for value in chunk:
                cache[value] = []
            for person in records:
                found = person.get(field)
                if found is None:
                    continue
                key = str(found).strip().lower() if lower else str(found).strip()
                if key in cache and key in chunk and person.get("id") not in cache[key]:
                    cache[key].append(int(person["id"]))

    async def cadences(self, io: SessionIO, names: set[str]) -> None:
        wanted = sorted(names - set(self.cadences_by_name))
        for chunk in _chunks(wanted, 20):
            try:
                records = await get_all(io, "/v2/cadences", [("name[]", n) for n in chunk])
            except LookupFailed as exc:
                for name in chunk:
                    self.errors[("cadence_name", name)] = str(exc)
                continue
            for name in chunk:
                self.cadences_by_name[name] = [c for c in records if c.get("name") == name]

    async def users(self, io: SessionIO) -> None:
        if self.users_by_email is not None:
            return
        # API-FACTS: no email filter on /v2/users; without `page` it returns every user
        response = await io.request("GET", "/v2/users")
        if response.status_code == 401:
            raise StopRun("AUTH_LOST", "Salesloft refused the API key during the users look-up")
        if response.status_code != 200:
            self.users_by_email = {}
            self.errors[("user_email", "*")] = f"users look-up answered HTTP {response.status_code}"
            return
        self.users_by_email = {}
        for user in response.json().get("data") or []:
            email = str(user.get("email") or "").strip().lower()
            if email:
                self.users_by_email.setdefault(email, []).append(int(user["id"]))
