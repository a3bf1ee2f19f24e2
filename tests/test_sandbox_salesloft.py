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


POST = "/v2/cadence_memberships"


def test_add_answers_the_documented_membership_and_re_add_moves_added_at_only() -> None:
    clock = FakeClock(1_700_000_000.0)
    emu = SalesloftEmulator(clock=clock.now)
    first = call(emu, "POST", POST, [("person_id", "70007"), ("cadence_id", "5004")])
    data = first.body["data"]
    assert first.status == 200
    assert set(data) == {"id", "added_at", "created_at", "updated_at", "person_deleted", "currently_on_cadence",
                         "current_state", "cadence", "person", "user", "latest_action", "counts"}
    assert data["person"] == {"id": 70007, "_href": "https://api.salesloft.com/v2/people/70007"}
    assert data["cadence"]["id"] == 5004 and data["user"]["id"] == 105  # user_id defaults to the key's user
    assert data["current_state"] == "staged" and data["person_deleted"] is False
    assert data["created_at"] == data["added_at"] == "2023-11-14T22:13:20.000000+00:00"
    assert set(data["counts"]) == {"views", "clicks", "replies", "calls", "sent_emails", "bounces"}
    listed = call(emu, "GET", POST, [("person_id", "70007"), ("cadence_id", "5004"), ("currently_on_cadence", "true")])
    assert [m["id"] for m in listed.body["data"]] == [data["id"]]
    clock.time += 3600
    assert call(emu, "DELETE", f"{POST}/{data['id']}").status == 204
    assert call(emu, "GET", POST, [("person_id", "70007"), ("currently_on_cadence", "true")]).body["data"] == []
    assert data["currently_on_cadence"] is True  # the first answer is a snapshot, not the live record
    clock.time += 3600
    again = call(emu, "POST", POST, [("person_id", "70007"), ("cadence_id", "5004")]).body["data"]
    assert again["id"] == data["id"] and again["created_at"] == data["created_at"]
    assert again["added_at"] == "2023-11-15T00:13:20.000000+00:00" and again["currently_on_cadence"] is True
    assert data["added_at"] == "2023-11-14T22:13:20.000000+00:00"  # still the snapshot
    assert len([m for m in emu.memberships.values() if m["person"]["id"] == 70007]) == 1


def test_seeded_removed_membership_is_reused_and_seeded_current_one_refuses() -> None:
    emu = SalesloftEmulator()
    caleb = call(emu, "GET", f"{POST}/8000008").body["data"]
    assert caleb["currently_on_cadence"] is False and caleb["current_state"] == "removed"
    assert call(emu, "DELETE", f"{POST}/8000008").status == 404  # already removed: 404 (sandbox choice)
    assert call(emu, "POST", POST, [("person_id", "70005"), ("cadence_id", "5001")]).body["data"]["id"] == 8000008
    refused = call(emu, "POST", POST, [("person_id", "70003"), ("cadence_id", "5001")])  # Henrik is on it
    assert refused.status == 422 and refused.body == {"errors": {"base": ["person is already on this cadence"]}}
    assert call(emu, "GET", f"{POST}/123").status == 404
    assert call(emu, "DELETE", f"{POST}/123").body == {"error": "Not Found"}


def test_missing_or_bad_parameters_and_unknown_records() -> None:
    emu = SalesloftEmulator()
    assert call(emu, "POST", POST, [("cadence_id", "5001")]).body == {"errors": {"person_id": ["is required"]}}
    assert call(emu, "POST", POST, [("person_id", "70001"), ("cadence_id", "x")]).body["errors"] == {
        "cadence_id": ["must be an integer"]}
    assert call(emu, "POST", POST, [("person_id", "1"), ("cadence_id", "5001")]).status == 404
    assert call(emu, "POST", POST, [("person_id", "70001"), ("cadence_id", "1")]).status == 404
    unknown_user = call(emu, "POST", POST, [("person_id", "70001"), ("cadence_id", "5001"), ("user_id", "999")])
    assert unknown_user.status == 422 and "user_id" in unknown_user.body["errors"]
    assert not any(m["person"]["id"] == 70001 for m in emu.memberships.values())


