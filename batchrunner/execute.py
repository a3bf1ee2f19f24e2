"""The executor: sends work units with bounded concurrency, a shared rate limiter and retries.

It knows nothing about any platform. A ``Session`` builds each request and reads each response
into a ``Verdict``; the executor applies it: final outcomes go to the journal at once, transient
failures are retried with exponential backoff and full jitter, a request rejected as a whole is
bisected, and a stop (auth lost, budget reserve reached) ends the run with the rest left pending
for `resume`.

Bounds (docs/limits.md): a Retry-After longer than ``limits.max_server_wait`` stops the run (the
rate limiter raises ``ServerWaitTooLong``); a response over ``limits.max_response_bytes`` is a lost
answer reported ``RESPONSE_TOO_LARGE`` (bounded.py); the circuit breaker stops a run whose first
requests all fail every row the same way (guards.py); a stop with nothing in flight ends at once.
"""

from __future__ import annotations

import logging
import math
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import httpx
from tqdm import tqdm

from batchrunner import failpoints
from batchrunner.bounded import ResponseTooLarge
from batchrunner.clock import Clock, SystemClock
from batchrunner.concurrency import JOURNAL_META, FixedConcurrency, Permit
from batchrunner.guards import SIZE_REJECTIONS, BatchCeiling, CircuitBreaker
from batchrunner.journal import Journal
from batchrunner.outcome import RowOutcome, Status
from batchrunner.platforms.base import RowSource, Session, StopRun, Verdict, WorkUnit
from batchrunner.ratelimit import RateLimiter


_log = logging.getLogger("batchrunner.run")  # run.log: one line per retry, 429 pause, split, stop


