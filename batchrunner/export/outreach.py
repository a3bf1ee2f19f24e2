"""``batchrunner export outreach-sequence-states``: sequence states joined with each prospect's email,
each sequence's name and each mailbox's email, as a CSV a migration job can read.

Sources: Outreach's OpenAPI document (https://api.outreach.io/api/v2/schema/openapi.json): JSON:API
lists paged by ``page[size]`` and ``links.next``, ``filter[id]`` and ``filter[sequence][id]`` taking
comma-separated lists. Reads only; paced by the same limiter and budget headers as runs.
"""

from __future__ import annotations

import random
from typing import Any

from batchrunner.clock import Clock
from batchrunner.errors import JobError
from batchrunner.export.common import ExportResult, Reader
from batchrunner.job import Job
from batchrunner.platforms.outreach.lookups import LIVE_STATES, attrs, chunks, get_all, related_id
from batchrunner.platforms.outreach.platform import OutreachPlatform
from batchrunner.platforms.outreach.responses import rate_signal

COLUMNS = ["sequence_state_id", "prospect_id", "prospect_email", "sequence_id", "sequence_name", "mailbox_id",
           "mailbox_email", "state", "state_changed_at"]


class _ReaderIO:
    """Lends the export's paced, retried GETs to the platform's JSON:API pager."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    async def request(self, method: str, url: str, *, cost: float = 1.0, **kwargs: Any) -> Any:
        return await self.reader.get(url, params=kwargs.get("params"), cost=cost)

    def record(self, outcomes: Any) -> None:  # pragma: no cover - exports decide no row outcomes
        pass


async def _by_ids(io: _ReaderIO, path: str, ids: list[int], size: int, batch: int) -> dict[int, dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    for chunk in chunks(sorted(set(ids)), batch):
        for record in await get_all(io, path, {"filter[id]": ",".join(map(str, chunk))}, size):
            found[int(record["id"])] = record
    return found


async def _sequence_ids(io: _ReaderIO, wanted: list[str], size: int) -> list[int]:
    ids: list[int] = []
    for item in wanted:
        if item.isdigit():
            ids.append(int(item))
            continue
        records = [r for r in await get_all(io, "/api/v2/sequences", {"filter[name]": item} if "," not in item
                                            else {}, size) if attrs(r).get("name") == item]
        if not records:
            raise JobError(f"export: no Outreach sequence named {item!r}.")
        ids.extend(int(r["id"]) for r in records)
    return list(dict.fromkeys(ids))


async def export_sequence_states(job: Job, *, sequences: list[str] | None = None, live_only: bool = False,
                                 sandbox_app: Any | None = None, clock: Clock | None = None,
                                 rng: random.Random | None = None) -> ExportResult:
    """Every sequence state (of ``sequences``, names or ids, when given), with names and emails."""
    from batchrunner.runner import _client_factory

    platform = OutreachPlatform()
    session = await platform.open_session(job, _client_factory(job, sandbox_app))
    settings = job.outreach
    reader = Reader(session.client, lambda r: rate_signal(r, platform.wall, job.limits.concurrency),
                    per_minute=platform.budget_per_minute(job), limits=job.limits, clock=clock, rng=rng)
    io = _ReaderIO(reader)
    try:
        if sequences:
            states: list[dict[str, Any]] = []
            for chunk in chunks(await _sequence_ids(io, sequences, settings.page_size), settings.lookup_batch):
                states += await get_all(io, "/api/v2/sequenceStates",
                                        {"filter[sequence][id]": ",".join(map(str, chunk))}, settings.page_size)
        else:
            states = await get_all(io, "/api/v2/sequenceStates", {}, settings.page_size)
        if live_only:
            states = [s for s in states if attrs(s).get("state") in LIVE_STATES]
        refs = {name: [i for s in states if (i := related_id(s, name)) is not None]
                for name in ("prospect", "sequence", "mailbox")}
        size, batch = settings.page_size, settings.lookup_batch
        prospects = await _by_ids(io, "/api/v2/prospects", refs["prospect"], size, batch)
        names = await _by_ids(io, "/api/v2/sequences", refs["sequence"], size, batch)
        mailboxes = await _by_ids(io, "/api/v2/mailboxes", refs["mailbox"], size, batch)
    finally:
        await session.aclose()
    rows = []
    for s in sorted(states, key=lambda s: int(s["id"])):
        pid, sid, mid = (related_id(s, n) for n in ("prospect", "sequence", "mailbox"))
        emails = attrs(prospects.get(pid or 0, {})).get("emails") or []
        rows.append({"sequence_state_id": s["id"], "prospect_id": pid, "prospect_email": emails[0] if emails else None,
                     "sequence_id": sid, "sequence_name": attrs(names.get(sid or 0, {})).get("name"),
                     "mailbox_id": mid, "mailbox_email": attrs(mailboxes.get(mid or 0, {})).get("email"),
                     "state": attrs(s).get("state"), "state_changed_at": attrs(s).get("stateChangedAt")})
    missing = sum(1 for r in rows if r["prospect_email"] is None)
    if missing:
        reader.result.notes.append(f"{missing} sequence states name a prospect with no email (or one not visible)")
    reader.result.rows = rows
    return reader.result
