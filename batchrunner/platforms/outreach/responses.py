"""Reading Outreach answers: the rate-limit headers and JSON:API ``errors[]``.

Sources: Outreach's getting-started page (https://developers.outreach.io/api/getting-started; the
figures are second-hand): every response carries ``X-RateLimit-Limit``, ``X-RateLimit-Remaining``
and ``X-RateLimit-Reset``, a 429 ``rateLimitExceeded`` may carry ``Retry-After``; the budget is per
user per hour. JSON:API errors (https://jsonapi.org/format/#errors): ``{"errors": [{"id", "title",
"detail", "source": {"pointer"}}]}``.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from batchrunner.platforms.base import RateSignal

TRANSIENT = frozenset({429, 500, 502, 503, 504})
MAX_RESET = 3660.0  # an hourly window: a reset further away than this is misread, not waited for


def _number(headers: httpx.Headers, name: str) -> float | None:
    try:
        return float(headers[name])
    except (KeyError, ValueError):
        return None


def seconds_to_reset(value: float, wall: float) -> float:
    """``X-RateLimit-Reset`` as seconds from now. Whether it is an epoch time or a number of
    seconds is unconfirmed, so both are read: a value past 1e12 is epoch milliseconds, past 1e9
    epoch seconds, anything smaller a count of seconds."""
    if value > 1e12:
        value = value / 1000.0 - wall
    elif value > 1e9:
        value -= wall
    return min(MAX_RESET, max(0.0, value))


def rate_signal(response: httpx.Response, wall: Callable[[], float], reserve: float) -> RateSignal:
    """The budget signal of one answer. When the hour's budget is down to ``reserve`` (the
    requests that may be in flight), every worker waits for the reset instead of spending into
    429s; a 429 without ``Retry-After`` waits for ``X-RateLimit-Reset`` too."""
    headers = response.headers
    signal = RateSignal(remaining=_number(headers, "x-ratelimit-remaining"), pause_all=response.status_code == 429)
    retry_after = _number(headers, "retry-after")
    reset = _number(headers, "x-ratelimit-reset")
    if retry_after is not None:
        signal.retry_after = max(0.0, retry_after)
    elif reset is not None and (signal.pause_all or (signal.remaining is not None and signal.remaining <= reserve)):
        signal.retry_after = seconds_to_reset(reset, wall())
    return signal


def error_text(response: httpx.Response) -> str:
    """The server's messages joined: ``title: detail`` of each of ``errors[]``."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        parts = []
        for error in body["errors"]:
            if isinstance(error, dict):
                title, detail = error.get("title"), error.get("detail")
                parts.append(": ".join(str(p) for p in (title, detail) if p) or str(error.get("id") or error))
        return "; ".join(parts) or str(body)[:300]
    if isinstance(body, dict) and body.get("error"):  # e.g. the sandbox's injected faults
        return str(body["error"])
    return str(body)[:300]


def error_ids(response: httpx.Response) -> set[str]:
    try:
        body = response.json()
    except ValueError:
        return set()
    errors = body.get("errors") if isinstance(body, dict) else None
    return {str(e.get("id")) for e in errors or [] if isinstance(e, dict) and e.get("id")}


def code_for(status: int) -> str:
    return {403: "FORBIDDEN", 404: "NOT_FOUND", 409: "CONFLICT", 422: "VALIDATION_ERROR"}.get(status, f"HTTP_{status}")
