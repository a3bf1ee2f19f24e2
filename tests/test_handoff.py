"""The migration hand-off (issue 17.3): `handoff = "remove_from_source"` takes a person off the source
tool only after the target shows them enrolled. Judged from the emulators' own state: at the end
every person is active in exactly one tool (never both, never neither), also after a crash and
`resume`."""

from __future__ import annotations

import csv
import re
import shutil
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from batchrunner import failpoints
from batchrunner.errors import JobError
from batchrunner.export import write_csv
from batchrunner.export.salesloft import COLUMNS as SL_COLUMNS
from batchrunner.job import load_job, parse_job
from batchrunner.platforms.salesforce.ids import to18
from batchrunner.platforms.salesforce.platform import SANDBOX_TOKEN as SF_TOKEN
from batchrunner.platforms.salesloft.platform import SANDBOX_TOKEN as SL_TOKEN
from batchrunner.runner import prepare, resume_async, retry_rows, run_prepared
from batchrunner.sandbox.app import SandboxApp
from batchrunner.sandbox.salesforce import SalesforceEmulator
from batchrunner.sandbox.salesloft import SalesloftEmulator
from conftest import REPO, cli, sandbox_server

MIGRATION = REPO / "sample_data" / "migration"
SL_TO_SF = REPO / "jobs" / "migrate-salesloft-to-salesforce-handoff.toml"
UNKNOWN_LEAD = "00Q5e0000000999EAA"  # a well-formed lead ID the sandbox org does not have


def sandbox() -> tuple[SandboxApp, SalesforceEmulator, SalesloftEmulator]:
    sf, sl = SalesforceEmulator(), SalesloftEmulator(budget_per_minute=600)
    return SandboxApp([sf, sl]), sf, sl


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def cadence_map(name: str, key: str, value: str) -> dict[str, str]:
    return {r[key]: r[value] for r in rows_of(MIGRATION / name)}


def sl_to_sf_sides(sf: SalesforceEmulator, sl: SalesloftEmulator, row: dict[str, str]) -> tuple[bool, bool]:
    """(active in the Salesforce target on the mapped cadence, still on the Salesloft cadence)."""
    wanted = cadence_map("salesloft_to_salesforce_cadences.csv", "salesloft_cadence", "salesforce_cadence")
    tracker = sf._active_tracker(to18(row["person_crm_id"]))
    in_target = tracker is not None and sf.cadences[tracker["cadence_id"]]["name"] == wanted[row["cadence_name"]]
    membership = sl.memberships.get(int(row["membership_id"]))
    return in_target, bool(membership and membership["currently_on_cadence"])


def report(run_dir: Path) -> list[dict[str, str]]:
    return rows_of(run_dir / "results.csv")


@pytest.mark.anyio
async def test_salesloft_to_salesforce_moves_the_confirmed_and_leaves_the_failed_untouched(tmp_path: Path) -> None:
    app, sf, sl = sandbox()
    rows = rows_of(MIGRATION / "salesloft_memberships.csv")
    rows[0]["person_crm_id"] = UNKNOWN_LEAD  # the Salesforce enrolment fails: Salesloft must keep the person
    source = tmp_path / "memberships.csv"
    write_csv(source, rows, SL_COLUMNS)
    result = await run_prepared(prepare(load_job(SL_TO_SF), source), output_dir=tmp_path / "runs", sandbox_app=app,
                                progress=False)
    assert result.exit_code == 1  # the failed enrolment
    lines = report(result.run_dir)
    assert lines[0]["_status"] == "failed" and lines[0]["_handoff_status"] == "kept"
    assert lines[0]["_handoff_error"].startswith("TARGET_NOT_ENROLLED")
    assert [line["_handoff_status"] for line in lines[1:]] == ["removed"] * (len(rows) - 1)
    assert list(lines[0])[-2:] == ["_handoff_status", "_handoff_error"]  # added after the existing columns
    # the emulators' own state: the failed one is in Salesloft only, everyone else in Salesforce only
    sides = [sl_to_sf_sides(sf, sl, row) for row in rows]
    assert sides[0] == (False, True)
    assert sides[1:] == [(True, False)] * (len(rows) - 1)
    block = result.summary["handoff"]
    assert block["counts"]["removed"] == len(rows) - 1 and block["counts"]["kept"] == 1
    assert (result.run_dir / "handoff" / "results.csv").is_file()
    assert block["confirm_requests"] == 1  # one SOQL query reads back every enrolment


