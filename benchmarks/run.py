"""Benchmarks: does batchrunner use the platforms' budgets fully, without tripping them, and is the
local work cheap? Not part of the test suite; results are ratios measured in one run.

    python benchmarks/run.py            # all scenarios (about three minutes)
    python benchmarks/run.py 1 3        # some of them
    python benchmarks/run.py 6 --sizes 0.1,0.2   # the memory curve at 100k and 200k rows

1. Salesloft budget use: N enrolments against the sandbox at a known budget and latency;
   achieved requests/minute / budget and 429s, and the same for a naive sequential httpx loop.
2. Salesloft shared budget: another integration spends 30 % of it; utilisation of the rest, 429s.
3. Salesforce: rows -> requests (must be ceil(rows / batch_size)); wall time / ideal
   (requests x latency / concurrency); again with 10 % injected 503s and resets.
4. Local overhead: 1,000,000 rows through load + validate + plan + execute + report against the
   zero-latency Salesforce sandbox: rows per second and the runner's peak RSS (in a subprocess).
   Twice: the sandbox served by a second process on 127.0.0.1 (as a platform is: the runner's own
   cost, the goal's measure), and in-process (the emulator's work added to the runner's).
5. report.html for a 1,000,000-row run: the time to read the journal's timeline, render the page
   and write it, and the page's size; from a journal shaped like a Salesforce run (5,000 finish
   events of 200 rows) and like a Salesloft run (1,000,000 events of one row), over 20 minutes.
6. Memory curve: rows vs peak RSS and rows/s of a whole run at 0.5, 1, 2, 5 and 10 M rows (as in
   4, sandbox served on 127.0.0.1), and the peak RSS of `validate` alone; each in a fresh process.
   ``python benchmarks/run.py 6 --sizes 0.1,0.2`` checks it quickly at small sizes.

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
    """Wraps an ASGI app; counts statuses (for 429s)."""

    def __init__(self, app) -> None:
        self.app, self.statuses = app, []

    async def __call__(self, scope, receive, send):
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


async def salesforce(rows: int, batch: int, latency_ms: float, faults: bool) -> dict:
    org = load_seed("salesforce_org.json")
    org["leads"] = [{"id": to18(f"00Q7b{i:010d}"), "first_name": "L", "last_name": str(i)} for i in range(rows)]
    emulator = SalesforceEmulator(org, api_limit=10**9)
    settings = SandboxSettings(latency_ms=latency_ms, error_rate=0.1 if faults else 0.0,
                               reset_rate=0.05 if faults else 0.0, seed=7)
    app = Counting(FaultyApp(SandboxApp([emulator]), settings))
    concurrency = 4
    with tempfile.TemporaryDirectory() as tmp:
        job = _job(Path(tmp), "sf-bench", "salesforce", [lead["id"] for lead in org["leads"]], "Lead Id",
                   'targetId = "Lead Id"\nsalesCadenceNameOrId = { value = "Q4 Outbound" }',
                   f"concurrency = {concurrency}\nbatch_size = {batch}\nbackoff_base = 0.05\nbackoff_max = 0.5\n"
                   "max_attempts = 8", "assign")
        prepared = prepare(load_job(job))
        start = time.monotonic()
        result = await run_prepared(prepared, output_dir=Path(tmp), sandbox_app=app, progress=False)
        elapsed = time.monotonic() - start
    ideal = math.ceil(rows / batch) * latency_ms / 1000 / concurrency
    counts = result.summary["counts"]
    return {"rows": rows, "batch_size": batch, "faults": "10% 503 + 5% resets" if faults else "none",
            "requests": len(app.statuses), "ceil(rows/batch)": math.ceil(rows / batch),
            "seconds": round(elapsed, 2), "ideal_seconds": round(ideal, 2), "wall/ideal": round(elapsed / ideal, 3),
            "final_status_rows": sum(counts.values()) - counts["not_attempted"],
            "succeeded": counts["succeeded"], "assigned_twice": sum(v > 1 for v in emulator.assignments.values())}


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
                   f'{url}[sandbox]\napi_limit = 1000000000\n[limits]\nconcurrency = 4\nbatch_size = 200\ncircuit_breaker = 0\n',
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
        table("6. Memory curve (whole run and validate alone; zero-latency Salesforce sandbox on 127.0.0.1)",
              memory_curve(sizes or MEMORY_SIZES))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        local_overhead_child(int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
    elif sys.argv[1:2] == ["--validate-child"]:
        validate_child(int(sys.argv[2]))
    else:
        args = sys.argv[1:]
        sizes = None
        if "--sizes" in args:  # e.g. --sizes 0.1,0.2 (millions of rows) to check scenario 6 quickly
            at = args.index("--sizes")
            sizes = [int(float(m) * 1_000_000) for m in args[at + 1].split(",")]
            del args[at:at + 2]
        main(set(args) or {"1", "2", "3", "4", "5", "6"}, sizes)