def test_teammate_rule_follows_the_seed_wording() -> None:
    emu = SalesloftEmulator()
    # Keiko's own shared cadence, on Keiko's behalf: allowed (owned by the teammate)
    own = call(emu, "POST", POST, [("person_id", "70010"), ("cadence_id", "5003"), ("user_id", "103")])
    assert own.status == 200 and own.body["data"]["user"]["id"] == 103
    # the same shared cadence for the key's own user (not owner, not a team cadence, no permission): 403
    mine = call(emu, "POST", POST, [("person_id", "70011"), ("cadence_id", "5003")])
    assert mine.status == 403 and "error" in mine.body
    # on Dana's behalf (she holds Personal Cadence Admin): allowed on Keiko's personal cadence
    dana = call(emu, "POST", POST, [("person_id", "70011"), ("cadence_id", "5003"), ("user_id", "101")])
    assert dana.status == 200 and dana.body["data"]["user"]["id"] == 101
    # Dana's key, on Sam's behalf, on Rafael's personal cadence: Sam has no permission -> 403
    refused = call(emu, "POST", POST, [("person_id", "70012"), ("cadence_id", "5006"), ("user_id", "104")], DANA)
    assert refused.status == 403
    # the same with Rafael as the acting user: his own cadence
    assert call(emu, "POST", POST, [("person_id", "70012"), ("cadence_id", "5006"), ("user_id", "102")],
                DANA).status == 200


def test_private_person_is_not_visible_to_others() -> None:
    team = json.loads(json.dumps(TEAM))
    team["people"].append({"id": 70500, "first_name": "Pia", "last_name": "Privat", "owner_id": 102,
                           "email_address": "pia@private.example.com", "private": True})
    emu = SalesloftEmulator(team)
    add = [("person_id", "70500"), ("cadence_id", "5001")]
    assert call(emu, "POST", POST, add).status == 404
    assert call(emu, "GET", "/v2/people", [("ids[]", "70500")]).body["data"] == []
    rafael = {"authorization": "Bearer sandbox-key-rafael"}
    assert [p["id"] for p in call(emu, "GET", "/v2/people", [("ids[]", "70500")], rafael).body["data"]] == [70500]
    assert call(emu, "POST", POST, add, rafael).status == 200


def test_people_cadence_user_and_step_lookups() -> None:
    emu = SalesloftEmulator()
    dup = call(emu, "GET", "/v2/people", [("email_addresses[]", "Anika.Schmidt@Redwood.example.com")])
    assert sorted(p["id"] for p in dup.body["data"]) == [70010, 70099]  # two people, one email
    by_crm = call(emu, "GET", "/v2/people", [("crm_id[]", "00Q5e0000000503EAA"), ("crm_id[]", "00Q5e0000000506EAA")])
    assert sorted(p["id"] for p in by_crm.body["data"]) == [70003, 70006]
    person = call(emu, "GET", "/v2/people", [("ids[]", "70003")]).body["data"][0]
    assert person["email_address"] == "henrik.nwosu@evergreen.example.com" and person["owner"]["id"] == 104
    assert call(emu, "GET", "/v2/people", [("email_addresses[]", "nobody@x.example.com")]).body["data"] == []
    ignored = call(emu, "GET", "/v2/cadences", [("name", "Q4 Outbound")])  # misspelt filter: everything visible
    assert {c["id"] for c in ignored.body["data"]} == {5001, 5002, 5003, 5004, 5005}  # not Rafael's personal one
    exact = call(emu, "GET", "/v2/cadences", [("name[]", "Q4 Outbound"), ("name[]", "q4 outbound")]).body["data"]
    assert [(c["id"], c["team_cadence"], c["owner"]["id"]) for c in exact] == [(5001, True, 101)]
    assert [c["id"] for c in call(emu, "GET", "/v2/cadences", [("ids[]", "5004")]).body["data"]] == [5004]
    assert [c["id"] for c in call(emu, "GET", "/v2/cadences", [("ids[]", "5006")], DANA).body["data"]] == [5006]
    everyone = call(emu, "GET", "/v2/users").body
    assert len(everyone["data"]) == 5 and everyone["metadata"]["paging"]["next_page"] is None
    paged = call(emu, "GET", "/v2/users", [("per_page", "2"), ("page", "3")]).body
    assert len(paged["data"]) == 1 and paged["metadata"]["paging"] == {"per_page": 2, "current_page": 3,
                                                                        "next_page": None, "prev_page": 2}
    assert [u["id"] for u in call(emu, "GET", "/v2/users", [("search", "acme.example.com")]).body["data"]] == [
        101, 102, 103, 104, 105]
    assert [u["id"] for u in call(emu, "GET", "/v2/users", [("search", "ortiz")]).body["data"]] == [102]
    assert call(emu, "GET", "/v2/me").body["data"]["id"] == 105
    assert call(emu, "GET", "/v2/me", headers=DANA).body["data"]["email"] == "dana.whitaker@acme.example.com"
    steps = call(emu, "GET", "/v2/steps", [("cadence_id", "5001")]).body["data"]
    assert [(s["id"], s["step_number"]) for s in steps] == [(50011, 1), (50012, 2), (50013, 3)]
    assert call(emu, "GET", "/v2/steps/50061").status == 404  # on a cadence this key cannot see


