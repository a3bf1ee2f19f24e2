"""The executor over a Salesforce session and an httpx mock transport (no sandbox, no network)."""

import json
import random

import httpx
import pytest

from batchrunner.clock import FakeClock
from batchrunner.execute import Executor, RetryPolicy
from batchrunner.journal import Journal
from batchrunner.platforms.base import WorkUnit
from batchrunner.platforms.salesforce.operations import CATALOG
from batchrunner.platforms.salesforce.platform import SalesforceSession
from batchrunner.ratelimit import RateLimiter

pytestmark = pytest.mark.anyio


class Rows:
    def __init__(self, n):
        self.data = [{"targetId": f"T{i}", "salesCadenceNameOrId": "Q4"} for i in range(n)]

    def rows(self, indices):
        return [self.data[i] for i in indices]


def setup(tmp_path, handler, n, concurrency=2, max_attempts=4):
    client = httpx.AsyncClient(base_url="http://sf", transport=httpx.MockTransport(handler))
    session = SalesforceSession(client, CATALOG, "62.0", 200)
    journal = Journal(tmp_path / "j.sqlite")
    journal.add_rows(n)
    clock = FakeClock()
    executor = Executor(session, Rows(n), journal, RateLimiter(None, clock=clock), concurrency=concurrency,
                        policy=RetryPolicy(max_attempts, 1.0, 30.0), clock=clock, rng=random.Random(1),
                        progress=False)
    return executor, journal, clock


def outcomes(journal):
    return {r[0]: (r[2], r[3], r[5], r[6]) for r in journal.all_rows()}


def per_input(inputs, fail=()):
    return [{"actionName": "a", "isSuccess": inp["targetId"] not in fail,
             "errors": None if inp["targetId"] not in fail else [{"statusCode": "UNKNOWN_EXCEPTION", "message": f"no {inp['targetId']}"}],
             "outputValues": {"output": {"echo": inp["targetId"]}}} for inp in inputs]


async def test_responses_map_back_to_rows_by_position(tmp_path):
    def handler(request):
        inputs = json.loads(request.content)["inputs"]
        body = per_input(inputs, fail={"T3"})
        return httpx.Response(400 if any(not b["isSuccess"] for b in body) else 200, json=body)

    executor, journal, _ = setup(tmp_path, handler, 5)
    units = [WorkUnit("assign", [0, 1, 2]), WorkUnit("assign", [3, 4])]
    stats = await executor.run([units], 5)
    got = outcomes(journal)
    assert stats.requests == 2
    for i in (0, 1, 2, 4):
        assert got[i][0] == "succeeded" and json.loads(got[i][3]) == {"echo": f"T{i}"}
    assert got[3][:2] == ("failed", "UNKNOWN_EXCEPTION")


async def test_transient_errors_retry_with_backoff_and_honest_attempts(tmp_path):
    calls = {"n": 0}

    def handler(request):
        calls["n"] += 1
        if calls["n"] <= 2:
            return httpx.Response(503, json=[{"errorCode": "SERVER_UNAVAILABLE", "message": "busy"}])
        return httpx.Response(200, json=per_input(json.loads(request.content)["inputs"]))

    executor, journal, clock = setup(tmp_path, handler, 2)
    stats = await executor.run([[WorkUnit("assign", [0, 1])]], 2)
    assert {v[0] for v in outcomes(journal).values()} == {"succeeded"}
    assert {v[2] for v in outcomes(journal).values()} == {3}
    assert stats.retries == 2 and stats.requests == 3
    assert clock.slept <= 1.0 + 2.0  # full jitter within base * 2^(n-1)


async def test_retries_run_out_and_keep_last_error(tmp_path):
    executor, journal, _ = setup(tmp_path, lambda r: httpx.Response(500, json=[{"errorCode": "X", "message": "boom"}]), 1)
    await executor.run([[WorkUnit("assign", [0])]], 1)
    status, code, attempts, _ = outcomes(journal)[0]
    assert (status, code, attempts) == ("failed", "HTTP_500", 4)


async def test_request_level_rejection_is_bisected_to_the_bad_row(tmp_path):
    def handler(request):
        inputs = json.loads(request.content)["inputs"]
        if any(i["targetId"] == "T5" for i in inputs):
            return httpx.Response(400, json=[{"errorCode": "INVALID_FIELD", "message": "bad T5"}])
        return httpx.Response(200, json=per_input(inputs))

    executor, journal, _ = setup(tmp_path, handler, 8)
    stats = await executor.run([[WorkUnit("assign", list(range(8)))]], 8)
    got = outcomes(journal)
    assert got[5][:2] == ("failed", "INVALID_FIELD")
    assert all(got[i][0] == "succeeded" for i in range(8) if i != 5)
    assert stats.splits == 3  # 8 -> 4 -> 2 -> 1


async def test_lock_row_retries_that_input_only(tmp_path):
    seen = []

    def handler(request):
        inputs = json.loads(request.content)["inputs"]
        seen.append([i["targetId"] for i in inputs])
        body = per_input(inputs)
        if len(seen) == 1:
            body[1] = {"isSuccess": False, "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "locked"}]}
        return httpx.Response(400 if len(seen) == 1 else 200, json=body)

    executor, journal, _ = setup(tmp_path, handler, 3)
    await executor.run([[WorkUnit("assign", [0, 1, 2])]], 3)
    assert seen == [["T0", "T1", "T2"], ["T1"]]
    got = outcomes(journal)
    assert [got[i][2] for i in range(3)] == [1, 2, 1]
    assert {v[0] for v in got.values()} == {"succeeded"}


async def test_auth_lost_stops_and_leaves_rows_pending(tmp_path):
    def handler(request):
        return httpx.Response(401, json=[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])

    executor, journal, _ = setup(tmp_path, handler, 4, concurrency=1)
    stats = await executor.run([[WorkUnit("assign", [0, 1]), WorkUnit("assign", [2, 3])]], 4)
    assert stats.stopped[0] == "AUTH_LOST" and stats.requests == 1
    assert journal.indices("pending") == [0, 1, 2, 3]


async def test_waves_run_in_order(tmp_path):
    order = []

    def handler(request):
        inputs = json.loads(request.content)["inputs"]
        order.append(request.url.path.rsplit("/", 1)[1])
        return httpx.Response(200, json=per_input(inputs))

    executor, journal, _ = setup(tmp_path, handler, 2)
    await executor.run([[WorkUnit("assign", [0])], [WorkUnit("pause", [1])]], 2)
    assert order == ["assignTargetToSalesCadence", "pauseSalesCadenceTracker"]


async def test_concurrency_is_bounded(tmp_path):
    import anyio

    live = {"now": 0, "max": 0}

    async def handler(request):
        live["now"] += 1
        live["max"] = max(live["max"], live["now"])
        await anyio.sleep(0.001)
        live["now"] -= 1
        return httpx.Response(200, json=per_input(json.loads(request.content)["inputs"]))

    executor, journal, _ = setup(tmp_path, handler, 20, concurrency=3)
    await executor.run([[WorkUnit("assign", [i]) for i in range(20)]], 20)
    assert live["max"] == 3
