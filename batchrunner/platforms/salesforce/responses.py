"""Reading Salesforce action responses into per-row verdicts.

Sources: the seed's "Error Response Types" (per-input array, `isSuccess`, `errors`, `outputValues`)
and docs/platforms.md (HTTP 400 carrying the same per-input array on partial failure; request-level
errors as `[{errorCode, message}]`; the retry table; `Sforce-Limit-Info`).
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from batchrunner.outcome import RowOutcome, Status
from batchrunner import jsonio, secrets
from batchrunner.platforms.base import RateSignal, Verdict, WorkUnit

#: per-input codes worth another try for that input only (docs/platforms.md retry table; a rolled-back
#: input of an all-or-none call did nothing wrong itself)
RETRYABLE_INPUT_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "ALL_OR_NONE_OPERATION_ROLLED_BACK"})
#: per-input codes that say the org is busy with concurrent writes (record locks: docs/platforms.md)
OVERLOAD_INPUT_CODES = frozenset({"UNABLE_TO_LOCK_ROW"})
TRANSIENT_HTTP = frozenset({429, 500, 502, 503, 504})
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")


def rate_signal(response: httpx.Response) -> RateSignal:
    signal = RateSignal()
    match = _LIMIT_INFO.search(response.headers.get("sforce-limit-info", ""))
    if match:
        signal.api_used, signal.api_limit = int(match.group(1)), int(match.group(2))
    retry_after = response.headers.get("retry-after")
    if retry_after:
        try:
            signal.retry_after = max(0.0, float(retry_after))
        except ValueError:
            pass
    if response.status_code == 429:
        signal.pause_all = True
    return signal


def maybe_applied(status: int, body: Any) -> bool:
    """May a request answered ``status`` have been applied? The rule (docs/reconciliation.md):

    - 429: refused before any work (a rate limit): no.
    - 503 with Salesforce's own error body (``[{"errorCode": ..., "message": ...}]``): no. The REST
      API's "Status Codes and Error Responses" page: 503 "The server is unavailable to handle the
      request" (maintenance, overload): the org did not take the request.
    - 500 ("an error has occurred ... so the request couldn't be completed": not said to be rolled
      back), 502 and 504 (a gateway between us and the org gave up: the org may have finished), and
      a 503 without Salesforce's body (from a proxy, not the org): yes.
    """
    if status == 429:
        return False
    if status == 503:
        return not (isinstance(body, list) and body and isinstance(body[0], dict) and "errorCode" in body[0])
    return status in TRANSIENT_HTTP


def already_assigned(message: str | None) -> bool:
    """Does an assign failure say the target is already in a cadence? (The exact wording is not
    documented; this matches the forms seen: "already assigned", "already in a cadence".)"""
    return bool(message) and re.search(r"already (assigned|in (a|the|this) (sales )?cadence)", message, re.I) is not None


def _json(response: httpx.Response) -> Any:
    try:
        return jsonio.loads(response.content)
    except ValueError:
        return None


def _is_per_input(body: Any, count: int) -> bool:
    if not isinstance(body, list) or len(body) != count:
        return False
    for entry in body:
        if type(entry) is not dict or "isSuccess" not in entry:
            return False
    return True


def _request_error(body: Any, response: httpx.Response) -> tuple[str, str]:
    """(errorCode, message) of a request-level error body, however it is shaped."""
    first = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else body
    if isinstance(first, dict):
        code = str(first.get("errorCode") or first.get("statusCode") or f"HTTP_{response.status_code}")
        return code, str(first.get("message") or response.reason_phrase)
    return f"HTTP_{response.status_code}", (secrets.excerpt(response.text, 300) or response.reason_phrase)


def _input_error(entry: dict[str, Any]) -> tuple[str, str]:
    code: str | None = None
    messages: list[str] = []
    for error in entry.get("errors") or ():
        if isinstance(error, dict):
            if code is None and error.get("statusCode"):
                code = str(error["statusCode"])
            if error.get("message"):
                messages.append(str(error["message"]))
    if not messages:
        output = entry.get("outputValues") or {}
        if isinstance(output, dict) and output.get("error"):
            messages = [str(output["error"])]
    return (code or "UNKNOWN_ERROR"), ("; ".join(messages) or "the platform gave no message")


def _result(entry: dict[str, Any]) -> Any:
    output = entry.get("outputValues")
    if isinstance(output, dict):
        return output.get("output", output) or None
    return output


def interpret(unit: WorkUnit, response: httpx.Response, api_reserve: int = 0) -> Verdict:
    status = response.status_code
    body = _json(response)
    verdict = Verdict(rate=rate_signal(response))
    rows = unit.rows
    if status in (200, 201, 400) and _is_per_input(body, len(rows)):
        for row, entry in zip(rows, body, strict=True):
            if entry.get("isSuccess") is True:
                verdict.outcomes.append(RowOutcome(row, Status.SUCCEEDED, result=_result(entry)))
                continue
            code, message = _input_error(entry)
            if code in RETRYABLE_INPUT_CODES:
                verdict.retry.append(row)
                verdict.retry_reason = (code, message)
                if code in OVERLOAD_INPUT_CODES:  # too many writes at once: fewer requests in flight
                    verdict.rate.overload = code
            else:
                verdict.outcomes.append(RowOutcome(row, Status.FAILED, code, message))
    elif status in (200, 201):
        # an answer we cannot map to rows: never guess which row it was. The inputs may all have
        # been applied: the session reads the org's state before anything is sent again
        message = f"HTTP {status} with {len(body) if isinstance(body, list) else 'no'} results for {len(rows)} inputs"
        verdict.retry, verdict.retry_reason, verdict.maybe_applied = list(rows), ("UNEXPECTED_RESPONSE", message), True
    elif status == 401:
        code, message = _request_error(body, response)
        verdict.stop = ("AUTH_LOST", f"{code}: {message}")
    elif status == 403 and _request_error(body, response)[0] == "REQUEST_LIMIT_EXCEEDED":
        code, message = _request_error(body, response)
        if "concurrent" in message.lower():
            verdict.retry, verdict.retry_reason = list(rows), (code, message)
            verdict.rate.lower_concurrency = True
            verdict.rate.overload = "ConcurrentPerOrgLongTxn"
        else:
            verdict.stop = ("API_LIMIT_REACHED", f"{code}: {message}")
    elif status in TRANSIENT_HTTP:
        verdict.retry = list(rows)
        verdict.retry_reason = (f"HTTP_{status}", _request_error(body, response)[1])
        verdict.maybe_applied = maybe_applied(status, body)
    elif status == 400 or status == 413:
        verdict.split, verdict.split_reason = True, _request_error(body, response)
    else:
        code, message = _request_error(body, response)
        verdict.outcomes = [RowOutcome(r, Status.FAILED, code, message) for r in rows]
    signal = verdict.rate
    if verdict.stop is None and signal.api_limit is not None and api_reserve > 0:
        remaining = signal.api_limit - (signal.api_used or 0)
        if remaining <= api_reserve:
            verdict.stop = ("API_RESERVE_REACHED",
                            f"the org has {remaining} daily API calls left; the job keeps {api_reserve} in reserve")
    return verdict


#: errors raised before the request left this machine: re-sending cannot do anything twice
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def transport_error(unit: WorkUnit, error: Exception, resendable: bool = True) -> Verdict:
    """A request with no answer. If it never left, send it again. If it may have been applied
    (a read timeout, a reset), only operations that are safe to repeat go again, marked
    ``maybe_applied`` so their answer is reconciled; the others are reported UNKNOWN_OUTCOME for
    a person to check rather than risk doing them twice (a second Skip skips a second step)."""
    name = type(error).__name__
    code = "TIMEOUT" if isinstance(error, httpx.TimeoutException) else "CONNECTION_ERROR"
    reason = (code, f"{name}: {error}" if str(error) else name)
    if isinstance(error, NOT_SENT):
        return Verdict(retry=list(unit.rows), retry_reason=reason)
    if resendable:
        return Verdict(retry=list(unit.rows), retry_reason=reason, maybe_applied=True)
    message = (f"{unit.operation} was sent but its answer was lost ({reason[1]}); check this target in Salesforce "
               "before sending it again")
    return Verdict(outcomes=[RowOutcome(r, Status.FAILED, "UNKNOWN_OUTCOME", message) for r in unit.rows])
