"""Time as a dependency: the executor and rate limiter never call the system clock directly, so
tests can run a whole 429 storm in milliseconds with a fake clock."""

from __future__ import annotations

import time
from typing import Protocol

import anyio


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))


class FakeClock:
    """Virtual time: ``sleep`` advances the clock instantly (still yielding to other tasks)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.time = start
        self.slept = 0.0

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.time += seconds
            self.slept += seconds
        await anyio.sleep(0)
