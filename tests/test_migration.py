"""Migration jobs end to end against one in-process sandbox (the emulators involved), through the
real runner: export the source, run the job, and compare the target's final state with the source's.
Salesloft <-> Salesforce and Outreach <-> Salesforce here; Outreach <-> Salesloft in test_outreach.py."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from batchrunner.export import export_job, write_csv
from batchrunner.export.salesforce import COLUMNS as SF_COLUMNS
from batchrunner.export.salesforce import export_trackers
from batchrunner.export.salesloft import COLUMNS as SL_COLUMNS
from batchrunner.export.outreach import COLUMNS as OR_COLUMNS
from batchrunner.export.outreach import export_sequence_states
from batchrunner.export.salesloft import export_memberships
from batchrunner.job import load_job
from batchrunner.runner import prepare, run_prepared
from batchrunner.sandbox.app import SandboxApp
from batchrunner.sandbox.salesforce import SalesforceEmulator
from batchrunner.sandbox.outreach import OutreachEmulator
from batchrunner.sandbox.salesloft import SalesloftEmulator
from conftest import REPO, cli

MIGRATION = REPO / "sample_data" / "migration"


def cadence_map(name: str, key: str, value: str) -> dict[str, str]:
    return {r[key]: r[value] for r in csv.DictReader((MIGRATION / name).open(encoding="utf-8"))}


def sandbox() -> tuple[SandboxApp, SalesforceEmulator, SalesloftEmulator]:
    sf, sl = SalesforceEmulator(), SalesloftEmulator(budget_per_minute=600)
    return SandboxApp([sf, sl]), sf, sl


def sf_active(sf: SalesforceEmulator) -> dict[str, str]:
    """target ID -> name of the cadence of its active tracker."""
    out = {}
    for target in sf.targets:
        tracker = sf._active_tracker(target)
        if tracker is not None:
            out[target] = sf.cadences[tracker["cadence_id"]]["name"]
    return out


@pytest.mark.anyio
async def test_salesloft_to_salesforce(tmp_path: Path) -> None:
    app, sf, sl = sandbox()
    exported = await export_memberships(export_job("salesloft", sandbox=True), on_cadence_only=True, sandbox_app=app)
    source = tmp_path / "memberships.csv"
    write_csv(source, exported.rows, SL_COLUMNS)
    # the demo job's committed input is exactly what the export writes from the seed
    assert source.read_text(encoding="utf-8") == (MIGRATION / "salesloft_memberships.csv").read_text(encoding="utf-8")
    before = sf_active(sf)
    job = load_job(REPO / "jobs" / "migrate-salesloft-to-salesforce.toml")
    result = await run_prepared(prepare(job, source), output_dir=tmp_path / "runs", sandbox_app=app, progress=False)
    assert result.exit_code == 0 and result.summary["counts"]["succeeded"] == len(exported.rows) > 5
    mapping = cadence_map("salesloft_to_salesforce_cadences.csv", "salesloft_cadence", "salesforce_cadence")
    expected = {row["person_crm_id"]: mapping[row["cadence_name"]] for row in exported.rows}
    after = sf_active(sf)
    assert {t: after[t] for t in expected} == expected  # the same people on the mapped cadences
    assert {t: c for t, c in after.items() if t not in expected} == before  # nobody else touched


@pytest.mark.anyio
async def test_salesforce_to_salesloft(tmp_path: Path) -> None:
    app, sf, sl = sandbox()
    exported = await export_trackers(export_job("salesforce", sandbox=True), sandbox_app=app)
    source = tmp_path / "trackers.csv"
    write_csv(source, exported.rows, SF_COLUMNS)
    assert source.read_text(encoding="utf-8") == (MIGRATION / "salesforce_trackers.csv").read_text(encoding="utf-8")
    before = {(m["person"]["id"], m["cadence"]["id"]) for m in sl.memberships.values() if m["currently_on_cadence"]}
    job = load_job(REPO / "jobs" / "migrate-salesforce-to-salesloft.toml")
    result = await run_prepared(prepare(job, source), output_dir=tmp_path / "runs", sandbox_app=app, progress=False)
    assert result.exit_code == 0 and result.summary["counts"]["succeeded"] == len(exported.rows) == 10
    mapping = cadence_map("salesforce_to_salesloft_cadences.csv", "salesforce_cadence", "salesloft_cadence_id")
    person_by_crm = {p["crm_id"]: p["id"] for p in sl.people.values() if p.get("crm_id")}
    expected = {(person_by_crm[row["target_id"]], int(mapping[row["cadence_name"]])) for row in exported.rows}
    after = {(m["person"]["id"], m["cadence"]["id"]) for m in sl.memberships.values() if m["currently_on_cadence"]}
    assert expected <= after and after - expected == before  # the same people on the mapped cadences, no more


@pytest.mark.anyio
async def test_a_cadence_the_map_lacks_is_invalid_naming_it(tmp_path: Path) -> None:
    app, sf, _ = sandbox()
    rows = list(csv.DictReader((MIGRATION / "salesloft_memberships.csv").open(encoding="utf-8")))
    rows[0]["cadence_name"] = "Rafael's Personal Touch"
    source = tmp_path / "m.csv"
    write_csv(source, rows, SL_COLUMNS)
    job = load_job(REPO / "jobs" / "migrate-salesloft-to-salesforce.toml")
    result = await run_prepared(prepare(job, source), output_dir=tmp_path / "runs", sandbox_app=app, progress=False)
    assert result.exit_code == 1 and result.summary["counts"]["invalid"] == 1
    report = list(csv.DictReader((result.run_dir / "results.csv").open(encoding="utf-8")))
    assert report[0]["_error_code"] == "MAPPING_NO_MATCH"
    assert "salesloft_cadence = 'Rafael's Personal Touch'" in report[0]["_error_message"]
    assert list(report[0])[: len(SL_COLUMNS)] == SL_COLUMNS  # the input's columns, unchanged


def outreach_live(emulator: OutreachEmulator) -> set[tuple[int, int]]:
    """(prospect id, sequence id) of every active, pending or paused sequence state."""
    return {(s["relationships"]["prospect"]["data"]["id"], s["relationships"]["sequence"]["data"]["id"])
            for s in emulator.states.values() if s["attributes"]["state"] in ("active", "pending", "paused")}


@pytest.mark.anyio
async def test_outreach_to_salesforce_by_email(tmp_path: Path) -> None:
    """The Outreach export's emails become Salesforce target IDs through a people list (Id, Email)."""
    sf, emulator = SalesforceEmulator(), OutreachEmulator()
    app = SandboxApp([sf, emulator])
    exported = await export_sequence_states(export_job("outreach", sandbox=True), live_only=True, sandbox_app=app)
    source = tmp_path / "states.csv"
    write_csv(source, exported.rows, OR_COLUMNS)
    assert [line.split(",")[:3] for line in source.read_text(encoding="utf-8").splitlines()] == [
        line.split(",")[:3] for line in (MIGRATION / "outreach_sequence_states.csv").read_text().splitlines()]
    before = sf_active(sf)
    job = load_job(REPO / "jobs" / "migrate-outreach-to-salesforce.toml")
    result = await run_prepared(prepare(job, source), output_dir=tmp_path / "runs", sandbox_app=app, progress=False)
    assert result.summary["counts"]["succeeded"] == 4 and result.summary["counts"]["skipped"] == 1  # one already on
    people = {r["Email"].lower(): r["Id"] for r in csv.DictReader((MIGRATION / "salesforce_people.csv").open())}
    mapping = cadence_map("outreach_to_salesforce_cadences.csv", "outreach_sequence", "salesforce_cadence")
    expected = {people[r["prospect_email"].lower()]: mapping[r["sequence_name"]] for r in exported.rows}
    after = sf_active(sf)
    assert {t: after[t] for t in expected} == expected  # the same people on the mapped cadences
    untouched = {t: c for t, c in before.items() if t not in expected}
    assert {t: c for t, c in after.items() if t not in expected} == untouched  # nobody else touched
    assert max(sf.assignments.values()) == 1


