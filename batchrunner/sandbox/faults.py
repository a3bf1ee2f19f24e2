"""Fault injection for the sandbox: the weather a real run meets, on demand and reproducibly.

An ASGI wrapper around ``SandboxApp``: latency, 500/503 answers, connection resets and timeouts
(some *after* the request was processed, so the answer is lost but the change happened: the case
resume and reconciliation exist for), bursts of 429s, a token that goes stale after N requests,
another integration spending the shared Salesloft budget, a Salesforce batch-size ceiling, and an
org with a knee: latency flat up to ``knee_in_flight`` requests at once, then growing with them,
and record locks (``UNABLE_TO_LOCK_ROW``) past ``lock_in_flight`` (docs/sandbox.md).
Settings come from the job's ``[sandbox]`` table or ``batchrunner sandbox`` flags.
"""

from __future__ import annotations

import random
import time
from typing import Any

import anyio
import httpx

from batchrunner.job import SandboxSettings
from batchrunner import jsonio
from batchrunner.sandbox.app import SandboxApp, read_body
from batchrunner.sandbox.base import SandboxRequest, SandboxResponse


class InjectedFault(Exception):
    pass


def _is_salesforce(path: str) -> bool:
    return path.startswith("/services/")


def _error(path: str, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> SandboxResponse:
    if _is_salesforce(path):
        return SandboxResponse(status, [{"errorCode": code, "message": message}], headers or {})
    return SandboxResponse(status, {"error": message}, headers or {})


class FaultyApp:
    """Wrap a SandboxApp; ``inner.dispatch`` stays the single place where state changes."""

    def __init__(self, inner: SandboxApp, settings: SandboxSettings, *, clock: Any = time.monotonic) -> None:
        self.inner = inner
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.clock = clock
        self.requests = 0
        self.burst_left = 0
        self._spend_mark = clock()
        self._spend_carry = 0.0
        self.injected: dict[str, int] = {}
        self.in_flight = 0  # requests being worked on (the knee's load)
        self.peak_in_flight = 0

    @property
    def emulators(self) -> list[Any]:
        return self.inner.emulators

    def _count(self, what: str) -> None:
        self.injected[what] = self.injected.get(what, 0) + 1

    def _external_spend(self) -> None:
        """Another integration of the team spends a share of the budget, evenly over time."""
        share = self.settings.external_spend
        if share <= 0:
            return
        now = self.clock()
        self._spend_carry += (now - self._spend_mark) * self.settings.budget_per_minute * share / 60.0
        self._spend_mark = now
        whole = int(self._spend_carry)
        if whole:
            self._spend_carry -= whole
            for emulator in self.inner.emulators:
                if hasattr(emulator, "spend_external"):
                    emulator.spend_external(whole)

    def decide(self, request: SandboxRequest) -> tuple[SandboxResponse | None, str | None]:
        """(an answer instead of the real one, or a fault to raise after the real one)."""
        s = self.settings
        self.requests += 1
        self._external_spend()
        if (request.path == "/services/data/" or request.path.startswith("/_sandbox/")
                or request.path.endswith(("/oauth2/token", "/oauth/token"))):
            return None, None
        if s.token_expires_after and self.requests > s.token_expires_after:
            self._count("expired_token")
            if _is_salesforce(request.path):
                return _error(request.path, 401, "INVALID_SESSION_ID", "Session expired or invalid"), None
            return SandboxResponse(401, {"error": "Unauthorized"}), None
        if self.burst_left > 0 or (s.burst_429_every and s.burst_429_length and self.requests % s.burst_429_every == 0):
            if self.burst_left == 0:
                self.burst_left = s.burst_429_length
            self.burst_left -= 1
            self._count("429")
            return _error(request.path, 429, "REQUEST_LIMIT_EXCEEDED", "Rate limit exceeded (injected burst)"), None
        if s.batch_ceiling and _is_salesforce(request.path) and request.method == "POST":
            try:
                inputs = (request.json() or {}).get("inputs") or []
            except (ValueError, AttributeError):
                inputs = []
            if len(inputs) > s.batch_ceiling:
                self._count("batch_ceiling")
                return _error(request.path, 400, "LIMIT_EXCEEDED",
                              f"too many inputs: {len(inputs)} (at most {s.batch_ceiling})"), None
        roll = self.rng.random()
        if roll < s.error_rate:
            self._count("5xx")
            status = self.rng.choice((500, 503))
            return _error(request.path, status, "SERVER_UNAVAILABLE" if status == 503 else "UNKNOWN_EXCEPTION",
                          "injected server error"), None
        roll -= s.error_rate
        if roll < s.reset_rate:
            self._count("reset")
            return None, "reset"
        roll -= s.reset_rate
        if roll < s.timeout_rate:
            self._count("timeout")
            return None, "timeout"
        return None, None

    def knee_factor(self, in_flight: int) -> float:
        """How much longer a request takes with ``in_flight`` at once: 1 up to the knee, then in
        proportion (the org works on ``knee_in_flight`` at a time and the rest wait their share, as
        in a processor-sharing queue: past the knee, more in flight adds latency, not throughput)."""
        knee = self.settings.knee_in_flight
        return max(1.0, in_flight / knee) if knee else 1.0

    def lock_rows(self, request: SandboxRequest, in_flight: int) -> None:
        """Past ``lock_in_flight`` requests at once, each input of a Salesforce action fails
        UNABLE_TO_LOCK_ROW (not applied) with chance ``lock_error_rate`` per request past it, through
        the emulator's own locked targets (answered once, then released)."""
        s = self.settings
        if not (s.lock_in_flight and in_flight > s.lock_in_flight and _is_salesforce(request.path)
                and request.method == "POST" and "/actions/" in request.path):
            return
        emulator = next((e for e in self.inner.emulators if hasattr(e, "locked_targets")), None)
        try:
            inputs = (request.json() or {}).get("inputs") or []
        except (ValueError, AttributeError):
            return
        chance = min(1.0, s.lock_error_rate * (in_flight - s.lock_in_flight))
        for data in inputs:
            if emulator is not None and isinstance(data, dict) and self.rng.random() < chance:
                target = emulator._target_of(data)
                if target is not None:
                    emulator.locked_targets.add(target)
                    self._count("lock")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        load = 0 if scope["path"].startswith("/_sandbox/") else 1  # the audit is no load on the org
        self.in_flight += load
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await self._answer(scope, receive, send, self.in_flight)
        finally:
            self.in_flight -= load

    async def _answer(self, scope: dict[str, Any], receive: Any, send: Any, in_flight: int) -> None:
        s = self.settings
        # Latency is the time from the request's arrival to its answer, the platform's own work
        # included (as a real API's is): the emulator runs first, then the answer waits out the rest.
        arrived = anyio.current_time()
        delay = (s.latency_ms + self.rng.uniform(0, s.latency_jitter_ms)) / 1000.0 * self.knee_factor(in_flight)
        body = await read_body(receive)
        probe = SandboxRequest(scope["method"], scope["path"], [], {}, body)
        replacement, after = self.decide(probe)
        if replacement is None:
            self.lock_rows(probe, in_flight)

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def wait_out() -> None:
            remaining = delay - (anyio.current_time() - arrived)
            if remaining > 0:
                await anyio.sleep(remaining)

        if replacement is not None:
            await wait_out()
            await _send_response(send, replacement)
            return
        answer: list[dict[str, Any]] = []

        async def hold(message: dict[str, Any]) -> None:
            answer.append(message)

        await self.inner(scope, replay, hold)
        await wait_out()
        if after is None:
            for message in answer:
                await send(message)
            return
        # the request was processed, then its answer is lost
        if after == "timeout":
            raise httpx.ReadTimeout("injected timeout: the sandbox processed the request but never answered")
        raise httpx.RemoteProtocolError("injected connection reset after the request was processed")


async def _send_response(send: Any, response: SandboxResponse) -> None:
    payload = b"" if response.body is None else jsonio.dumps(response.body)
    headers = [(k.lower().encode(), str(v).encode()) for k, v in response.headers.items()]
    headers += [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
