"""``batchrunner export salesloft-memberships``: cadence memberships joined with each person's email
and crm_id and each cadence's name.

Budget (docs/platforms.md, Salesloft rate limits): 600 cost per minute per team, most requests cost 1,
list pages beyond page 100 cost 3 to 30. So the export never reads a deep page when it can avoid
it: it filters by cadence (``cadence_id``) and ``currently_on_cadence`` where asked, sorts by
``updated_at`` ascending, and before it would read page ``max_page + 1`` (default: never page 100)
it starts again at page 1 with ``updated_at[gte]`` set to the last timestamp it read (records seen
twice are dropped by id). Salesloft silently ignores filters it does not know (docs/platforms.md), so the
export checks the answers: if the order is not ascending or the cursor was not applied, it says so
and pages on plainly (correct, only dearer). The cursor parameters (``sort_by``, ``sort_direction``,
``updated_at[gte]``) follow Salesloft's list conventions; docs/platforms.md does not list them.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from batchrunner.clock import Clock
from batchrunner.errors import JobError
from batchrunner.export.common import ExportResult, Reader
from batchrunner.job import Job
from batchrunner.platforms.salesloft.lookups import collect_page, page_cost
from batchrunner.platforms.salesloft.platform import SalesloftPlatform, rate_signal

COLUMNS = ["membership_id", "person_id", "person_email", "person_crm_id", "cadence_id", "cadence_name", "user_id",
           "currently_on_cadence", "current_state", "added_at", "updated_at"]
PER_PAGE = 100
MAX_PAGE = 99  # pages 100 and beyond are never read while a cursor can avoid them
BATCH = 100  # ids per people / cadences look-up


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


async def _list(reader: Reader, path: str, params: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """Every record of a small list (look-ups by ids: one page each in practice)."""
    records: list[dict[str, Any]] = []
    page = 1
    while True:
        response = await reader.get(path, params=[*params, ("per_page", PER_PAGE), ("page", page)],
                                    cost=page_cost(page))
        reader.result.pages.append((path, page))
        page = collect_page(response.json(), records)
        if page is None:
            return records


async def _scan(reader: Reader, filters: list[tuple[str, Any]], per_page: int, max_page: int
                ) -> list[dict[str, Any]]:
    """Every membership matching ``filters``, by pages 1..max_page and an updated_at cursor."""
    base = [*filters, ("sort_by", "updated_at"), ("sort_direction", "ASC"), ("per_page", per_page)]
    seen: dict[int, dict[str, Any]] = {}
    cursor: str | None = None
    page = 1
    cursor_ok = True
    while True:
        params = [*base, *([("updated_at[gte]", cursor)] if cursor and cursor_ok else []), ("page", page)]
        response = await reader.get("/v2/cadence_memberships", params=params, cost=page_cost(page))
        reader.result.pages.append(("/v2/cadence_memberships", page))
        body = response.json()
        records = body.get("data") or []
        stamps = [_when(r.get("updated_at")) for r in records]
        if cursor_ok and (None in stamps or stamps != sorted(stamps)
                          or (cursor and stamps and stamps[0] < _when(cursor))):  # type: ignore[operator]
            cursor_ok = False  # the server ignored the sort or the cursor: page on plainly
            reader.result.notes.append("the server did not sort by updated_at or apply updated_at[gte]; "
                                       "paged without a cursor (pages beyond 100 cost more)")
            seen.clear()
            cursor, page = None, 1
            continue
        for record in records:
            seen.setdefault(int(record["id"]), record)
        next_page = ((body.get("metadata") or {}).get("paging") or {}).get("next_page")
        if not next_page:
            return list(seen.values())
        if cursor_ok and int(next_page) > max_page:
            last = str(records[-1]["updated_at"])
            if last != cursor:
                cursor, page = last, 1  # start again from the last timestamp read: page 1 costs 1
                continue
            # a whole window of pages shares one timestamp: the cursor cannot move; page on (dearer)
            reader.result.notes.append(f"more than {max_page} pages share updated_at {last}; read deeper pages")
        page = int(next_page)


async def _cadence_ids(reader: Reader, wanted: list[str]) -> list[int]:
    ids: list[int] = []
    names = [w for w in wanted if not w.isdigit()]
    ids.extend(int(w) for w in wanted if w.isdigit())
    if names:
        records = await _list(reader, "/v2/cadences", [("name[]", n) for n in names])
        for name in names:  # docs/platforms.md: exact match unconfirmed on the server; compare on the client
            found = [int(c["id"]) for c in records if c.get("name") == name]
            if not found:
                raise JobError(f"export: no Salesloft cadence named {name!r} is visible to this API key.")
            if len(found) > 1:
                reader.result.notes.append(f"{len(found)} cadences are named {name!r} (ids "
                                           f"{', '.join(map(str, found))}); all are exported")
            ids.extend(found)
    return list(dict.fromkeys(ids))


async def export_memberships(job: Job, *, cadences: list[str] | None = None, on_cadence_only: bool = False,
                             sandbox_app: Any | None = None, clock: Clock | None = None,
                             rng: random.Random | None = None, per_page: int = PER_PAGE,
                             max_page: int = MAX_PAGE) -> ExportResult:
    from batchrunner.runner import _client_factory

    platform = SalesloftPlatform()
    base_url, headers, _ = platform.endpoint(job)
    client = _client_factory(job, sandbox_app)(base_url, headers)
    reader = Reader(client, rate_signal, per_minute=platform.budget_per_minute(job), limits=job.limits, clock=clock,
                    rng=rng)
    try:
        state = [("currently_on_cadence", "true")] if on_cadence_only else []
        if cadences:
            memberships: list[dict[str, Any]] = []
            for cadence_id in await _cadence_ids(reader, cadences):
                memberships.extend(await _scan(reader, [("cadence_id", cadence_id), *state], per_page, max_page))
        else:
            memberships = await _scan(reader, state, per_page, max_page)
        person_ids = sorted({int(m["person"]["id"]) for m in memberships if m.get("person")})
        cadence_ids = sorted({int(m["cadence"]["id"]) for m in memberships if m.get("cadence")})
        people: dict[int, dict[str, Any]] = {}
        for start in range(0, len(person_ids), BATCH):
            for p in await _list(reader, "/v2/people", [("ids[]", i) for i in person_ids[start:start + BATCH]]):
                people[int(p["id"])] = p
        names: dict[int, str] = {}
        for start in range(0, len(cadence_ids), BATCH):
            for c in await _list(reader, "/v2/cadences", [("ids[]", i) for i in cadence_ids[start:start + BATCH]]):
                names[int(c["id"])] = c.get("name")
    finally:
        await client.aclose()
    rows = []
    for m in sorted(memberships, key=lambda m: int(m["id"])):
        pid = int((m.get("person") or {}).get("id") or 0)
        cid = int((m.get("cadence") or {}).get("id") or 0)
        person = people.get(pid, {})
        rows.append({"membership_id": m["id"], "person_id": pid or None, "person_email": person.get("email_address"),
                     "person_crm_id": person.get("crm_id"), "cadence_id": cid or None, "cadence_name": names.get(cid),
                     "user_id": (m.get("user") or {}).get("id"),
                     "currently_on_cadence": str(bool(m.get("currently_on_cadence"))).lower(),
                     "current_state": m.get("current_state"), "added_at": m.get("added_at"),
                     "updated_at": m.get("updated_at")})
    missing = sum(1 for r in rows if r["person_email"] is None)
    if missing:
        reader.result.notes.append(f"{missing} memberships name a person this API key cannot see (no email)")
    reader.result.rows = rows
    return reader.result
