"""What both exports share: a connection built like a job's, and paced, retried GETs."""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from batchrunner import secrets
from batchrunner.clock import Clock, SystemClock
from batchrunner.errors import JobError
from batchrunner.execute import RetryPolicy
from batchrunner.job import Connection, Job, Limits, SandboxSettings
from batchrunner.platforms.base import RateSignal
from batchrunner.ratelimit import RateLimiter

TRANSIENT = frozenset({429, 500, 502, 503, 504})


def export_job(platform: str, *, sandbox: bool = False, base_url: str | None = None,
               job: Job | None = None) -> Job:
    """The job whose [connection] / [limits] / [sandbox] an export uses: a given job file's, or a
    minimal one (the sandbox, or the live platform with credentials from the environment)."""
    if job is not None:
        if job.platform != platform:
            raise JobError(f"--job {job.path.name} is a {job.platform} job; this export reads {platform}.")
        return job
    key = "instance_url" if platform == "salesforce" else "base_url"
    connection = Connection(sandbox=sandbox, **{key: base_url})
    return Job(path=Path("export.toml").resolve(), name=f"export-{platform}", platform=platform,
               input=Path("-"), output_dir=Path("."), operation=None, connection=connection, limits=Limits(),
               sandbox=SandboxSettings())


@dataclass
class ExportResult:
    rows: list[dict[str, Any]]
    requests: int = 0
    cost: float = 0.0
    pages: list[tuple[str, int]] = field(default_factory=list)  # (path, page) of every list page read
    notes: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # the CSV's columns, in order


class Reader:
    """GETs paced by the platform's budget (the same RateLimiter as runs), retried on 429 / 5xx /
    transport errors with backoff; a 401 stops the export (exit 2)."""

    def __init__(self, client: httpx.AsyncClient, rate: Callable[[httpx.Response], RateSignal], *,
                 per_minute: float | None, limits: Limits, clock: Clock | None = None,
                 rng: random.Random | None = None) -> None:
        self.client = client
        self.rate = rate
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.limiter = RateLimiter(per_minute, clock=self.clock, rng=self.rng, window_kind=limits.rate_window)
        self.policy = RetryPolicy(limits.max_attempts, limits.backoff_base, limits.backoff_max)
        self.result = ExportResult(rows=[])

    async def fetch(self, url: str, *, params: Any = None, cost: float = 1.0) -> httpx.Response:
        """A GET, paced and retried on 429 / 5xx / transport errors; the last answer whatever its
        status, or the last transport error raised (``verify`` reports such rows unreadable)."""
        failures = 0
        while True:
            await self.limiter.acquire(cost)
            self.result.requests += 1
            self.result.cost += cost
            try:
                response = await self.client.get(url, params=params)
            except httpx.TransportError:
                failures += 1
                if failures >= self.policy.max_attempts:
                    raise
                await self.clock.sleep(self.policy.backoff(failures, self.rng))
                continue
            signal = self.rate(response)
            self.limiter.observe(signal)
            if response.status_code in TRANSIENT and failures + 1 < self.policy.max_attempts:
                failures += 1
                if response.status_code != 429 and signal.retry_after is None:
                    await self.clock.sleep(self.policy.backoff(failures, self.rng))
                continue
            return response

    async def get(self, url: str, *, params: Any = None, cost: float = 1.0) -> httpx.Response:
        """`fetch`, with anything but a 200 an error that stops the export (exit 2)."""
        try:
            response = await self.fetch(url, params=params, cost=cost)
        except httpx.TransportError as exc:
            raise JobError(f"export: {url} could not be read: {type(exc).__name__}: {exc}") from None
        if response.status_code == 401:
            raise JobError(f"export: the platform refused the credentials (401) reading {url}")
        if response.status_code != 200:
            raise JobError(f"export: {url} answered HTTP {response.status_code}: {secrets.excerpt(response.text, 300)}")
        return response


def write_csv(path: Path | None, rows: list[dict[str, Any]], columns: list[str], out: Any = None) -> None:
    """Write rows (``None`` -> empty cell) to ``path``, or to ``out`` (stdout) when path is None."""
    def dump(handle: Any) -> None:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            # platform text: a value that echoes the credential is masked like everything stored
            writer.writerow({k: "" if row.get(k) is None else secrets.redact_value(row.get(k)) for k in columns})

    if path is None:
        dump(out)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        dump(handle)
