"""How many requests a run keeps in flight: a fixed number, or one found as the run goes.

Salesforce publishes no per-minute budget: how much parallelism an org takes depends on its load,
its triggers and its sharing, and too much is punished with ``UNABLE_TO_LOCK_ROW`` and concurrent
request limits (docs/platforms.md). A fixed number is a guess, so for a platform that says it has
no published budget (``adaptive_concurrency = True`` on the platform) the limit is *adaptive*:

* it starts low (``START``) and grows by half each round while latency stays flat and the limit
  was in use (slow start, ended by a rise of 5 %), then, after the first sign of congestion,
  by one per round while latency stays within ``TOLERANCE``;
* on an overload signal -- a lock error, a 503, a timeout, a 429 or ``Retry-After`` (the rate
  limiter's pause), a concurrent-request limit -- it is cut to ``DECREASE`` of itself at once, at
  most once per round trip (answers to requests sent before the cut saw the old limit);
* when a round's median latency grows past ``TOLERANCE`` x the baseline (the lowest round
  median: latency with no queue of ours), it is set to what the latency says the org works on at
  once plus one (``limit x baseline / median + 1``, TCP Vegas' queue estimate) -- it settles at
  the knee instead of filling the org's queue. Growth waits for a full round; backing off needs
  only ``MIN_ROUND`` answers;
* it never goes above the ceiling (``limits.concurrency``) or below 1.

Why this and not the alternatives is in docs/limits.md. The decisions read an injected clock, so
tests drive them with made-up latencies (tests/test_concurrency.py). Platforms with a published
budget (Salesloft, Outreach) keep a fixed number: their rate limiter paces them.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio

from batchrunner.clock import Clock, SystemClock

DEFAULT_CEILING = 16  # adaptive platforms, `concurrency` not given: the most requests ever in flight
DEFAULT_FIXED = 4  # every other platform, `concurrency` not given (as before adaptive concurrency)
START = 4  # where an adaptive limit starts: today's fixed default (unless a resumed run's journal says otherwise)
DECREASE = 0.75  # the cut on an overload signal
SLOW_START = 1.5  # growth per flat round until the first sign of congestion ...
SLOW_START_TOLERANCE = 1.05  # ... which includes a round median more than 5 % over the baseline
TOLERANCE = 1.25  # a round's median latency within 25 % of the baseline is "flat" (jitter; Gradient2 takes 1.5)
MIN_ROUND = 4  # samples in a round at least (a median of fewer is noise)
MIN_LATENCY = 1e-3  # seconds: a clock that did not move (a fake one) reads as 1 ms, never 0
JOURNAL_META = "concurrency_limit"  # journal meta key: the adaptive limit when it last changed

_log = logging.getLogger("batchrunner.run")


@dataclass
class Permit:
    """One request's place in flight: when it started, under which limit, beside how many others."""

    started: float
    epoch: int  # the limit's version when the request started
    in_flight: int  # requests in flight when it started, itself included
    ended: float | None = None  # when its answer was read (the permit given back)


class FixedConcurrency:
    """Today's behaviour: ``limit`` requests in flight; a platform's "too many concurrent requests"
    lowers it by one (Salesforce ``ConcurrentPerOrgLongTxn``)."""

    mode = "fixed"

    def __init__(self, limit: int, *, clock: Clock | None = None,
                 on_change: Callable[[int, int, str], None] | None = None) -> None:
        self.ceiling = max(1, int(limit))
        self.clock = clock or SystemClock()
        self.on_change = on_change  # (old, new, reason): the executor logs it and journals it
        self.value = float(self.ceiling)
        self.gate = anyio.CapacityLimiter(self.ceiling)
        self.epoch = 0
        self.in_flight = 0
        self.reached = self.ceiling  # the highest limit of the run
        self.changes = 0

    @property
    def limit(self) -> int:
        return int(self.gate.total_tokens)

    @asynccontextmanager
    async def permit(self) -> AsyncIterator[Permit]:
        """Hold a place in flight for one request."""
        async with self.gate:
            self.in_flight += 1
            permit = Permit(self.clock.now(), self.epoch, self.in_flight)
            try:
                yield permit
            finally:
                self.in_flight -= 1
                permit.ended = self.clock.now()

    async def __aenter__(self) -> None:  # a look-up: a place in flight, not a latency sample
        await self.gate.acquire()

    async def __aexit__(self, *exc: Any) -> None:
        self.gate.release()

    def observe(self, permit: Permit, *, overload: str | None = None, lower: bool = False,
                sample: bool = True) -> None:
        """The answer to ``permit``'s request: ``overload`` names an overload signal (None: none),
        ``lower`` is the platform asking for fewer requests at once, ``sample`` whether its latency
        is representative (a full-size request)."""
        if lower and self.value > 1:
            self._set(self.value - 1, "the platform asked for fewer requests at once")

    def _set(self, value: float, reason: str) -> None:
        old = self.limit
        self.value = max(1.0, min(float(self.ceiling), value))
        new = max(1, int(self.value))
        self.epoch += 1
        if new != old:
            self.gate.total_tokens = new
            self.reached = max(self.reached, new)
            self.changes += 1
            if self.on_change is not None:
                self.on_change(old, new, reason)

    def describe(self) -> dict[str, Any]:
        """For summary.json: the mode, the ceiling, the highest and the last limit of the run."""
        return {"mode": self.mode, "ceiling": self.ceiling, "reached": self.reached, "final": self.limit,
                "changes": self.changes}


