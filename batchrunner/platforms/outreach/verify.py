"""Outreach's part of `batchrunner verify`: the sequence state each succeeded row should have left.

Read by the id the run's answer recorded (``sequence_state_id``): ``GET /api/v2/sequenceStates/{id}``,
one request per row. Its read-only ``state`` (OpenAPI document,
https://api.outreach.io/api/v2/schema/openapi.json; docs/outreach.md) is judged:

| operation | promised state |
|---|---|
| add, resume | ``active`` (``pending`` — accepted, waiting on a daily sending limit, support article 211861917, https://support.outreach.io/hc/en-us/articles/211861917 — is a mismatch) |
| pause | ``paused`` |
| finish | ``finished`` |
| remove | the state is gone (404) |
"""

from __future__ import annotations

from typing import Any

import httpx

from batchrunner.platforms.base import SessionIO, StopRun
from batchrunner.platforms.outreach.lookups import LookupFailed, attrs
from batchrunner.platforms.outreach.operations import STATE
from batchrunner.verify import MISMATCH, OK, UNREADABLE, Check, Item

#: the fields verify.csv shows to identify a row (IDs, emails, a sequence name: no secrets)
IDENTITY = ("prospect_email", "prospect_id", "sequence_name", "sequence_id", STATE)
PROMISED = {"add": "active", "resume": "active", "pause": "paused", "finish": "finished", "remove": "gone"}


def record_key(operation: str, data: dict[str, Any]) -> str | None:
    """One prospect in one sequence (or one sequence state)."""
    if data.get(STATE):
        return f"s:{data[STATE]}"
    prospect = data.get("prospect_id") or data.get("prospect_email")
    sequence = data.get("sequence_id") or data.get("sequence_name")
    return f"{str(prospect).lower()}|{sequence}" if prospect and sequence else None


def judge(item: Item, record: dict[str, Any] | None) -> Check:
    wanted = PROMISED[item.operation]
    state = attrs(record).get("state") if record is not None else "gone"
    if state == wanted:
        return Check(item.row, wanted, str(state), OK)
    if state == "pending":
        why = "pending: accepted, waiting on the mailbox's daily sending limit; not active yet"
    elif state == "gone":
        why = "the sequence state no longer exists"
    else:
        why = f"the sequence state is {state}"
    return Check(item.row, wanted, str(state), MISMATCH, why)


async def check(session: Any, io: SessionIO, items: list[Item]) -> list[Check]:
    """Every item judged from its sequence state, read by id; one that cannot be read is ``unreadable``."""
    checks: list[Check] = []
    for n, item in enumerate(items):
        sid = item.result.get("sequence_state_id") or item.data.get(STATE)
        if not sid:
            checks.append(Check(item.row, PROMISED[item.operation], "", UNREADABLE,
                                "the run recorded no sequence state id for this row"))
            continue
        try:
            record = await session._state(io, int(sid))  # the run's own read (session.py): None on 404
        except (LookupFailed, httpx.TransportError, ValueError) as exc:  # ValueError: a 200 with no JSON
            checks.append(Check(item.row, PROMISED[item.operation], "", UNREADABLE,
                                f"{type(exc).__name__}: {exc}" if isinstance(exc, httpx.TransportError) else str(exc)))
            continue
        except StopRun as exc:  # the token was refused: nothing more can be read
            checks += [Check(i.row, PROMISED[i.operation], "", UNREADABLE, exc.message) for i in items[n:]]
            break
        checks.append(judge(item, record))
    return checks
