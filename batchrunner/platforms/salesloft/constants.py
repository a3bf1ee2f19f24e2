"""Salesloft job constants that name records: the cadence (name or ID) and the acting user (email or ID).

The team's cadences are listed in full (``GET /v2/cadences``, paged) and matched here, exactly as
the run's look-ups match (lookups.py): a misspelt name filter is silently ignored by the server,
so the list is read and compared on the client, which also gives the did-you-mean. Users:
``GET /v2/users`` without ``page`` returns every user (as the run's look-up relies on). Every request is paid
from the team's per-minute budget.
"""

from __future__ import annotations

from typing import Any

from batchrunner.constants import ConstantCheck, suggest
from batchrunner.errors import JobError
from batchrunner.export.common import Reader
from batchrunner.job import Job
from batchrunner.platforms.salesloft.lookups import PER_PAGE, collect_page, page_cost
from batchrunner.platforms.salesloft.platform import rate_signal

#: fields whose constant names a record the team must have
NAMED = ("cadence_name", "cadence_id", "user_email", "user_id")


async def _all(reader: Reader, path: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    page: int | None = 1
    while page is not None:
        response = await reader.get(path, params={"per_page": PER_PAGE, "page": page}, cost=page_cost(page))
        page = collect_page(response.json(), records)
    return records


async def resolve(job: Job, client: Any, constants: dict[str, str]) -> list[ConstantCheck]:
    """One verdict per constant; a failed look-up gives ``ok = None`` (not checked), never a guess."""
    reader = Reader(client, rate_signal, per_minute=float(job.limits.requests_per_minute), limits=job.limits)
    cache: dict[str, list[dict[str, Any]]] = {}
    out = []
    for name, value in constants.items():
        kind = "cadences" if name.startswith("cadence") else "users"
        try:
            if kind not in cache:
                cache[kind] = (await _all(reader, "/v2/cadences") if kind == "cadences"
                               else (await reader.get("/v2/users")).json().get("data") or [])
        except JobError as exc:
            out.append(ConstantCheck(name, value, None, f"not checked: {str(exc).removeprefix('export: ')}"))
            continue
        out.append(_verdict(name, value, cache[kind]))
    return out


def _verdict(name: str, value: str, records: list[dict[str, Any]]) -> ConstantCheck:
    noun = name.split("_")[0]
    attribute = {"cadence_name": "name", "user_email": "email"}.get(name, "id")
    if attribute == "email":
        found = [r for r in records if str(r.get("email") or "").strip().lower() == value.strip().lower()]
    else:
        found = [r for r in records if str(r.get(attribute)) == value]
    if not found:
        known = sorted({str(r.get(attribute)) for r in records if r.get(attribute) is not None})
        hint = suggest(value, known, listing=noun == "cadence") if attribute != "id" else ""
        return ConstantCheck(name, value, False, f"no {noun} with this {attribute} visible to this API key.{hint}")
    if len(found) > 1:
        ids = ", ".join(str(r.get("id")) for r in found)
        return ConstantCheck(name, value, False, f"{len(found)} {noun}s have this {attribute} (ids {ids}): every row "
                             f"would fail as ambiguous; give {noun}_id instead")
    record = found[0]
    return ConstantCheck(name, value, True, f"{noun} {record.get('name')} (id {record.get('id')})")
