"""Benchmarks: does batchrunner use the platforms' budgets fully, without tripping them, and is the
local work cheap? Not part of the test suite; results are ratios measured in one run.

    python benchmarks/run.py            # all scenarios (about eight minutes)
    python benchmarks/run.py 1 3        # some of them
    python benchmarks/run.py --tiny 6 7 8  # check scenarios 6-8 run (a few hundred rows)
    python benchmarks/run.py 9 --sizes 0.1,0.2   # the memory curve at 100k and 200k rows

1. Salesloft budget use: N enrolments against the sandbox at a known budget and latency;
   achieved requests/minute / budget and 429s, and the same for a naive sequential httpx loop.
2. Salesloft shared budget: another integration spends 30 % of it; utilisation of the rest, 429s.
3. Salesforce: rows -> action requests (must be ceil(rows / batch_size)); wall time / ideal
   (requests x latency / concurrency); again with 10 % injected 503s and resets.
4. Local overhead: 1,000,000 rows through load + validate + plan + execute + report against the
   zero-latency Salesforce sandbox: rows per second and the runner's peak RSS (in a subprocess).
   Twice: the sandbox served by a second process on 127.0.0.1 (as a platform is: the runner's own
   cost, the goal's measure), and in-process (the emulator's work added to the runner's).
5. report.html for a 1,000,000-row run: the time to read the journal's timeline, render the page
   and write it, and the page's size; from a journal shaped like a Salesforce run (5,000 finish
   events of 200 rows) and like a Salesloft run (1,000,000 events of one row), over 20 minutes.
6. Salesforce concurrency on an org with a knee (`[sandbox] knee_in_flight`, `lock_in_flight`):
   40,000 assigns (batch_size 200) at fixed concurrency 1, 2, 4, 8, 16, 32, then adaptive with
   nothing set, then a sequential script (one request at a time with httpx, as a simple-salesforce
   script sends them; fixed 1 and the script send a quarter of the rows: their rate is steady).
   Rows/s and the share of inputs sent that met UNABLE_TO_LOCK_ROW, each against the best fixed
   and against fixed 4 (the default before adaptive concurrency).
7. Salesforce batch ceiling: a sandbox rejecting requests of more than 50 inputs
   (LIMIT_EXCEEDED), 180 / 1,000 / 10,000 rows at batch_size 200: action requests against
   ceil(rows / ceiling) + 1.

8. Outreach per-user budgets: enrolments sent as 1 user and as 3 users ([outreach.users], a row's
   owner picks the token) against the emulator's real budget, 10,000 requests per user per clock
   hour, in virtual time (trio's MockClock: hours pass in seconds, the emulator, the latency and the
   limiter read one clock). Per user: the share of each full hour's budget spent (utilisation),
   429s; and rows per full hour, 3 users against 1.

9. Memory curve: rows vs peak RSS and rows/s of a whole run at 0.5, 1, 2, 5 and 10 M rows (as in
   4, sandbox served on 127.0.0.1), and the peak RSS of `validate` alone; each in a fresh process.
   ``python benchmarks/run.py 9 --sizes 0.1,0.2`` checks it quickly at small sizes.

``--tiny`` runs scenarios 6, 7 and 8 at a few hundred rows: a check that the code runs, not a figure.

The Salesloft scenarios shrink the budget window from 60 s to WINDOW seconds (the budget per
window shrinks with it, so the rate is the real 600/min-class rate) to measure many windows in a
short run; the limiter is given the same window.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx

from batchrunner.job import SandboxSettings, load_job
from batchrunner.platforms.salesforce.ids import to18
from batchrunner.runner import prepare, run_prepared
from batchrunner.sandbox.app import SandboxApp
from batchrunner.sandbox.faults import FaultyApp
from batchrunner.sandbox.salesforce import SalesforceEmulator
from batchrunner.sandbox.salesloft import SalesloftEmulator
from batchrunner.sandbox.seeds import load_seed

# scenarios 6, 7 and 8 (--tiny shrinks them); 8: 2.5 hours of one Outreach user's budget, two full hours measured
SIZES = {"knee_rows": 40_000, "ceiling_rows": [180, 1_000, 10_000], "outreach_per_user": 25_000}
WINDOW = 6.0  # seconds per budget window in scenarios 1-2 (the platform's is 60)
RATE = 20.0  # requests per second allowed by the budget (1,200 per minute)
LATENCY_MS = 150.0


def _team(n: int) -> dict:
    team = load_seed("salesloft_team.json")
    team["people"] = [{"id": 100000 + i, "first_name": "P", "last_name": str(i), "email_address": f"p{i}@x.example.com",
                       "owner_id": 101} for i in range(n)]
    team["memberships"] = []
    return team


def _job(tmp: Path, name: str, platform: str, rows: list[str], header: str, columns: str, limits: str,
         operation: str) -> Path:
    (tmp / f"{name}.csv").write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    job = tmp / f"{name}.toml"
    job.write_text(f'name = "{name}"\nplatform = "{platform}"\noperation = "{operation}"\ninput = "{name}.csv"\n'
                   f'output_dir = "runs"\n[columns]\n{columns}\n[connection]\nsandbox = true\n[limits]\n{limits}\n',
                   encoding="utf-8")
    return job


class Counting:
    """Wraps an ASGI app; counts statuses (for 429s) and requests by method (look-ups are GETs)."""

    def __init__(self, app) -> None:
        self.app, self.statuses, self.methods = app, [], []

    async def __call__(self, scope, receive, send):
        if scope.get("type") == "http":
            self.methods.append(scope.get("method"))

        async def spy(message):
            if message["type"] == "http.response.start":
                self.statuses.append(message["status"])
            await send(message)

        await self.app(scope, receive, spy)


def _salesloft_app(n: int, external: float) -> tuple[Counting, SalesloftEmulator]:
    budget = int(RATE * WINDOW)
    emulator = SalesloftEmulator(_team(n), budget_per_minute=budget, window_seconds=WINDOW)
    settings = SandboxSettings(latency_ms=LATENCY_MS, external_spend=external, budget_per_minute=budget)
    faulty = FaultyApp(SandboxApp([emulator]), settings)
    faulty.settings.budget_per_minute = budget / WINDOW * 60  # external spend is per minute of budget
    return Counting(faulty), emulator


async def salesloft_budget(n: int, external: float = 0.0) -> dict:
    app, emulator = _salesloft_app(n, external)
    with tempfile.TemporaryDirectory() as tmp:
        job = _job(Path(tmp), "sl-bench", "salesloft", [f"{100000 + i},5001" for i in range(n)], "Person,Cadence",
                   'person_id = "Person"\ncadence_id = "Cadence"',
                   f"concurrency = 8\nrequests_per_minute = {int(RATE * 60)}", "add")
        prepared = prepare(load_job(job))
        # the limiter's window must match the sandbox's shrunken one
        import batchrunner.runner as runner_module

        original = runner_module.RateLimiter
        runner_module.RateLimiter = lambda *a, **k: original(*a, **{**k, "window": WINDOW})  # type: ignore[misc]
        try:
            start = time.monotonic()
            result = await run_prepared(prepared, output_dir=Path(tmp), sandbox_app=app, progress=False)
            elapsed = time.monotonic() - start
        finally:
            runner_module.RateLimiter = original
    available = RATE * (1 - external)
    return {"rows": n, "succeeded": result.summary["counts"]["succeeded"], "requests": len(app.statuses),
            "seconds": round(elapsed, 1), "utilisation": round(len(app.statuses) / elapsed / available, 3),
            "429s": app.statuses.count(429), "429_share": round(app.statuses.count(429) / len(app.statuses), 4),
            "enrolled_twice": sum(v > 1 for v in emulator.enrolments.values())}


async def naive_loop(n: int) -> dict:
    """One request after another with httpx, no concurrency, no limiter: what a script does."""
    app, emulator = _salesloft_app(n, 0.0)
    transport = httpx.ASGITransport(app=app)
    start = time.monotonic()
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.local",
                                 headers={"Authorization": "Bearer sandbox-key"}) as client:
        for i in range(n):
            await client.post("/v2/cadence_memberships", params={"person_id": 100000 + i, "cadence_id": 5001})
    elapsed = time.monotonic() - start
    return {"rows": n, "succeeded": len(emulator.enrolments), "requests": len(app.statuses), "seconds": round(elapsed, 1),
            "utilisation": round(len(app.statuses) / elapsed / RATE, 3), "429s": app.statuses.count(429)}


def _org(rows: int) -> tuple[dict, SalesforceEmulator]:
    org = load_seed("salesforce_org.json")
    org["leads"] = [{"id": to18(f"00Q7b{i:010d}"), "first_name": "L", "last_name": str(i)} for i in range(rows)]
    return org, SalesforceEmulator(org, api_limit=10**9)


async def _salesforce_run(rows: int, settings: SandboxSettings, limits: str) -> tuple:
    """One Salesforce assign run of ``rows`` leads against the sandbox with ``settings``;
    (result, counting app, fault layer, emulator, seconds)."""
    org, emulator = _org(rows)
    faulty = FaultyApp(SandboxApp([emulator]), settings)
    app = Counting(faulty)
    with tempfile.TemporaryDirectory() as tmp:
        job = _job(Path(tmp), "sf-bench", "salesforce", [lead["id"] for lead in org["leads"]], "Lead Id",
                   'targetId = "Lead Id"\nsalesCadenceNameOrId = { value = "Q4 Outbound" }',
                   f"{limits}\nbackoff_base = 0.05\nbackoff_max = 0.5\nmax_attempts = 8", "assign")
        prepared = prepare(load_job(job))
        start = time.monotonic()
        result = await run_prepared(prepared, output_dir=Path(tmp), sandbox_app=app, progress=False)
        elapsed = time.monotonic() - start
    return result, app, faulty, emulator, elapsed


async def salesforce(rows: int, batch: int, latency_ms: float, faults: bool) -> dict:
    settings = SandboxSettings(latency_ms=latency_ms, error_rate=0.1 if faults else 0.0,
                               reset_rate=0.05 if faults else 0.0, seed=7)
    concurrency = 4  # fixed: the ideal below divides by it
    result, app, _, emulator, elapsed = await _salesforce_run(
        rows, settings, f'concurrency = "fixed:{concurrency}"\nbatch_size = {batch}')
    # the look-ups before sending (the cadence constant) go one after another; the actions by four
    ideal = (app.methods.count("GET") + math.ceil(rows / batch) / concurrency) * latency_ms / 1000
    counts = result.summary["counts"]
    return {"rows": rows, "batch_size": batch, "faults": "10% 503 + 5% resets" if faults else "none",
            "action requests": app.methods.count("POST"), "ceil(rows/batch)": math.ceil(rows / batch),
            "look-ups (GET)": app.methods.count("GET"),
            "seconds": round(elapsed, 2), "ideal_seconds": round(ideal, 2), "wall/ideal": round(elapsed / ideal, 3),
            "final_status_rows": sum(counts.values()) - counts["not_attempted"],
            "succeeded": counts["succeeded"], "assigned_twice": sum(v > 1 for v in emulator.assignments.values())}


KNEE = 8  # scenario 6: the org works on 8 requests at once ...
LOCKS = 12  # ... and locks rows past 12 in flight
KNEE_LATENCY_MS = 300.0


def _knee_settings() -> SandboxSettings:
    return SandboxSettings(latency_ms=KNEE_LATENCY_MS, latency_jitter_ms=KNEE_LATENCY_MS / 10, seed=11,
                           knee_in_flight=KNEE, lock_in_flight=LOCKS)


async def salesforce_knee(rows: int, batch: int, concurrency: str | None) -> dict:
    """Scenario 6: one run on the org with a knee, at a fixed concurrency or adaptive (None: the
    job sets nothing). Rows/s, the share of inputs sent that met UNABLE_TO_LOCK_ROW."""
    limits = f"batch_size = {batch}" + (f"\nconcurrency = {concurrency}" if concurrency else "")
    result, app, faulty, emulator, elapsed = await _salesforce_run(rows, _knee_settings(), limits)
    sent = sum(emulator.received.values())
    reached = result.summary["concurrency"]
    return {"concurrency": concurrency or "adaptive (nothing set)", "rows": rows,
            "succeeded": result.summary["counts"]["succeeded"], "requests (with look-ups)": len(app.statuses),
            "seconds": round(elapsed, 2), "rows_per_second": int(rows / elapsed),
            "lock_error_share": round(faulty.injected.get("lock", 0) / sent, 4),
            "limit reached / final": f"{reached['reached']} / {reached['final']}",
            "peak_in_flight": faulty.peak_in_flight,
            "assigned_twice": sum(v > 1 for v in emulator.assignments.values())}


async def sequential_script(rows: int, batch: int) -> dict:
    """Scenario 6's peer: what a simple-salesforce script does -- one action request of ``batch``
    inputs after another with httpx, no concurrency, no retries -- against the same org."""
    org, emulator = _org(rows)
    faulty = FaultyApp(SandboxApp([emulator]), _knee_settings())
    app = Counting(faulty)
    ids = [lead["id"] for lead in org["leads"]]
    start = time.monotonic()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox.local",
                                 headers={"Authorization": "Bearer sandbox-token"}) as client:
        for first in range(0, rows, batch):
            inputs = [{"targetId": i, "salesCadenceNameOrId": "Q4 Outbound"} for i in ids[first:first + batch]]
            await client.post("/services/data/v62.0/actions/standard/assignTargetToSalesCadence",
                              json={"inputs": inputs}, timeout=120)
    elapsed = time.monotonic() - start
    sent = sum(emulator.received.values())
    return {"concurrency": "sequential script (httpx, one at a time)", "rows": rows,
            "succeeded": sum(emulator.assignments.values()), "requests (with look-ups)": len(app.statuses),
            "seconds": round(elapsed, 2), "rows_per_second": int(rows / elapsed),
            "lock_error_share": round(faulty.injected.get("lock", 0) / sent, 4), "peak_in_flight": faulty.peak_in_flight}


def knee_sweep(rows: int, batch: int) -> list[dict]:
    """Scenario 6: fixed 1..32, adaptive, and the sequential script; each row's share of the best fixed."""
    # one at a time takes longest and its rate is steady from the first request: a quarter of the rows
    results = [anyio.run(salesforce_knee, rows // 4 if c == 1 else rows, batch, f'"fixed:{c}"')
               for c in (1, 2, 4, 8, 16, 32)]
    best = max(r["rows_per_second"] for r in results)
    results.append(anyio.run(salesforce_knee, rows, batch, None))
    results.append(anyio.run(sequential_script, rows // 4, batch))
    default = results[2]["rows_per_second"]  # "fixed:4": today's default
    for r in results:
        r["of_best_fixed"] = round(r["rows_per_second"] / best, 3)
        r["of_fixed_4"] = round(r["rows_per_second"] / default, 3)
    return results


async def ceiling(rows: int, ceiling_inputs: int = 50, batch: int = 200) -> dict:
    """Scenario 7: a sandbox that rejects requests of more than ``ceiling_inputs`` inputs
    (LIMIT_EXCEEDED); the remembered ceiling (guards.BatchCeiling) against ceil(rows/ceiling) + 1."""
    settings = SandboxSettings(batch_ceiling=ceiling_inputs, seed=1)
    result, app, faulty, emulator, elapsed = await _salesforce_run(
        rows, settings, f'batch_size = {batch}\nconcurrency = "fixed:4"')
    calls = [n for _, n in emulator.calls]  # action requests the org accepted (the rejected never reach it)
    rejected = faulty.injected.get("batch_ceiling", 0)
    return {"rows": rows, "batch_size": batch, "ceiling": ceiling_inputs, "action requests": rejected + len(calls),
            "rejected (LIMIT_EXCEEDED)": rejected,
            "ceil(rows/ceiling)+1": math.ceil(rows / ceiling_inputs) + 1,
            "inputs per accepted request": max(calls) if calls else 0,
            "succeeded": result.summary["counts"]["succeeded"], "seconds": round(elapsed, 2)}


OUTREACH_USERS = ["", "rafael.ortiz@acme.example.com", "busy.sender@acme.example.com"]  # "" = the job's own


def outreach_users(users: int, per_user: int, budget: int = 10000, latency_ms: float = 150.0) -> dict:
    """Scenario 8: ``per_user`` enrolments for each of ``users`` users, under virtual time."""
    import trio.testing

    from batchrunner.clock import EventLoopClock
    from batchrunner.platforms.outreach.platform import OutreachPlatform
    from batchrunner.sandbox.outreach import OutreachEmulator

    owners = OUTREACH_USERS[:users]
    org = load_seed("outreach_org.json")
    org["prospects"] = [{"id": 100000 + i, "emails": [f"p{i}@x.example.com"], "first_name": "P", "last_name": str(i)}
                        for i in range(users * per_user)]
    org["sequence_states"] = []
    start = 1_800_000_000 - 1_800_000_000 % 3600  # at an hour's start: every hour but the last is a full one
    with tempfile.TemporaryDirectory() as tmp:
        configured = "".join(f'"{e}" = {{ token_env = "UNUSED" }}\n' for e in owners if e)
        job = _job(Path(tmp), "or-bench", "outreach",
                   [f"{100000 + i},{owners[i % users]}" for i in range(users * per_user)], "Prospect,Owner",
                   'prospect_id = "Prospect"\nuser_email = "Owner"\nsequence_id = { value = "303" }',
                   "concurrency = 4", "add")
        if configured:
            job.write_text(job.read_text() + f"[outreach.users]\n{configured}")
        prepared = prepare(load_job(job))

        async def run() -> tuple[object, OutreachEmulator, float]:
            clock = EventLoopClock(wall_at_start=start)
            wall = OutreachPlatform.wall
            OutreachPlatform.wall = staticmethod(clock.wall)  # X-RateLimit-Reset read on the virtual clock
            try:
                emulator = OutreachEmulator(org, budget_per_hour=budget, clock=clock.wall)
                app = FaultyApp(SandboxApp([emulator]), SandboxSettings(latency_ms=latency_ms))
                result = await run_prepared(prepared, output_dir=Path(tmp), sandbox_app=app, progress=False,
                                            clock=clock)
            finally:
                OutreachPlatform.wall = wall
            return result, emulator, clock.wall() - start

        began = time.monotonic()
        result, emulator, virtual = anyio.run(run, backend="trio",
                                              backend_options={"clock": trio.testing.MockClock(autojump_threshold=0)})
        seconds = time.monotonic() - began
    last_hour = max(hour for _, hour in emulator.budget.spent)
    shares = {}
    for user in sorted({u for u, _ in emulator.budget.spent}):
        full = [n for (u, hour), n in emulator.budget.spent.items() if u == user and hour < last_hour]
        shares[user] = round(min(full) / budget, 4) if full else None
    full_hours = last_hour - start // 3600
    in_full_hours = sum(n for (_, hour), n in emulator.budget.spent.items() if hour < last_hour)
    return {"users": users, "rows": users * per_user, "succeeded": result.summary["counts"]["succeeded"],
            "virtual_hours": round(virtual / 3600, 2), "full_hours": full_hours,
            "utilisation_per_user (min over full hours)": shares,
            "rows_per_full_hour": round(in_full_hours / full_hours) if full_hours else None,
            "429s": emulator.rejected_429, "enrolled_twice": sum(v > 1 for v in emulator.enrolments.values()),
            "real_seconds": round(seconds, 1)}


def write_big_input(tmp: Path, rows: int, sandbox_url: str | None) -> Path:
    """A ``rows``-line Salesforce assign list (half 15-, half 18-character IDs) and its job in
    ``tmp``; the sandbox in-process, or served at ``sandbox_url``. Returns the job file."""
    path = tmp / "big.csv"
    rng = random.Random(1)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["Lead Id", "First Name", "Last Name", "Company", "Email"])
        for i in range(rows):
            lead = f"00Q7b{i:010d}"
            w.writerow([lead if rng.random() < 0.5 else to18(lead), "Ada", f"L{i}", "Acme", f"a{i}@x.example.com"])
    job = tmp / "sf-million.toml"
    url = f'instance_url = "{sandbox_url}"\n' if sandbox_url else ""
    job.write_text(f'name = "sf-million"\nplatform = "salesforce"\noperation = "assign"\ninput = "big.csv"\n'
                   'output_dir = "runs"\n[columns]\ntargetId = "Lead Id"\n'
                   'salesCadenceNameOrId = { value = "Q4 Outbound" }\n[connection]\nsandbox = true\n'
                   f'{url}[sandbox]\napi_limit = 1000000000\n[limits]\nconcurrency = \"fixed:4\"\nbatch_size = 200\ncircuit_breaker = 0\n',
                   encoding="utf-8")
    return job


def local_overhead_child(rows: int, sandbox_url: str | None) -> None:
    """In a subprocess: 1M rows, zero latency; the sandbox in-process, or served on 127.0.0.1 by
    another process (sandbox_url). Prints JSON; peak RSS is this process's (the runner's)."""
    with tempfile.TemporaryDirectory() as tmp:
        job = write_big_input(Path(tmp), rows, sandbox_url)
        start = time.monotonic()
        prepared = prepare(load_job(job))
        result = anyio.run(lambda: run_prepared(prepared, output_dir=Path(tmp), progress=False))
        elapsed = time.monotonic() - start
        lines = sum(1 for _ in (result.run_dir / "results.csv").open(encoding="utf-8")) - 1
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"sandbox": "second process, 127.0.0.1" if sandbox_url else "in-process",
                      "rows": rows, "results_lines": lines, "requests": result.summary["requests_sent"],
                      "seconds": round(elapsed, 1), "rows_per_second": int(rows / elapsed),
                      "peak_rss_mb": int(peak_mb), "statuses": {k: v for k, v in result.summary["counts"].items() if v}}))


