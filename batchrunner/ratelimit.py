"""One rate limiter per platform connection, shared by every worker.

A token bucket paces requests to the configured budget (cost per minute); server signals correct
it: a 429 or a ``Retry-After`` pauses *every* worker, not only the one that was told, and a low
``remaining`` budget header holds requests until the window turns. Built on anyio so it runs under
asyncio and trio alike, and on an injected clock so its arithmetic is testable without sleeping.
"""

from __future__ import annotations

import random

import anyio

from batchrunner.clock import Clock, SystemClock
from batchrunner.platforms.base import RateSignal


class RateLimiter:
    def __init__(self, per_minute: float | None = None, *, clock: Clock | None = None, burst: float | None = None,
                 rng: random.Random | None = None, window: float = 60.0) -> None:
        self.clock = clock or SystemClock()
        self.rate = per_minute / 60.0 if per_minute else None  # tokens per second
        # a small burst keeps any 60 s window at or under the budget, whatever its alignment
        self.capacity = burst if burst is not None else (max(1.0, self.rate) if self.rate else 0.0)
        self.tokens = self.capacity
        self.updated = self.clock.now()
        self.paused_until = 0.0
        self.window = window
        self.rng = rng or random.Random()
        self.lock = anyio.Lock()
        self.waited = 0.0  # seconds spent waiting on the limiter (reported in summary.json)
        self.pauses = 0
        self.api_used: int | None = None
        self.api_limit: int | None = None

    def _refill(self, now: float) -> None:
        if self.rate is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    async def acquire(self, cost: float = 1.0) -> None:
        """Wait until ``cost`` may be spent. Waiters queue on a lock, so they are served in turn."""
        async with self.lock:
            while True:
                now = self.clock.now()
                if now < self.paused_until:
                    await self._wait(self.paused_until - now)
                    continue
                if self.rate is None:
                    return
                self._refill(now)
                if self.tokens >= cost or (self.tokens >= self.capacity and cost > self.capacity):
                    self.tokens -= cost
                    return
                await self._wait((cost - self.tokens) / self.rate)

    async def _wait(self, seconds: float) -> None:
        self.waited += seconds
        await self.clock.sleep(seconds)

    def pause(self, seconds: float) -> None:
        """Hold every worker for ``seconds`` (plus what an earlier pause already holds)."""
        until = self.clock.now() + seconds
        if until > self.paused_until:
            self.paused_until = until
            self.pauses += 1

    def observe(self, signal: RateSignal) -> None:
        """Apply what a response said about the budget."""
        if signal.api_used is not None:
            self.api_used, self.api_limit = signal.api_used, signal.api_limit
        if signal.retry_after is not None:
            self.pause(signal.retry_after + self.rng.uniform(0, 1.0))
        elif signal.pause_all:
            # no Retry-After: wait out the rest of the window (unknown alignment), with jitter
            self.pause(self.window * self.rng.uniform(0.5, 1.0) if self.rate is None else self._until_refilled())
            self.tokens = 0.0
        if signal.remaining is not None and self.rate is not None:
            # the server knows what others spent from the shared budget: never hold more than it has
            self._refill(self.clock.now())
            self.tokens = min(self.tokens, max(0.0, float(signal.remaining) - 1.0))

    def _until_refilled(self) -> float:
        return self.window * (0.5 + self.rng.uniform(0, 0.5))
