"""Read back Salesloft enrolments a run reported: is the membership on its cadence now?

Used by the migration hand-off (handoff.py) before anyone is taken off the source tool. The run
recorded each enrolment's membership ID (the answer of POST /v2/cadence_memberships, or the
membership found when the person was already on the cadence); ``GET /v2/cadence_memberships/{id}``
(docs/platforms.md) then says whether it is ``currently_on_cadence``. One request (cost 1) per row.
"""

from __future__ import annotations

from typing import Any

from batchrunner.platforms.base import SessionIO
from batchrunner.platforms.salesloft.lookups import LookupFailed

READ_ERRORS = (LookupFailed, ValueError)  # not read, or not JSON: the hand-off waits


async def confirm_enrolled(io: SessionIO, session: Any, rows: list[tuple[int, dict[str, Any], dict[str, Any]]]
                           ) -> dict[int, tuple[bool, str]]:
    """row -> (on the cadence?, what was found), for (row, sent fields, recorded result)."""
    out: dict[int, tuple[bool, str]] = {}
    for idx, _, result in rows:
        membership = result.get("membership_id")
        if not membership:
            out[idx] = (False, "the run recorded no membership ID to read back")
            continue
        response = await io.request("GET", f"/v2/cadence_memberships/{int(membership)}")
        data = response.json().get("data") or {}
        on = bool(data.get("currently_on_cadence"))
        out[idx] = (on, f"membership {membership} {data.get('current_state') or ''}".strip()
                    if on else f"membership {membership} is not on its cadence ({data.get('current_state')})")
    return out
