import httpx

from batchrunner.outcome import Status
from batchrunner.platforms.base import WorkUnit
from batchrunner.platforms.salesforce.responses import interpret, transport_error

OK = {"actionName": "assignTargetToSalesCadence", "isSuccess": True}
FAIL = {"actionName": "assignTargetToSalesCadence", "isSuccess": False,
        "errors": [{"statusCode": "UNKNOWN_EXCEPTION", "message": "The object needs to be a valid cadence entity.",
                    "fields": []}], "outputValues": {"error": "The object needs to be a valid cadence entity."}}


def resp(status, body, headers=None):
    return httpx.Response(status, json=body, headers=headers or {})


def test_400_with_per_input_array_is_per_row_outcomes():
    unit = WorkUnit("assign", [10, 11, 12])
    verdict = interpret(unit, resp(400, [OK, FAIL, OK]))
    assert not verdict.split and not verdict.retry and verdict.stop is None
    assert [(o.row, o.status) for o in verdict.outcomes] == [
        (10, Status.SUCCEEDED), (11, Status.FAILED), (12, Status.SUCCEEDED)]
    assert verdict.outcomes[1].code == "UNKNOWN_EXCEPTION"
    assert verdict.outcomes[1].message == "The object needs to be a valid cadence entity."


def test_success_without_errors_or_output_keys_and_template_output():
    out = {"actionName": "selectTemplateForSalesCadenceStepTracker", "errors": None, "isSuccess": True,
           "outputValues": {"output": {"SplitPercentage": 10.0, "TemplateId": "00XR0000000UOtZMAW"}}}
    verdict = interpret(WorkUnit("select_template", [0, 1]), resp(200, [{"isSuccess": True}, out]))
    assert verdict.outcomes[0].result is None
    assert verdict.outcomes[1].result == {"SplitPercentage": 10.0, "TemplateId": "00XR0000000UOtZMAW"}


def test_request_level_400_splits_and_lock_row_retries_that_input_only():
    verdict = interpret(WorkUnit("assign", [1, 2]), resp(400, [{"errorCode": "JSON_PARSER_ERROR", "message": "x"}]))
    assert verdict.split and verdict.split_reason == ("JSON_PARSER_ERROR", "x")
    locked = dict(FAIL, errors=[{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain lock"}])
    verdict = interpret(WorkUnit("assign", [1, 2, 3]), resp(400, [OK, locked, FAIL]))
    assert verdict.retry == [2] and verdict.retry_reason[0] == "UNABLE_TO_LOCK_ROW"
    assert [o.row for o in verdict.outcomes] == [1, 3]


def test_request_level_errors():
    unit = WorkUnit("assign", [1, 2])
    auth = interpret(unit, resp(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]))
    assert auth.stop[0] == "AUTH_LOST" and "INVALID_SESSION_ID" in auth.stop[1]
    total = interpret(unit, resp(403, [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}]))
    assert total.stop[0] == "API_LIMIT_REACHED"
    conc = interpret(unit, resp(403, [{"errorCode": "REQUEST_LIMIT_EXCEEDED",
                                       "message": "ConcurrentPerOrgLongTxn Limit exceeded"}]))
    assert conc.stop is None and conc.retry == [1, 2] and conc.rate.lower_concurrency
    for status in (500, 502, 503, 504):
        assert interpret(unit, resp(status, None)).retry == [1, 2]
    busy = interpret(unit, resp(429, None, {"Retry-After": "7"}))
    assert busy.retry == [1, 2] and busy.rate.retry_after == 7.0 and busy.rate.pause_all
    missing = interpret(unit, resp(404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]))
    assert {o.code for o in missing.outcomes} == {"NOT_FOUND"}


def test_mismatched_200_is_never_guessed():
    # results cannot be matched to inputs: no row is decided from it, every row may have applied
    # (the session reads the org's state before any of them is sent again)
    for body in ([OK], [OK, OK, OK], {"not": "a list"}):
        verdict = interpret(WorkUnit("assign", [1, 2]), resp(200, body))
        assert not verdict.outcomes and verdict.retry == [1, 2] and verdict.maybe_applied
        assert verdict.retry_reason[0] == "UNEXPECTED_RESPONSE"