@pytest.mark.anyio
async def test_salesforce_to_salesloft_ends_the_salesforce_trackers(tmp_path: Path) -> None:
    app, sf, sl = sandbox()
    job_text = (REPO / "jobs" / "migrate-salesforce-to-salesloft.toml").read_text(encoding="utf-8")
    job_text = job_text.replace("../sample_data/", f"{MIGRATION.parent}/").replace(
        'output_dir = "../runs"', 'output_dir = "runs"\nhandoff = "remove_from_source"')
    job_text = job_text.replace("[connection]", '[source]\nplatform = "salesforce"\n\n[connection]')
    job_path = tmp_path / "sf-to-sl.toml"
    job_path.write_text(job_text, encoding="utf-8")
    result = await run_prepared(prepare(load_job(job_path)), output_dir=tmp_path / "runs", sandbox_app=app,
                                progress=False)
    assert result.exit_code == 0, result.summary
    mapping = cadence_map("salesforce_to_salesloft_cadences.csv", "salesforce_cadence", "salesloft_cadence_id")
    person_by_crm = {p["crm_id"]: p["id"] for p in sl.people.values() if p.get("crm_id")}
    on_sl = {(m["person"]["id"], m["cadence"]["id"]) for m in sl.memberships.values() if m["currently_on_cadence"]}
    for row in rows_of(MIGRATION / "salesforce_trackers.csv"):
        in_target = (person_by_crm[row["target_id"]], int(mapping[row["cadence_name"]])) in on_sl
        in_source = sf.trackers[to18(row["tracker_id"])]["state"] in ("Running", "Paused")
        assert (in_target, in_source) == (True, False), row
    assert {line["_handoff_status"] for line in report(result.run_dir)} == {"removed"}


class Crash(BaseException):
    """A process dying at a failpoint, in-process: nothing after it runs (no report, no cleanup
    beyond what the interpreter does), and what was committed stays committed."""


