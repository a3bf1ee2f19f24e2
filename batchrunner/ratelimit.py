"""One rate limiter per platform connection, shared by every worker.

A token bucket paces requests to the configured budget (cost per minute). Server signals correct
it, because the budget is shared with integrations this process cannot see:

* ``x-ratelimit-remaining-minute`` (Salesloft) is tracked as an estimate of what is left in the
  current window, lowered by every request sent; when it would fall below ``margin`` (the requests
  that may be in flight and not yet counted in the last header) every worker waits for the window
  to turn instead of spending into a 429.
* a 429 pauses *every* worker, not only the one that got it: until the next window (a clock
  minute, plus slack for clock skew, plus jitter) when no ``Retry-After`` says otherwise.
* ``Retry-After``, when present, is obeyed as given (plus jitter) -- up to ``max_server_wait``
  (``limits.max_server_wait``). A longer one (``1e9``, ``inf``) would hold the job lock for
  years: ``observe`` raises ``ServerWaitTooLong`` instead, and the run stops resumably.

Whether Salesloft's window is a clock minute or a rolling 60 s is unconfirmed (docs/platforms.md), so it
is a setting (``limits.rate_window``): "fixed" (default) waits for the next clock minute; "rolling"
waits a fraction of the window and lets the next header say what has been freed. Both are safe
either way round, only slower when wrong.

Outreach's budget is per user per hour: a run sending rows with several users' tokens has one
budget per user. ``KeyedRateLimiter`` keeps a ``RateLimiter`` per budget key (a work unit's
``rate_key``, a signal's ``key``; None is the connection's own budget), so one user's spent hour or
429 holds only that user's requests. Built on anyio (asyncio and trio alike) and on an
injected clock, so the arithmetic is tested without sleeping.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import anyio

from batchrunner.clock import Clock, SystemClock
from batchrunner.platforms.base import RateSignal, StopRun

WINDOWS = ("fixed", "rolling")
EPS = 1e-6
MIN_WAIT = 1e-3
MAX_SERVER_WAIT = 3900.0  # default of limits.max_server_wait: Outreach's hourly budget resets within an hour


class ServerWaitTooLong(StopRun):
    """The server asked for a pause longer than ``limits.max_server_wait``: stop, resume later."""

    def __init__(self, seconds: float, cap: float) -> None:
        asked = f"{seconds:.0f} s" if math.isfinite(seconds) else "forever"
        super().__init__("SERVER_WAIT_TOO_LONG",
                         f"the server asked to wait {asked} (Retry-After), more than limits.max_server_wait = "
                         f"{cap:g} s; stopped rather than hold the run. `batchrunner resume RUN_DIR` goes on "
                         "later (or raise limits.max_server_wait)")
        self.seconds = seconds


class RateLimiter:
    def __init__(self, per_minute: float | None = None, *, clock: Clock | None = None, burst: float | None = None,
                 rng: random.Random | None = None, window: float = 60.0, window_kind: str = "fixed",
                 margin: float = 0.0, slack: float | None = None, max_server_wait: float = MAX_SERVER_WAIT) -> None:
        if window_kind not in WINDOWS:
            raise ValueError(f"window_kind must be one of {WINDOWS}, got {window_kind!r}")
        self.clock = clock or SystemClock()
        self.rate = per_minute / 60.0 if per_minute else None  # tokens per second
        # a small burst keeps any 60 s window at or under the budget, whatever its alignment
        self.capacity = burst if burst is not None else (max(1.0, self.rate) if self.rate else 0.0)
        self.tokens = self.capacity
        self.updated = self.clock.now()
        self.paused_until = 0.0
        self.window = window
        self.window_kind = window_kind
        self.max_server_wait = max_server_wait
        self.margin = margin  # budget kept back for requests in flight when the last header was written
        # seconds after a window boundary before trusting it turned (clock skew): 1 s of a minute
        self.slack = window / 60.0 if slack is None else slack
        self.rng = rng or random.Random()
        self.lock = anyio.Lock()
        self.remaining: float | None = None  # estimate of the server's budget left in this window
        self._remaining_window: int | None = None
        self.waited = 0.0  # seconds spent waiting on the limiter (reported in summary.json)
        self.pauses = 0
        self.api_used: int | None = None
        self.api_limit: int | None = None

    # -- time ---------------------------------------------------------------------------
    def _window_index(self) -> int:
        return math.floor((self.clock.wall() - self.slack) / self.window)

    def seconds_to_next_window(self) -> float:
        """Seconds until the current clock window has surely turned (boundary + slack)."""
        wall = self.clock.wall()
        return (self._window_index() + 1) * self.window + self.slack - wall

    def _refill(self, now: float) -> None:
        if self.rate is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    # -- spending -------------------------------------------------------------------------
    async def acquire(self, cost: float = 1.0, key: str | None = None) -> None:
        """Wait until ``cost`` may be spent. Waiters queue on a lock, so they are served in turn.
        ``key`` (whose budget) is for ``KeyedRateLimiter``: one budget ignores it."""
        async with self.lock:
            while True:
                now = self.clock.now()
                if now < self.paused_until:
                    await self._wait(self.paused_until - now)
                    continue
                self._forget_stale_remaining()
                if self.remaining is not None and self.remaining - cost < self.margin:
                    await self._wait(self._budget_wait())
                    self.remaining = None  # the next response says what the new window holds
                    continue
                if self.rate is not None:
                    self._refill(now)
                    # EPS: float refills (0.1 s x 10/s = 0.9999...) must not spin on a vanishing wait
                    if not (self.tokens >= cost - EPS or (self.tokens >= self.capacity - EPS and cost > self.capacity)):
                        await self._wait(max((cost - self.tokens) / self.rate, MIN_WAIT))
                        continue
                    self.tokens -= cost
                if self.remaining is not None:
                    self.remaining -= cost
                return

    def _forget_stale_remaining(self) -> None:
        if self.window_kind == "fixed" and self.remaining is not None and self._remaining_window != self._window_index():
            self.remaining = None

    def _budget_wait(self) -> float:
        """How long to hold everyone when the shared budget is spent."""
        if self.window_kind == "fixed":
            return self.seconds_to_next_window() + self.rng.uniform(0, self.slack)
        return self.window * self.rng.uniform(0.1, 0.2)

    async def _wait(self, seconds: float) -> None:
        self.waited += seconds
        await self.clock.sleep(seconds)

    def pause(self, seconds: float) -> None:
        """Hold every worker for ``seconds`` (plus what an earlier pause already holds)."""
        until = self.clock.now() + seconds
        if until > self.paused_until:
            self.paused_until = until
            self.pauses += 1

    # -- what the server said ---------------------------------------------------------------
    def observe(self, signal: RateSignal) -> None:
        """Apply what a response said about the budget. Raises ``ServerWaitTooLong`` (a ``StopRun``)
        for a Retry-After over ``max_server_wait``; a negative or NaN one counts as 0."""
        if signal.api_used is not None:
            self.api_used, self.api_limit = signal.api_used, signal.api_limit
        if signal.retry_after is not None:
            seconds = signal.retry_after if signal.retry_after > 0 else 0.0  # NaN > 0 is False
            if seconds > self.max_server_wait:
                raise ServerWaitTooLong(seconds, self.max_server_wait)
            self.pause(seconds + self.rng.uniform(0, 1.0))
        elif signal.pause_all:
            # a 429 without Retry-After: everyone waits for the window to turn, with jitter
            if self.window_kind == "fixed":
                self.pause(self.seconds_to_next_window() + self.rng.uniform(0, self.slack))
            else:
                self.pause(self.window * self.rng.uniform(0.5, 1.0))
            self.tokens = 0.0
            self.remaining = None
            return
        if signal.remaining is not None:
            index = self._window_index()
            if self.remaining is None or self._remaining_window != index or self.window_kind == "rolling":
                self.remaining = float(signal.remaining)
            else:
                self.remaining = min(self.remaining, float(signal.remaining))
            self._remaining_window = index


class KeyedRateLimiter:
    """One ``RateLimiter`` per budget: ``acquire(cost, key)`` spends from ``key``'s, ``observe``
    applies a signal to the budget it names (``signal.key``). Platforms with one budget per
    connection only ever use key None, so it behaves exactly as a single ``RateLimiter``. Each
    budget's limiter is made by ``make`` on first use, with the same settings (pace, margin, window):
    a pace set for the job is a pace per budget."""

    #: longest wait for a user's first answer before the others go anyway (it normally takes one
    #: round trip; a first request whose answer says nothing about budgets must not hold them for ever)
    FIRST_ANSWER_WAIT = 60.0

    def __init__(self, make: Callable[[], RateLimiter]) -> None:
        self.make = make
        self.limiters: dict[str | None, RateLimiter] = {None: make()}
        self._waited_outside = 0.0  # backoffs the executor adds (``waited +=``), not any budget's
        self._heard: dict[str, anyio.Event] = {}  # key -> set once an answer told its budget

    def of(self, key: str | None) -> RateLimiter:
        limiter = self.limiters.get(key)
        if limiter is None:
            limiter = self.limiters[key] = self.make()
        return limiter

    async def acquire(self, cost: float = 1.0, key: str | None = None) -> None:
        """Spend from ``key``'s budget. A user's budget is not known until an answer to that user's
        token says what is left (other integrations spend it too), so the first request of each key
        goes alone and the rest wait for its answer instead of spending blind into a 429."""
        if key is not None:
            heard = self._heard.get(key)
            if heard is None:
                self._heard[key] = anyio.Event()  # this caller is the first: it goes
            elif not heard.is_set():
                with anyio.move_on_after(self.FIRST_ANSWER_WAIT):
                    await heard.wait()
        await self.of(key).acquire(cost)

    def observe(self, signal: RateSignal) -> None:
        if signal.key is not None and signal.key in self._heard:
            self._heard[signal.key].set()
        self.of(signal.key).observe(signal)

    def pause(self, seconds: float) -> None:
        """Hold every budget's workers (a pause that is not about one budget)."""
        for limiter in self.limiters.values():
            limiter.pause(seconds)

    @property
    def clock(self) -> Clock:
        return self.limiters[None].clock

    @property
    def waited(self) -> float:
        """Seconds spent waiting, over every budget (reported in summary.json)."""
        return self._waited_outside + sum(limiter.waited for limiter in self.limiters.values())

    @waited.setter
    def waited(self, value: float) -> None:
        self._waited_outside += value - self.waited

    @property
    def pauses(self) -> int:
        return sum(limiter.pauses for limiter in self.limiters.values())

    @property
    def api_used(self) -> int | None:
        return self.limiters[None].api_used

    @property
    def api_limit(self) -> int | None:
        return self.limiters[None].api_limit
