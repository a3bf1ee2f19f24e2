"""mode = "sync": a recurring list kept in step with a cadence across runs (batchrunner/sync.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from batchrunner.errors import JobError
from batchrunner.job import load_job
from batchrunner.runner import prepare, run_prepared
from batchrunner.sandbox.app import SandboxApp
from batchrunner.sandbox.salesloft import SalesloftEmulator
from batchrunner.sandbox.seeds import load_seed
from batchrunner.sync import state_path

TEAM = load_seed("salesloft_team.json")
CADENCE = 5001  # "Q4 Outbound", a team cadence


def team(n: int) -> dict:
    t = json.loads(json.dumps(TEAM))
    t["people"] = [{"id": 300000 + i, "first_name": "P", "last_name": str(i), "email_address": f"p{i}@x.example.com",
                    "owner_id": 101} for i in range(n)]
    t["memberships"] = []
    return t


def job_text(remove_missing: bool) -> str:
    return f"""
        name = "weekly-sync"
        platform = "salesloft"
        operation = "add"
        input = "input.csv"
        mode = "sync"
        key = "Email"
        remove_missing = {str(remove_missing).lower()}
        [columns]
        person_email = "Email"
        cadence_name = {{ value = "Q4 Outbound" }}
        [connection]
        sandbox = true
        [limits]
        requests_per_minute = 100000
    """


def write_list(path: Path, people: list[int]) -> None:
    path.write_text("Email,Name\n" + "".join(f"P{i}@X.example.com,Person {i}\n" for i in people), encoding="utf-8")


def on_cadence(emulator: SalesloftEmulator) -> set[int]:
    return {m["person"]["id"] - 300000 for m in emulator.memberships.values()
            if m["currently_on_cadence"] and m["cadence"]["id"] == CADENCE}


def sends(emulator: SalesloftEmulator, since: int) -> tuple[int, int]:
    calls = emulator.calls[since:]
    return (sum(1 for m, p in calls if m == "POST"), sum(1 for m, p in calls if m == "DELETE"))


async def run(job: Path, out: Path, app: SandboxApp):
    return await run_prepared(prepare(load_job(job)), output_dir=out, sandbox_app=app, progress=False)


@pytest.mark.anyio
@pytest.mark.parametrize("remove_missing", [True, False])
async def test_three_runs(tmp_path, write_job, remove_missing) -> None:
    emulator = SalesloftEmulator(team(120), budget_per_minute=100000)
    app = SandboxApp([emulator])
    job = write_job("Email\n", job_text(remove_missing))
    out = tmp_path / "runs"
    first = list(range(100))
    write_list(tmp_path / "input.csv", first)

    r1 = await run(job, out, app)
    assert r1.summary["counts"]["succeeded"] == 100 and r1.exit_code == 0
    assert sends(emulator, 0) == (100, 0) and on_cadence(emulator) == set(first)
    assert r1.summary["sync"]["added"] == 100 and r1.summary["sync"]["unchanged"] == 0

    # run 2: 10 added (100-109), 5 removed (0-4)
    second = list(range(5, 110))
    write_list(tmp_path / "input.csv", second)
    prepared = prepare(load_job(job))
    assert prepared.sync.counts() == {"added": 10, "changed": 0, "unchanged": 95, "left_the_list": 5,
                                      "to_remove": 5 if remove_missing else 0}
    described = "\n".join(prepared.sync.describe())
    assert "10 added, 0 changed, 95 unchanged (skipped)" in described
    if remove_missing:
        assert "5 to remove" in described and "remove: p0@x.example.com" in described
    else:
        assert "0 to remove" in described and "5 left the list and stay on the cadence" in described
    mark = len(emulator.calls)
    r2 = await run_prepared(prepared, output_dir=out, sandbox_app=app, progress=False)
    posts, deletes = sends(emulator, mark)
    assert posts == 10
    assert deletes == (5 if remove_missing else 0)
    assert r2.summary["counts"]["succeeded"] == 10 and r2.summary["counts"]["skipped"] == 95
    results = list(csv.DictReader((r2.run_dir / "results.csv").open(encoding="utf-8")))
    assert len(results) == 105
    unchanged = [r for r in results if r["_status"] == "skipped"]
    assert {r["_error_code"] for r in unchanged} == {"UNCHANGED"}
    assert unchanged[0]["_error_message"] == "unchanged since last run"
    if remove_missing:
        assert on_cadence(emulator) == set(second)
        removals = list(csv.DictReader((r2.run_dir / "removals" / "results.csv").open(encoding="utf-8")))
        assert sorted(r["_sync_key"] for r in removals) == sorted(f"p{i}@x.example.com" for i in range(5))
        assert {r["_status"] for r in removals} == {"succeeded"}
        summary = json.loads((r2.run_dir / "summary.json").read_text())
        assert summary["sync"]["removals"]["counts"]["succeeded"] == 5 and summary["exit_code"] == 0
    else:
        assert on_cadence(emulator) == set(range(110))
        assert not (r2.run_dir / "removals").exists()
        assert r2.summary["sync"]["left_the_list"] == 5 and r2.summary["sync"]["removals"] is None

    # run 3: the same file sends nothing
    mark = len(emulator.calls)
    r3 = await run(job, out, app)
    assert sends(emulator, mark) == (0, 0)
    assert len(emulator.calls) == mark  # not even a look-up
    assert r3.summary["counts"]["skipped"] == 105 and r3.exit_code == 0
    assert state_path(out, "weekly-sync").is_file()


@pytest.mark.anyio
async def test_a_row_that_failed_is_tried_again_and_a_changed_row_is_sent(tmp_path, write_job) -> None:
    t = team(3)
    emulator = SalesloftEmulator(t, budget_per_minute=100000)
    app = SandboxApp([emulator])
    job = write_job("Email\n", job_text(False))
    out = tmp_path / "runs"
    (tmp_path / "input.csv").write_text("Email\np0@x.example.com\np1@x.example.com\nghost@x.example.com\n")
    r1 = await run(job, out, app)
    assert r1.summary["counts"] == {**r1.summary["counts"], "succeeded": 2, "failed": 1}
    # the ghost joins the team; next week's identical file sends the ghost's row again, and only it
    emulator.people[399999] = {"id": 399999, "first_name": "G", "last_name": "H", "email_address": "ghost@x.example.com",
                               "owner_id": 101}
    prepared = prepare(load_job(job))
    assert prepared.sync.counts()["added"] == 1 and prepared.sync.counts()["unchanged"] == 2
    mark = len(emulator.calls)
    r2 = await run_prepared(prepared, output_dir=out, sandbox_app=app, progress=False)
    assert sends(emulator, mark) == (1, 0) and r2.summary["counts"]["succeeded"] == 1


@pytest.mark.anyio
async def test_state_survives_a_run_whose_process_died(tmp_path, write_job) -> None:
    """Pending rows are folded in from the dead run's journal by the next run."""
    from batchrunner import sync

    emulator = SalesloftEmulator(team(4), budget_per_minute=100000)
    app = SandboxApp([emulator])
    job = write_job("Email\n", job_text(False))
    out = tmp_path / "runs"
    write_list(tmp_path / "input.csv", [0, 1, 2, 3])
    original = sync.fold
    calls = []
    sync.fold = lambda path: calls.append(path)  # the process "dies" before it updates the state
    try:
        await run(job, out, app)
    finally:
        sync.fold = original
    assert calls  # it would have folded
    prepared = prepare(load_job(job))  # validate's view folds read-only
    assert prepared.sync.counts()["unchanged"] == 4
    mark = len(emulator.calls)
    r2 = await run(job, out, app)
    assert sends(emulator, mark) == (0, 0) and r2.summary["counts"]["skipped"] == 4