@pytest.mark.anyio
async def test_a_crash_between_target_success_and_source_removal_is_finished_by_resume(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app, sf, sl = sandbox()

    def die(name: str) -> None:
        if name == "handoff.before_confirm":
            raise Crash(name)

    monkeypatch.setattr(failpoints, "hit", die)
    with pytest.raises(Crash):
        await run_prepared(prepare(load_job(SL_TO_SF)), output_dir=tmp_path / "runs", sandbox_app=app, progress=False)
    [run_dir] = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    rows = rows_of(MIGRATION / "salesloft_memberships.csv")
    assert {sl_to_sf_sides(sf, sl, row) for row in rows} == {(True, True)}  # the moment the hand-off protects
    assert not (run_dir / "handoff").exists()
    monkeypatch.setattr(failpoints, "hit", lambda name: None)
    done = await resume_async(run_dir, sandbox_app=app, progress=False)
    assert done.exit_code == 0, done.summary
    assert [sl_to_sf_sides(sf, sl, row) for row in rows] == [(True, False)] * len(rows)
    assert sf.audit()["assignments"] and max(sf.audit()["assignments"].values()) == 1  # nobody assigned twice


@pytest.mark.anyio
async def test_a_failed_source_removal_is_reported_and_retry_takes_the_row_again(tmp_path: Path) -> None:
    app, sf, sl = sandbox()
    rows = rows_of(MIGRATION / "salesloft_memberships.csv")
    rows[1]["membership_id"] = "8999999"  # no such membership: the removal fails, the person is in both
    source = tmp_path / "memberships.csv"
    write_csv(source, rows, SL_COLUMNS)
    result = await run_prepared(prepare(load_job(SL_TO_SF), source), output_dir=tmp_path / "runs", sandbox_app=app,
                                progress=False)
    assert result.exit_code == 1
    line = report(result.run_dir)[1]
    assert line["_status"] == "succeeded" and line["_handoff_status"] == "failed" and line["_handoff_error"]
    assert result.summary["handoff"]["counts"]["failed"] == 1
    selection = retry_rows(result.run_dir)
    assert selection.rows == [1]  # enrolled in the target, not finished in the source


def test_handoff_job_keys_are_checked(tmp_path: Path) -> None:
    base = {"name": "m", "platform": "salesforce", "operation": "assign", "input": "x.csv",
            "connection": {"sandbox": True}}
    job = parse_job({**base, "handoff": "remove_from_source", "source": {"platform": "salesloft"}}, tmp_path / "j.toml")
    assert job.source.columns["membership_id"].column == "membership_id" and job.source.operation == "remove"
    assert job.source.connection.sandbox
    for raw, says in (({"handoff": "remove_from_source"}, "[source]"),
                      ({"handoff": "move", "source": {"platform": "salesloft"}}, "remove_from_source"),
                      ({"source": {"platform": "salesloft"}}, "only applies"),
                      ({"handoff": "remove_from_source", "source": {"platform": "salesforce"}}, "two tools"),
                      ({"handoff": "remove_from_source", "source": {"platform": "salesloft", "colums": {}}},
                       "columns")):
        with pytest.raises(JobError, match=re.escape(says)):
            parse_job({**base, **raw}, tmp_path / "j.toml")


def _served_state(url: str, rows: list[dict[str, str]]) -> list[tuple[bool, bool]]:
    """Both sides per row, read from a served sandbox through its APIs."""
    wanted = cadence_map("salesloft_to_salesforce_cadences.csv", "salesloft_cadence", "salesforce_cadence")
    ids = ", ".join(f"'{to18(r['person_crm_id'])}'" for r in rows)
    soql = (f"SELECT Id, TargetId, ActionCadence.Name, State FROM ActionCadenceTracker WHERE TargetId IN ({ids}) "
            "AND State IN ('Running', 'Paused')")
    found = httpx.get(f"{url}/services/data/v62.0/query", params={"q": soql},
                      headers={"Authorization": f"Bearer {SF_TOKEN}"}).json()["records"]
    active = {to18(t["TargetId"]): t["ActionCadence"]["Name"] for t in found}
    out = []
    for r in rows:
        membership = httpx.get(f"{url}/v2/cadence_memberships/{r['membership_id']}",
                               headers={"Authorization": f"Bearer {SL_TOKEN}"}).json()["data"]
        out.append((active.get(to18(r["person_crm_id"])) == wanted[r["cadence_name"]],
                    bool(membership["currently_on_cadence"])))
    return out


def test_sigkill_during_the_source_removal_then_resume_leaves_everyone_in_exactly_one_tool(tmp_path: Path) -> None:
    """The first source DELETE is answered, then the process dies before recording it: resume must
    check that membership with Salesloft rather than send the DELETE again."""
    shutil.copytree(MIGRATION, tmp_path / "data" / "migration")
    text = SL_TO_SF.read_text(encoding="utf-8").replace("../sample_data/", "data/").replace(
        'output_dir = "../runs"', 'output_dir = "runs"').replace("concurrency = 4", "concurrency = 1")
    rows = rows_of(MIGRATION / "salesloft_memberships.csv")
    with sandbox_server() as url:
        job = tmp_path / "job.toml"
        job.write_text(text.replace("sandbox = true", f'sandbox = true\ninstance_url = "{url}"'), encoding="utf-8")
        # after_send 1 is the Salesforce request (one batch); 2 is the first Salesloft DELETE
        first = cli("run", str(job), "--no-progress", cwd=tmp_path, env={"BATCHRUNNER_FAILPOINT": "execute.after_send:2"})
        assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
        [run_dir] = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
        states = Counter(_served_state(url, rows))
        assert states == Counter({(True, True): len(rows) - 1, (True, False): 1})  # one removed, unrecorded
        done = cli("resume", str(run_dir), "--no-progress", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        assert _served_state(url, rows) == [(True, False)] * len(rows)
        deletes: Counter[Any] = Counter(r["path"] for r in httpx.get(f"{url}/_sandbox/requests").json()
                                        if r["method"] == "DELETE")
        assert len(deletes) == len(rows) and set(deletes.values()) == {1}  # no DELETE sent twice
    assert {line["_handoff_status"] for line in report(run_dir)} == {"removed"}


@pytest.mark.anyio
async def test_an_unconfirmed_or_unreadable_target_leaves_the_source_untouched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from batchrunner.platforms.salesforce import confirm, reconcile

    app, sf, sl = sandbox()
    rows = rows_of(MIGRATION / "salesloft_memberships.csv")
    real = confirm.confirm_enrolled

    async def unreadable(*args: Any) -> Any:
        raise reconcile.ReadFailed("the query answered HTTP 503")

    monkeypatch.setattr(reconcile, "active_trackers", unreadable)
    first = await run_prepared(prepare(load_job(SL_TO_SF)), output_dir=tmp_path / "runs", sandbox_app=app,
                               progress=False)
    assert first.exit_code == 3 and "could not be read back" in first.summary["handoff"]["why"]
    assert {line["_handoff_status"] for line in report(first.run_dir)} == {"pending"}
    assert {sl_to_sf_sides(sf, sl, row) for row in rows} == {(True, True)}  # nothing taken off the source
    with pytest.raises(JobError, match="resume"):
        retry_rows(first.run_dir)  # the hand-off is owed: retry would not do it

    async def first_not_active(io: Any, session: Any, wanted: Any) -> Any:
        found = await real(io, session, wanted)
        return {**found, 0: (False, "no Running or Paused cadence tracker")}

    monkeypatch.undo()
    monkeypatch.setattr(confirm, "confirm_enrolled", first_not_active)
    done = await resume_async(first.run_dir, sandbox_app=app, progress=False)
    assert done.exit_code == 1  # a person must look at the unconfirmed one
    lines = report(done.run_dir)
    assert lines[0]["_handoff_status"] == "kept" and lines[0]["_handoff_error"].startswith("TARGET_NOT_CONFIRMED")
    assert sl_to_sf_sides(sf, sl, rows[0])[1]  # still in Salesloft
    assert [sl_to_sf_sides(sf, sl, row) for row in rows[1:]] == [(True, False)] * (len(rows) - 1)
    assert retry_rows(done.run_dir).rows == [0]


@pytest.mark.anyio
async def test_outreach_to_salesloft_finishes_the_outreach_sequence_states(tmp_path: Path) -> None:
    from batchrunner.sandbox.outreach import LIVE, OutreachEmulator

    sl, outreach = SalesloftEmulator(budget_per_minute=600), OutreachEmulator()
    app = SandboxApp([sl, outreach])
    job_text = (REPO / "jobs" / "migrate-outreach-to-salesloft.toml").read_text(encoding="utf-8")
    job_text = job_text.replace("../sample_data/", f"{MIGRATION.parent}/").replace(
        'output_dir = "../runs"', 'output_dir = "runs"\nhandoff = "remove_from_source"')
    job_path = tmp_path / "o-to-sl.toml"
    job_path.write_text(job_text.replace("[connection]", '[source]\nplatform = "outreach"\n\n[connection]'),
                        encoding="utf-8")
    result = await run_prepared(prepare(load_job(job_path)), output_dir=tmp_path / "runs", sandbox_app=app,
                                progress=False)
    assert result.exit_code == 0, result.summary
    mapping = cadence_map("outreach_to_salesloft_cadences.csv", "outreach_sequence", "salesloft_cadence_id")
    person_by_email = {p["email_address"].lower(): p["id"] for p in sl.people.values() if p.get("email_address")}
    on_sl = {(m["person"]["id"], m["cadence"]["id"]) for m in sl.memberships.values() if m["currently_on_cadence"]}
    for row in rows_of(MIGRATION / "outreach_sequence_states.csv"):
        in_target = (person_by_email[row["prospect_email"]], int(mapping[row["sequence_name"]])) in on_sl
        in_source = outreach.states[int(row["sequence_state_id"])]["attributes"]["state"] in LIVE
        assert (in_target, in_source) == (True, False), row
    assert {line["_handoff_status"] for line in report(result.run_dir)} == {"removed"}


def test_the_demo_handoff_job_runs_from_the_command_line(tmp_path: Path) -> None:
    proc = cli("run", str(SL_TO_SF), "--output-dir", str(tmp_path), "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "9 succeeded" in proc.stdout and "hand-off, source salesloft: 9 removed" in proc.stdout