def test_which_5xx_may_have_applied():
    unit = WorkUnit("send_event", [1])
    for status in (500, 502, 504):
        assert interpret(unit, resp(status, None)).maybe_applied
    # 503 with Salesforce's own error body: the org did not take the request (REST status codes page)
    assert not interpret(unit, resp(503, [{"errorCode": "SERVER_UNAVAILABLE", "message": "down"}])).maybe_applied
    assert interpret(unit, httpx.Response(503, text="<html>Service Unavailable</html>")).maybe_applied  # a proxy
    assert not interpret(unit, resp(429, None)).maybe_applied


def test_limit_info_and_reserve():
    headers = {"Sforce-Limit-Info": "api-usage=14990/15000"}
    verdict = interpret(WorkUnit("assign", [1]), resp(200, [OK], headers), api_reserve=10)
    assert verdict.rate.api_used == 14990 and verdict.rate.api_limit == 15000
    assert verdict.outcomes[0].status == Status.SUCCEEDED
    assert verdict.stop[0] == "API_RESERVE_REACHED"
    assert interpret(WorkUnit("assign", [1]), resp(200, [OK], headers), api_reserve=5).stop is None


def test_transport_errors_retry():
    verdict = transport_error(WorkUnit("assign", [4, 5]), httpx.ReadTimeout("slow"))
    assert verdict.retry == [4, 5] and verdict.retry_reason[0] == "TIMEOUT"


def test_lost_answers_are_resent_only_when_safe():
    never_left = transport_error(WorkUnit("send_event", [1]), httpx.ConnectError("refused"), resendable=False)
    assert never_left.retry == [1] and not never_left.maybe_applied  # nothing reached the server
    maybe = transport_error(WorkUnit("assign", [1, 2]), httpx.RemoteProtocolError("reset"), resendable=True)
    assert maybe.retry == [1, 2] and maybe.maybe_applied  # re-sent, its "already assigned" reconciled
    unsafe = transport_error(WorkUnit("send_event", [3]), httpx.ReadTimeout("slow"), resendable=False)
    assert not unsafe.retry and unsafe.outcomes[0].code == "UNKNOWN_OUTCOME"  # a second Skip would skip twice


def test_resent_assign_answered_already_assigned_is_reconciled():
    import anyio

    from batchrunner.platforms.salesforce.operations import CATALOG
    from batchrunner.platforms.salesforce.platform import SalesforceSession

    class NoReads:  # the state read fails: the answer's own words decide
        async def request(self, *a, **k):
            raise httpx.ConnectError("down")

    session = SalesforceSession(httpx.AsyncClient(), CATALOG, "62.0", 200)
    unit = WorkUnit("assign", [7, 8, 9], unsure=frozenset({7}))
    dup = {**FAIL, "errors": [{"statusCode": "INVALID_INPUT", "message": "Target X is already assigned to a sales "
                                                                          "cadence (Q4 Outbound)"}]}
    rows = [{"targetId": "00Q5e0000000001EAA", "salesCadenceNameOrId": "Q4 Outbound"},
            {"targetId": "00Q5e0000000002EAA", "salesCadenceNameOrId": "Q4 Outbound"},
            {"targetId": "00Q5e0000000003EAA", "salesCadenceNameOrId": "Webinar Follow-up"}]
    verdict = anyio.run(session.interpret, unit, rows, resp(400, [dup, dup, dup]), NoReads())
    first, second, third = verdict.outcomes
    assert first.status == Status.SUCCEEDED and first.result["reconciled"] is True
    assert (second.status, second.code) == (Status.SKIPPED, "ALREADY_ON_CADENCE")  # not sent before: not ours
    assert (third.status, third.code) == (Status.FAILED, "ALREADY_ON_OTHER_CADENCE")
    assert "Q4 Outbound" in third.message