def test_sync_job_errors(tmp_path, write_job) -> None:
    base = job_text(False)
    with pytest.raises(JobError, match="needs key"):
        load_job(write_job("Email\n", base.replace('key = "Email"', "")))
    with pytest.raises(JobError, match="Unknown mode"):
        load_job(write_job("Email\n", base.replace('mode = "sync"', 'mode = "synch"')))
    with pytest.raises(JobError, match="only apply"):
        load_job(write_job("Email\n", base.replace('mode = "sync"', "")))
    with pytest.raises(JobError, match="must be 'add'"):
        prepare(load_job(write_job("Email\np@x.example.com\n", base.replace('operation = "add"',
                                                                           'operation = "remove"'))))
    with pytest.raises(JobError, match="lacks"):
        prepare(load_job(write_job("Mail\np@x.example.com\n", base.replace('person_email = "Email"',
                                                                          'person_email = "Mail"'))))


def test_validate_shows_the_diff_and_retry_is_refused(tmp_path) -> None:
    from conftest import cli

    from batchrunner.runner import retry_rows

    (tmp_path / "job.toml").write_text(__import__("textwrap").dedent(job_text(True)), encoding="utf-8")
    write_list(tmp_path / "input.csv", [1, 2])
    proc = cli("validate", "job.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "2 added, 0 changed, 0 unchanged (skipped), 0 to remove" in proc.stdout
    assert not list(tmp_path.glob("runs/.*.sync.sqlite"))  # validate writes nothing
    proc = cli("run", "job.toml", "--no-progress", cwd=tmp_path)  # a fresh in-process sandbox
    assert proc.returncode == 1  # nobody p1/p2 in the seed team: failed, so nothing is remembered
    write_list(tmp_path / "input.csv", [2, 3])
    proc = cli("validate", "job.toml", cwd=tmp_path)
    assert "2 added" in proc.stdout and "0 to remove" in proc.stdout
    run_dir = next((tmp_path / "runs").glob("weekly-sync-*"))
    with pytest.raises(JobError, match="sync job"):
        retry_rows(run_dir)


@pytest.mark.anyio
async def test_salesforce_sync_removes_by_target_and_a_failed_removal_is_tried_again(tmp_path, write_job) -> None:
    from batchrunner.sandbox.salesforce import SalesforceEmulator

    org = load_seed("salesforce_org.json")
    leads = [lead["id"] for lead in org["leads"][:24]]
    emulator = SalesforceEmulator()
    app = SandboxApp([emulator])
    job = write_job("Lead Id\n", """
        name = "sf-sync"
        platform = "salesforce"
        operation = "assign"
        input = "input.csv"
        mode = "sync"
        key = "Lead Id"
        remove_missing = true
        [columns]
        targetId = "Lead Id"
        salesCadenceNameOrId = { value = "Q4 Outbound" }
        [connection]
        sandbox = true
    """)
    out = tmp_path / "runs"

    def write(ids: list[str]) -> None:
        # 15-character IDs this week: the key is the normalised 18-character ID, so they are unchanged
        (tmp_path / "input.csv").write_text("Lead Id\n" + "".join(f"{i}\n" for i in ids), encoding="utf-8")

    def active() -> set[str]:
        return {t for t in leads if emulator._active_tracker(t) is not None}

    write(leads[:20])
    r1 = await run(job, out, app)
    assert r1.summary["counts"]["succeeded"] == 20 and active() == set(leads[:20])
    # out of band, someone removes lead 2 already: its removal will fail on the platform
    emulator.remove({"targetId": leads[1], "completionReasonCode": "ManuallyRemoved"})
    write([i[:15] for i in leads[2:22]])
    r2 = await run(job, out, app)
    assert r2.summary["counts"]["succeeded"] == 2 and r2.summary["counts"]["skipped"] == 18
    assert active() == set(leads[2:22])
    removals = list(csv.DictReader((r2.run_dir / "removals" / "results.csv").open(encoding="utf-8")))
    assert {r["targetId"]: r["_status"] for r in removals} == {leads[0]: "succeeded", leads[1]: "failed"}
    assert r2.exit_code == 1 and r2.summary["sync"]["removals"]["counts"]["failed"] == 1
    # the failed removal is still owed: the next run with the same file tries it again, and nothing else
    calls = len(emulator.calls)
    r3 = await run(job, out, app)
    assert emulator.calls[calls:] == [("removeTargetFromSalesCadence", 1)]
    assert r3.summary["counts"]["skipped"] == 20 and r3.summary["sync"]["to_remove"] == 1


def test_rows_repeating_a_key_are_pointed_out(tmp_path, write_job) -> None:
    job = write_job("Email,Cadence\np1@x.example.com,Q4 Outbound\np1@x.example.com,Inbound Demo Request\n",
                    job_text(False).replace('cadence_name = { value = "Q4 Outbound" }', 'cadence_name = "Cadence"'))
    prepared = prepare(load_job(job))
    assert prepared.sync.shared_keys == 1
    assert any("repeat the key" in line for line in prepared.sync.describe())


SERVED_EMAILS = [p["email_address"] for p in TEAM["people"] if 70030 <= p["id"] <= 70040]


def served_sync_job(tmp_path: Path, url: str) -> list[str]:
    """The sync job pointed at a served sandbox, its input the first 8 of SERVED_EMAILS."""
    import textwrap

    text = textwrap.dedent(job_text(True)).replace("sandbox = true", f"sandbox = true\nbase_url = \"{url}\"")
    (tmp_path / "job.toml").write_text(text, encoding="utf-8")
    (tmp_path / "input.csv").write_text("Email\n" + "\n".join(SERVED_EMAILS[:8]) + "\n", encoding="utf-8")
    return SERVED_EMAILS


def test_sync_from_the_command_line_against_a_served_sandbox(tmp_path) -> None:
    """The way sync is meant to be tried: a served sandbox keeps its state between runs."""
    from conftest import cli, sandbox_server

    with sandbox_server() as url:
        emails = served_sync_job(tmp_path, url)
        first = cli("run", "job.toml", "--no-progress", cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert "sync: 8 added, 0 changed, 0 unchanged, 0 left the list" in first.stdout
        (tmp_path / "input.csv").write_text("Email\n" + "\n".join(emails[2:]) + "\n", encoding="utf-8")
        shown = cli("validate", "job.toml", cwd=tmp_path)
        assert "3 added, 0 changed, 6 unchanged (skipped), 2 to remove" in shown.stdout
        second = cli("run", "job.toml", "--no-progress", cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        assert "3 succeeded, 6 skipped" in second.stdout and "removals: 2 succeeded" in second.stdout
        third = cli("run", "job.toml", "--no-progress", cwd=tmp_path)
        assert "9 skipped" in third.stdout and "0 added" in third.stdout


@pytest.mark.anyio
async def test_someone_already_on_the_cadence_counts_as_enrolled(tmp_path, write_job) -> None:
    t = team(2)
    t["memberships"] = [{"id": 8100001, "person_id": 300000, "cadence_id": CADENCE, "user_id": 101}]
    emulator = SalesloftEmulator(t, budget_per_minute=100000)
    app = SandboxApp([emulator])
    job = write_job("Email\n", job_text(True))
    write_list(tmp_path / "input.csv", [0, 1])
    r1 = await run(job, tmp_path / "runs", app)
    assert r1.summary["counts"]["succeeded"] == 1 and r1.summary["error_codes"] == {"ALREADY_ON_CADENCE": 1}
    mark = len(emulator.calls)
    r2 = await run(job, tmp_path / "runs", app)
    assert len(emulator.calls) == mark and r2.summary["counts"]["skipped"] == 2


# -- the removal guard: max_removals, --allow-mass-removal --------------------------------------------
def test_max_removals_values() -> None:
    from batchrunner.sync import parse_max_removals

    default = parse_max_removals(None)
    assert default.allowed(1000) == 100 and default.allowed(100) == 10 and default.allowed(20) == 5
    assert parse_max_removals(50).allowed(10) == 50 and parse_max_removals("50").allowed(1000) == 50
    assert parse_max_removals("25%").allowed(100) == 25 and parse_max_removals(" 2.5 % ").allowed(200) == 5
    assert parse_max_removals("10%").allowed(20) == 2  # an explicit share has no floor
    assert parse_max_removals(0).allowed(100) == 0
    for bad in ("150%", "ten", -1, True, 0.5, "5.5"):
        with pytest.raises(JobError, match="max_removals must be"):
            parse_max_removals(bad)


def test_max_removals_in_the_job_file(tmp_path, write_job) -> None:
    def with_limit(value: str) -> str:
        return job_text(True).replace("remove_missing = true", f"remove_missing = true\n        max_removals = {value}")

    job = load_job(write_job("Email\n", with_limit('"20%"')))
    assert job.max_removals == "20%"
    with pytest.raises(JobError, match="max_removals must be"):
        load_job(write_job("Email\n", with_limit('"lots"')))
    once = """
        platform = "salesloft"
        operation = "add"
        input = "input.csv"
        max_removals = 5
        [columns]
        person_email = "Email"
        cadence_id = { value = "5001" }
    """
    with pytest.raises(JobError, match="only applies to mode"):
        load_job(write_job("Email\n", once))


@pytest.mark.anyio
async def test_a_truncated_export_does_not_wipe_the_cadence(tmp_path, write_job) -> None:
    emulator = SalesloftEmulator(team(120), budget_per_minute=100000)
    app = SandboxApp([emulator])
    job = write_job("Email\n", job_text(True))
    out = tmp_path / "runs"
    write_list(tmp_path / "input.csv", list(range(100)))
    await run(job, out, app)
    assert on_cadence(emulator) == set(range(100))

    # this week's export stopped after 30 lines: 70 would be removed, the default allows 10
    write_list(tmp_path / "input.csv", list(range(30)))
    prepared = prepare(load_job(job))
    described = "\n".join(prepared.sync.describe())
    assert "70 to remove" in described
    assert ("removal guard: 70 removals, max_removals default 10% of 100 enrolled, at least 5 = 10: over the limit"
            in described)
    mark = len(emulator.calls)
    with pytest.raises(JobError, match="would remove 70 of the 100 people") as raised:
        await run_prepared(prepared, output_dir=out, sandbox_app=app, progress=False)
    assert raised.value.exit_code == 2 and "--allow-mass-removal" in str(raised.value)
    assert emulator.calls[mark:] == []  # nothing sent, not even a look-up
    assert on_cadence(emulator) == set(range(100))
    assert len(list(out.glob("weekly-sync-*"))) == 1  # no run directory for the refused run

    # a dry run shows the same and sends nothing
    dry = await run_prepared(prepare(load_job(job)), output_dir=out, sandbox_app=app, progress=False, dry_run=True)
    assert dry.summary["sync"]["removal_guard"] == {"allowed": 10, "enrolled": 100, "ok": False, "overridden": False}
    assert emulator.calls[mark:] == []

    # the person checked the file: it is right, the flag lets the removals go
    result = await run_prepared(prepare(load_job(job)), output_dir=out, sandbox_app=app, progress=False,
                                allow_mass_removal=True)
    assert sends(emulator, mark) == (0, 70) and on_cadence(emulator) == set(range(30))
    assert result.summary["sync"]["removal_guard"]["overridden"] is True and result.exit_code == 0


@pytest.mark.anyio
async def test_max_removals_share_in_the_job_lets_a_big_removal_through(tmp_path, write_job) -> None:
    emulator = SalesloftEmulator(team(40), budget_per_minute=100000)
    app = SandboxApp([emulator])
    job = write_job("Email\n", job_text(True).replace("remove_missing = true",
                                                         'remove_missing = true\n        max_removals = "50%"'))
    write_list(tmp_path / "input.csv", list(range(40)))
    await run(job, tmp_path / "runs", app)
    write_list(tmp_path / "input.csv", list(range(20)))  # 20 of 40 = 50%: allowed
    result = await run(job, tmp_path / "runs", app)
    assert result.summary["sync"]["removals"]["counts"]["succeeded"] == 20 and on_cadence(emulator) == set(range(20))
    write_list(tmp_path / "input.csv", list(range(9)))  # 11 of 20 > 50%: refused
    with pytest.raises(JobError, match="max_removals = 50% of 20 enrolled = 10"):
        await run(job, tmp_path / "runs", app)


def test_allow_mass_removal_from_the_command_line(tmp_path) -> None:
    from conftest import cli, sandbox_server

    with sandbox_server() as url:
        emails = served_sync_job(tmp_path, url)
        assert cli("run", "job.toml", "--no-progress", cwd=tmp_path).returncode == 0
        (tmp_path / "input.csv").write_text("Email\n" + emails[0] + "\n", encoding="utf-8")  # 7 would go; 5 allowed
        shown = cli("validate", "job.toml", cwd=tmp_path)
        assert "removal guard: 7 removals" in shown.stdout and "over the limit" in shown.stdout
        before = httpx_audit(url)
        refused = cli("run", "job.toml", "--no-progress", cwd=tmp_path)
        assert refused.returncode == 2 and "would remove 7 of the 8 people" in refused.stderr
        assert httpx_audit(url)["on_cadence"] == before["on_cadence"]
        allowed = cli("run", "job.toml", "--no-progress", "--allow-mass-removal", cwd=tmp_path)
        assert allowed.returncode == 0, allowed.stdout + allowed.stderr
        assert "removals: 7 succeeded" in allowed.stdout
        assert httpx_audit(url)["on_cadence"] == before["on_cadence"] - 7


def httpx_audit(url: str) -> dict:
    import httpx

    return httpx.get(f"{url}/_sandbox/audit").json()["SalesloftEmulator"]
