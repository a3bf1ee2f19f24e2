"""The Salesloft emulator answers as the documentation says, and the platform's look-ups and
outcomes hold against it (including a 1,000-row enrolment within a 600/min budget)."""

from __future__ import annotations

import csv
import json
import random

import pytest

from batchrunner.clock import FakeClock
from batchrunner.job import load_job
from batchrunner.runner import prepare, run_prepared
from batchrunner.sandbox.app import SandboxApp
from batchrunner.sandbox.base import SandboxRequest
from batchrunner.sandbox.salesloft import SalesloftEmulator
from batchrunner.sandbox.seeds import load_seed

TEAM = load_seed("salesloft_team.json")
KEY = {"authorization": "Bearer sandbox-key"}  # the integration user (no admin rights)
DANA = {"authorization": "Bearer sandbox-key-dana"}  # admin with Personal Cadence Admin


def call(emu, method, path, query=(), headers=KEY):
    return emu.handle(SandboxRequest(method, path, list(query), dict(headers)))


def test_add_then_422_already_on_cadence_then_remove_and_readd_reuses_the_record() -> None:
    emu = SalesloftEmulator()
    added = call(emu, "POST", "/v2/cadence_memberships", [("person_id", "70001"), ("cadence_id", "5001")])
    assert added.status == 200 and added.body["data"]["currently_on_cadence"] is True
    mid = added.body["data"]["id"]
    again = call(emu, "POST", "/v2/cadence_memberships", [("person_id", "70001"), ("cadence_id", "5001")])
    assert again.status == 422 and "already on this cadence" in again.body["errors"]["base"][0]
    assert call(emu, "DELETE", f"/v2/cadence_memberships/{mid}").status == 204
    shown = call(emu, "GET", f"/v2/cadence_memberships/{mid}")
    assert shown.body["data"]["current_state"] == "removed" and not shown.body["data"]["currently_on_cadence"]
    assert call(emu, "DELETE", f"/v2/cadence_memberships/{mid}").status == 404
    readded = call(emu, "POST", "/v2/cadence_memberships", [("person_id", "70001"), ("cadence_id", "5001")])
    assert readded.body["data"]["id"] == mid  # one record per (person, cadence)
    assert readded.body["data"]["created_at"] == added.body["data"]["created_at"]


def test_visibility_teammate_and_step_rules() -> None:
    emu = SalesloftEmulator()
    personal = [("person_id", "70002"), ("cadence_id", "5006")]  # Rafael's personal cadence
    assert call(emu, "POST", "/v2/cadence_memberships", personal).status == 404  # not visible to this key
    assert call(emu, "POST", "/v2/cadence_memberships", personal, headers=DANA).status == 200  # admin sees it
    # on a teammate's behalf: allowed on a team cadence, refused on someone else's personal one
    team = [("person_id", "70006"), ("cadence_id", "5001"), ("user_id", "103")]
    assert call(emu, "POST", "/v2/cadence_memberships", team).body["data"]["user"]["id"] == 103
    rafael = {"authorization": "Bearer sandbox-key-rafael"}
    other = [("person_id", "70008"), ("cadence_id", "5006"), ("user_id", "103")]
    assert call(emu, "POST", "/v2/cadence_memberships", other, headers=rafael).status == 403
    bad_step = [("person_id", "70009"), ("cadence_id", "5001"), ("step_id", "50021")]
    refused = call(emu, "POST", "/v2/cadence_memberships", bad_step)
    assert refused.status == 422 and "step_id" in refused.body["errors"]
    assert call(emu, "POST", "/v2/cadence_memberships", [("person_id", "70009"), ("cadence_id", "5001"),
                                                         ("step_id", "50012")]).status == 200