@contextlib.contextmanager
def served_sandbox(served: bool, port: int = 18765) -> Iterator[str | None]:
    """A zero-latency sandbox served by ``batchrunner sandbox`` in its own process (on the
    machine's other core), as a platform is; yields its URL (None when not ``served``)."""
    if not served:
        yield None
        return
    server = subprocess.Popen([sys.executable, "-m", "batchrunner", "sandbox", "--port", str(port),
                               "--set", "api_limit=1000000000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/services/data/", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait()


def validate_child(rows: int) -> None:
    """In a subprocess: `batchrunner validate` of ``rows`` rows (load, validate, plan; nothing
    sent). Prints JSON with this process's peak RSS."""
    from batchrunner.api import validate

    with tempfile.TemporaryDirectory() as tmp:
        job = write_big_input(Path(tmp), rows, None)
        start = time.monotonic()
        summary = validate(job)
        elapsed = time.monotonic() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": rows, "valid": summary["valid"], "seconds": round(elapsed, 1),
                      "peak_rss_mb": int(peak_mb)}))


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_curve(sizes: list[int]) -> list[dict]:
    """Scenario 6: peak RSS and rows/s of a whole run (zero-latency Salesforce sandbox served on
    127.0.0.1, as in scenario 4) and of `validate` alone, each size in a fresh process."""
    results = []
    for rows in sizes:
        with served_sandbox(True, port=18767) as url:
            run = _child("--child", str(rows), str(url))
        check = _child("--validate-child", str(rows))
        goal = 1024 if rows <= 2_000_000 else 2048 if rows <= 10_000_000 else None
        results.append({"rows": rows, "run_peak_rss_mb": run["peak_rss_mb"], "run_rows_per_second": run["rows_per_second"],
                        "run_seconds": run["seconds"], "results_lines": run["results_lines"],
                        "validate_peak_rss_mb": check["peak_rss_mb"], "validate_seconds": check["seconds"],
                        "goal_mb": goal, "met": None if goal is None else run["peak_rss_mb"] <= goal})
    return results