@pytest.mark.anyio
async def test_salesforce_to_outreach_by_email(tmp_path: Path) -> None:
    """Salesforce trackers' target emails find Outreach prospects; cadences map to sequence IDs."""
    sf, emulator = SalesforceEmulator(), OutreachEmulator()
    app = SandboxApp([sf, emulator])
    before = outreach_live(emulator)
    job = load_job(REPO / "jobs" / "migrate-salesforce-to-outreach.toml")
    source = MIGRATION / "salesforce_trackers.csv"  # what export salesforce-trackers writes (test above)
    result = await run_prepared(prepare(job, source), output_dir=tmp_path / "runs", sandbox_app=app, progress=False)
    assert result.exit_code == 0 and result.summary["counts"]["succeeded"] == 9
    assert result.summary["counts"]["skipped"] == 1  # already in the sequence in Outreach
    prospect = {e.lower(): p["id"] for p in emulator.prospects.values() for e in p["emails"]}
    mapping = cadence_map("salesforce_to_outreach_sequences.csv", "salesforce_cadence", "outreach_sequence_id")
    rows = list(csv.DictReader(source.open(encoding="utf-8")))
    expected = {(prospect[r["target_email"].lower()], int(mapping[r["cadence_name"]])) for r in rows}
    after = outreach_live(emulator)
    assert expected <= after and after - expected == before - expected  # the same people, no one else
    assert max(emulator.enrolments.values()) == 1


def test_demo_migration_jobs_run_from_the_command_line(tmp_path: Path) -> None:
    for job, summary in (("migrate-salesloft-to-salesforce.toml", "9 succeeded"),
                         ("migrate-salesforce-to-salesloft.toml", "10 succeeded")):
        proc = cli("run", str(REPO / "jobs" / job), "--output-dir", str(tmp_path), "--no-progress", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert summary in proc.stdout