def test_lookups_filters_and_paging() -> None:
    emu = SalesloftEmulator()
    people = call(emu, "GET", "/v2/people", [("email_addresses[]", "KWAME.AZIZ@brightpath.example.com"),
                                             ("email_addresses[]", "yara.jensen@cobalt.example.com")])
    assert sorted(p["id"] for p in people.body["data"]) == [70001, 70002]
    ignored = call(emu, "GET", "/v2/people", [("email_address", "kwame.aziz@brightpath.example.com")])
    assert len(ignored.body["data"]) == 25  # unknown filter ignored: an unfiltered first page
    assert ignored.body["metadata"]["paging"]["next_page"] == 2
    last = call(emu, "GET", "/v2/people", [("per_page", "100"), ("page", "1")])
    assert last.body["metadata"]["paging"]["next_page"] is None
    webinar = call(emu, "GET", "/v2/cadences", [("name[]", "Webinar Follow-up")])
    assert sorted(c["id"] for c in webinar.body["data"]) == [5002, 5003]
    users = call(emu, "GET", "/v2/users")
    assert len(users.body["data"]) == len(TEAM["users"])
    assert [u["id"] for u in call(emu, "GET", "/v2/users", [("search", "SATO")]).body["data"]] == [103]
    assert call(emu, "GET", "/v2/people", headers={"authorization": "Bearer nope"}).status == 401


@pytest.mark.parametrize("window", ["fixed", "rolling"])
def test_budget_429_and_recovery(window: str) -> None:
    clock = FakeClock(6_000_000.0)  # on a minute boundary
    emu = SalesloftEmulator(budget_per_minute=10, clock=clock.now, window=window)
    for n in range(10):
        response = call(emu, "GET", "/v2/users")
        assert response.headers["x-ratelimit-remaining-minute"] == str(9 - n)
        assert response.headers["x-ratelimit-endpoint-cost"] == "1"
        clock.time += 1
    refused = call(emu, "GET", "/v2/users")
    assert refused.status == 429 and refused.body == {"error": "Rate limit exceeded"}
    assert "retry-after" not in {k.lower() for k in refused.headers}
    clock.time = 6_000_000.0 + 60.5  # next clock minute; rolling: the first request has aged out
    assert call(emu, "GET", "/v2/users").status == 200


def test_other_integrations_spend_the_shared_budget() -> None:
    clock = FakeClock(6_000_000.0)
    emu = SalesloftEmulator(budget_per_minute=600, clock=clock.now)
    emu.spend_external(180)
    assert call(emu, "GET", "/v2/me").headers["x-ratelimit-remaining-minute"] == "419"


def test_costly_pages() -> None:
    emu = SalesloftEmulator(clock=FakeClock().now)
    assert call(emu, "GET", "/v2/people", [("page", "101")]).headers["x-ratelimit-endpoint-cost"] == "3"