def local_overhead(rows: int = 1_000_000, served: bool = False) -> dict:
    """The runner in a child process; with ``served`` the sandbox runs in a third process (on the
    machine's other core), as a platform would, so the runner's own cost is what is measured."""
    with served_sandbox(served) as url:
        return _child("--child", str(rows), *([url] if url else []))


def report_html(rows: int = 1_000_000, per_event: int = 200) -> dict:
    """Scenario 5: a journal of ``rows`` outcomes in events of ``per_event`` rows, then
    report.write_html_report timed alone (the CSVs are not part of it)."""
    from datetime import UTC, datetime, timedelta

    import polars as pl

    from batchrunner.journal import Journal
    from batchrunner.report import results_frame, write_html_report

    statuses = ["succeeded"] * 90 + ["failed"] * 4 + ["invalid"] * 5 + ["skipped"]
    codes = {"failed": ["UNABLE_TO_LOCK_ROW", "INVALID_CROSS_REFERENCE_KEY", "INVALID_INPUT"],
             "invalid": ["INVALID_ID", "REQUIRED_FIELD_MISSING"], "skipped": ["DUPLICATE_ROW"]}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        journal = Journal(run_dir / "journal.sqlite")
        journal.add_rows(rows)
        start = datetime(2026, 11, 23, 12, tzinfo=UTC)
        events = rows // per_event
        journal.db.execute("BEGIN")
        for e in range(events):
            idx = list(range(e * per_event, (e + 1) * per_event))
            status = [statuses[i % len(statuses)] for i in idx]
            code = [None if s == "succeeded" else codes[s][i % len(codes[s])] for s, i in zip(status, idx)]
            at = (start + timedelta(seconds=1200 * e / events)).isoformat(timespec="milliseconds")
            journal._event("finish", {"idx": idx, "status": status, "code": code,
                                      "message": [c and f"<{c}> for row {i}" for c, i in zip(code, idx)],
                                      "attempts": [1] * per_event, "result": [None] * per_event,
                                      "at": at.replace("+00:00", "Z")})
        journal.db.execute("COMMIT")
        frame = journal.frame()
        journal.close()
        source = pl.DataFrame({"Lead Id": pl.int_range(rows, eager=True).cast(pl.String)})
        results = results_frame(source, frame, pl.Series(["assign"] * rows), None)
        counts = dict(results.group_by("_status").len().iter_rows())
        by_code = dict(results.filter(pl.col("_error_code").is_not_null()).group_by("_error_code").len().iter_rows())
        summary = {"job": "bench", "platform": "salesforce", "rows": rows, "counts": counts, "error_codes": by_code,
                   "exit_code": 1, "requests_sent": events, "budget_per_minute": None if per_event > 1 else 600}
        began = time.monotonic()
        write_html_report(run_dir, results, summary)
        seconds = time.monotonic() - began
        size = (run_dir / "report.html").stat().st_size
    return {"rows": rows, "journal finish events": events, "seconds": round(seconds, 2),
            "report.html KB": round(size / 1024, 1)}