class AdaptiveConcurrency(FixedConcurrency):
    """The limit found as the run goes (module docstring): slow start, additive increase while
    latency is flat, a cut on overload, a gradient back to the knee when latency grows."""

    mode = "adaptive"

    def __init__(self, ceiling: int, *, start: int | None = None, clock: Clock | None = None,
                 on_change: Callable[[int, int, str], None] | None = None) -> None:
        super().__init__(ceiling, clock=clock, on_change=on_change)
        self.value = float(max(1, min(self.ceiling, start or START)))
        self.gate.total_tokens = int(self.value)
        self.reached = int(self.value)
        self.slow_start = start is None
        self.baseline: float | None = None
        self.round: list[float] = []
        self.round_used = False  # some request of the round started with the limit full

    def observe(self, permit: Permit, *, overload: str | None = None, lower: bool = False,
                sample: bool = True) -> None:
        if permit.epoch != self.epoch:
            return  # sent under an older limit: already acted on, or no longer telling
        if overload or lower:
            self.slow_start = False
            self._set(self.value * DECREASE, f"overload: {overload or 'the platform asked for fewer requests'}")
            return
        if not sample:
            return
        ended = permit.ended if permit.ended is not None else self.clock.now()
        self.round.append(max(MIN_LATENCY, ended - permit.started))
        self.round_used = self.round_used or permit.in_flight >= self.limit
        if len(self.round) >= max(MIN_ROUND, self.limit) or self._queue_building():
            self._end_round()

    def _queue_building(self) -> bool:
        """Quick to back off, slow to grow: MIN_ROUND answers whose median is past the tolerance
        are enough to act; growing waits for a full round."""
        return (len(self.round) >= MIN_ROUND and self.baseline is not None
                and statistics.median(self.round) > TOLERANCE * self.baseline)

    def _end_round(self) -> None:
        median = statistics.median(self.round)
        used, self.round, self.round_used = self.round_used, [], False
        if self.baseline is None or median < self.baseline or self.limit == 1:
            self.baseline = median  # at 1 in flight there is no queue of ours: what the org takes now
        ratio = median / self.baseline
        if ratio <= TOLERANCE:
            # slow start ends at the first rise of latency, before the knee is passed (TCP HyStart)
            self.slow_start = self.slow_start and ratio <= SLOW_START_TOLERANCE
            if used and self.limit < self.ceiling:
                grown = self.value * SLOW_START if self.slow_start else self.value + 1
                self._set(grown, f"latency flat ({median:.3f} s)")
            return
        self.slow_start = False
        settled = self.value / ratio + 1  # what the org works on at once (Vegas), plus one to probe
        if settled < self.value:
            self._set(settled, f"latency {ratio:.2f} x its baseline ({median:.3f} s / {self.baseline:.3f} s)")

    def _set(self, value: float, reason: str) -> None:
        super()._set(value, reason)
        self.round, self.round_used = [], False


def parse_setting(value: Any) -> tuple[str, int]:
    """``limits.concurrency`` as written: a number (the ceiling where the limit is adaptive, the
    number elsewhere) or ``"fixed:N"`` (N everywhere). Returns (mode, N); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("a number or \"fixed:N\"")
    if isinstance(value, int):
        return "ceiling", value
    if isinstance(value, str):
        kind, _, number = value.strip().partition(":")
        if kind.strip().lower() == "fixed" and number.strip().isdigit():
            return "fixed", int(number)
    raise ValueError("a number or \"fixed:N\"")


def resolve(limits: Any, adaptive_platform: bool) -> tuple[bool, int]:
    """(adaptive?, the number: the ceiling when adaptive, else the fixed limit) for a job's
    ``[limits]`` on a platform that has (``adaptive_platform`` False) or lacks a published budget."""
    mode = getattr(limits, "concurrency_mode", "ceiling")
    if mode == "fixed" or not adaptive_platform:
        return False, limits.concurrency if mode != "default" else DEFAULT_FIXED
    return True, limits.concurrency if mode != "default" else DEFAULT_CEILING


def for_job(job: Any, platform: Any) -> tuple[bool, int]:
    """``resolve`` for ``job`` on ``platform`` (its ``adaptive_concurrency`` attribute)."""
    return resolve(job.limits, bool(getattr(platform, "adaptive_concurrency", False)))


def build(job: Any, platform: Any, *, clock: Clock | None = None, start: int | None = None) -> FixedConcurrency:
    """The run's concurrency: adaptive (from ``start``, a resumed run's last limit, if given) or fixed."""
    adaptive, number = for_job(job, platform)
    if adaptive:
        return AdaptiveConcurrency(number, start=start, clock=clock)
    return FixedConcurrency(number, clock=clock)