@dataclass
class RetryPolicy:
    max_attempts: int = 5
    base: float = 1.0
    cap: float = 60.0

    def backoff(self, failures: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^(failures-1))]."""
        return rng.uniform(0, min(self.cap, self.base * 2 ** max(0, failures - 1)))


@dataclass
class ExecStats:
    requests: int = 0
    retries: int = 0  # requests that re-sent rows already sent once
    responses_429: int = 0
    splits: int = 0
    transport_errors: int = 0
    status_counts: dict[int, int] = field(default_factory=dict)
    stopped: tuple[str, str] | None = None  # (code, message) of the stop
    rate_wait: float = 0.0  # seconds spent waiting on the rate limiter and backoffs
    api_usage: dict[str, int | None] | None = None  # last Sforce-Limit-Info seen
    concurrency: dict[str, Any] | None = None  # mode, ceiling, the limit reached (concurrency.py)


#: HTTP answers that say the server has more than it can take: the adaptive limit is cut
OVERLOAD_STATUSES = frozenset({429, 503, 504})


def overload_signal(response: httpx.Response | None, error: Exception | None, verdict: Verdict) -> str | None:
    """Why this answer says "fewer requests at once", or None. Generic HTTP (429, 503, 504, a
    timeout, a Retry-After pause of the rate limiter) or the platform's own word
    (``RateSignal.overload``, e.g. Salesforce's UNABLE_TO_LOCK_ROW): the executor knows no platform."""
    if verdict.rate.overload:
        return verdict.rate.overload
    if isinstance(error, httpx.TimeoutException):
        return "TIMEOUT"
    if response is not None and response.status_code in OVERLOAD_STATUSES:
        return f"HTTP_{response.status_code}"
    if verdict.rate.retry_after is not None or verdict.rate.pause_all:
        return "RATE_LIMITED"
    return None


class _IO:
    """What a session may do during `prepare`: rate-limited, retried requests; record outcomes."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    async def request(self, method: str, url: str, *, cost: float = 1.0, **kwargs: Any) -> httpx.Response:
        ex = self.executor
        failures = 0
        while True:
            await ex.limiter.acquire(cost)
            ex.stats.requests += 1
            try:
                async with ex.concurrency:
                    response = await ex.session.client.request(method, url, **kwargs)
            except httpx.TransportError:
                ex.stats.transport_errors += 1
                failures += 1
                if failures >= ex.policy.max_attempts:
                    raise
                await ex.clock.sleep(ex.policy.backoff(failures, ex.rng))
                continue
            ex.stats.status_counts[response.status_code] = ex.stats.status_counts.get(response.status_code, 0) + 1
            signal = ex.session.read_rate(response)
            ex.limiter.observe(signal)
            if response.status_code == 429:
                ex.stats.responses_429 += 1
            if response.status_code in (429, 500, 502, 503, 504) and failures + 1 < ex.policy.max_attempts:
                failures += 1
                ex.stats.retries += 1
                if response.status_code != 429 and signal.retry_after is None:
                    await ex.clock.sleep(ex.policy.backoff(failures, ex.rng))
                continue
            return response

    def record(self, outcomes: Sequence[RowOutcome]) -> None:
        self.executor.record(outcomes)


class Executor:
    def __init__(
        self,
        session: Session,
        rows: RowSource,
        journal: Journal,
        limiter: RateLimiter,
        *,
        concurrency: int | FixedConcurrency = 4,
        policy: RetryPolicy | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        progress: bool | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        circuit_breaker: int = 0,
    ) -> None:
        self.session = session
        self.rows = rows
        self.journal = journal
        self.limiter = limiter
        self.policy = policy or RetryPolicy()
        self.clock = clock or SystemClock()
        # a number is today's fixed limit; runner.py passes concurrency.build(...) (adaptive or fixed)
        self.concurrency = (concurrency if isinstance(concurrency, FixedConcurrency)
                            else FixedConcurrency(concurrency, clock=self.clock))
        self.concurrency.on_change = self._limit_changed
        self._largest_unit = 0  # rows in the largest request sent: smaller ones are no latency sample
        self.rng = rng or random.Random()
        self.stats = ExecStats()
        self.progress_enabled = progress
        self.on_progress = on_progress  # (rows done, rows to send) for code that shows progress its own way
        self.done_rows = 0
        self.total_rows = 0
        self.bar: tqdm | None = None
        self._stop_requested = False
        self.io = _IO(self)
        self.breaker = CircuitBreaker(circuit_breaker)
        self.ceiling = BatchCeiling(journal)
        self._size_codes = frozenset(getattr(session, "size_rejections", SIZE_REJECTIONS))
        self.in_flight = 0  # units sent whose verdict is not yet applied
        self._idle = anyio.Event()
        self._idle.set()
        self._wave_scope: anyio.CancelScope | None = None

    # -- recording --------------------------------------------------------------------------
    def record(self, outcomes: Sequence[RowOutcome]) -> None:
        self.journal.finish(outcomes)
        if self.bar is not None and outcomes:
            self.bar.update(len(outcomes))
        if self.on_progress is not None and outcomes:
            self.done_rows += len(outcomes)
            self.on_progress(self.done_rows, self.total_rows)

    def _limit_changed(self, old: int, new: int, reason: str) -> None:
        """One run.log line per change of the limit (not per request); an adaptive limit also goes
        to the journal, so `resume` starts where the run left off."""
        _log.info("concurrency %d -> %d: %s", old, new, reason)
        if self.concurrency.mode == "adaptive":
            self.journal.set_meta(**{JOURNAL_META: new})

    def request_stop(self, code: str, message: str) -> None:
        if self.stats.stopped is None:
            self.stats.stopped = (code, message)
            _log.warning("stopping: %s: %s", code, message)
        self._stop_requested = True
        self._end_wave_if_idle()

    def _end_wave_if_idle(self) -> None:
        """After a stop, workers still waiting on the rate limiter (a long pause) or a backoff have
        nothing in flight: end the wave now instead of when their wait is over."""
        if self._stop_requested and self.in_flight == 0 and self._wave_scope is not None:
            self._wave_scope.cancel()

    @property
    def stopping(self) -> bool:
        return self._stop_requested

    async def idle(self) -> None:
        """Return when no request is in flight: after a stop, nothing is left worth waiting for
        (workers waiting on the rate limiter or a backoff have sent nothing)."""
        while self.in_flight:
            await self._idle.wait()

    def _took_off(self) -> None:
        if self.in_flight == 0:
            self._idle = anyio.Event()
        self.in_flight += 1

    def _landed(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()
            self._end_wave_if_idle()

    # -- running ----------------------------------------------------------------------------
    async def run(self, waves: list[list[WorkUnit]], total_rows: int) -> ExecStats:
        self.total_rows = total_rows
        self.bar = tqdm(total=total_rows, unit="row", file=sys.stderr, disable=self.progress_enabled is False
                        if self.progress_enabled is not None else None, dynamic_ncols=True, smoothing=0.1)
        try:
            for wave in waves:
                if self.stopping:
                    break
                try:
                    units = await self.session.prepare(wave, self.rows, self.io)
                except StopRun as stop:
                    self.request_stop(stop.code, stop.message)
                    break
                except httpx.TransportError as exc:  # look-ups kept failing (io.request gave up): nothing was changed
                    code = exc.code if isinstance(exc, ResponseTooLarge) else "LOOKUP_FAILED"
                    self.request_stop(code, f"a look-up failed {self.policy.max_attempts} times: "
                                            f"{type(exc).__name__}: {exc}")
                    break
                await self._run_wave(units)
        finally:
            self.bar.close()
            self.stats.concurrency = self.concurrency.describe()
        return self.stats

    async def _run_wave(self, units: list[WorkUnit], nested: bool = False) -> None:
        if not units:
            return
        keys = dict.fromkeys(unit.rate_key for unit in units)
        if len(keys) > 1:  # one queue per budget (per user): a budget waiting for its reset holds only its units
            async with anyio.create_task_group() as tg:
                self._wave_scope = tg.cancel_scope
                for key in keys:
                    tg.start_soon(self._run_wave, [u for u in units if u.rate_key == key], True)
            self._wave_scope = None
            return
        send, receive = anyio.create_memory_object_stream[WorkUnit](math.inf)
        pending = len(units)
        for unit in units:
            send.send_nowait(unit)

        def requeue(unit: WorkUnit) -> None:
            nonlocal pending
            pending += 1
            send.send_nowait(unit)

        async def worker(inbox: anyio.abc.ObjectReceiveStream[WorkUnit]) -> None:
            nonlocal pending
            async with inbox:
                async for unit in inbox:
                    try:
                        await self._process(unit, requeue)
                    finally:
                        pending -= 1
                        if pending == 0:
                            send.close()

        workers = self.concurrency.ceiling  # the limit's ceiling: the permits decide how many send at once
        with receive:
            async with anyio.create_task_group() as tg:
                if not nested:
                    self._wave_scope = tg.cancel_scope
                for _ in range(min(workers, len(units))):
                    tg.start_soon(worker, receive.clone())
            if not nested:
                self._wave_scope = None

    async def _process(self, unit: WorkUnit, requeue: Callable[[WorkUnit], None]) -> None:
        while unit.rows:
            if self.stopping:
                return
            unit = self._cut(unit, requeue)
            await self.limiter.acquire(self.session.request_cost(unit), key=unit.rate_key)
            if self.stopping:
                return
            self._took_off()
            try:
                unit, delay = await self._send_once(unit, requeue)
            finally:
                self._landed()
            if delay:
                self.limiter.waited += delay
                await self.clock.sleep(delay)

    def _cut(self, unit: WorkUnit, requeue: Callable[[WorkUnit], None]) -> WorkUnit:
        """Send no more than the operation's learnt ceiling: queue the rest as units of their own."""
        size = self.ceiling.limit(unit.operation)
        if size is None or len(unit.rows) <= size:
            return unit
        for start in range(size, len(unit.rows), size):
            requeue(unit.part(unit.rows[start:start + size]))
        return unit.part(unit.rows[:size])

    async def _send_once(self, unit: WorkUnit, requeue: Callable[[WorkUnit], None]) -> tuple[WorkUnit, float]:
        """Send ``unit`` once and apply the answer; return what is left to send and the backoff."""
        payload = self.rows.rows(unit.rows)
        request = self.session.build_request(unit, payload)
        response: httpx.Response | None = None
        error: Exception | None = None
        self._largest_unit = max(self._largest_unit, len(unit.rows))
        async with self.concurrency.permit() as permit:  # held for the send only: a verdict may need look-ups
            self.journal.start(unit.rows)
            unit.attempts += 1
            self.stats.requests += 1
            if unit.attempts > 1:
                self.stats.retries += 1
            try:
                response = await self.session.client.send(request)
                await response.aread()
            except httpx.TransportError as exc:
                error = exc
            failpoints.hit("execute.after_send")
        try:
            if response is None:
                self.stats.transport_errors += 1
                verdict = await self.session.transport_error(unit, payload, error, self.io)
                if isinstance(error, ResponseTooLarge) and verdict.retry:
                    verdict.retry_reason = (ResponseTooLarge.code, str(error))
            else:
                code = response.status_code
                self.stats.status_counts[code] = self.stats.status_counts.get(code, 0) + 1
                if code == 429:
                    self.stats.responses_429 += 1
                    _log.info("429 on a %s request of %d rows: every worker pauses for the platform's window",
                              unit.operation, len(unit.rows))
                verdict = await self.session.interpret(unit, payload, response, self.io)
        except StopRun as stop:  # raised while the answer was being read or checked: the request went
            # out and nobody knows what it did, so its rows stay in flight for resume to check
            verdict = Verdict(stop=(stop.code, stop.message), maybe_applied=True)
        try:
            self.limiter.observe(verdict.rate)
        except StopRun as stop:  # a Retry-After past limits.max_server_wait
            verdict.stop = verdict.stop or (stop.code, stop.message)
        self._observe(permit, unit, response, error, verdict)
        if verdict.stop is None and not verdict.retry and not verdict.split:
            verdict.stop = self.breaker.observe(verdict.outcomes)
        if response is not None:
            self.ceiling.observe(unit, verdict, self._size_codes)
        result = self._apply(unit, verdict, requeue)
        failpoints.hit("execute.after_record")
        return result

    def _observe(self, permit: Permit, unit: WorkUnit, response: httpx.Response | None, error: Exception | None,
                 verdict: Verdict) -> None:
        """Tell the concurrency limit how the request went: overloaded, or how long it took (a
        request much smaller than the largest -- a retried remnant -- is no fair latency sample)."""
        self.concurrency.observe(permit, overload=overload_signal(response, error, verdict),
                                 lower=verdict.rate.lower_concurrency,
                                 sample=response is not None and 2 * len(unit.rows) >= self._largest_unit)

    def _apply(self, unit: WorkUnit, verdict: Verdict, requeue: Callable[[WorkUnit], None]) -> tuple[WorkUnit, float]:
        """Record what is final; return the unit still to send now (empty when done) and the
        backoff to wait before sending it."""
        done = WorkUnit(unit.operation, []), 0.0
        for outcome in verdict.outcomes:
            outcome.attempts = unit.attempts
        self.record(verdict.outcomes)
        decided = {o.row for o in verdict.outcomes}
        if verdict.stop is not None:
            self.request_stop(*verdict.stop)
            # rows an earlier lost answer may have applied stay in flight: resume checks them first
            if not verdict.maybe_applied:  # the platform answered and refused: never applied
                self.journal.release([r for r in unit.rows if r not in decided and r not in unit.unsure])
            return done
        if verdict.split:
            rows = [r for r in unit.rows if r not in decided]
            if len(rows) > 1:
                self.stats.splits += 1
                _log.info("%s request of %d rows rejected as a whole (%s): split in halves", unit.operation,
                          len(rows), ": ".join(verdict.split_reason or ("", "")))
                half = len(rows) // 2
                for part in (rows[:half], rows[half:]):
                    requeue(unit.part(part, last_error=verdict.split_reason))
                return done
            code, message = verdict.split_reason or ("REQUEST_REJECTED", "the platform rejected the request")
            self.record([RowOutcome(r, Status.FAILED, code, message, attempts=unit.attempts) for r in rows])
            return done
        if not verdict.retry:
            return done
        failures = unit.failures + 1
        reason = verdict.retry_reason or ("RETRIES_EXHAUSTED", "the platform kept failing")
        if failures >= self.policy.max_attempts:
            code, message = reason
            self.record([
                RowOutcome(r, Status.FAILED, code, f"{message} (gave up after {unit.attempts} attempts)",
                           attempts=unit.attempts)
                for r in verdict.retry
            ])
            return done
        delay = 0.0
        if verdict.rate.retry_after is None and not verdict.rate.pause_all:
            delay = self.policy.backoff(failures, self.rng)
        _log.info("retrying %d %s rows (attempt %d of %d) after %.1f s: %s", len(verdict.retry), unit.operation,
                  failures + 1, self.policy.max_attempts, delay, ": ".join(reason))
        unsure = unit.unsure | frozenset(verdict.retry) if verdict.maybe_applied else unit.unsure
        return unit.part(list(verdict.retry), last_error=reason, failures=failures,
                         unsure=unsure & frozenset(verdict.retry)), delay
