"""Maybe-applied answers (a gateway 5xx after the org did the work, a lost answer, a results array
that does not match the inputs, a resume after a kill) are reconciled by reading the platform's
state, never by sending blindly again. "Sent twice" is judged from the emulators' own records
(the inputs the org received, the changes it applied), not from the runner's report."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from batchrunner.job import load_job
from batchrunner.outcome import Status
from batchrunner.platforms.base import WorkUnit
from batchrunner.runner import prepare, run_prepared
from batchrunner.sandbox.app import SandboxApp
from batchrunner.sandbox.base import SandboxRequest, SandboxResponse
from batchrunner.sandbox.salesforce import SalesforceEmulator
from batchrunner.sandbox.salesloft import SalesloftEmulator

ASSIGN = "assignTargetToSalesCadence"
EVENT = "sendSalesCadenceEvent"
BAD_GATEWAY = SandboxResponse(502, None)  # a proxy's answer: no Salesforce body
FREE = ["00Q5e0000000001EAA", "00Q5e0000000002EAA", "00Q5e0000000003EAA"]  # seed leads on no cadence
STEP_RUNNING = "8HF5e0000000001GAA"  # the current step of a Running tracker (seed)


def garble(app: SandboxApp, match: Callable[[SandboxRequest], bool], answers: list[SandboxResponse],
           applied: bool = True) -> list[SandboxRequest]:
    """The next ``len(answers)`` requests that ``match`` reach the emulator (``applied``) or not, and
    their answer is replaced by the next of ``answers``. Returns every matching request seen."""
    original, seen = app.dispatch, []

    def dispatch(request: SandboxRequest) -> SandboxResponse:
        if not match(request):
            return original(request)
        seen.append(request)
        if not answers:
            return original(request)
        real = original(request) if applied else None
        replacement = answers.pop(0)
        if real is not None and replacement.status == 200 and replacement.body == "TRUNCATE":
            return SandboxResponse(200, real.body[:-1], real.headers)  # one result short
        return replacement

    app.dispatch = dispatch  # type: ignore[method-assign]
    return seen


def action(name: str) -> Callable[[SandboxRequest], bool]:
    return lambda r: r.method == "POST" and r.path.endswith("/" + name)


def query(r: SandboxRequest) -> bool:
    return r.path.endswith("/query")


def a_job(write_job, platform: str, operation: str, header: str, rows: list[str], columns: str,
          connection: str = "") -> Path:
    """A job over ``rows`` against the sandbox: one request at a time, backoffs of a millisecond."""
    return write_job(header + "\n" + "\n".join(rows) + "\n", f"""
        name = "reconcile"
        platform = "{platform}"
        operation = "{operation}"
        input = "input.csv"
        [columns]
        {columns}
        [connection]
        sandbox = true
        {connection}
        [limits]
        batch_size = 10
        concurrency = 1
        max_attempts = 3
        timeout = 5.0
        backoff_base = 0.001
        backoff_max = 0.001
    """)


def sf_job(write_job, operation: str, header: str, rows: list[str], columns: str) -> Path:
    return a_job(write_job, "salesforce", operation, header, rows, columns)


def run(job: Path, app: Any, out: Path) -> list[dict[str, str]]:
    result = anyio.run(lambda: run_prepared(prepare(load_job(job)), output_dir=out, sandbox_app=app, progress=False))
    with (result.run_dir / "results.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def sf_app() -> tuple[SandboxApp, SalesforceEmulator]:
    emulator = SalesforceEmulator()
    return SandboxApp([emulator]), emulator


def received(emulator: SalesforceEmulator, name: str) -> dict[str, int]:
    return {k: v for k, v in emulator.received.items() if k.startswith(name + ":")}


# -- Salesforce: issue 13 item 3 ----------------------------------------------------------------
@pytest.mark.parametrize("answer", [BAD_GATEWAY, SandboxResponse(504, None), SandboxResponse(500, [
    {"errorCode": "UNKNOWN_EXCEPTION", "message": "An unexpected error occurred"}])])
def test_skip_answered_5xx_after_it_applied_is_not_sent_again(tmp_path, write_job, answer) -> None:
    app, emulator = sf_app()
    garble(app, action(EVENT), [answer])
    job = sf_job(write_job, "send_event", "Step", [STEP_RUNNING], 'recordId = "Step"\neventType = { value = "Skip" }')
    (row,) = run(job, app, tmp_path)
    assert sum(received(emulator, EVENT).values()) == 1  # the org saw the Skip once: no blind re-send
    assert max(emulator.applied.values()) == 1
    assert row["_status"] == "succeeded" and json.loads(row["_result"])["reconciled"] is True


def test_skip_answered_502_before_the_org_saw_it_is_sent_again(tmp_path, write_job) -> None:
    app, emulator = sf_app()
    garble(app, action(EVENT), [BAD_GATEWAY], applied=False)
    job = sf_job(write_job, "send_event", "Step", [STEP_RUNNING], 'recordId = "Step"\neventType = { value = "Skip" }')
    (row,) = run(job, app, tmp_path)
    # the step tracker is still the Active one: the Skip did not apply, so it goes again, once
    assert sum(received(emulator, EVENT).values()) == 1 and sum(emulator.applied.values()) == 1
    assert row["_status"] == "succeeded" and not row["_result"]


def test_assign_answered_502_after_it_applied_is_reconciled_from_the_tracker(tmp_path, write_job) -> None:
    app, emulator = sf_app()
    garble(app, action(ASSIGN), [BAD_GATEWAY])
    job = sf_job(write_job, "assign", "Lead", FREE, 'targetId = "Lead"\nsalesCadenceNameOrId = { value = "Q4 Outbound" }')
    rows = run(job, app, tmp_path)
    assert set(emulator.assignments) == set(FREE) and max(emulator.assignments.values()) == 1
    assert max(received(emulator, ASSIGN).values()) == 1  # read, not re-sent
    assert {r["_status"] for r in rows} == {"succeeded"}
    assert all(json.loads(r["_result"])["reconciled"] is True for r in rows)


def test_a_200_with_one_result_short_is_reconciled_not_failed(tmp_path, write_job) -> None:
    app, emulator = sf_app()
    garble(app, action(ASSIGN), [SandboxResponse(200, "TRUNCATE")])
    job = sf_job(write_job, "assign", "Lead", FREE, 'targetId = "Lead"\nsalesCadenceNameOrId = { value = "Q4 Outbound" }')
    rows = run(job, app, tmp_path)
    # before: every row failed UNEXPECTED_RESPONSE, and `retry` would have sent all three again
    assert {r["_status"] for r in rows} == {"succeeded"}
    assert max(received(emulator, ASSIGN).values()) == 1 and max(emulator.assignments.values()) == 1


def test_a_503_with_salesforce_body_is_retried_without_a_read(tmp_path, write_job) -> None:
    app, emulator = sf_app()
    garble(app, action(ASSIGN), [SandboxResponse(503, [{"errorCode": "SERVER_UNAVAILABLE",
                                                          "message": "down for maintenance"}])], applied=False)
    reads = garble(app, query, [])
    job = sf_job(write_job, "assign", "Lead", FREE, 'targetId = "Lead"\nsalesCadenceNameOrId = { value = "Q4 Outbound" }')
    rows = run(job, app, tmp_path)
    tracker_reads = [r for r in reads if "ActionCadenceTracker" in str(r.query)]  # not the constants' look-up
    assert {r["_status"] for r in rows} == {"succeeded"} and not tracker_reads  # documented as not processed
    assert max(emulator.assignments.values()) == 1


def test_when_the_state_cannot_be_read_a_skip_is_unknown_outcome(tmp_path, write_job) -> None:
    app, emulator = sf_app()
    garble(app, action(EVENT), [BAD_GATEWAY])
    garble(app, query, [SandboxResponse(500, None)] * 10, applied=False)
    job = sf_job(write_job, "send_event", "Step", [STEP_RUNNING], 'recordId = "Step"\neventType = { value = "Skip" }')
    (row,) = run(job, app, tmp_path)
    assert row["_status"] == "failed" and row["_error_code"] == "UNKNOWN_OUTCOME"
    assert sum(received(emulator, EVENT).values()) == 1


def test_pause_and_remove_answered_504_after_applying_are_reconciled(tmp_path, write_job) -> None:
    for operation, name in (("pause", "pauseSalesCadenceTracker"), ("remove", "removeTargetFromSalesCadence")):
        app, emulator = sf_app()
        garble(app, action(name), [SandboxResponse(504, None)])
        job = sf_job(write_job, operation, "Lead", ["00Q5e0000000031EAA"], 'targetId = "Lead"')
        (row,) = run(job, app, tmp_path / operation)
        assert row["_status"] == "succeeded" and json.loads(row["_result"])["reconciled"] is True, row
        assert sum(received(emulator, name).values()) == 1


# -- Salesforce: issue 14 item 6 ----------------------------------------------------------------
@pytest.mark.parametrize("cadence", ["Q4 Outbound", "77C5e0000000001EAA", "77C5e0000000001"])
def test_already_on_the_requested_cadence_is_skipped_by_name_or_id(tmp_path, write_job, cadence) -> None:
    app, _ = sf_app()
    # 031 is on Q4 Outbound, 032 on Webinar Follow-up (seed)
    job = sf_job(write_job, "assign", "Lead", ["00Q5e0000000031EAA", "00Q5e0000000032EAA"],
                 f'targetId = "Lead"\nsalesCadenceNameOrId = {{ value = "{cadence}" }}')
    same, other = run(job, app, tmp_path)
    assert (same["_status"], same["_error_code"]) == ("skipped", "ALREADY_ON_CADENCE")
    assert (other["_status"], other["_error_code"]) == ("failed", "ALREADY_ON_OTHER_CADENCE")
    assert "Webinar Follow-up" in other["_error_message"]


# -- Salesforce: issue 13 item 4 (resume) ---------------------------------------------------------
class EmulatorIO:
    """A SessionIO over an emulator, for session-level tests."""

    def __init__(self, app: SandboxApp) -> None:
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox",
                                        headers={"Authorization": "Bearer sandbox-token"})
        self.recorded: list[Any] = []

    async def request(self, method: str, url: str, *, cost: float = 1.0, **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, url, **kwargs)

    def record(self, outcomes: Any) -> None:
        self.recorded += outcomes


class Rows:
    def __init__(self, data: dict[int, dict[str, Any]]) -> None:
        self.data = data

    def rows(self, indices: Any) -> list[dict[str, Any]]:
        return [self.data[i] for i in indices]


def test_resume_reads_trackers_and_tells_this_runs_assigns_from_older_ones() -> None:
    from batchrunner.platforms.salesforce.operations import CATALOG
    from batchrunner.platforms.salesforce.platform import SalesforceSession

    app, emulator = sf_app()
    clock = [datetime(2026, 11, 23, 12, 0, tzinfo=UTC).timestamp()]
    emulator.clock = lambda: clock[0]
    io = EmulatorIO(app)
    # the crashed process assigned FREE[0] at 12:00 (its answer lost); 031 was on Q4 Outbound long before
    assert emulator.assign({"targetId": FREE[0], "salesCadenceNameOrId": "Q4 Outbound"}) is None
    data = {0: {"targetId": FREE[0], "salesCadenceNameOrId": "Q4 Outbound"},
            1: {"targetId": "00Q5e0000000031EAA", "salesCadenceNameOrId": "Q4 Outbound"},
            2: {"targetId": FREE[1], "salesCadenceNameOrId": "Q4 Outbound"},
            3: {"targetId": FREE[2], "salesCadenceNameOrId": "Q4 Outbound"}}
    session = SalesforceSession(io.client, CATALOG, "62.0", 200)
    session.run_started_at = datetime(2026, 11, 23, 11, 59, tzinfo=UTC)  # the journal's created_at
    unit = WorkUnit("assign", [0, 1, 2, 3], attempts=1, unsure=frozenset({0, 1, 2}))
    ready = anyio.run(session.prepare, [unit], Rows(data), io)
    decided = {o.row: o for o in io.recorded}
    assert decided[0].status == Status.SUCCEEDED and decided[0].result["reconciled"] is True
    assert (decided[1].status, decided[1].code) == (Status.SKIPPED, "ALREADY_ON_CADENCE")  # there before the run
    # 2 was sent but the state shows it did not apply: sent again, no longer unsure; 3 was never sent
    assert [(u.rows, u.unsure) for u in ready] == [([2, 3], frozenset())]
    assert not emulator.calls  # the decision took one query, no action


def test_resume_of_unreadable_non_repeatable_rows_is_unknown_outcome() -> None:
    from batchrunner.platforms.salesforce.operations import CATALOG
    from batchrunner.platforms.salesforce.platform import SalesforceSession

    app, _ = sf_app()
    garble(app, query, [SandboxResponse(500, None)], applied=False)
    io = EmulatorIO(app)
    session = SalesforceSession(io.client, CATALOG, "62.0", 200)
    unit = WorkUnit("send_event", [0], attempts=1, unsure=frozenset({0}))
    ready = anyio.run(session.prepare, [unit], Rows({0: {"recordId": STEP_RUNNING, "eventType": "Skip"}}), io)
    assert not ready and [o.code for o in io.recorded] == ["UNKNOWN_OUTCOME"]


# -- Salesloft: issue 13 items 5, 9, 21 -----------------------------------------------------------
def sl_job(write_job, header: str, rows: list[str], columns: str, base_url: str | None = None) -> Path:
    return a_job(write_job, "salesloft", "add", header, rows, columns,
                 f'base_url = "{base_url}"' if base_url else "")


def sl_app() -> tuple[SandboxApp, SalesloftEmulator]:
    emulator = SalesloftEmulator()
    return SandboxApp([emulator]), emulator


def post(r: SandboxRequest) -> bool:
    return r.method == "POST" and r.path == "/v2/cadence_memberships"


def membership_reads(r: SandboxRequest) -> bool:
    return r.method == "GET" and r.path.startswith("/v2/cadence_memberships")


def test_salesloft_500_after_the_membership_was_created_is_read_not_resent(tmp_path, write_job) -> None:
    app, emulator = sl_app()
    posts = garble(app, post, [SandboxResponse(500, {"error": "Internal Server Error"})])
    job = sl_job(write_job, "Person,Cadence", ["70001,5004"], 'person_id = "Person"\ncadence_id = "Cadence"')
    (row,) = run(job, app, tmp_path)
    assert emulator.enrolments == {"70001:5004": 1} and len(posts) == 1  # read before re-sending: no second POST
    assert row["_status"] == "succeeded" and json.loads(row["_result"])["reconciled"] is True


def test_salesloft_500_then_already_on_cadence_is_succeeded_when_this_run_enrolled(tmp_path, write_job) -> None:
    # the membership read after the 500 fails too (every attempt), so the POST goes again and is
    # answered 422 "already on this cadence": the person this run enrolled is succeeded, not skipped
    app, emulator = sl_app()
    garble(app, post, [SandboxResponse(500, {"error": "Internal Server Error"})])
    garble(app, membership_reads, [SandboxResponse(503, {"error": "unavailable"})] * 3, applied=False)
    job = sl_job(write_job, "Person,Cadence", ["70001,5004"], 'person_id = "Person"\ncadence_id = "Cadence"')
    (row,) = run(job, app, tmp_path)
    assert emulator.enrolments == {"70001:5004": 1}
    assert row["_status"] == "succeeded" and json.loads(row["_result"])["reconciled"] is True, row


def test_salesloft_5xx_for_someone_on_the_cadence_before_the_run_is_skipped(tmp_path, write_job) -> None:
    app, emulator = sl_app()  # 70003 is on 5001 since 2026-11-02 (seed)
    garble(app, post, [SandboxResponse(502, None)], applied=False)
    job = sl_job(write_job, "Person,Cadence", ["70003,5001"], 'person_id = "Person"\ncadence_id = "Cadence"')
    (row,) = run(job, app, tmp_path)
    assert (row["_status"], row["_error_code"]) == ("skipped", "ALREADY_ON_CADENCE") and not emulator.enrolments


def test_salesloft_people_lookup_refused_is_lookup_failed_not_person_not_found(tmp_path, write_job) -> None:
    app, _ = sl_app()
    refusal = SandboxResponse(422, {"errors": {"email_addresses": ["is temporarily unsearchable"]}})
    garble(app, lambda r: r.path == "/v2/people", [refusal] * 10, applied=False)
    job = sl_job(write_job, "Email,Cadence", ["kwame.aziz@brightpath.example.com,Q4 Outbound"],
                 'person_email = "Email"\ncadence_name = "Cadence"')
    (row,) = run(job, app, tmp_path)
    # before: PERSON_NOT_FOUND for a person who exists (the failure was kept under another key)
    assert (row["_status"], row["_error_code"]) == ("failed", "LOOKUP_FAILED")
    assert "is temporarily unsearchable" in row["_error_message"]


@pytest.mark.parametrize("platform", ["salesloft", "salesforce", "outreach"])
def test_unreachable_host_fails_rows_with_connection_error_and_writes_reports(tmp_path, write_job, platform) -> None:
    from conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    if platform == "salesloft":
        job = sl_job(write_job, "Email,Cadence,User", ["kwame.aziz@brightpath.example.com,Q4 Outbound,",
                                                       "yara.jensen@cobalt.example.com,Q4 Outbound,x@y.example.com"],
                     'person_email = "Email"\ncadence_name = "Cadence"\nuser_email = "User"', base_url=url)
    elif platform == "outreach":  # by id: no look-up before the send (the lost answer is checked by reading)
        job = a_job(write_job, "outreach", "add", "Prospect", ["80027", "80028"],
                    'prospect_id = "Prospect"\nsequence_id = { value = "301" }\nmailbox_id = { value = "11" }',
                    f'base_url = "{url}"')
    else:
        job = a_job(write_job, "salesforce", "assign", "Lead", FREE[:2],
                    'targetId = "Lead"\nsalesCadenceNameOrId = { value = "Q4 Outbound" }', f'instance_url = "{url}"')
    rows = run(job, None, tmp_path)  # before (Salesloft): an ExceptionGroup traceback, no report
    assert {(r["_status"], r["_error_code"]) for r in rows} == {("failed", "CONNECTION_ERROR")}


# -- a kill at any point, then resume: nothing the org applied is sent again (issue 13 item 4) ----
def _killed_then_resumed(tmp_path: Path, job_name: str, csv_name: str, point: str, **limits: int) -> dict:
    import signal

    from conftest import cli, copy_demo_job, sandbox_server

    with sandbox_server() as url:
        job = copy_demo_job(tmp_path, job_name, csv_name, url, **limits)
        crashed = cli("run", str(job), "--no-progress", cwd=tmp_path, env={"BATCHRUNNER_FAILPOINT": point})
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
        done = cli("resume", str(run_dir), "--no-progress", cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        with (run_dir / "results.csv").open(newline="", encoding="utf-8") as f:
            assert not [r for r in csv.DictReader(f) if r["_status"] == "not_attempted"]
        return httpx.get(f"{url}/_sandbox/audit").json()


@pytest.mark.parametrize("point", ["execute.after_send:1", "execute.after_send:3", "execute.after_record:2"])
def test_salesforce_kill_then_resume_resends_nothing_the_org_applied(tmp_path: Path, point: str) -> None:
    audit = _killed_then_resumed(tmp_path, "salesforce-weekly-assign.toml", "salesforce_weekly_leads.csv", point,
                                 batch_size=4, concurrency=2)["SalesforceEmulator"]
    assigned = audit["assignments"]
    assert assigned and max(assigned.values()) == 1
    received = {k.split(":")[1]: n for k, n in audit["received"].items() if k.startswith(ASSIGN)}
    # an input whose target now has a tracker reached the org once; the lead already on the cadence
    # reached it at most once: read on resume, not re-sent to be refused again (0 when the kill came
    # after the journal marked its request in flight but before the request left the process)
    assert all(received[t] == 1 for t in assigned) and received.get("00Q5e0000000031EAA", 0) <= 1, received


@pytest.mark.parametrize("point", ["execute.after_send:2", "execute.after_send:5", "execute.after_record:4"])
def test_salesloft_kill_then_resume_posts_nobody_twice(tmp_path: Path, point: str) -> None:
    audit = _killed_then_resumed(tmp_path, "salesloft-weekly-enrolment.toml", "salesloft_weekly_enrolment.csv",
                                 point, concurrency=2)["SalesloftEmulator"]
    assert audit["enrolments"] and max(audit["posts"].values()) == 1, audit["posts"]


# -- retry and UNKNOWN_OUTCOME (issue 13 item 3) -------------------------------------------------
def test_unknown_outcome_is_not_retryable_but_other_failures_are() -> None:
    from batchrunner.outcome import retryable

    assert not retryable(Status.FAILED, "UNKNOWN_OUTCOME")
    assert retryable(Status.FAILED, "CONNECTION_ERROR") and retryable(Status.FAILED, "LOOKUP_FAILED")
    assert retryable(Status.NOT_ATTEMPTED, None) and retryable(None, None)  # never finished
    assert not retryable(Status.SUCCEEDED, None) and not retryable(Status.SKIPPED, "ALREADY_ON_CADENCE")


def test_retry_leaves_unknown_outcome_rows_for_a_person_to_check(tmp_path, write_job) -> None:
    from batchrunner.runner import retry_rows

    app, _ = sf_app()
    garble(app, action(EVENT), [BAD_GATEWAY])
    garble(app, query, [SandboxResponse(500, None)] * 10, applied=False)
    paused = "8HF5e0000000003GAA"  # the step of a paused tracker: the org refuses the event (seed)
    job = sf_job(write_job, "send_event", "Step", [STEP_RUNNING, paused],
                 'recordId = "Step"\neventType = { value = "Skip" }')
    job.write_text(job.read_text().replace("batch_size = 10", "batch_size = 1"))
    unknown, failed = run(job, app, tmp_path / "runs")
    assert unknown["_error_code"] == "UNKNOWN_OUTCOME" and (failed["_status"], failed["_error_code"]) == (
        "failed", "INVALID_INPUT")
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    retry_input = retry_rows(run_dir).input_path
    with retry_input.open(newline="", encoding="utf-8") as f:
        assert [r["Step"] for r in csv.DictReader(f)] == [paused]  # only the plain failure


def test_resume_tells_a_tracker_older_than_the_run_from_one_it_made(tmp_path: Path) -> None:
    from conftest import cli, copy_demo_job, sandbox_server

    with sandbox_server() as url:  # 031 is on Q4 Outbound since the seed; it is in the first request
        job = copy_demo_job(tmp_path, "salesforce-weekly-assign.toml", "salesforce_weekly_leads.csv", url,
                            batch_size=8, concurrency=1)
        cli("run", str(job), "--no-progress", cwd=tmp_path, env={"BATCHRUNNER_FAILPOINT": "execute.after_send:1"})
        (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
        assert cli("resume", str(run_dir), "--no-progress", cwd=tmp_path).returncode == 1
    with (run_dir / "results.csv").open(newline="", encoding="utf-8") as f:
        rows = {r["Lead Id"]: r for r in csv.DictReader(f)}
    assert rows["00Q5e0000000001EAA"]["_status"] == "succeeded"  # made by the killed process: reconciled
    assert (rows["00Q5e0000000031EAA"]["_status"], rows["00Q5e0000000031EAA"]["_error_code"]) == (
        "skipped", "ALREADY_ON_CADENCE")



# -- the demos under heavy faults report what a clean run reports --------------------------------
@pytest.mark.parametrize("job_name", ["salesloft-weekly-enrolment.toml", "salesforce-weekly-assign.toml"])
@pytest.mark.parametrize("seed", [2, 3])
def test_demo_under_5xx_and_resets_reports_what_a_clean_run_reports(tmp_path, job_name, seed) -> None:
    import random

    from batchrunner.job import SandboxSettings
    from batchrunner.sandbox.factory import build_sandbox

    repo = Path(__file__).resolve().parents[1]

    def statuses(settings: SandboxSettings, out: Path) -> tuple[list[tuple[str, str]], Any]:
        job = load_job(repo / "jobs" / job_name)
        job.limits.backoff_base, job.limits.backoff_max, job.limits.max_attempts = 0.001, 0.002, 8
        job.limits.batch_size = 2  # Salesforce: many requests, so many faults
        app = build_sandbox(settings)
        result = anyio.run(lambda: run_prepared(prepare(job), output_dir=out, sandbox_app=app, progress=False,
                                                rng=random.Random(seed)))
        with (result.run_dir / "results.csv").open(newline="", encoding="utf-8") as f:
            return [(r["_status"], r["_error_code"]) for r in csv.DictReader(f)], app

    clean, _ = statuses(SandboxSettings(), tmp_path / "clean")
    faulty, app = statuses(SandboxSettings(error_rate=0.3, reset_rate=0.2, seed=seed), tmp_path / "faulty")
    assert app.injected.get("reset")  # answers lost after the platform did the work
    # before: a person already on the cadence, whose answer was lost, was reported succeeded
    assert faulty == clean
    emulators = {type(e).__name__: e for e in app.emulators}
    assert max(emulators["SalesloftEmulator"].posts.values() or [1]) == 1
    assert max(emulators["SalesforceEmulator"].applied.values() or [1]) == 1


def test_a_reset_after_a_skip_applied_is_reconciled_not_unknown() -> None:
    from batchrunner.platforms.salesforce.operations import CATALOG
    from batchrunner.platforms.salesforce.platform import SalesforceSession

    app, emulator = sf_app()
    io = EmulatorIO(app)
    session = SalesforceSession(io.client, CATALOG, "62.0", 200)
    data = [{"recordId": STEP_RUNNING, "eventType": "Skip"}, {"recordId": "8HF5e0000000002GAA", "eventType": "Skip"}]
    emulator.send_event(data[0])  # the org applied the first; the connection was reset before the answer
    verdict = anyio.run(session.transport_error, WorkUnit("send_event", [0, 1]), data,
                        httpx.RemoteProtocolError("reset"), io)
    assert [(o.row, o.status, o.result["reconciled"]) for o in verdict.outcomes] == [(0, Status.SUCCEEDED, True)]
    assert verdict.retry == [1] and not verdict.maybe_applied  # its step is still Active: it did not apply
