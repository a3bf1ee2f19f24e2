"""Job constants that name platform records, resolved once before any row is sent.

``salesCadenceNameOrId = { value = "Q4 Outbnd" }`` is the same for every row: if it names no
cadence, every row fails, one request at a time. ``validate`` cannot know (it sends nothing), so
``check`` reports each such constant (with a did-you-mean) and ``run`` stops with exit 2 before the
run directory exists. Which fields name records, and how they are looked up, is the platform's
business (``batchrunner/platforms/<name>/constants.py``); this module only collects the constants,
opens a session and turns the answers into a verdict.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

from batchrunner import secrets
from batchrunner.auth import AuthError
from batchrunner.errors import JobError, did_you_mean
from batchrunner.job import Job

MAX_LISTED = 15  # beyond this many candidates a did-you-mean names only the close ones


@dataclass
class ConstantCheck:
    """One constant's verdict. ``ok`` is None when the look-up itself failed (not a verdict)."""

    field: str
    value: str
    ok: bool | None
    detail: str

    def line(self) -> str:
        return f"columns.{self.field} = {self.value!r}: {self.detail}"


def _module(platform: str) -> Any:
    """The platform's look-up of named constants, or None: a platform package may leave it out
    (its constants are then checked row by row, as before)."""
    try:
        return importlib.import_module(f"batchrunner.platforms.{platform}.constants")
    except ModuleNotFoundError:
        return None


def named_constants(job: Job) -> dict[str, str]:
    """The job's ``{ value = ... }`` columns whose field names a platform record (cadence, user)."""
    module = _module(job.platform)
    if module is None:
        return {}
    named = module.NAMED
    return {name: spec.value for name, spec in job.columns.items() if spec.value is not None and name in named}


def suggest(value: str, candidates: list[str], *, listing: bool = True) -> str:
    """`` Did you mean 'X'?`` (and the full list when it is short and ``listing``): what a person
    needs to fix it. Users' emails are not listed: only the close ones are named."""
    hint = did_you_mean(value, candidates)
    if len(candidates) > MAX_LISTED or not listing:
        hint = hint.split(" Valid:")[0]
    return hint


async def check_constants(job: Job, client: Any) -> list[ConstantCheck]:
    """Look up every named constant through ``client`` (an open session's, authenticated). GETs only."""
    constants = named_constants(job)
    if not constants:
        return []
    return await _module(job.platform).resolve(job, client, constants)


async def verify_constants(job: Job, sandbox_app: Any | None = None) -> Any | None:
    """For ``run``: raise ``JobError`` (exit 2) naming every constant that names nothing on the
    platform, before anything is sent. When the look-up cannot be made (credentials refused, the
    platform unreachable) the run goes on and reports that itself: only a definite "no such
    record" stops it here.

    Returns the session it opened, still open, for the run to send with (one sign-in per run, not
    two: token endpoints count too); the caller closes it. None when there was nothing to look up
    or no session could be opened."""
    if not named_constants(job):
        return None
    from batchrunner.platforms import get_platform
    from batchrunner.runner import _client_factory

    platform = get_platform(job.platform)
    log = logging.getLogger("batchrunner.run")
    try:
        session = await platform.open_session(job, _client_factory(job, sandbox_app))
    except (AuthError, JobError) as exc:
        log.warning("constants not checked: %s", secrets.redact(exc))
        return None
    try:
        await refuse_unusable(job, session.client)
    except BaseException:
        await session.aclose()
        raise
    return session


async def refuse_unusable(job: Job, client: Any) -> None:
    """Raise ``JobError`` naming every constant that names nothing usable on the platform (what
    `run` and `predict` stop on before anything is sent); a look-up that failed is only logged."""
    checks = await check_constants(job, client)
    for item in checks:
        if item.ok is None:
            logging.getLogger("batchrunner.run").warning("constant not checked: %s", secrets.redact(item.line()))
    wrong = [c for c in checks if c.ok is False]
    if wrong:
        lines = "\n".join(f"  {c.line()}" for c in wrong)
        raise JobError(f"{len(wrong)} constant(s) of {job.path.name} name nothing usable on {job.platform}; "
                       f"every row would fail. Nothing was sent.\n{lines}")


def validate_note(job: Job) -> str | None:
    """What ``validate`` says about named constants: it sends nothing, so it cannot look them up."""
    constants = named_constants(job)
    if not constants:
        return None
    listed = ", ".join(f"{k} = {v!r}" for k, v in constants.items())
    return (f"note: constants naming {job.platform} records ({listed}) are looked up by `batchrunner check` "
            "and before `batchrunner run` sends anything, not here")
