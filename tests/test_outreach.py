"""Outreach: the catalog and validation, the emulator's rules, demo runs end to end, lost answers
reconciled without a second enrolment (judged from the emulator's own audit), 429s and the hourly
budget, and the one-new-token-per-60-s rule."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import polars as pl
import pytest

from batchrunner.clock import FakeClock
from batchrunner.job import load_job
from batchrunner.platforms.outreach.operations import CATALOG
from batchrunner.platforms.outreach.platform import OutreachPlatform
from batchrunner.platforms.outreach.responses import rate_signal, seconds_to_reset
from batchrunner.runner import prepare, run_prepared
from batchrunner.sandbox.app import SandboxApp
from batchrunner.sandbox.base import SandboxRequest
from batchrunner.sandbox.outreach import JSONAPI, OutreachEmulator
from batchrunner.source import OPERATION, LoadedInput
from batchrunner.validate import CODE, validate
from conftest import REPO

TOKEN = {"authorization": "Bearer sandbox-outreach-token"}
BODY_HEADERS = {**TOKEN, "content-type": JSONAPI}


def call(emu: OutreachEmulator, method: str, path: str, query=(), body: Any = None, headers=None):
    raw = json.dumps(body).encode() if body is not None else b""
    return emu.handle(SandboxRequest(method, path, list(query), dict(headers if headers is not None else (BODY_HEADERS if raw else TOKEN)),
                                     raw))


def enrol_body(prospect: int, sequence: int, mailbox: int | None = 11) -> dict:
    rel = {"prospect": {"data": {"type": "prospect", "id": prospect}},
           "sequence": {"data": {"type": "sequence", "id": sequence}}}
    if mailbox:
        rel["mailbox"] = {"data": {"type": "mailbox", "id": mailbox}}
    return {"data": {"type": "sequenceState", "relationships": rel}}


# -- catalog and validation ----------------------------------------------------------------------
def one(row: dict) -> dict:
    names = sorted(row)
    frame = pl.DataFrame([row], schema={n: pl.String for n in names}).rename({"op": OPERATION})
    return validate(LoadedInput(Path("x"), "0", frame, frame), CATALOG).to_dicts()[0]


def test_catalog_names_and_aliases() -> None:
    assert [op.name for op in CATALOG.operations] == ["add", "finish", "pause", "resume", "remove"]
    assert CATALOG.resolve("Enroll").name == "add" and CATALOG.resolve("unpause").name == "resume"
    assert CATALOG.resolve("POST /api/v2/sequenceStates").name == "add"


def test_validation_of_add_and_state_operations() -> None:
    ok = one({"op": "add", "prospect_email": "Ada@Example.COM", "sequence_name": "Q4", "mailbox_id": "11"})
    assert ok[CODE] is None and ok["prospect_email"] == "ada@example.com" and ok["mailbox_id"] == 11
    assert one({"op": "add", "prospect_id": "5"})[CODE] == "REQUIRED_FIELD_MISSING"  # no sequence
    assert one({"op": "add", "prospect_id": "5", "sequence_id": "3", "mailbox_id": "1",
                "mailbox_email": "m@x.io"})[CODE] == "CONFLICTING_FIELDS"
    assert one({"op": "add", "prospect_id": "5.0", "sequence_id": "3"})[CODE] == "INVALID_ID"
    for op in ("finish", "pause", "resume", "remove"):
        assert one({"op": op, "sequence_state_id": "600001"})[CODE] is None
        assert one({"op": op, "prospect_email": "a@b.co", "sequence_id": "3"})[CODE] is None
        assert one({"op": op, "prospect_email": "a@b.co"})[CODE] == "REQUIRED_FIELD_MISSING"  # needs a sequence


def test_job_outreach_table_is_checked(tmp_path: Path) -> None:
    from batchrunner.errors import JobError

    (tmp_path / "in.csv").write_text("a\n1\n")
    job = tmp_path / "j.toml"
    job.write_text('platform = "outreach"\noperation = "add"\ninput = "in.csv"\n[outreach]\nmailbox = 3\n')
    with pytest.raises(JobError, match="Unknown key 'mailbox' in \\[outreach\\]"):
        load_job(job)


# -- emulator rules ---------------------------------------------------------------------------------
def test_enrol_201_then_422_already_active_and_actions() -> None:
    emu = OutreachEmulator()
    created = call(emu, "POST", "/api/v2/sequenceStates", body=enrol_body(80001, 301))
    assert created.status == 201 and created.body["data"]["attributes"]["state"] == "active"
    sid = created.body["data"]["id"]
    again = call(emu, "POST", "/api/v2/sequenceStates", body=enrol_body(80001, 301))
    assert again.status == 422 and "already active" in again.body["errors"][0]["detail"]
    assert call(emu, "POST", f"/api/v2/sequenceStates/{sid}/actions/pause").body["data"]["attributes"]["state"] == \
        "paused"
    assert call(emu, "POST", f"/api/v2/sequenceStates/{sid}/actions/pause").status == 422  # already paused
    assert call(emu, "POST", f"/api/v2/sequenceStates/{sid}/actions/resume").status == 200
    assert call(emu, "POST", f"/api/v2/sequenceStates/{sid}/actions/finish").status == 200
    # finished: no longer holds the prospect, so a new enrolment is allowed
    assert call(emu, "POST", "/api/v2/sequenceStates", body=enrol_body(80001, 301)).status == 201
    assert call(emu, "DELETE", f"/api/v2/sequenceStates/{sid}").status == 204
    assert call(emu, "DELETE", f"/api/v2/sequenceStates/{sid}").status == 404
    assert emu.audit()["enrolments"] == {"80001:301": 2} and emu.audit()["posts"] == {"80001:301": 3}


def test_enrol_rules_mailbox_deliverable_pending_and_media_type() -> None:
    emu = OutreachEmulator()
    no_mailbox = call(emu, "POST", "/api/v2/sequenceStates", body=enrol_body(80002, 301, mailbox=None))
    assert no_mailbox.status == 422 and no_mailbox.body["errors"][0]["source"]["pointer"].endswith("mailbox")
    assert call(emu, "POST", "/api/v2/sequenceStates", body=enrol_body(80002, 303, mailbox=None)).status == 201
    bounced = call(emu, "POST", "/api/v2/sequenceStates", body=enrol_body(80009, 301))
    assert bounced.status == 422 and "deliverable" in bounced.body["errors"][0]["detail"]
    pending = call(emu, "POST", "/api/v2/sequenceStates", body=enrol_body(80003, 301, mailbox=13))
    assert pending.body["data"]["attributes"]["state"] == "pending"  # a sending throttle was reached
    wrong_type = call(emu, "POST", "/api/v2/sequenceStates", body=enrol_body(80004, 301),
                      headers={**TOKEN, "content-type": "application/json"})
    assert wrong_type.status == 415
    assert call(emu, "GET", "/api/v2/prospects", headers={}).status == 401


def test_lists_filter_by_lists_and_page_with_links_next() -> None:
    emu = OutreachEmulator()
    emails = "kwame.aziz@brightpath.example.com,YARA.JENSEN@cobalt.example.com"
    found = call(emu, "GET", "/api/v2/prospects", [("filter[emails]", emails)])
    assert [p["id"] for p in found.body["data"]] == [80001, 80002]
    first = call(emu, "GET", "/api/v2/prospects", [("page[size]", "25")])
    assert len(first.body["data"]) == 25 and "next" in first.body["links"]
    following = first.body["links"]["next"].split("/api/v2/prospects?")[1]
    from urllib.parse import parse_qsl

    second = call(emu, "GET", "/api/v2/prospects", parse_qsl(following))
    assert second.body["data"][0]["id"] > first.body["data"][-1]["id"] and "next" not in second.body["links"]
    states = call(emu, "GET", "/api/v2/sequenceStates", [("filter[prospect][id]", "80021,80022"),
                                                        ("filter[sequence][id]", "301")])
    assert sorted(s["id"] for s in states.body["data"]) == [600001, 600002]
    assert call(emu, "GET", "/api/v2/sequenceStates", [("filter[prospect][emails]", "x")]).status == 400


def test_hourly_budget_per_user_headers_and_429() -> None:
    clock = FakeClock(start=1_800_000_000.0)
    emu = OutreachEmulator(budget_per_hour=3, clock=clock.wall)
    answers = [call(emu, "GET", "/api/v2/sequences") for _ in range(4)]
    assert [a.status for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[0].headers["X-RateLimit-Limit"] == "3"
    reset = int(answers[3].headers["X-RateLimit-Reset"])
    assert answers[3].body["errors"][0]["id"] == "rateLimitExceeded"
    assert int(answers[3].headers["Retry-After"]) == reset - int(clock.wall())
    other_user = {"authorization": "Bearer sandbox-outreach-token-rafael"}
    assert call(emu, "GET", "/api/v2/sequences", headers=other_user).status == 200  # per user
    clock.time = reset + 1
    assert call(emu, "GET", "/api/v2/sequences").status == 200  # a new hour


def test_token_endpoint_one_new_token_per_60_s_and_rotation_setting() -> None:
    clock = FakeClock(start=1_800_000_000.0)
    emu = OutreachEmulator(clock=clock.wall, rotate_refresh=True)
    form = "grant_type=refresh_token&client_id=sandbox-client-id&client_secret=sandbox-client-secret"

    def ask(refresh: str):
        return emu.handle(SandboxRequest("POST", "/outreach/oauth/token", [], {},
                                         f"{form}&refresh_token={refresh}".encode()))

    first = ask("sandbox-refresh-token")
    assert first.status == 200 and first.body["refresh_token"] != "sandbox-refresh-token"
    assert ask("sandbox-refresh-token").status == 400  # rotated: the old one is dead
    too_soon = ask(first.body["refresh_token"])
    assert too_soon.status == 429 and int(too_soon.headers["Retry-After"]) == 60
    clock.time += 60
    second = ask(first.body["refresh_token"])
    assert second.status == 200
    access = {"authorization": f"Bearer {second.body['access_token']}"}
    assert call(emu, "GET", "/api/v2/sequences", headers=access).status == 200
    clock.time += 7200
    assert call(emu, "GET", "/api/v2/sequences", headers=access).status == 401  # expired


# -- the client's reading of headers ----------------------------------------------------------------
def test_rate_signal_waits_for_the_reset_when_the_budget_is_down_to_the_reserve() -> None:
    now = 1_800_000_000.0

    def response(remaining: int, status: int = 200, **extra: str) -> httpx.Response:
        return httpx.Response(status, headers={"X-RateLimit-Remaining": str(remaining),
                                               "X-RateLimit-Reset": str(int(now) + 900), **extra})

    calm = rate_signal(response(500), lambda: now, reserve=4)
    assert calm.remaining == 500 and calm.retry_after is None and not calm.pause_all
    low = rate_signal(response(3), lambda: now, reserve=4)
    assert low.retry_after == 900  # everyone waits for the reset instead of spending into 429s
    refused = rate_signal(response(0, 429, **{"Retry-After": "30"}), lambda: now, reserve=4)
    assert refused.pause_all and refused.retry_after == 30
    assert seconds_to_reset(120, now) == 120  # a count of seconds
    assert seconds_to_reset((now + 60) * 1000, now) == 60  # epoch milliseconds


# -- end to end -------------------------------------------------------------------------------------
def _job(tmp_path: Path, name: str, extra: str = "") -> Path:
    text = (REPO / "jobs" / name).read_text(encoding="utf-8")
    text = text.replace("../sample_data/", f"{REPO}/sample_data/").replace('"../runs"', f'"{tmp_path}/runs"')
    path = tmp_path / name
    path.write_text(text + extra, encoding="utf-8")
    return path


def _run(path: Path, app: Any, clock: FakeClock | None = None):
    prepared = prepare(load_job(path))
    return anyio.run(lambda: run_prepared(prepared, sandbox_app=app, progress=False, clock=clock))


def _results(result) -> list[dict[str, str]]:
    with (result.run_dir / "results.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_demo_jobs_give_every_status(tmp_path: Path) -> None:
    emu = OutreachEmulator()
    app = SandboxApp([emu])
    enrol = _run(_job(tmp_path, "outreach-enrolment.toml"), app, clock=FakeClock())
    rows = {r["Email"]: r for r in _results(enrol)}
    assert {r["_status"] for r in rows.values()} == {"succeeded", "skipped", "failed", "invalid"}
    assert rows["noah.moreau@orbit.example.com"]["_error_code"] == "ALREADY_IN_SEQUENCE"
    assert rows["nobody@nowhere.example.com"]["_error_code"] == "PROSPECT_NOT_FOUND"
    assert rows["maya.okafor@northwind.example.com"]["_error_code"] == "AMBIGUOUS_SEQUENCE"
    assert rows["daniel.brennan@quanta.example.com"]["_error_code"] == "NO_DELIVERABLE_EMAIL"
    assert json.loads(rows["dmitri.mensah@vertex.example.com"]["_result"])["state"] == "pending"
    # the job's default mailbox (11) went on rows without one; the row's own (12) where given
    mailboxes = {s["relationships"]["prospect"]["data"]["id"]: s["relationships"]["mailbox"]["data"]
                 for s in emu.states.values() if s["id"] > 700000}
    assert mailboxes[80001]["id"] == 11 and mailboxes[80011]["id"] == 12 and mailboxes[80012] == {
        "type": "mailbox", "id": 11}
    changes = _run(_job(tmp_path, "outreach-state-changes.toml"), app, clock=FakeClock())
    codes = [(r["_operation"], r["_status"], r["_error_code"]) for r in _results(changes)]
    assert codes[:9] == [("pause", "succeeded", ""), ("pause", "succeeded", ""), ("resume", "succeeded", ""),
                         ("finish", "succeeded", ""), ("finish", "skipped", "ALREADY_FINISHED"),
                         ("remove", "succeeded", ""), ("remove", "skipped", "NOT_IN_SEQUENCE"),
                         ("finish", "failed", "SEQUENCE_STATE_NOT_FOUND"), ("resume", "succeeded", "")]
    assert {s for _, s, _ in codes[9:]} == {"invalid"}
    assert emu.states[600003]["attributes"]["state"] == "active"  # paused then resumed, in file order
    assert 600006 not in emu.states
    assert max(emu.audit()["actions"].values()) == 1


class LoseAnswers:
    """An ASGI wrapper: the first enrolment of each listed prospect is applied, then its answer is
    lost (a connection reset, or a 502 from a proxy after the change was made)."""

    def __init__(self, inner: SandboxApp, prospects: set[int], how: str) -> None:
        self.inner, self.prospects, self.how = inner, set(prospects), how

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        from batchrunner.sandbox.app import read_body

        body = await read_body(receive)
        prospect = None
        if scope.get("method") == "POST" and scope.get("path") == "/api/v2/sequenceStates":
            prospect = json.loads(body)["data"]["relationships"]["prospect"]["data"]["id"]

        async def replay() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        if prospect not in self.prospects:
            await self.inner(scope, replay, send)
            return
        self.prospects.discard(prospect)

        async def swallow(message: dict) -> None:
            pass

        await self.inner(scope, replay, swallow)  # applied
        if self.how == "reset":
            raise httpx.RemoteProtocolError("connection reset after the request was processed")
        payload = b'{"errors":[{"id":"badGateway","title":"Bad Gateway"}]}'
        await send({"type": "http.response.start", "status": 502,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})

    @property
    def emulators(self) -> list:
        return self.inner.emulators


@pytest.mark.parametrize("how", ["reset", "502"])
def test_a_lost_answer_is_reconciled_by_reading_never_sent_twice(tmp_path: Path, how: str) -> None:
    emu = OutreachEmulator()
    lost = {80001, 80003, 80005}
    app = LoseAnswers(SandboxApp([emu]), lost, how)
    result = _run(_job(tmp_path, "outreach-enrolment.toml"), app, clock=FakeClock())
    rows = {r["Email"]: r for r in _results(result)}
    audit = emu.audit()
    assert max(audit["enrolments"].values()) == 1  # nobody enrolled twice
    for pid in lost:
        key = f"{pid}:301"
        assert audit["posts"][key] == 1  # the lost request was never sent again: the state was read
    reconciled = [r for r in rows.values() if r["_result"] and json.loads(r["_result"]).get("reconciled")]
    assert len(reconciled) == 3 and {r["_status"] for r in reconciled} == {"succeeded"}
    assert sum(r["_status"] == "succeeded" for r in rows.values()) == 9


def test_429_and_the_hourly_budget_pause_everyone_until_the_reset(tmp_path: Path, monkeypatch) -> None:
    clock = FakeClock(start=1_800_000_000.0)
    monkeypatch.setattr(OutreachPlatform, "wall", staticmethod(clock.wall))
    emu = OutreachEmulator(budget_per_hour=8, clock=clock.wall)
    job = _job(tmp_path, "outreach-enrolment.toml")
    job.write_text(job.read_text().replace("concurrency = 4", "concurrency = 1"))
    started = clock.wall()
    result = _run(job, SandboxApp([emu]), clock=clock)
    counts = json.loads((result.run_dir / "summary.json").read_text())["counts"]
    assert counts["not_attempted"] == 0 and counts["succeeded"] == 9  # the same outcome, only later
    assert clock.wall() - started >= 3600 - (started % 3600)  # it waited for (at least) the first reset
    assert emu.rejected_429 <= 1  # the headers stopped it before the budget ran out, not the 429s
    assert max(emu.audit()["enrolments"].values()) == 1


# -- auth ---------------------------------------------------------------------------------------------
def _provider(tmp_path: Path, emu: OutreachEmulator, clock: FakeClock):
    from batchrunner.platforms.outreach.auth import OutreachOAuth

    http = httpx.AsyncClient(base_url="http://127.0.0.1", transport=httpx.ASGITransport(app=SandboxApp([emu])))
    provider = OutreachOAuth("http://127.0.0.1/outreach/oauth/token", "sandbox-client-id", "sandbox-client-secret",
                             tmp_path / "secret" / "outreach.json", "sandbox-refresh-token", clock=clock, http=http)
    return provider, http


def test_oauth_never_asks_twice_within_60_s_and_stores_a_new_refresh_token_0600(tmp_path: Path) -> None:
    import stat

    clock = FakeClock(start=1_800_000_000.0)
    emu = OutreachEmulator(clock=clock.wall, rotate_refresh=True)

    async def go() -> None:
        provider, http = _provider(tmp_path, emu, clock)
        first = await provider.get_token()
        second = await provider.refresh(first)  # a 401 right away: the new token waits out the minute
        assert second != first and clock.slept >= 60
        await http.aclose()

    anyio.run(go)
    assert emu.token_429 == 0  # the rule was kept by the client, not enforced on it
    token_file = tmp_path / "secret" / "outreach.json"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert json.loads(token_file.read_text())["refresh_token"] in emu.refresh_tokens  # the rotated one


def test_oauth_waits_once_when_another_process_took_the_minutes_token(tmp_path: Path) -> None:
    clock = FakeClock(start=1_800_000_000.0)
    emu = OutreachEmulator(clock=clock.wall)
    emu.last_token[1] = clock.wall()  # someone else (same user and app) just got one

    async def go() -> str:
        provider, http = _provider(tmp_path, emu, clock)
        try:
            return await provider.get_token()
        finally:
            await http.aclose()

    assert anyio.run(go)
    assert emu.token_429 == 1 and clock.slept >= 60


def test_env_and_oauth_methods_are_checked_before_anything_is_sent(tmp_path: Path, monkeypatch) -> None:
    from batchrunner.errors import JobError

    job = _job(tmp_path, "outreach-enrolment.toml")
    text = job.read_text().replace("sandbox = true", 'sandbox = false\nauth = { method = "env" }')
    job.write_text(text)
    monkeypatch.delenv("OUTREACH_ACCESS_TOKEN", raising=False)
    with pytest.raises(JobError, match="OUTREACH_ACCESS_TOKEN"):
        prepare(load_job(job))
    job.write_text(text.replace('method = "env"', 'method = "oauth"'))
    with pytest.raises(JobError, match="token_file"):
        prepare(load_job(job))
    job.write_text(text.replace('method = "env"', 'method = "api_key"'))
    with pytest.raises(JobError, match="Unknown connection.auth.method 'api_key' for Outreach"):
        prepare(load_job(job))


def test_live_paths_against_a_served_sandbox_env_and_oauth(tmp_path: Path, monkeypatch) -> None:
    """`batchrunner sandbox` serves Outreach; the env token and the OAuth refresh both run the demo."""
    from conftest import sandbox_server
    from live_helpers import audit, live_job, run_job, summary_of

    from batchrunner.check import check

    csv_name = "outreach_enrolment.csv"
    with sandbox_server("outreach_rotate_refresh=true") as url:
        monkeypatch.setenv("OUTREACH_ACCESS_TOKEN", "sandbox-outreach-token")
        env_job = live_job(tmp_path, "outreach-enrolment.toml", csv_name,
                           f'base_url = "{url}"\nauth = {{ method = "env" }}', name="env.toml")
        checked = anyio.run(lambda: check(load_job(env_job)))
        assert checked.ok, checked
        first = summary_of(run_job(env_job))
        assert first["mode"] == "LIVE" and first["auth_method"] == "env" and first["counts"]["succeeded"] == 9
        for key, value in {"OUTREACH_CLIENT_ID": "sandbox-client-id", "OUTREACH_CLIENT_SECRET": "sandbox-client-secret",
                           "OUTREACH_REFRESH_TOKEN": "sandbox-refresh-token"}.items():
            monkeypatch.setenv(key, value)
        token_file = tmp_path / "secret" / "outreach.json"
        oauth_job = live_job(tmp_path, "outreach-enrolment.toml", csv_name, f'''
base_url = "{url}"
auth = {{ method = "oauth", token_file = "{token_file}", token_url = "{url}/outreach/oauth/token" }}''',
                             name="oauth.toml")
        second = summary_of(run_job(oauth_job))
        assert second["auth_method"] == "oauth" and second["stopped"] is None
        assert second["counts"]["skipped"] == 11  # everyone from the first run is in their sequence now
        assert json.loads(token_file.read_text())["refresh_token"] != "sandbox-refresh-token"  # rotated, stored
        org = audit(url)["OutreachEmulator"]
        assert max(org["enrolments"].values()) == 1 and org["tokens_issued"] == 1
        assert "sandbox-refresh-token" not in json.dumps(second)


def test_export_sequence_states_and_migrations_both_ways(tmp_path: Path) -> None:
    """The export reads (never writes) the org; migration jobs carry people to Salesloft and back."""
    from batchrunner.export import export_job, run_export

    job = export_job("outreach", sandbox=True)
    result, columns = anyio.run(lambda: run_export("outreach-sequence-states", job, ["Q4 Outbound"], True))
    assert columns[0] == "sequence_state_id"
    assert [(r["prospect_email"], r["state"]) for r in result.rows][:2] == [
        ("amara.weber@meridian.example.com", "active"), ("noah.moreau@orbit.example.com", "paused")]
    assert {r["state"] for r in result.rows} <= {"active", "pending", "paused"} and len(result.rows) == 5
    committed = (REPO / "sample_data" / "migration" / "outreach_sequence_states.csv").read_text().splitlines()
    assert [line.split(",")[:3] for line in committed[1:]] == [
        [str(r["sequence_state_id"]), str(r["prospect_id"]), r["prospect_email"]] for r in result.rows]
    from batchrunner.sandbox.factory import build_sandbox

    to_sl = summary_for(_run(_job(tmp_path, "migrate-outreach-to-salesloft.toml"), build_sandbox(), FakeClock()))
    assert to_sl == {"succeeded": 4, "skipped": 1}  # one person was already on the Salesloft cadence
    from_sl = summary_for(_run(_job(tmp_path, "migrate-salesloft-to-outreach.toml"), build_sandbox(), FakeClock()))
    assert from_sl == {"succeeded": 5, "failed": 2, "invalid": 1, "skipped": 1}


def summary_for(result) -> dict[str, int]:
    counts = json.loads((result.run_dir / "summary.json").read_text())["counts"]
    return {k: v for k, v in counts.items() if v}


class FailStateReads:
    """An ASGI wrapper: every read of sequence states answers 500 (the confirming look-up fails)."""

    def __init__(self, inner: SandboxApp) -> None:
        self.inner = inner

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("method") == "GET" and scope.get("path", "").startswith("/api/v2/sequenceStates"):
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.inner(scope, receive, send)


def test_a_refusal_that_cannot_be_confirmed_fails_the_row_and_the_run_goes_on(tmp_path: Path) -> None:
    job = _job(tmp_path, "outreach-enrolment.toml")
    job.write_text(job.read_text().replace("concurrency = 4", "concurrency = 4\nmax_attempts = 2"))
    result = _run(job, FailStateReads(SandboxApp([OutreachEmulator()])), clock=FakeClock())
    rows = {r["Email"]: r for r in _results(result)}
    noah = rows["noah.moreau@orbit.example.com"]  # already in the sequence: 422, then the read fails
    assert noah["_status"] == "failed" and "could not read the sequence state" in noah["_error_message"]
    assert sum(r["_status"] == "succeeded" for r in rows.values()) == 9


def test_rows_owned_by_other_users_go_with_their_tokens(tmp_path: Path) -> None:
    """[outreach.users]: a row's user_email picks the token it is sent with (and whose hourly budget
    it spends); look-ups go as the job's user; a user without a token fails the row."""
    (tmp_path / "in.csv").write_text("Email,Sequence,Owner\n"
                                     "kwame.aziz@brightpath.example.com,Q4 Outbound,\n"
                                     "yara.jensen@cobalt.example.com,Q4 Outbound,rafael.ortiz@acme.example.com\n"
                                     "henrik.nwosu@evergreen.example.com,Call Blitz,RAFAEL.ORTIZ@acme.example.com\n"
                                     "mei.tanaka@helix.example.com,Q4 Outbound,busy.sender@acme.example.com\n")
    job = tmp_path / "multi.toml"
    job.write_text(f'''name = "multi"
platform = "outreach"
operation = "add"
input = "in.csv"
output_dir = "{tmp_path}/runs"
[columns]
prospect_email = "Email"
sequence_name = "Sequence"
user_email = "Owner"
[outreach]
mailbox_id = 11
[outreach.users]
"rafael.ortiz@acme.example.com" = {{ token_env = "UNUSED_IN_THE_SANDBOX" }}
[connection]
sandbox = true
''')
    emu = OutreachEmulator()
    rows = _results(_run(job, SandboxApp([emu]), clock=FakeClock()))
    assert [r["_status"] for r in rows] == ["succeeded", "succeeded", "succeeded", "failed"]
    assert rows[3]["_error_code"] == "USER_NOT_CONFIGURED"
    assert emu.audit()["enrolled_by"] == {"1": 1, "2": 2}  # user 2 is Rafael: his rows, his token
    assert emu.budget.remaining(2) == 10000 - 2 and emu.budget.remaining(1) < 10000 - 2  # look-ups: user 1


