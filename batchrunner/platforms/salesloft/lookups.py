"""Look-ups that let a CSV say what people know (an email, a cadence name) instead of IDs.

Batched (up to 100 emails or CRM IDs per request), cached for the run, paid for from the same
budget as every other request, and matched exactly on the client: the server silently ignores a
misspelt filter and returns an unfiltered list (docs/platforms.md), so a server answer is never trusted
to be a match by itself. A miss or an ambiguity fails the row and says so; nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from batchrunner import secrets
import httpx

from batchrunner.platforms.base import SessionIO, StopRun

PER_PAGE = 100
BATCH = 100  # values per look-up request (docs/platforms.md: up to 100 emails per request)


class LookupFailed(Exception):
    """A look-up that could not be answered: the platform refused it (``LOOKUP_FAILED``, with its
    message) or could not be reached (``CONNECTION_ERROR``). Its rows fail retryably; a person who
    exists is never reported missing because of it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def error_text(response: httpx.Response) -> str:
    """The server's messages joined: `{"error": "..."}` or `{"errors": {field: [...]}}`."""
    try:
        body = response.json()
    except ValueError:
        return secrets.excerpt(response.text, 300) or response.reason_phrase
    if isinstance(body, dict):
        if isinstance(body.get("errors"), dict):
            parts = []
            for field, messages in body["errors"].items():
                messages = messages if isinstance(messages, list) else [messages]
                parts.extend(f"{field} {m}" if field != "base" else str(m) for m in messages)
            return "; ".join(parts)
        if body.get("error"):
            return str(body["error"])
    return secrets.excerpt(str(body), 300)


async def read(io: SessionIO, path: str, what: str, **kwargs: Any) -> httpx.Response:
    """A GET that answered 200, or LookupFailed (StopRun on 401). ``io.request`` has already retried
    transient answers and transport errors as often as the job allows."""
    try:
        response = await io.request("GET", path, **kwargs)
    except httpx.TransportError as exc:
        raise LookupFailed("CONNECTION_ERROR", f"{what}: {type(exc).__name__}: {exc}".rstrip(": ")) from None
    if response.status_code == 401:
        raise StopRun("AUTH_LOST", f"Salesloft refused the API key during {what}")
    if response.status_code != 200:
        raise LookupFailed("LOOKUP_FAILED", f"{what} answered HTTP {response.status_code}: {error_text(response)}")
    return response


def page_cost(page: int) -> float:
    """Budget cost of a list page: 1, more beyond page 100 (docs/platforms.md: 3 to 30)."""
    return 1.0 if page <= 100 else 3.0


async def get_all(io: SessionIO, path: str, params: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """Every record of a list endpoint, following metadata.paging.next_page."""
    records: list[dict[str, Any]] = []
    page = 1
    while True:
        response = await read(io, path, f"the look-up {path}", cost=page_cost(page),
                              params=[*params, ("per_page", PER_PAGE), ("page", page)])
        page = collect_page(response.json(), records)
        if page is None:
            return records


def collect_page(body: dict[str, Any], records: list[dict[str, Any]]) -> int | None:
    """Add a list page's records to ``records``; the next page to read, or None at the end
    (docs/platforms.md: ``metadata.paging.next_page`` is null on the last page)."""
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
        #: (row field, value) -> why its look-up failed; keyed by the *row's* field name
        #: (person_email, person_crm_id, cadence_name, user_email), which is what a row is resolved by
        self.errors: dict[tuple[str, str], LookupFailed] = {}

    async def people(self, io: SessionIO, *, emails: set[str], crm_ids: set[str]) -> None:
        # a value whose earlier look-up failed is asked again (the next wave, or resume)
        await self._people(io, "email_addresses[]", sorted(emails - set(self.people_by_email)), "email_address",
                           "person_email", self.people_by_email, lower=True)
        await self._people(io, "crm_id[]", sorted(crm_ids - set(self.people_by_crm)), "crm_id", "person_crm_id",
                           self.people_by_crm, lower=False)

    async def _people(self, io: SessionIO, param: str, wanted: list[str], field: str, row_field: str,
                      cache: dict[str, list[int]], lower: bool) -> None:
        for chunk in _chunks(wanted, BATCH):
            try:
                records = await get_all(io, "/v2/people", [(param, v) for v in chunk])
            except LookupFailed as exc:
                for value in chunk:
                    self.errors[(row_field, value)] = exc
                continue
            for value in chunk:
                self.errors.pop((row_field, value), None)
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
                    self.errors[("cadence_name", name)] = exc
                continue
            for name in chunk:
                self.errors.pop(("cadence_name", name), None)
                self.cadences_by_name[name] = [c for c in records if c.get("name") == name]

    async def users(self, io: SessionIO) -> None:
        if self.users_by_email is not None:
            return
        # docs/platforms.md: no email filter on /v2/users; without `page` it returns every user
        try:
            response = await read(io, "/v2/users", "the users look-up")
        except LookupFailed as exc:
            self.errors[("user_email", "*")] = exc  # users_by_email stays None: asked again next wave
            return
        self.errors.pop(("user_email", "*"), None)
        self.users_by_email = {}
        for user in response.json().get("data") or []:
            email = str(user.get("email") or "").strip().lower()
            if email:
                self.users_by_email.setdefault(email, []).append(int(user["id"]))

    def failure(self, field: str, value: str) -> LookupFailed | None:
        """Why the look-up of a row's ``field`` = ``value`` failed, if it did."""
        return self.errors.get((field, value)) or (self.errors.get((field, "*")) if field == "user_email" else None)
