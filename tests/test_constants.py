"""Job constants naming a cadence or a user are looked up once (batchrunner/constants.py): `check`
reports a misspelt one with a did-you-mean, `run` stops with exit 2 before sending any row, and
`validate` (offline) says that it did not look them up."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from batchrunner.errors import JobError
from batchrunner.job import load_job
from batchrunner.runner import prepare, run_prepared
from batchrunner.sandbox.app import SandboxApp
from batchrunner.sandbox.salesforce import SalesforceEmulator
from batchrunner.sandbox.salesloft import SalesloftEmulator
from batchrunner.sandbox.seeds import load_seed
from conftest import REPO, cli, copy_demo_job, sandbox_server
from live_helpers import SF_CSV, SF_JOB, audit

TEAM = load_seed("salesloft_team.json")
SL_EMAILS = [p["email_address"] for p in TEAM["people"][:8]]


def salesloft_job(tmp_path: Path, columns: str, url: str | None = None, operation: str = "add") -> Path:
    (tmp_path / "input.csv").write_text("Email\n" + "\n".join(SL_EMAILS) + "\n", encoding="utf-8")
    where = f'\nbase_url = "{url}"' if url else ""
    text = textwrap.dedent(f"""
        name = "sl-constants"
        platform = "salesloft"
        operation = "{operation}"
        input = "input.csv"
        [columns]
        person_email = "Email"
        {{columns}}
        [connection]
        sandbox = true{where}
    """).replace("{columns}", columns)
    (tmp_path / "job.toml").write_text(text, encoding="utf-8")
    return tmp_path / "job.toml"


def salesforce_job(tmp_path: Path, cadence: str, url: str | None = None, extra: str = "") -> Path:
    job = copy_demo_job(tmp_path, SF_JOB, SF_CSV, url or "")
    text = job.read_text(encoding="utf-8").replace('"Q4 Outbound"', json.dumps(cadence))
    if url is None:
        text = text.replace('\ninstance_url = ""', "")
    if extra:
        text = text.replace("[columns]", "[columns]\n" + extra)
    job.write_text(text, encoding="utf-8")
    return job


def checks(done) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(done.stdout)["checks"]}


def test_check_names_a_misspelt_salesloft_cadence_and_suggests_the_right_one(tmp_path: Path) -> None:
    job = salesloft_job(tmp_path, 'cadence_name = { value = "Q4 Outbnd" }\nuser_email = { value = "dana.whitaker@acme.example.com" }')
    done = cli("check", str(job), "--json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    found = checks(done)
    assert not found["constant cadence_name"]["ok"]
    assert "no cadence with this name" in found["constant cadence_name"]["detail"]
    assert "Did you mean 'Q4 Outbound'?" in found["constant cadence_name"]["detail"]
    assert found["constant user_email"]["ok"] and "Dana Whitaker (id 101)" in found["constant user_email"]["detail"]
    assert found["authenticate"]["ok"]  # the other checks still ran and passed


def test_check_salesloft_ambiguous_cadence_and_unknown_user(tmp_path: Path) -> None:
    job = salesloft_job(tmp_path, 'cadence_name = { value = "Webinar Follow-up" }\n'
                                  'user_email = { value = "dana.whitaker@acme.example.co" }')
    done = cli("check", str(job), "--json", cwd=tmp_path)
    found = checks(done)
    assert "2 cadences have this name (ids 5002, 5003)" in found["constant cadence_name"]["detail"]
    detail = found["constant user_email"]["detail"]
    assert "Did you mean 'dana.whitaker@acme.example.com'" in detail and "Valid:" not in detail  # no roster
    assert done.returncode == 1


def test_check_salesforce_misspelt_and_inactive_cadence_and_unknown_user(tmp_path: Path) -> None:
    job = salesforce_job(tmp_path, "Q4 Outbnd", extra='userId = { value = "0055e0000000009AAA" }')
    done = cli("check", str(job), "--json", cwd=tmp_path)
    assert done.returncode == 1
    found = checks(done)
    assert "Did you mean 'Q4 Outbound'?" in found["constant salesCadenceNameOrId"]["detail"]
    assert "no user with this ID" in found["constant userId"]["detail"]
    inactive = salesforce_job(tmp_path / "b", "Legacy Q2") if (tmp_path / "b").mkdir() is None else None
    done = cli("check", str(inactive), "--json", cwd=tmp_path)
    assert "is Inactive" in checks(done)["constant salesCadenceNameOrId"]["detail"]


def test_check_reports_every_problem_not_just_the_first(tmp_path: Path) -> None:
    """An unknown operation used to stop `check` with exit 2 before anything else was looked at."""
    job = salesloft_job(tmp_path, 'cadence_name = { value = "Q4 Outbnd" }', operation="enrol_now")
    done = cli("check", str(job), "--json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    found = checks(done)
    assert not found["job file"]["ok"] and "Unknown operation 'enrol_now'" in found["job file"]["detail"]
    assert not found["constant cadence_name"]["ok"] and found["authenticate"]["ok"]


def test_validate_stays_offline_and_says_constants_are_checked_elsewhere(tmp_path: Path) -> None:
    job = salesloft_job(tmp_path, 'cadence_name = { value = "Q4 Outbnd" }')
    done = cli("validate", str(job), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "8 rows: 8 valid" in done.stdout
    assert "cadence_name = 'Q4 Outbnd'" in done.stdout and "looked up by `batchrunner check`" in done.stdout


@pytest.mark.anyio
async def test_run_stops_with_exit_2_before_sending_a_row_in_process(tmp_path: Path) -> None:
    emulator = SalesloftEmulator(TEAM, budget_per_minute=100000)
    app = SandboxApp([emulator])
    job = salesloft_job(tmp_path, 'cadence_name = { value = "Q4 Outbnd" }')
    prepared = prepare(load_job(job))
    with pytest.raises(JobError, match="Did you mean 'Q4 Outbound'") as raised:
        await run_prepared(prepared, output_dir=tmp_path / "runs", sandbox_app=app, progress=False)
    assert raised.value.exit_code == 2 and "Nothing was sent" in str(raised.value)
    assert emulator.audit()["enrolments"] == {}  # the team's own record: no membership was created
    assert {method for method, _ in emulator.calls} == {"GET"}  # only the look-up
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("sl-constants-*"))
    # spelt right, the same job runs
    fixed = salesloft_job(tmp_path, 'cadence_name = { value = "Q4 Outbound" }')
    result = await run_prepared(prepare(load_job(fixed)), output_dir=tmp_path / "runs", sandbox_app=app,
                                progress=False)
    assert result.summary["counts"]["succeeded"] + result.summary["counts"]["skipped"] >= 1
    assert emulator.audit()["enrolments"]


@pytest.mark.anyio
async def test_salesforce_run_stops_before_sending_in_process(tmp_path: Path) -> None:
    emulator = SalesforceEmulator()
    app = SandboxApp([emulator])
    job = salesforce_job(tmp_path, "Q4 Outbnd")
    with pytest.raises(JobError, match="Q4 Outbnd"):
        await run_prepared(prepare(load_job(job)), output_dir=tmp_path / "runs", sandbox_app=app, progress=False)
    assert emulator.audit()["calls"] == 0 and emulator.audit()["assignments"] == {}


def test_run_against_a_served_sandbox_exits_2_and_the_audit_shows_no_mutation(tmp_path: Path) -> None:
    with sandbox_server() as url:
        sf = salesforce_job(tmp_path, "Q4 Outbnd", url)
        sl = salesloft_job(tmp_path, 'cadence_name = { value = "Q4 Outbnd" }', url)
        before = audit(url)
        for job in (sf, sl):
            done = cli("run", str(job), "--no-progress", cwd=tmp_path)
            assert done.returncode == 2, done.stdout + done.stderr
            assert "Did you mean 'Q4 Outbound'?" in done.stderr and "Nothing was sent" in done.stderr
        after = audit(url)
        assert after["SalesforceEmulator"]["calls"] == before["SalesforceEmulator"]["calls"]  # no action POST
        assert after["SalesforceEmulator"]["assignments"] == before["SalesforceEmulator"]["assignments"]
        assert after["SalesloftEmulator"]["enrolments"] == before["SalesloftEmulator"]["enrolments"]
        assert after["SalesloftEmulator"]["on_cadence"] == before["SalesloftEmulator"]["on_cadence"]
        assert not list(tmp_path.glob("runs/*"))  # no run directory: nothing to resume
        check = cli("check", str(sl), cwd=tmp_path)
        assert "FAIL constant cadence_name: 'Q4 Outbnd': no cadence" in check.stdout and "not ready" in check.stdout
