"""Exports for migrations (batchrunner/export/): Salesloft memberships and Salesforce trackers."""

from __future__ import annotations

import csv
import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from batchrunner.clock import FakeClock
from batchrunner.errors import JobError
from batchrunner.export import export_job
from batchrunner.export.salesforce import export_trackers
from batchrunner.export.salesloft import export_memberships
from batchrunner.sandbox.app import SandboxApp
from batchrunner.sandbox.salesforce import SalesforceEmulator
from batchrunner.sandbox.salesloft import SalesloftEmulator
from batchrunner.sandbox.seeds import load_seed

from conftest import REPO, cli

TEAM = load_seed("salesloft_team.json")


def big_team(people: int, same_stamp: bool = False) -> dict:
    team = json.loads(json.dumps(TEAM))
    team["people"] = [{"id": 400000 + i, "first_name": "P", "last_name": str(i), "email_address": f"p{i}@x.example.com",
                       "crm_id": f"00Q{i:012d}", "owner_id": 101} for i in range(people)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    cadences = [5001, 5002, 5004, 5005, 5003]  # 5006 is personal: not visible to the key
    team["memberships"] = []
    for i in range(people):
        for k, cadence in enumerate(cadences):
            n = i * len(cadences) + k
            stamp = start if same_stamp else start + timedelta(seconds=(n * 7919) % 100_003)  # shuffled times
            team["memberships"].append({"id": 10_000_000 + n, "person_id": 400000 + i, "cadence_id": cadence,
                                        "user_id": 101, "currently_on_cadence": n % 5 != 0,
                                        "updated_at": stamp.isoformat(timespec="microseconds")})
    return team


class Spy:
    """The emulator, recording each list request's query."""

    def __init__(self, emulator: SalesloftEmulator) -> None:
        self.emulator = emulator
        self.prefixes = emulator.prefixes
        self.queries: list[tuple[str, dict[str, list[str]]]] = []

    def handle(self, request):
        query: dict[str, list[str]] = {}
        for k, v in request.query:
            query.setdefault(k, []).append(v)
        self.queries.append((request.path, query))
        return self.emulator.handle(request)


@pytest.mark.anyio
async def test_salesloft_export_of_12000_memberships_never_reads_page_100(tmp_path) -> None:
    clock = FakeClock(6_000_000.0)
    team = big_team(2400)
    emulator = SalesloftEmulator(team, budget_per_minute=600, clock=clock.now)
    spy = Spy(emulator)
    job = export_job("salesloft", sandbox=True)
    result = await export_memberships(job, sandbox_app=SandboxApp([spy]), clock=clock, rng=random.Random(1))
    assert len(result.rows) == 12000 and len({r["membership_id"] for r in result.rows}) == 12000
    pages = [int(q["page"][0]) for path, q in spy.queries if path == "/v2/cadence_memberships"]
    assert max(pages) <= 99 and len(pages) >= 120
    restarts = [q for path, q in spy.queries if path == "/v2/cadence_memberships" and "updated_at[gte]" in q]
    assert restarts and all(q["sort_by"] == ["updated_at"] and q["sort_direction"] == ["ASC"] for _, q in spy.queries
                            if _ == "/v2/cadence_memberships")
    assert result.cost == result.requests  # every page cost 1: no deep page
    assert emulator.rejected_429 == 0
    row = next(r for r in result.rows if r["membership_id"] == 10_000_005)
    assert row["person_email"] == "p1@x.example.com" and row["person_crm_id"] == "00Q000000000001"
    assert row["cadence_name"] == "Q4 Outbound" and row["cadence_id"] == 5001
    # joins are batched: 2,400 people in 24 look-ups
    assert sum(1 for path, _ in spy.queries if path == "/v2/people") == 24


@pytest.mark.anyio
async def test_filters_by_cadence_and_on_cadence_only() -> None:
    emulator = SalesloftEmulator(big_team(50), budget_per_minute=100000)
    spy = Spy(emulator)
    job = export_job("salesloft", sandbox=True)
    result = await export_memberships(job, cadences=["Q4 Outbound", "5004"], on_cadence_only=True,
                                      sandbox_app=SandboxApp([spy]))
    expected = [m for m in emulator.memberships.values()
                if m["cadence"]["id"] in (5001, 5004) and m["currently_on_cadence"]]
    assert sorted(r["membership_id"] for r in result.rows) == sorted(m["id"] for m in expected)
    lists = [q for path, q in spy.queries if path == "/v2/cadence_memberships"]
    assert all(q["currently_on_cadence"] == ["true"] and q["cadence_id"][0] in ("5001", "5004") for q in lists)
    result = await export_memberships(job, cadences=["Webinar Follow-up"], sandbox_app=SandboxApp([emulator]))
    assert {r["cadence_id"] for r in result.rows} == {5002, 5003} and "all are exported" in result.notes[0]
    with pytest.raises(JobError, match="no Salesloft cadence named 'Nope'"):
        await export_memberships(job, cadences=["Nope"], sandbox_app=SandboxApp([emulator]))


@pytest.mark.anyio
async def test_a_window_of_one_timestamp_and_a_server_that_ignores_the_cursor_still_export_everything(
        monkeypatch) -> None:
    emulator = SalesloftEmulator(big_team(20, same_stamp=True), budget_per_minute=100000)
    job = export_job("salesloft", sandbox=True)
    result = await export_memberships(job, sandbox_app=SandboxApp([emulator]), per_page=10, max_page=3)
    assert len(result.rows) == 100 and any("share updated_at" in n for n in result.notes)
    # docs/platforms.md: unknown filters are silently ignored; a server without the sort is detected
    emulator = SalesloftEmulator(big_team(20), budget_per_minute=100000)
    monkeypatch.setattr(SalesloftEmulator, "_by_updated_at", staticmethod(lambda request, items: items))
    result = await export_memberships(job, sandbox_app=SandboxApp([emulator]), per_page=10, max_page=3)
    assert len(result.rows) == 100 and any("did not sort" in n for n in result.notes)


@pytest.mark.anyio
async def test_salesforce_export_of_active_trackers() -> None:
    emulator = SalesforceEmulator()
    org = load_seed("salesforce_org.json")
    job = export_job("salesforce", sandbox=True)
    result = await export_trackers(job, sandbox_app=SandboxApp([emulator]))
    active = [t for t in org["trackers"] if t["state"] in ("Running", "Paused")]
    assert len(result.rows) == len(active)
    by_target = {r["target_id"]: r for r in result.rows}
    lead = org["leads"][30]
    row = by_target[lead["id"]]
    assert row["target_type"] == "Lead" and row["target_email"] == lead["email"]
    assert row["cadence_name"] == "Q4 Outbound" and row["tracker_id"].startswith("0qB")
    # a removed tracker is not exported
    emulator.remove({"targetId": lead["id"], "completionReasonCode": "ManuallyRemoved"})
    result = await export_trackers(job, cadences=["Q4 Outbound"], sandbox_app=SandboxApp([emulator]))
    assert lead["id"] not in {r["target_id"] for r in result.rows}
    assert {r["cadence_name"] for r in result.rows} == {"Q4 Outbound"} and result.rows
    by_id = await export_trackers(job, cadences=[org["cadences"][0]["id"][:15]], sandbox_app=SandboxApp([emulator]))
    assert [r["tracker_id"] for r in by_id.rows] == [r["tracker_id"] for r in result.rows]
    with pytest.raises(JobError, match="no Salesforce cadence named"):
        await export_trackers(job, cadences=["Nope"], sandbox_app=SandboxApp([emulator]))


def test_cli_export_writes_csv(tmp_path) -> None:
    proc = cli("export", "salesloft-memberships", "--sandbox", "--on-cadence-only", "-o", str(tmp_path / "m.csv"),
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((tmp_path / "m.csv").open(encoding="utf-8")))
    assert rows and all(r["currently_on_cadence"] == "true" for r in rows)
    assert "rows to" in proc.stderr
    proc = cli("export", "salesforce-trackers", "--job", str(REPO / "jobs" / "salesloft-weekly-enrolment.toml"),
               cwd=tmp_path)
    assert proc.returncode == 2 and "salesloft job" in proc.stderr


def test_emulator_membership_list_filters_and_sorts_by_updated_at() -> None:
    """Sandbox choice (Salesloft's list conventions, not in docs/platforms.md): updated_at[...] and sort_by."""
    from batchrunner.sandbox.base import SandboxRequest

    emulator = SalesloftEmulator(big_team(4), budget_per_minute=100000)

    def ids(*query: tuple[str, str]) -> list[int]:
        request = SandboxRequest("GET", "/v2/cadence_memberships", [*query, ("per_page", "100")],
                                 {"authorization": "Bearer sandbox-key"})
        return [m["id"] for m in emulator.handle(request).body["data"]]

    stamps = {m["id"]: m["updated_at"] for m in emulator.memberships.values()}
    ascending = ids(("sort_by", "updated_at"), ("sort_direction", "ASC"))
    assert [stamps[i] for i in ascending] == sorted(stamps[i] for i in ascending)
    assert ids(("sort_by", "updated_at")) == ascending[::-1]  # DESC by default
    middle = stamps[ascending[10]]
    assert ids(("sort_by", "updated_at"), ("sort_direction", "ASC"), ("updated_at[gte]", middle)) == ascending[10:]
    assert ids(("sort_by", "updated_at"), ("sort_direction", "ASC"), ("updated_at[gt]", middle)) == ascending[11:]
    assert ids(("sort_by", "updated_at"), ("sort_direction", "ASC"), ("updated_at[lt]", middle)) == ascending[:10]
    assert ids(("updated_at[gte]", "not a date")) == ids()  # ignored, like an unknown filter


@pytest.mark.anyio
async def test_export_keeps_to_the_team_budget_and_recovers_from_429() -> None:
    """docs/platforms.md: 600 cost per minute per team, shared; here the team has 10 and another integration
    spends some of it: the export waits for the next minute instead of failing."""
    from batchrunner.job import Limits

    clock = FakeClock(6_000_000.0)
    emulator = SalesloftEmulator(big_team(400), budget_per_minute=10, clock=clock.now)
    emulator.spend_external(4)
    job = export_job("salesloft", sandbox=True)
    job.limits = Limits(requests_per_minute=10)
    result = await export_memberships(job, sandbox_app=SandboxApp([emulator]), clock=clock, rng=random.Random(2))
    assert len(result.rows) == 2000
    assert clock.now() - 6_000_000.0 >= 120  # 25 requests at 10 a minute
    assert emulator.rejected_429 <= 2
