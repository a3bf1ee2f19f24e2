"""The limiter's arithmetic and its rules, on a fake clock, under asyncio and trio."""

from __future__ import annotations

import random

import anyio
import pytest

from batchrunner.clock import FakeClock
from batchrunner.platforms.base import RateSignal
from batchrunner.ratelimit import RateLimiter

both_backends = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])


def limiter(per_minute: float | None = 600, *, start: float = 6_000_000.0, **kw) -> RateLimiter:
    """A limiter on a fake clock that starts exactly on a minute boundary."""
    return RateLimiter(per_minute, clock=FakeClock(start), rng=random.Random(1), **kw)


@both_backends
@pytest.mark.anyio
async def test_bucket_paces_to_the_budget() -> None:
    lim = limiter(600)  # 10 per second, burst 10
    for _ in range(610):
        await lim.acquire()
    # 10 from the initial burst, then 600 at 10/s
    assert lim.clock.slept == pytest.approx(60.0)


@both_backends
@pytest.mark.anyio
async def test_no_budget_means_no_waiting() -> None:
    lim = limiter(None)
    for _ in range(1000):
        await lim.acquire()
    assert lim.clock.slept == 0


@pytest.mark.anyio
async def test_cost_above_the_burst_is_still_served() -> None:
    lim = limiter(60, burst=1)  # 1 per second
    await lim.acquire(3)  # a costly list page: served once the bucket is full, never deadlocked
    await lim.acquire(1)
    assert lim.clock.slept == pytest.approx(3.0)


@both_backends
@pytest.mark.anyio
async def test_429_pauses_every_worker_until_the_next_window() -> None:
    lim = limiter(600, start=6_000_000.0 + 20)  # 20 s into a clock minute
    served: list[float] = []

    async def worker() -> None:
        await lim.acquire()
        served.append(lim.clock.now())

    lim.observe(RateSignal(pause_all=True))  # one worker's 429
    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(worker)
    boundary = 6_000_000.0 + 60 + lim.slack  # next minute plus skew slack
    assert len(served) == 5
    assert all(boundary <= t <= boundary + 1.0 + 1e-9 for t in served)  # + jitter of at most 1 s
    assert lim.pauses == 1


@pytest.mark.anyio
async def test_429_in_rolling_mode_waits_half_to_a_whole_window() -> None:
    lim = limiter(600, window_kind="rolling")
    lim.observe(RateSignal(pause_all=True))
    await lim.acquire()
    assert 30.0 <= lim.clock.slept <= 60.0


@pytest.mark.anyio
async def test_retry_after_is_obeyed_with_jitter() -> None:
    lim = limiter(None)
    lim.observe(RateSignal(retry_after=7))
    await lim.acquire()
    assert 7.0 <= lim.clock.slept <= 8.0


@pytest.mark.anyio
async def test_remaining_header_holds_everyone_when_others_spent_the_budget() -> None:
    """Another integration spent the team's budget: the header says 5 left while our own bucket
    is full. With 3 requests possibly in flight, 2 may still be sent; the third waits for the
    next minute instead of being answered 429."""
    lim = limiter(600, start=6_000_000.0 + 30, margin=3)
    lim.observe(RateSignal(remaining=5))
    await lim.acquire()
    await lim.acquire()
    assert lim.clock.slept == 0
    await lim.acquire()
    assert lim.clock.now() >= 6_000_000.0 + 60 + lim.slack


@pytest.mark.anyio
async def test_remaining_estimate_only_falls_within_a_window_and_resets_after() -> None:
    lim = limiter(None, start=6_000_000.0 + 10)
    lim.observe(RateSignal(remaining=100))
    lim.observe(RateSignal(remaining=300))  # a stale, older answer arriving late: ignored
    assert lim.remaining == 100
    await lim.acquire(4)
    assert lim.remaining == 96
    lim.clock.time = 6_000_000.0 + 61.5  # the minute turned (past the slack)
    await lim.acquire()
    assert lim.remaining is None  # forgotten: the new window's first answer will tell
    lim.observe(RateSignal(remaining=599))
    assert lim.remaining == 599


@pytest.mark.anyio
async def test_api_usage_is_tracked() -> None:
    lim = limiter(None)
    lim.observe(RateSignal(api_used=120, api_limit=15000))
    assert (lim.api_used, lim.api_limit) == (120, 15000)


@both_backends
@pytest.mark.anyio
async def test_concurrent_waiters_are_served_in_turn_without_exceeding_the_budget() -> None:
    lim = limiter(120, burst=2)  # 2 per second
    times: list[float] = []

    async def worker() -> None:
        for _ in range(10):
            await lim.acquire()
            times.append(lim.clock.now())

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(worker)
    assert len(times) == 40
    start = 6_000_000.0
    # any 10-second span holds at most 20 + burst requests
    for t in times:
        assert sum(1 for u in times if t <= u < t + 10) <= 22
    assert max(times) - start == pytest.approx(19.0)


def test_window_kind_is_checked() -> None:
    with pytest.raises(ValueError):
        RateLimiter(600, window_kind="sliding")