def _results(run_dir) -> list[dict[str, str]]:
    with (run_dir / "results.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.anyio
async def test_demo_enrolment_outcomes(tmp_path) -> None:
    job = load_job("jobs/salesloft-weekly-enrolment.toml")
    result = await run_prepared(prepare(job), output_dir=tmp_path, progress=False)
    by_email = {(r["Email"].lower(), r["Cadence"]): r for r in _results(result.run_dir)}
    assert by_email[("henrik.nwosu@evergreen.example.com", "Q4 Outbound")]["_error_code"] == "ALREADY_ON_CADENCE"
    assert by_email[("olga.unknown@nowhere.example.com", "Q4 Outbound")]["_error_code"] == "PERSON_NOT_FOUND"
    assert by_email[("sofia.fischer@helix.example.com", "Webinar Follow-up")]["_error_code"] == "AMBIGUOUS_CADENCE"
    assert by_email[("anika.schmidt@redwood.example.com", "Q4 Outbound")]["_error_code"] == "AMBIGUOUS_PERSON"
    assert by_email[("not-an-email", "Q4 Outbound")]["_status"] == "invalid"
    omar = by_email[("omar.chen@orbit.example.com", "Q4 Outbound")]
    assert omar["_status"] == "succeeded" and json.loads(omar["_result"])["membership_id"]
    caleb = json.loads(by_email[("caleb.petrov@lumen.example.com", "Q4 Outbound")]["_result"])
    assert caleb["membership_id"] == 8000008  # removed earlier: the same record is reused
    assert result.summary["counts"] == {"succeeded": 16, "failed": 5, "invalid": 1, "skipped": 2, "not_attempted": 0}


@pytest.mark.anyio
async def test_demo_removals(tmp_path) -> None:
    result = await run_prepared(prepare(load_job("jobs/salesloft-removals.toml")), output_dir=tmp_path, progress=False)
    rows = _results(result.run_dir)
    assert [r["_status"] for r in rows] == ["succeeded"] * 5 + ["skipped", "skipped", "failed"]
    assert {r["_error_code"] for r in rows[5:7]} == {"NOT_ON_CADENCE"}


@pytest.mark.anyio
async def test_thousand_row_enrolment_within_a_600_per_minute_budget(tmp_path, write_job) -> None:
    """1,000 people against a 600/min budget: nothing lost, and no request answered 429 twice in a
    row (the limiter paces to the budget and waits for the window rather than hammering)."""
    team = json.loads(json.dumps(TEAM))
    team["people"] = [{"id": 100000 + n, "first_name": "P", "last_name": str(n), "email_address": f"p{n}@x.example.com",
                       "owner_id": 101} for n in range(1000)]
    team["memberships"] = []
    clock = FakeClock(6_000_000.0 + 17)
    emulator = SalesloftEmulator(team, budget_per_minute=600, clock=clock.wall)
    emulator.spend_external(150)  # someone else already spent a quarter of this minute
    statuses: list[int] = []
    app = SandboxApp([emulator])
    original = app.dispatch

    def dispatch(request):
        response = original(request)
        statuses.append(response.status)
        return response

    app.dispatch = dispatch  # type: ignore[method-assign]
    rows = "\n".join(f"{100000 + n},5001" for n in range(1000))
    job = write_job(f"Person,Cadence\n{rows}\n", """
        name = "sl-thousand"
        platform = "salesloft"
        operation = "add"
        input = "input.csv"
        [columns]
        person_id = "Person"
        cadence_id = "Cadence"
        [connection]
        sandbox = true
        [limits]
        concurrency = 4
        requests_per_minute = 600
    """)
    result = await run_prepared(prepare(load_job(job)), output_dir=tmp_path, sandbox_app=app, clock=clock,
                                rng=random.Random(3), progress=False)
    print("429s:", statuses.count(429), "requests:", len(statuses), "virtual seconds:", clock.now() - 6_000_017.0)
    assert result.summary["counts"]["succeeded"] == 1000 and result.exit_code == 0
    assert len(emulator.enrolments) == 1000 and max(emulator.enrolments.values()) == 1
    assert not any(a == b == 429 for a, b in zip(statuses, statuses[1:], strict=False))
    assert clock.now() - 6_000_017.0 >= 60  # it had to wait for budget: 1,000 > 600 - 150 in the first minute


@pytest.mark.anyio
async def test_email_lookups_are_batched_100_per_request_and_cached(tmp_path, write_job) -> None:
    team = json.loads(json.dumps(TEAM))
    team["people"] = [{"id": 200000 + n, "first_name": "P", "last_name": str(n), "email_address": f"q{n}@x.example.com",
                       "owner_id": 101} for n in range(250)]
    team["memberships"] = []
    emulator = SalesloftEmulator(team, budget_per_minute=100000)
    # 250 people, each on two cadences: 500 rows, but each email is looked up once
    rows = "\n".join(f"Q{n}@X.example.com,{cadence}" for n in range(250) for cadence in ("Q4 Outbound",
                                                                                       "Inbound Demo Request"))
    job = write_job(f"Email,Cadence\n{rows}\n", """
        name = "sl-batched"
        platform = "salesloft"
        operation = "add"
        input = "input.csv"
        [columns]
        person_email = "Email"
        cadence_name = "Cadence"
        [connection]
        sandbox = true
        [limits]
        requests_per_minute = 100000
    """)
    result = await run_prepared(prepare(load_job(job)), output_dir=tmp_path, sandbox_app=SandboxApp([emulator]),
                                progress=False)
    assert result.summary["counts"]["succeeded"] == 500
    people_calls = [c for c in emulator.calls if c[1] == "/v2/people"]
    cadence_calls = [c for c in emulator.calls if c[1] == "/v2/cadences"]
    assert len(people_calls) == 3  # ceil(250 / 100), and not again for each person's second row
    # rows for one person go in file order (two waves); each cadence name is looked up once
    assert len(cadence_calls) == 2
