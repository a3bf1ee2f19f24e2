"""Issue 13 ("Hangs") and issue 14's bounds: what a server can make a run do.

A Retry-After of years, a body that drips a byte at a time or never ends, a signal while every
worker waits on the rate limiter, a run failing every row the same way. Virtual time (FakeClock)
wherever the wait is the server's; a real socket where the slowness is.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import socket
import threading
import time
from pathlib import Path

import anyio
import httpx
import pytest

from batchrunner.bounded import BoundedTransport, ResponseTooLarge, bound_client
from batchrunner.clock import FakeClock
from batchrunner.errors import JobError
from batchrunner.execute import Executor, RetryPolicy
from batchrunner.journal import Journal
from batchrunner.platforms.base import RateSignal, WorkUnit
from batchrunner.platforms.salesforce.operations import CATALOG
from batchrunner.platforms.salesforce.platform import SalesforceSession
from batchrunner.ratelimit import RateLimiter, ServerWaitTooLong

pytestmark = pytest.mark.anyio


class Rows:
    def __init__(self, n: int) -> None:
        self.data = [{"targetId": f"00Q5e00000{i:05d}", "salesCadenceNameOrId": "Q4"} for i in range(n)]

    def rows(self, indices):
        return [self.data[i] for i in indices]


def executor_for(tmp_path: Path, client: httpx.AsyncClient, n: int, *, max_attempts: int = 3,
                 circuit_breaker: int = 0, concurrency: int = 1, max_server_wait: float = 900.0):
    session = SalesforceSession(client, CATALOG, "62.0", 200)
    journal = Journal(tmp_path / "j.sqlite")
    journal.add_rows(n)
    clock = FakeClock()
    limiter = RateLimiter(None, clock=clock, rng=random.Random(1), max_server_wait=max_server_wait)
    executor = Executor(session, Rows(n), journal, limiter, concurrency=concurrency,
                        policy=RetryPolicy(max_attempts, 1.0, 30.0), clock=clock, rng=random.Random(1),
                        progress=False, circuit_breaker=circuit_breaker)
    return executor, journal, clock


def mock_client(handler, **bounds) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url="http://sf", transport=httpx.MockTransport(handler))
    return bound_client(client, timeout=bounds.get("timeout", 5.0), max_bytes=bounds.get("max_bytes", 1 << 20))


def per_input(request: httpx.Request, fail_code: str | None = None) -> list[dict]:
    inputs = json.loads(request.content)["inputs"]
    if fail_code is None:
        return [{"isSuccess": True, "errors": None, "outputValues": {}} for _ in inputs]
    return [{"isSuccess": False, "errors": [{"statusCode": fail_code, "message": "no such lead"}]} for _ in inputs]


# -- 10. a server-driven wait is capped ------------------------------------------------------
@pytest.mark.parametrize("header", ["1e9", "inf", "86400"])
async def test_a_retry_after_past_the_cap_stops_the_run_resumably(tmp_path: Path, header: str) -> None:
    def handler(request):
        return httpx.Response(503, headers={"Retry-After": header}, json=[{"errorCode": "X", "message": "later"}])

    executor, journal, clock = executor_for(tmp_path, mock_client(handler), 3)
    stats = await executor.run([[WorkUnit("assign", [0]), WorkUnit("assign", [1, 2])]], 3)
    assert stats.stopped is not None and stats.stopped[0] == "SERVER_WAIT_TOO_LONG"
    assert "limits.max_server_wait = 900 s" in stats.stopped[1] and "resume" in stats.stopped[1]
    assert clock.slept < 1  # no decades asleep holding the job lock
    assert stats.requests == 1
    assert journal.indices("pending") == [0, 1, 2]  # all left for `resume`


@pytest.mark.parametrize("seconds", [-5.0, float("nan")])
def test_a_negative_or_nan_retry_after_is_no_wait(seconds: float) -> None:
    clock = FakeClock()
    limiter = RateLimiter(None, clock=clock, rng=random.Random(1))
    limiter.observe(RateSignal(retry_after=seconds))
    assert 0 <= limiter.paused_until - clock.now() <= 1.0  # jitter only


async def test_a_retry_after_under_the_cap_is_obeyed(tmp_path: Path) -> None:
    calls = []

    def handler(request):
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(503, headers={"Retry-After": "600"}, json=[{"errorCode": "X", "message": "later"}])
        return httpx.Response(200, json=per_input(request))

    executor, journal, clock = executor_for(tmp_path, mock_client(handler), 1)
    stats = await executor.run([[WorkUnit("assign", [0])]], 1)
    assert stats.stopped is None and 600 <= clock.slept <= 601
    assert journal.all_rows()[0][2] == "succeeded"


@pytest.mark.parametrize("platform", ["salesforce", "salesloft", "outreach"])
@pytest.mark.parametrize("header", ["Wed, 21 Oct 2099 07:28:00 GMT", "soon", ""])
def test_an_http_date_or_garbage_retry_after_is_not_a_wait(platform: str, header: str) -> None:
    """No platform documents an HTTP-date Retry-After: one is ignored, and a 429 then waits
    for the next window (at most a minute), never until 2099."""
    import importlib

    module = importlib.import_module(f"batchrunner.platforms.{platform}."
                                     f"{'platform' if platform == 'salesloft' else 'responses'}")
    response = httpx.Response(429, headers={"Retry-After": header})
    signal = (module.rate_signal(response, lambda: 1.8e9, 4.0) if platform == "outreach"
              else module.rate_signal(response))
    assert signal.retry_after is None and signal.pause_all
    clock = FakeClock()
    limiter = RateLimiter(None, clock=clock, rng=random.Random(1))
    limiter.observe(signal)
    assert limiter.paused_until - clock.now() <= 62


def test_the_limiter_raises_past_its_own_cap() -> None:
    limiter = RateLimiter(None, clock=FakeClock(), max_server_wait=30)
    with pytest.raises(ServerWaitTooLong) as caught:
        limiter.observe(RateSignal(retry_after=31, api_used=5, api_limit=10))
    assert caught.value.code == "SERVER_WAIT_TOO_LONG"
    assert limiter.api_used == 5  # the rest of the signal still counted


# -- 11. a whole-request deadline ------------------------------------------------------------
class DripServer:
    """A real HTTP server on 127.0.0.1 that sends its headers, then one byte every ``gap`` s."""

    def __init__(self, gap: float = 0.05, size: int = 10_000) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.gap, self.size = gap, size
        self.requests = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.05)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            self.requests += 1
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % self.size)
                for _ in range(self.size):
                    if self.stop.is_set():
                        return
                    conn.sendall(b" ")
                    time.sleep(self.gap)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def drip():
    server = DripServer()
    yield server
    server.close()


def bounded_job(**limits):
    from batchrunner.job import Connection, Job, Limits

    return Job(name="t", platform="salesforce", path=Path("job.toml"), input=Path("in.csv"),
               output_dir=Path("runs"), columns={}, operation="assign",
               connection=Connection(sandbox=False), limits=Limits(**limits))


async def test_a_dripping_server_times_out_on_the_whole_request(drip: DripServer) -> None:
    from batchrunner.runner import _client_factory

    client = _client_factory(bounded_job(timeout=0.4), None)(drip.url, {})
    async with client:  # the drip would take 500 s: only the whole-request deadline ends it
        with pytest.raises(httpx.ReadTimeout, match="limits.timeout = 0.4 s"):
            await client.get("/")  # every byte comes within the per-read timeout; the whole does not


async def test_a_dripped_answer_is_a_lost_answer_for_the_session(tmp_path: Path, drip: DripServer) -> None:
    """Through the executor: a timed-out assign (safe to repeat) is retried, then reported TIMEOUT;
    a timed-out pause (not safe to repeat) is UNKNOWN_OUTCOME after one send."""
    from batchrunner.runner import _client_factory

    client = _client_factory(bounded_job(timeout=0.2), None)(drip.url, {})
    executor, journal, _ = executor_for(tmp_path, client, 2, max_attempts=2)
    async with client:
        await executor.run([[WorkUnit("assign", [0]), WorkUnit("pause", [1])]], 2)
    rows = journal.all_rows()
    assert rows[0][2:4] == ("failed", "TIMEOUT") and rows[0][5] == 2
    assert rows[1][2:4] == ("failed", "UNKNOWN_OUTCOME") and rows[1][5] == 1
    # 3 action sends (assign twice, pause once), and before each re-send decision a state read
    # (ActionCadenceTracker) that timed out too, tried max_attempts = 2 times: 3 + 3 x 2
    assert drip.requests == 9


# -- 13. the response size cap ----------------------------------------------------------------
class Endless(httpx.AsyncByteStream):
    """A body that never ends (no Content-Length): only the cap stops it."""

    def __init__(self) -> None:
        self.sent = 0

    async def __aiter__(self):
        while True:
            self.sent += 65536
            yield b"x" * 65536


async def test_a_body_past_the_cap_is_not_read() -> None:
    stream = Endless()
    client = mock_client(lambda request: httpx.Response(200, stream=stream), max_bytes=1 << 20)
    with pytest.raises(ResponseTooLarge, match="max_response_bytes = 1048576"):
        await client.get("/")
    assert stream.sent <= (1 << 20) + 65536  # stopped reading at the cap


async def test_a_declared_length_past_the_cap_is_refused_before_reading() -> None:
    transport = BoundedTransport(httpx.MockTransport(lambda r: httpx.Response(200, content=b"y" * 5000)),
                                 timeout=5, max_bytes=4999)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(ResponseTooLarge, match="5000 bytes"):
            await client.get("http://x/")
        ok = BoundedTransport(httpx.MockTransport(lambda r: httpx.Response(200, json={"a": 1})), timeout=5,
                              max_bytes=4999)
    async with httpx.AsyncClient(transport=ok) as client:
        assert (await client.get("http://x/")).json() == {"a": 1}


async def test_too_large_rows_are_reported_as_maybe_applied(tmp_path: Path) -> None:
    def handler(request):
        return httpx.Response(200, stream=Endless())

    executor, journal, _ = executor_for(tmp_path, mock_client(handler, max_bytes=100_000), 2, max_attempts=2)
    stats = await executor.run([[WorkUnit("assign", [0]), WorkUnit("pause", [1])]], 2)
    rows = journal.all_rows()
    assert rows[0][2:4] == ("failed", "RESPONSE_TOO_LARGE")  # resendable: sent again (reconciled), then given up
    assert "gave up after 2 attempts" in rows[0][4]
    assert rows[1][2:4] == ("failed", "UNKNOWN_OUTCOME") and "ResponseTooLarge" in rows[1][4]
    assert stats.transport_errors == 9  # 3 sends, and 3 state reads tried twice each, all past the cap


async def test_look_ups_are_capped_too(tmp_path: Path) -> None:
    executor, _, _ = executor_for(tmp_path, mock_client(lambda r: httpx.Response(200, stream=Endless()),
                                                        max_bytes=10_000), 1, max_attempts=2)
    with pytest.raises(ResponseTooLarge):
        await executor.io.request("GET", "/services/data/v62.0/query")
    assert executor.stats.requests == 2


# -- 14.9 the circuit breaker -----------------------------------------------------------------
async def test_the_breaker_opens_when_the_first_requests_all_fail_the_same_way(tmp_path: Path) -> None:
    sent = []

    def handler(request):
        sent.append(1)
        return httpx.Response(400, json=per_input(request, "INVALID_CROSS_REFERENCE_KEY"))

    executor, journal, _ = executor_for(tmp_path, mock_client(handler), 100, circuit_breaker=5)
    stats = await executor.run([[WorkUnit("assign", [i, i + 1]) for i in range(0, 100, 2)]], 100)
    assert len(sent) == 5
    code, message = stats.stopped
    assert code == "CIRCUIT_OPEN"
    assert "first 5 requests" in message and "10 rows" in message and "INVALID_CROSS_REFERENCE_KEY" in message
    assert "limits.circuit_breaker = 0" in message and "resume" in message
    assert len(journal.indices("pending")) == 90


@pytest.mark.parametrize("breaker, first_ok", [(0, False), (5, True)])
async def test_the_breaker_stays_shut(tmp_path: Path, breaker: int, first_ok: bool) -> None:
    """Off (0), or a success among the first requests: every row is sent."""
    sent = []

    def handler(request):
        sent.append(1)
        if first_ok and len(sent) == 3:
            return httpx.Response(200, json=per_input(request))
        return httpx.Response(400, json=per_input(request, "INVALID_CROSS_REFERENCE_KEY"))

    executor, journal, _ = executor_for(tmp_path, mock_client(handler), 20, circuit_breaker=breaker)
    stats = await executor.run([[WorkUnit("assign", [i]) for i in range(20)]], 20)
    assert stats.stopped is None and len(sent) == 20


# -- 14.11 nonsensical [limits] -----------------------------------------------------------------
@pytest.mark.parametrize("line, message", [
    ("requests_per_minute = 0", "requests_per_minute must be at least 1"),
    ("timeout = 0", "timeout must be more than 0"),
    ("timeout = nan", "timeout must be a finite number"),
    ("timeout = inf", "timeout must be a finite number"),
    ("backoff_max = nan", "backoff_max must be a finite number"),
    ("max_server_wait = 0", "max_server_wait must be more than 0"),
    ("max_response_bytes = 0", "max_response_bytes must be at least 1"),
    ("circuit_breaker = -1", "must not be negative"),
    ("timeout = -1.0", "must not be negative"),
])
def test_nonsensical_limits_are_refused(write_job, line: str, message: str) -> None:
    from batchrunner.job import load_job

    path = write_job("Email\na@b.c\n", f"""
        name = "t"
        platform = "salesloft"
        operation = "add"
        input = "input.csv"
        [columns]
        person_email = "Email"
        cadence_name = {{ value = "Q4" }}
        [connection]
        sandbox = true
        [limits]
        {line}
        """)
    with pytest.raises(JobError, match=message):
        load_job(path)


def test_the_new_limits_have_their_documented_defaults() -> None:
    from batchrunner.job import Limits

    limits = Limits()
    assert (limits.max_server_wait, limits.max_response_bytes, limits.circuit_breaker) == (3900.0, 32 << 20, 20)
    doc = (Path(__file__).resolve().parents[1] / "docs" / "limits.md").read_text(encoding="utf-8")
    for name, spec in Limits.__dataclass_fields__.items():
        assert f"`{name}`" in doc or not spec.init, name  # init=False: derived, not a key


async def test_stop_with_nothing_in_flight_ends_the_wave_at_once(tmp_path: Path) -> None:
    """Workers held by a long 429 pause are not waited for once the run stops."""
    def handler(request):
        return httpx.Response(200, json=per_input(request))

    from batchrunner.clock import SystemClock

    executor, journal, _ = executor_for(tmp_path, mock_client(handler), 4, concurrency=2)
    executor.clock = executor.limiter.clock = SystemClock()  # a real wait: only the stop ends it
    executor.limiter.pause(500)

    async def stop_soon() -> None:
        await anyio.sleep(0.01)
        executor.request_stop("INTERRUPTED", "stopped by SIGTERM")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_soon)
            stats = await executor.run([[WorkUnit("assign", [i]) for i in range(4)]], 4)
    assert stats.requests == 0 and journal.indices("pending") == [0, 1, 2, 3]


# -- 12. a signal while every worker waits on the rate limiter ---------------------------------
def _sends(runs: Path) -> int:
    """Requests a running run has sent so far, read from its journal (WAL: readable meanwhile)."""
    import sqlite3

    for path in runs.glob("*/journal.sqlite"):
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                return db.execute("SELECT count(*) FROM events WHERE kind = 'start'").fetchone()[0]
        except sqlite3.Error:
            return 0
    return 0


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGHUP"])
def test_a_signal_while_everyone_waits_stops_at_once_and_resume_finishes(tmp_path: Path, signum: str) -> None:
    """Past the first few requests the served sandbox answers only 429s (no Retry-After): every
    worker waits for the next clock minute. A SIGTERM or SIGHUP then ends the run at once (nothing
    is in flight), exit 3 with the reports; `resume` against a healthy sandbox finishes the rest and
    no target is assigned twice across the two."""
    import signal
    import subprocess
    import sys

    from test_crash_resume import SF_CSV, SF_JOB, _audit, _check_final, _only_run_dir, _rows

    from conftest import cli, copy_demo_job, sandbox_server

    with sandbox_server("burst_429_every=6", "burst_429_length=1000000") as stormy, sandbox_server() as healthy:
        job = copy_demo_job(tmp_path, SF_JOB, SF_CSV, stormy, batch_size=1, concurrency=2)
        proc = subprocess.Popen([sys.executable, "-m", "batchrunner", "run", str(job), "--no-progress"],
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # watch the run's own journal (polling the sandbox would shift its every-6th count)
            seen, still_since, deadline = 0, time.monotonic(), time.monotonic() + 60
            while seen < 1 or time.monotonic() - still_since < 0.6:  # no new send for a while: all wait
                count = _sends(tmp_path / "runs")
                if count != seen:
                    seen, still_since = count, time.monotonic()
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
            signalled = time.monotonic()
            proc.send_signal(getattr(signal, signum))
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
        assert time.monotonic() - signalled < 8, "waited on the rate limiter instead of stopping"
        assert proc.returncode == 3, err
        assert signum in err and "stopped early: INTERRUPTED" in out
        run_dir = _only_run_dir(tmp_path)
        assert any(r["_status"] == "not_attempted" for r in _rows(run_dir / "results.csv"))
        if signum == "SIGHUP":
            return  # the same stop as SIGTERM from here: resumed once, below
        job.write_text(job.read_text(encoding="utf-8").replace(stormy, healthy), encoding="utf-8")
        done = cli("resume", str(run_dir), "--no-progress", cwd=tmp_path)
        assert done.returncode == 1, done.stderr  # the demo's failed and invalid rows, nothing else
        _check_final(tmp_path, run_dir, SF_CSV)
        first = _audit(stormy)["SalesforceEmulator"]["assignments"]
        second = _audit(healthy)["SalesforceEmulator"]["assignments"]
        assert second and not set(first) & set(second) and max({**first, **second}.values()) == 1


# -- issue 19 item 3: the batch ceiling is remembered ------------------------------------------
def test_a_size_rejection_is_remembered_for_the_rest_of_the_run(tmp_path: Path, write_job) -> None:
    """400 rows in units of 100 against a sandbox that takes at most 50 inputs: the first unit is
    split once (100 -> 50 + 50), every later one is cut to 50 up front instead of being rejected
    and split again; the ceiling is in the journal for `resume`."""
    import math

    from batchrunner.job import load_job
    from batchrunner.platforms.salesforce.ids import to18
    from batchrunner.runner import prepare, run_prepared

    leads = [to18(f"00Q5e{n:010d}") for n in range(1000, 1400)]  # well-formed, unknown to the org
    path = write_job("Lead Id\n" + "\n".join(leads) + "\n", """
        name = "ceiling"
        platform = "salesforce"
        operation = "assign"
        input = "input.csv"
        output_dir = "runs"
        [columns]
        targetId = "Lead Id"
        salesCadenceNameOrId = { value = "Q4 Outbound" }
        [connection]
        sandbox = true
        [limits]
        batch_size = 100
        concurrency = 1
        circuit_breaker = 0
        [sandbox]
        batch_ceiling = 50
        """)
    result = anyio.run(lambda: run_prepared(prepare(load_job(path)), progress=False))
    summary = result.summary
    assert summary["batch_splits"] == 1  # was 4: every 100 rejected, then split
    assert summary["requests_sent"] <= math.ceil(400 / 50) + 3  # + the rejected 100, + look-ups
    assert summary["http_statuses"].get("400", 0) >= math.ceil(400 / 50)  # unknown leads: per-input failures
    journal = Journal(result.run_dir / "journal.sqlite")
    try:
        assert journal.meta()["batch_ceiling"] == {"assign": 50}
    finally:
        journal.close()


async def test_resume_starts_with_the_remembered_ceiling(tmp_path: Path) -> None:
    sizes = []

    def handler(request):
        sizes.append(len(json.loads(request.content)["inputs"]))
        return httpx.Response(200, json=per_input(request))

    from batchrunner.guards import BatchCeiling

    executor, journal, _ = executor_for(tmp_path, mock_client(handler), 120)
    journal.set_meta(batch_ceiling={"assign": 50})  # what the stopped run learnt
    executor.ceiling = BatchCeiling(journal)  # as a new process reads it
    await executor.run([[WorkUnit("assign", list(range(120)))]], 120)
    assert sizes == [50, 50, 20]


async def test_a_rejection_that_names_its_limit_is_cut_to_it_at_once(tmp_path: Path) -> None:
    """180 rows, a platform taking 50 that says so: one rejected request, then ceil(180/50)."""
    sizes = []

    def handler(request):
        inputs = json.loads(request.content)["inputs"]
        sizes.append(len(inputs))
        if len(inputs) > 50:
            return httpx.Response(400, json=[{"errorCode": "LIMIT_EXCEEDED",
                                              "message": f"too many inputs: {len(inputs)} (at most 50)"}])
        return httpx.Response(200, json=per_input(request))

    executor, journal, _ = executor_for(tmp_path, mock_client(handler), 180)
    await executor.run([[WorkUnit("assign", list(range(180)))]], 180)
    assert sizes[0] == 180 and len(sizes) == math.ceil(180 / 50) + 1
    assert max(sizes[1:]) == 50 and sum(sizes[1:]) == 180
    assert journal.meta()["batch_ceiling"] == {"assign": 50}


def test_only_a_named_size_below_the_rejected_one_is_taken() -> None:
    from batchrunner.guards import named_limit

    assert named_limit("too many inputs: 180 (at most 50)", 180) == 50
    assert named_limit("Maximum of 100 inputs per request", 180) == 100
    assert named_limit("The request exceeds the limit of 200 records", 180) is None  # not below 180
    assert named_limit("Request too large", 180) is None
    assert named_limit("", 180) is None


async def test_a_bad_row_split_does_not_lower_the_ceiling(tmp_path: Path) -> None:
    sizes = []

    def handler(request):
        inputs = json.loads(request.content)["inputs"]
        sizes.append(len(inputs))
        if any(i["targetId"] == "T5" for i in inputs):
            return httpx.Response(400, json=[{"errorCode": "INVALID_FIELD", "message": "bad T5"}])
        return httpx.Response(200, json=per_input(request))

    executor, _, _ = executor_for(tmp_path, mock_client(handler), 16)
    await executor.run([[WorkUnit("assign", list(range(8))), WorkUnit("assign", list(range(8, 16)))]], 16)
    assert sizes.count(8) == 2 and executor.ceiling.limit("assign") is None


async def test_a_look_up_that_keeps_failing_stops_the_run_resumably(tmp_path: Path) -> None:
    """A look-up (before anything is sent) whose answer is always too large: exit 3, rows pending."""
    class LookingUp(SalesforceSession):
        async def prepare(self, units, rows, io):
            await io.request("GET", "/services/data/v62.0/query")
            return units

    client = mock_client(lambda r: httpx.Response(200, stream=Endless()), max_bytes=10_000)
    executor, journal, _ = executor_for(tmp_path, client, 2, max_attempts=2)
    executor.session = LookingUp(client, CATALOG, "62.0", 200)
    stats = await executor.run([[WorkUnit("assign", [0, 1])]], 2)
    assert stats.stopped[0] == "RESPONSE_TOO_LARGE" and "failed 2 times" in stats.stopped[1]
    assert journal.indices("pending") == [0, 1]


async def test_a_stop_keeps_rows_a_lost_answer_may_have_applied_in_flight(tmp_path: Path) -> None:
    """A timeout, then a Retry-After past the cap: the timed-out row is not released as never
    sent (resume would send it blind); it stays in flight for resume to check."""
    calls = []

    def handler(request):
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ReadTimeout("lost", request=request)
        return httpx.Response(503, headers={"Retry-After": "1e9"}, json=[{"errorCode": "X", "message": "later"}])

    executor, journal, _ = executor_for(tmp_path, mock_client(handler), 2)
    stats = await executor.run([[WorkUnit("assign", [0]), WorkUnit("assign", [1])]], 2)
    assert stats.stopped[0] == "SERVER_WAIT_TOO_LONG"
    states = {row[0]: row[1] for row in journal.all_rows()}
    assert states[0] == "in_flight"


def test_sighup_stops_a_run_unless_it_is_ignored_as_under_nohup() -> None:
    import signal

    from batchrunner.runner import stop_signals

    assert signal.SIGHUP in stop_signals() and signal.SIGTERM in stop_signals()
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        assert signal.SIGHUP not in stop_signals() and signal.SIGINT in stop_signals()
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_request_that_never_left_fails_before_the_whole_request_deadline() -> None:
    """Connecting gives up at half of limits.timeout: a ConnectTimeout/PoolTimeout (never sent,
    safe to send again) comes before the deadline's ReadTimeout (maybe applied)."""
    from batchrunner.runner import _client_factory

    client = _client_factory(bounded_job(timeout=0.4), None)("http://127.0.0.1:9", {})
    assert (client.timeout.connect, client.timeout.pool, client.timeout.read) == (0.2, 0.2, 0.4)


async def test_a_compressed_body_counts_its_decoded_size() -> None:
    """2 MB of zeros gzip to ~2 KB: under the cap on the wire, over it once decoded."""
    import gzip

    body = gzip.compress(b"0" * 2_000_000)
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    client = mock_client(lambda r: httpx.Response(200, headers=headers, content=body), max_bytes=1_000_000)
    with pytest.raises(ResponseTooLarge):
        await client.get("/")
    small = gzip.compress(json.dumps({"ok": [1] * 1000}).encode())
    client = mock_client(lambda r: httpx.Response(200, headers=headers, content=small), max_bytes=1_000_000)
    assert (await client.get("/")).json() == {"ok": [1] * 1000}  # decoded once, not twice