def table(title: str, results: list[dict]) -> None:
    print(f"\n## {title}")
    keys = list(dict.fromkeys(k for r in results for k in r))
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in results:
        print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")


MEMORY_SIZES = [500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000]


def main(selected: set[str], sizes: list[int] | None = None) -> None:
    print(f"batchrunner benchmarks, {time.strftime('%Y-%m-%d %H:%M')}, python {sys.version.split()[0]}")
    if "1" in selected:
        table(f"1. Salesloft budget use ({RATE * 60:.0f}/min, latency {LATENCY_MS:.0f} ms, window {WINDOW:.0f} s)",
              [{"runner": "batchrunner", **anyio.run(salesloft_budget, 1200)},
               {"runner": "naive loop", **anyio.run(naive_loop, 200)}])
    if "2" in selected:
        table("2. Salesloft shared budget (another integration spends 30 %)",
              [{"runner": "batchrunner", **anyio.run(salesloft_budget, 500, 0.3)}])
    if "3" in selected:
        table("3. Salesforce batching and wall time (concurrency 4, latency 200 ms)",
              [anyio.run(salesforce, 8000, 200, 200.0, False), anyio.run(salesforce, 8000, 200, 200.0, True),
               anyio.run(salesforce, 450, 200, 200.0, False)])
    if "4" in selected:
        table("4. Local overhead (1,000,000 rows, zero-latency Salesforce sandbox)",
              [local_overhead(served=True), local_overhead(served=False)])
    if "5" in selected:
        table("5. report.html for 1,000,000 rows (timeline from the journal + render + write)",
              [report_html(per_event=200), report_html(per_event=1)])
    if "6" in selected:
        table(f"6. Salesforce concurrency on an org with a knee (latency {KNEE_LATENCY_MS:.0f} ms flat up to {KNEE} "
              f"in flight, then growing; lock errors past {LOCKS}): fixed sweep, adaptive, sequential script",
              knee_sweep(SIZES["knee_rows"], 200))
    if "7" in selected:
        table("7. Salesforce batch ceiling remembered (the sandbox rejects more than 50 inputs)",
              [anyio.run(ceiling, n) for n in SIZES["ceiling_rows"]])
    if "8" in selected:
        per_user = SIZES["outreach_per_user"]
        rows = [outreach_users(1, per_user), outreach_users(3, per_user)]
        if rows[0]["rows_per_full_hour"] and rows[1]["rows_per_full_hour"]:
            rows[1]["3_users / 1_user"] = round(rows[1]["rows_per_full_hour"] / rows[0]["rows_per_full_hour"], 3)
        table(f"8. Outreach per-user budgets (10,000 per user per hour, latency 150 ms, concurrency 4, "
              f"{per_user} rows per user, virtual time)", rows)
    if "9" in selected:
        table("9. Memory curve (whole run and validate alone; zero-latency Salesforce sandbox on 127.0.0.1)",
              memory_curve(sizes or MEMORY_SIZES))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        local_overhead_child(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
    elif sys.argv[1:2] == ["--validate-child"]:
        validate_child(int(sys.argv[2]))
    else:
        args = [a for a in sys.argv[1:] if a != "--tiny"]
        if "--tiny" in sys.argv:  # check the code runs, in seconds; not a measurement
            SIZES.update(knee_rows=400, ceiling_rows=[180], outreach_per_user=300)
        sizes = None
        if "--sizes" in args:  # e.g. --sizes 0.1,0.2 (millions of rows) to check scenario 9 quickly
            at = args.index("--sizes")
            sizes = [int(float(m) * 1_000_000) for m in args[at + 1].split(",")]
            del args[at:at + 2]
        main(set(args) or {"1", "2", "3", "4", "5", "6", "7", "8", "9"}, sizes)
