"""The concurrency limit's decisions (issue 19.1), on made-up latencies: no sleeping, no timing.

Unit tests feed `observe` answers whose start and end times are given, so every decision is the
arithmetic of concurrency.py; one run on the in-process sandbox with a knee (virtual time, trio's
MockClock) shows the limit settling near the knee with lock errors at most 1 %.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import trio.testing

from batchrunner import concurrency
from batchrunner.concurrency import MIN_ROUND, AdaptiveConcurrency, FixedConcurrency, Permit
from batchrunner.errors import JobError
from batchrunner.execute import overload_signal
from batchrunner.job import SandboxSettings, load_job
from batchrunner.platforms import get_platform
from batchrunner.platforms.base import RateSignal, Verdict


class Clock:
    def __init__(self) -> None:
        self.time = 0.0

    def now(self) -> float:
        return self.time


def answer_round(limit: FixedConcurrency, latency: float, *, in_flight: int | None = None, **signal) -> None:
    """A round of answers to requests sent under the current limit, each taking ``latency``."""
    epoch, size = limit.epoch, limit.limit
    for _ in range(max(MIN_ROUND, size)):
        limit.observe(Permit(0.0, epoch, size if in_flight is None else in_flight, ended=latency), **signal)


def adaptive(ceiling: int = 16, **kw) -> tuple[AdaptiveConcurrency, list[tuple[int, int, str]]]:
    changes: list[tuple[int, int, str]] = []
    limit = AdaptiveConcurrency(ceiling, clock=Clock(), on_change=lambda *c: changes.append(c), **kw)
    return limit, changes


def test_starts_low_and_grows_by_half_while_latency_stays_flat_never_past_the_ceiling() -> None:
    limit, changes = adaptive(16)
    seen = [limit.limit]
    for _ in range(6):
        answer_round(limit, 1.0)
        seen.append(limit.limit)
    assert seen == [4, 6, 9, 13, 16, 16, 16]
    assert [(old, new) for old, new, _ in changes] == [(4, 6), (6, 9), (9, 13), (13, 16)]  # one change, one line
    assert limit.describe() == {"mode": "adaptive", "ceiling": 16, "reached": 16, "final": 16, "changes": 4}


def test_slow_start_ends_at_the_first_rise_of_latency() -> None:
    limit, _ = adaptive(16)
    answer_round(limit, 1.0)  # 4 -> 6
    answer_round(limit, 1.08)  # a rise, still within tolerance: one more, no longer by half
    assert limit.limit == 7 and not limit.slow_start
    answer_round(limit, 1.0)
    assert limit.limit == 8


def test_after_congestion_it_grows_by_one_and_only_when_the_limit_was_in_use() -> None:
    limit, _ = adaptive(16)
    answer_round(limit, 1.0, overload="UNABLE_TO_LOCK_ROW")  # 4 -> 3, slow start over
    assert limit.limit == 3
    answer_round(limit, 1.0, in_flight=1)  # flat, but the limit was never full: no reason to grow
    assert limit.limit == 3
    answer_round(limit, 1.0)
    answer_round(limit, 1.0)
    assert limit.limit == 5


@pytest.mark.parametrize("signal", ["UNABLE_TO_LOCK_ROW", "HTTP_503", "TIMEOUT", "RATE_LIMITED"])
def test_an_overload_signal_cuts_once_per_round_trip(signal: str) -> None:
    limit, changes = adaptive(16, start=8)
    sent_before = [Permit(0.0, limit.epoch, 8, ended=1.0) for _ in range(8)]
    for permit in sent_before:  # eight answers of one episode: one cut, not eight
        limit.observe(permit, overload=signal)
    assert limit.limit == 6
    assert changes == [(8, 6, f"overload: {signal}")]


def test_the_platform_asking_for_fewer_requests_cuts_too() -> None:
    limit, _ = adaptive(16, start=8)
    limit.observe(Permit(0.0, limit.epoch, 8, ended=1.0), lower=True)
    assert limit.limit == 6


def test_latency_growth_brings_the_limit_back_to_the_knee() -> None:
    limit, _ = adaptive(16)
    while limit.limit < 16:
        answer_round(limit, 1.0)  # 4 -> 6 -> 9 -> 13 -> 16; baseline 1 s
    answer_round(limit, 2.0)  # twice the baseline at 16: the org works on 8 at once
    assert limit.limit == 9  # 16 / 2 + 1: the knee, and one to probe
    seen = []
    for _ in range(12):  # on a knee of 8 (latency in proportion past it), it stays just past the knee
        answer_round(limit, max(1.0, limit.limit / 8))
        seen.append(limit.limit)
    assert set(seen) <= {9, 10, 11}, seen


def test_latency_within_tolerance_is_flat() -> None:
    limit, _ = adaptive(16)
    answer_round(limit, 1.0)  # 4 -> 6
    answer_round(limit, 1.2)  # not flat enough to go on growing by half, flat enough to grow
    assert limit.limit == 7


def test_never_below_one_and_at_one_the_latency_becomes_the_baseline() -> None:
    limit, _ = adaptive(16, start=4)
    for _ in range(10):
        answer_round(limit, 1.0, overload="HTTP_503")
    assert limit.limit == 1
    answer_round(limit, 5.0)  # the org got slower: at 1 in flight that is not our queue
    assert limit.baseline == 5.0 and limit.limit == 2


def test_answers_to_requests_sent_under_an_older_limit_are_not_samples() -> None:
    limit, _ = adaptive(16)
    old = limit.epoch
    answer_round(limit, 1.0)  # 4 -> 6
    for _ in range(10):
        limit.observe(Permit(0.0, old, 4, ended=50.0))  # slow, but measured the old limit
        limit.observe(Permit(0.0, old, 4, ended=1.0), overload="HTTP_503")  # already acted on
    assert limit.limit == 6 and limit.round == []


def test_small_requests_are_no_latency_sample() -> None:
    limit, _ = adaptive(16)
    for _ in range(10):
        limit.observe(Permit(0.0, limit.epoch, 4, ended=1.0), sample=False)
    assert limit.limit == 4


def test_fixed_keeps_todays_behaviour() -> None:
    limit = FixedConcurrency(4, clock=Clock())
    for latency in (1.0, 1.0, 1.0, 10.0):
        answer_round(limit, latency)
    answer_round(limit, 1.0, overload="UNABLE_TO_LOCK_ROW")
    assert limit.limit == 4
    limit.observe(Permit(0.0, limit.epoch, 4, ended=1.0), lower=True)  # ConcurrentPerOrgLongTxn: one fewer
    assert limit.limit == 3
    assert limit.describe()["mode"] == "fixed"


def test_overload_signals_are_read_without_knowing_the_platform() -> None:
    def response(status: int) -> httpx.Response:
        return httpx.Response(status, request=httpx.Request("POST", "http://x"))

    assert overload_signal(response(503), None, Verdict()) == "HTTP_503"
    assert overload_signal(response(429), None, Verdict()) == "HTTP_429"
    assert overload_signal(None, httpx.ReadTimeout("t"), Verdict()) == "TIMEOUT"
    assert overload_signal(response(200), None, Verdict(rate=RateSignal(retry_after=3.0))) == "RATE_LIMITED"
    assert overload_signal(response(400), None, Verdict(rate=RateSignal(overload="UNABLE_TO_LOCK_ROW"))) \
        == "UNABLE_TO_LOCK_ROW"
    assert overload_signal(response(200), None, Verdict()) is None
    assert overload_signal(None, httpx.RemoteProtocolError("reset"), Verdict()) is None


def test_salesforce_reads_a_lock_error_as_overload() -> None:
    from batchrunner.platforms.base import WorkUnit
    from batchrunner.platforms.salesforce.responses import interpret

    body = [{"isSuccess": True, "outputValues": {}}, {"isSuccess": False, "errors": [
        {"statusCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access to this record"}]}]
    verdict = interpret(WorkUnit("assign", [0, 1]), httpx.Response(400, json=body))
    assert verdict.retry == [1] and verdict.rate.overload == "UNABLE_TO_LOCK_ROW"


@pytest.mark.parametrize(("platform", "written", "expected"), [
    ("salesforce", None, (True, concurrency.DEFAULT_CEILING)),
    ("salesforce", "8", (True, 8)),
    ("salesforce", '"fixed:4"', (False, 4)),
    ("salesloft", None, (False, concurrency.DEFAULT_FIXED)),
    ("salesloft", "6", (False, 6)),
    ("outreach", '"fixed:3"', (False, 3)),
])
def test_limits_concurrency_is_the_ceiling_where_adaptive(write_job, platform, written, expected) -> None:
    limits = f"[limits]\nconcurrency = {written}\n" if written else ""
    job = load_job(write_job("a\n1\n", f'platform = "{platform}"\noperation = "x"\ninput = "input.csv"\n{limits}'))
    assert concurrency.for_job(job, get_platform(platform)) == expected


@pytest.mark.parametrize("written", ['"fixed:0"', '"fixed"', '"adaptive:4"', "true", "2.5"])
def test_a_concurrency_that_means_nothing_stops_the_job(write_job, written) -> None:
    with pytest.raises(JobError, match="concurrency"):
        load_job(write_job("a\n1\n", f'platform = "salesforce"\noperation = "x"\ninput = "input.csv"\n'
                                     f"[limits]\nconcurrency = {written}\n"))


# -- a run against the sandbox with a knee ------------------------------------------------------

KNEE, LOCKS, ROWS, BATCH = 8, 12, 3000, 20


@pytest.fixture
def anyio_backend():
    return "trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}  # virtual time on both sides


@pytest.mark.anyio
async def test_a_run_settles_near_the_knee_with_few_lock_errors(tmp_path: Path, caplog) -> None:
    from batchrunner.clock import EventLoopClock
    from batchrunner.platforms.salesforce.ids import to18
    from batchrunner.runner import prepare, run_prepared
    from batchrunner.sandbox.app import SandboxApp
    from batchrunner.sandbox.faults import FaultyApp
    from batchrunner.sandbox.salesforce import SalesforceEmulator
    from batchrunner.sandbox.seeds import load_seed

    org = load_seed("salesforce_org.json")
    org["leads"] = [{"id": to18(f"00Q7b{i:010d}"), "first_name": "L", "last_name": str(i)} for i in range(ROWS)]
    emulator = SalesforceEmulator(org, api_limit=10**9)
    app = FaultyApp(SandboxApp([emulator]), SandboxSettings(latency_ms=500, latency_jitter_ms=50, seed=3,
                                                            knee_in_flight=KNEE, lock_in_flight=LOCKS))
    (tmp_path / "in.csv").write_text("Lead\n" + "\n".join(lead["id"] for lead in org["leads"]) + "\n")
    (tmp_path / "job.toml").write_text(
        'platform = "salesforce"\noperation = "assign"\ninput = "in.csv"\n[columns]\ntargetId = "Lead"\n'
        'salesCadenceNameOrId = { value = "Q4 Outbound" }\n[connection]\nsandbox = true\n'
        f"[limits]\nbatch_size = {BATCH}\nbackoff_base = 0.5\nmax_attempts = 8\n")
    caplog.set_level(logging.INFO, logger="batchrunner.run")
    result = await run_prepared(prepare(load_job(tmp_path / "job.toml")), output_dir=tmp_path, sandbox_app=app,
                                clock=EventLoopClock(), progress=False)

    reached = result.summary["concurrency"]
    assert reached["mode"] == "adaptive" and reached["ceiling"] == concurrency.DEFAULT_CEILING
    assert KNEE <= reached["final"] <= KNEE + 2, reached
    inputs_sent = sum(emulator.received.values())
    assert app.injected.get("lock", 0) <= 0.01 * inputs_sent, (app.injected, inputs_sent)
    assert result.summary["counts"]["succeeded"] == ROWS
    assert max(emulator.assignments.values()) == 1  # the sandbox's own record: nothing applied twice
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("concurrency ")]
    assert len(lines) == reached["changes"] < result.summary["requests_sent"] / 4  # per change, not per request


def test_each_change_is_one_log_line_and_goes_to_the_journal_so_resume_starts_there(tmp_path, caplog) -> None:
    from batchrunner.execute import Executor
    from batchrunner.journal import Journal
    from batchrunner.ratelimit import RateLimiter

    journal = Journal(tmp_path / "journal.sqlite")
    limit = AdaptiveConcurrency(16, clock=Clock())
    Executor(object(), None, journal, RateLimiter(None), concurrency=limit, progress=False)  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, logger="batchrunner.run")
    answer_round(limit, 1.0)
    answer_round(limit, 1.0, overload="HTTP_503")
    assert [r.getMessage() for r in caplog.records] == [
        "concurrency 4 -> 6: latency flat (1.000 s)", "concurrency 6 -> 4: overload: HTTP_503"]
    assert journal.meta()[concurrency.JOURNAL_META] == 4
    job = SimpleNamespace(limits=SimpleNamespace(concurrency=16, concurrency_mode="default"))
    resumed = concurrency.build(job, get_platform("salesforce"), start=journal.meta()[concurrency.JOURNAL_META])
    assert resumed.limit == 4 and resumed.mode == "adaptive"
    answer_round(resumed, 1.0)
    assert resumed.limit == 5  # no second slow start: it goes on from where the run was


def test_the_sandbox_knee_latency_and_locks() -> None:
    """Flat to the knee, then in proportion; past lock_in_flight an input fails UNABLE_TO_LOCK_ROW
    and is not applied (the emulator's own record), and a retry of it goes through."""
    from batchrunner import jsonio
    from batchrunner.platforms.salesforce.ids import to18
    from batchrunner.sandbox.app import SandboxApp
    from batchrunner.sandbox.base import SandboxRequest
    from batchrunner.sandbox.faults import FaultyApp
    from batchrunner.sandbox.salesforce import SalesforceEmulator
    from batchrunner.sandbox.seeds import load_seed

    org = load_seed("salesforce_org.json")
    org["leads"] = [{"id": to18(f"00Q7b{i:010d}"), "first_name": "L", "last_name": str(i)} for i in range(20)]
    emulator = SalesforceEmulator(org)
    app = FaultyApp(SandboxApp([emulator]), SandboxSettings(knee_in_flight=8, lock_in_flight=12, lock_error_rate=0.5))
    assert [app.knee_factor(n) for n in (1, 8, 12, 16)] == [1.0, 1.0, 1.5, 2.0]
    path = "/services/data/v62.0/actions/standard/assignTargetToSalesCadence"
    inputs = [{"targetId": lead["id"], "salesCadenceNameOrId": "Q4 Outbound"} for lead in org["leads"]]
    request = SandboxRequest("POST", path, [], {"authorization": "Bearer sandbox-token"},
                             jsonio.dumps({"inputs": inputs}))
    app.lock_rows(request, 12)  # at the threshold: no lock
    assert not emulator.locked_targets
    app.lock_rows(request, 14)  # two past it: each input's chance is 100 %
    assert len(emulator.locked_targets) == 20 and app.injected["lock"] == 20
    answer = emulator.handle(request)
    assert answer.status == 400 and {r["errors"][0]["statusCode"] for r in answer.body} == {"UNABLE_TO_LOCK_ROW"}
    assert not emulator.assignments
    assert emulator.handle(request).status == 200 and len(emulator.assignments) == 20
