"""Look-ups that let a CSV say what people know (an email, a sequence name) instead of IDs.

JSON:API lists (https://api.outreach.io/api/v2/schema/openapi.json): ``filter[...]`` takes a
comma-separated list, pages are ``page[size]`` and ``links.next``. Values are looked up in batches
(``[outreach] lookup_batch`` per request), cached for the run, and matched exactly on the client:
a server answer is never trusted to be a match by itself. A miss or an ambiguity fails the row and
says so; nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from batchrunner.platforms.base import SessionIO, StopRun

#: sequence states that hold a prospect in a sequence (Outreach refuses a second one: 422)
LIVE_STATES = frozenset({"active", "pending", "paused"})


class LookupFailed(Exception):
    pass


def chunks(values: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(values), max(1, size)):
        yield values[start : start + size]


async def get_all(io: SessionIO, path: str, params: dict[str, str], page_size: int) -> list[dict[str, Any]]:
    """Every record of a JSON:API list, following ``links.next`` (its path and query only, so a
    next link naming another host is never followed)."""
    records: list[dict[str, Any]] = []
    url, query = path, {**params, "page[size]": str(page_size)}
    while True:
        response = await io.request("GET", url, params=query)
        if response.status_code == 401:
            raise StopRun("AUTH_LOST", f"Outreach refused the access token during a look-up of {path}")
        if response.status_code != 200:
            raise LookupFailed(f"look-up {path} answered HTTP {response.status_code}: {response.text[:200]}")
        body = response.json()
        records.extend(body.get("data") or [])
        following = (body.get("links") or {}).get("next")
        if not following:
            return records
        parts = urlsplit(following)
        url, query = parts.path + (f"?{parts.query}" if parts.query else ""), {}


def attrs(record: dict[str, Any]) -> dict[str, Any]:
    return record.get("attributes") or {}


def related_id(record: dict[str, Any], name: str) -> int | None:
    data = ((record.get("relationships") or {}).get(name) or {}).get("data") or {}
    return int(data["id"]) if data.get("id") is not None else None


class Lookups:
    """The run's cache of resolved names. Emails are matched lower-cased, names exactly."""

    def __init__(self, page_size: int = 100, batch: int = 50) -> None:
        self.page_size, self.batch = page_size, batch
        self.prospects_by_email: dict[str, list[int]] = {}
        self.sequences_by_name: dict[str, list[int]] = {}
        self.mailboxes_by_email: dict[str, list[int]] = {}
        self.errors: dict[tuple[str, str], str] = {}  # (field, value) -> why the look-up itself failed

    async def _by_filter(self, io: SessionIO, path: str, filter_name: str, wanted: set[str],
                         cache: dict[str, list[int]], field: str, key_of: Any) -> None:
        """Fill ``cache`` for every value of ``wanted`` not yet in it: one request per batch."""
        todo = sorted(wanted - set(cache))
        listable = [v for v in todo if "," not in v]  # a comma would split the filter list
        for chunk in [*chunks(listable, self.batch), *([v] for v in todo if "," in v)]:
            # a value holding a comma cannot be filtered on: its list is read whole and matched here
            params = {} if any("," in v for v in chunk) else {filter_name: ",".join(chunk)}
            try:
                records = await get_all(io, path, params, self.page_size)
            except LookupFailed as exc:
                for value in chunk:
                    self.errors[(field, value)] = str(exc)
                continue
            for value in chunk:
                cache[value] = []
            for record in records:
                for key in key_of(record):
                    if key in cache and key in chunk and int(record["id"]) not in cache[key]:
                        cache[key].append(int(record["id"]))

    async def prospects(self, io: SessionIO, emails: set[str]) -> None:
        await self._by_filter(io, "/api/v2/prospects", "filter[emails]", {e.lower() for e in emails},
                              self.prospects_by_email, "prospect_email",
                              lambda r: {str(e).strip().lower() for e in attrs(r).get("emails") or []})

    async def sequences(self, io: SessionIO, names: set[str]) -> None:
        await self._by_filter(io, "/api/v2/sequences", "filter[name]", names, self.sequences_by_name,
                              "sequence_name", lambda r: {attrs(r).get("name")})

    async def mailboxes(self, io: SessionIO, emails: set[str]) -> None:
        await self._by_filter(io, "/api/v2/mailboxes", "filter[email]", {e.lower() for e in emails},
                              self.mailboxes_by_email, "mailbox_email",
                              lambda r: {str(attrs(r).get("email") or "").strip().lower()})

    async def states(self, io: SessionIO, pairs: set[tuple[int, int]]) -> dict[tuple[int, int], list[dict[str, Any]]]:
        """Sequence states of (prospect, sequence) pairs: one request per sequence and batch of prospects."""
        found: dict[tuple[int, int], list[dict[str, Any]]] = {pair: [] for pair in pairs}
        by_sequence: dict[int, list[int]] = {}
        for prospect, sequence in sorted(pairs):
            by_sequence.setdefault(sequence, []).append(prospect)
        for sequence, prospects in by_sequence.items():
            for chunk in chunks(prospects, self.batch):
                records = await get_all(io, "/api/v2/sequenceStates", {
                    "filter[prospect][id]": ",".join(map(str, chunk)), "filter[sequence][id]": str(sequence)},
                    self.page_size)
                for record in records:
                    pair = (related_id(record, "prospect"), related_id(record, "sequence"))
                    if pair in found:
                        found[pair].append(record)  # type: ignore[index]
        return found