def test_paging_walks_every_person_once() -> None:
    emu = SalesloftEmulator()
    seen, page = [], 1
    while page:
        body = call(emu, "GET", "/v2/people", [("per_page", "10"), ("page", str(page))]).body
        seen += [p["id"] for p in body["data"]]
        assert body["metadata"]["paging"]["current_page"] == page
        page = body["metadata"]["paging"]["next_page"]
    assert sorted(seen) == sorted(p["id"] for p in TEAM["people"]) and len(seen) == len(set(seen))
    clamped = call(emu, "GET", "/v2/people", [("per_page", "500")]).body
    assert clamped["metadata"]["paging"]["per_page"] == 100
    assert call(emu, "GET", "/v2/people", [("page", "99")]).body["data"] == []


def test_401_for_an_unknown_key_carries_headers_and_costs_nothing() -> None:
    clock = FakeClock(6_000_000.0)
    emu = SalesloftEmulator(clock=clock.now)
    for headers in ({"authorization": "Bearer nope"}, {}, {"authorization": "Basic c2FuZGJveC1rZXk="}):
        refused = call(emu, "POST", POST, [("person_id", "70001"), ("cadence_id", "5001")], headers)
        assert refused.status == 401 and refused.body == {"error": "Unauthorized"}
        assert refused.headers["x-ratelimit-remaining-minute"] == "600"
    assert emu.calls[-1] == ("POST", POST) and len(emu.calls) == 3
    assert emu.enrolments == {}


def test_a_full_600_minute_then_429_changes_nothing_and_the_next_minute_restores_it() -> None:
    clock = FakeClock(6_000_000.0 + 30)  # half-way through a clock minute
    emu = SalesloftEmulator(clock=clock.now)  # defaults: 600 per minute, fixed window
    for n in range(600):
        assert call(emu, "GET", "/v2/me").status == 200
    refused = call(emu, "POST", POST, [("person_id", "70001"), ("cadence_id", "5001")])
    assert refused.status == 429 and refused.body == {"error": "Rate limit exceeded"}
    assert refused.headers == {"x-ratelimit-endpoint-cost": "1", "x-ratelimit-remaining-minute": "0"}
    assert "70001:5001" not in emu.enrolments and emu.rejected_429 == 1
    clock.time = 6_000_000.0 + 59.9
    assert call(emu, "GET", "/v2/me").status == 429  # same clock minute
    clock.time = 6_000_000.0 + 60.0  # fixed window: the next clock minute starts afresh, 30 s after the spending
    ok = call(emu, "POST", POST, [("person_id", "70001"), ("cadence_id", "5001")])
    assert ok.status == 200 and ok.headers["x-ratelimit-remaining-minute"] == "599"


def test_rolling_window_frees_budget_60_seconds_after_it_was_spent() -> None:
    clock = FakeClock(6_000_000.0 + 30)
    emu = SalesloftEmulator(clock=clock.now, window="rolling")
    for _ in range(300):
        call(emu, "GET", "/v2/me")
    clock.time += 20  # 50 s into the minute
    for _ in range(300):
        call(emu, "GET", "/v2/me")
    assert call(emu, "GET", "/v2/me").status == 429
    clock.time = 6_000_000.0 + 60.5  # a new clock minute, but the spending is < 60 s old: still refused
    assert call(emu, "GET", "/v2/me").status == 429
    clock.time = 6_000_000.0 + 90.5  # the first 300 are now older than 60 s
    response = call(emu, "GET", "/v2/me")
    assert response.status == 200 and response.headers["x-ratelimit-remaining-minute"] == "299"
    with pytest.raises(ValueError):
        SalesloftEmulator(window="sliding")


def test_costly_pages_and_external_spend_share_the_budget() -> None:
    clock = FakeClock(6_000_000.0)
    emu = SalesloftEmulator(budget_per_minute=10, clock=clock.now)
    emu.spend_external(6)
    deep = call(emu, "GET", "/v2/people", [("page", "101")])
    assert deep.headers == {"x-ratelimit-endpoint-cost": "3", "x-ratelimit-remaining-minute": "1"}
    again = call(emu, "GET", "/v2/people", [("page", "101")])  # costs 3, only 1 left
    assert again.status == 429 and again.headers["x-ratelimit-endpoint-cost"] == "3"
    assert call(emu, "GET", "/v2/me").headers["x-ratelimit-remaining-minute"] == "0"
    emu.spend_external(50)  # more than is left: the budget simply stays spent
    assert call(emu, "GET", "/v2/me").status == 429


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
