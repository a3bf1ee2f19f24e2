"""Time as a dependency: the executor and rate limiter never call the system clock directly, so
tests can run a whole 429 storm in milliseconds with a fake clock."""

from __future__ import annotations

import time
from typing import Protocol

import anyio


class Clock(Protocol):
    def now(self) -> float: ...

    def wall(self) -> float:
        """Seconds since the epoch: where a platform's clock-minute windows begin and end."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))


class FakeClock:
    """Virtual time: ``sleep`` advances the clock instantly (still yielding to other tasks)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.time = start
        self.slept = 0.0

    def now(self) -> float:
        return self.time

    def wall(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.time += seconds
            self.slept += seconds
        await anyio.sleep(0)


class EventLoopClock:
    """The running event loop's clock (``anyio.current_time``) with a wall-clock anchor.

    Under trio's ``MockClock(autojump_threshold=0)`` this is virtual time: the benchmarks and the
    long budget tests run hours of rate-limited traffic in seconds, with the limiter and the
    emulator reading one clock. Use it only inside a running event loop.
    """

    def __init__(self, wall_at_start: float | None = None) -> None:
        self._loop_start = anyio.current_time()
        self._wall_start = time.time() if wall_at_start is None else wall_at_start

    def now(self) -> float:
        return anyio.current_time()

    def wall(self) -> float:
        return self._wall_start + (anyio.current_time() - self._loop_start)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))
