"""``[notify]``: tell a webhook (Slack-compatible) how a run ended.

The 6 am cron run has nobody watching; a short message in a channel is how a person learns that
rows failed or a run stopped. The message is a JSON object whose ``text`` Slack (and Mattermost,
Teams workflows, Discord's /slack endpoint, …) shows as is, plus a ``batchrunner`` object with
the numbers for anything that reads it.

A notification never changes a run's outcome: a webhook that is down or slow is a warning in
the log (after a 10 s timeout), nothing more. Its URL is a secret: registered for redaction,
never logged, never in an exception.
"""

from __future__ import annotations

import logging
import os
from typing import Any
from urllib.parse import urlsplit

import httpx

from batchrunner import secrets
from batchrunner.auth import is_loopback
from batchrunner.errors import JobError
from batchrunner.job import Job

TIMEOUT_SECONDS = 10.0
_log = logging.getLogger("batchrunner.notify")

MEANING = {0: "every row succeeded or was skipped", 1: "some rows failed or were invalid",
           2: "the job could not start; nothing was sent", 3: "the run stopped early; resumable",
           4: "the run could not go on after it had started sending"}


def webhook_url(job: Job) -> str | None:
    """The webhook's URL from the variable the job names (None: no [notify]). A missing variable
    is a JobError before anything is sent: a notification the user asked for must not silently
    never come."""
    env = job.notify.webhook_env
    if not env:
        return None
    url = os.environ.get(env, "").strip()
    if not url:
        raise JobError(f"[notify] webhook_env names {env}, which is not set (or empty).")
    secrets.register(url)
    parts = urlsplit(url)
    if not (parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname))):
        raise JobError(f"The webhook URL in {env} must be https:// (plain http only for 127.0.0.1 / localhost).")
    return url


def wanted(job: Job, exit_code: int) -> bool:
    on = set(job.notify.on)
    if "always" in on:
        return True
    if exit_code == 3:
        return "stopped" in on
    return exit_code in (1, 2, 4) and "failed" in on


def message(job: Job, exit_code: int, summary: dict[str, Any] | None = None, run_dir: Any = None,
            error: str | None = None) -> dict[str, Any]:
    """The JSON body: a one-paragraph ``text`` and the numbers."""
    summary = summary or {}
    counts = {k: v for k, v in (summary.get("counts") or {}).items() if v}
    where = "SANDBOX" if job.is_sandbox else "LIVE"
    lines = [f"batchrunner · job {job.name} · {where} {job.platform}: exit {exit_code} "
             f"({MEANING.get(exit_code, 'unknown')})"]
    if counts:
        lines.append(", ".join(f"{n} {status}" for status, n in counts.items()))
    codes = list((summary.get("error_codes") or {}).items())[:3]
    if codes:
        lines.append("top errors: " + ", ".join(f"{code} ×{n}" for code, n in codes))
    stopped = summary.get("stopped")
    if stopped and stopped.get("code") != "DRY_RUN":
        lines.append(f"stopped: {stopped['code']}: {stopped['message']}")
    if error:
        lines.append(error)
    if run_dir is not None:
        lines.append(f"run directory: {run_dir}")
        if exit_code in (3, 4):
            lines.append(f"continue with: batchrunner resume {run_dir}")
    text = secrets.redact("\n".join(lines))
    return {"text": text, "batchrunner": {"job": job.name, "platform": job.platform, "exit_code": exit_code,
                                          "counts": counts, "run_dir": None if run_dir is None else str(run_dir),
                                          "sandbox": job.is_sandbox}}


async def send(job: Job, exit_code: int, *, summary: dict[str, Any] | None = None, run_dir: Any = None,
               error: str | None = None, transport: httpx.AsyncBaseTransport | None = None) -> bool:
    """Post the message if the job asks for one at this exit code; True when the webhook took it."""
    try:
        url = webhook_url(job)
    except JobError as exc:
        _log.warning("notification not sent: %s", exc)
        return False
    if url is None or not wanted(job, exit_code):
        return False
    body = message(job, exit_code, summary, run_dir, error)
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, transport=transport) as client:
            response = await client.post(url, json=body)
    except httpx.HTTPError as exc:
        _log.warning("notification not sent: the webhook did not answer (%s)", type(exc).__name__)
        return False
    if response.status_code >= 300:
        _log.warning("notification not sent: the webhook answered HTTP %s", response.status_code)
        return False
    _log.info("notification sent (exit %s)", exit_code)
    return True