def test_multi_user_oauth_providers_are_checked_before_anything_is_sent(tmp_path: Path, monkeypatch) -> None:
    from batchrunner.errors import JobError
    from batchrunner.platforms.outreach.auth import OutreachOAuth, user_providers

    job = _job(tmp_path, "outreach-enrolment.toml", '\n[outreach.users."rafael.ortiz@acme.example.com"]\n'
               'token_file = "rafael.json"\nrefresh_token_env = "RAFAEL_REFRESH"\n')
    job.write_text(job.read_text().replace("sandbox = true", 'sandbox = false\nauth = { method = "oauth", '
                                                            'token_file = "me.json" }'))
    for key, value in {"OUTREACH_CLIENT_ID": "id", "OUTREACH_CLIENT_SECRET": "secret",
                       "OUTREACH_REFRESH_TOKEN": "mine"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RAFAEL_REFRESH", raising=False)
    with pytest.raises(JobError, match="RAFAEL_REFRESH"):
        prepare(load_job(job))
    monkeypatch.setenv("RAFAEL_REFRESH", "his")
    providers = user_providers(load_job(job))
    assert isinstance(providers["rafael.ortiz@acme.example.com"], OutreachOAuth)
    assert providers["rafael.ortiz@acme.example.com"].token_file == tmp_path / "rafael.json"
