"""`batchrunner check`: authenticates, resolves the API version, describes the actions, reports the
budget, and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO, cli, copy_demo_job, sandbox_server
from live_helpers import SF_CSV, SF_JOB, SL_CSV, SL_JOB, audit, live_job


@pytest.fixture(scope="module")
def server():
    with sandbox_server() as url:
        yield url


def test_check_in_process_sandbox(tmp_path: Path) -> None:
    done = cli("check", str(REPO / "jobs" / "salesforce-mixed-actions.toml"), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["mode"] == "SANDBOX" and result["ok"]
    names = {c["name"] for c in result["checks"]}
    assert {"api version", "authenticate", "daily API calls", "action assignTargetToSalesCadence",
            "action selectTemplateForSalesCadenceStepTracker"} <= names
    assert result["daily_api_requests"]["max"] == 15000


def test_check_live_salesforce_over_loopback_changes_nothing(server: str, tmp_path: Path) -> None:
    job = live_job(tmp_path, SF_JOB, SF_CSV, f'instance_url = "{server}"\nauth = {{ method = "client_credentials" }}')
    env = {"SF_CLIENT_ID": "sandbox-client-id", "SF_CLIENT_SECRET": "sandbox-client-secret"}
    before = audit(server)["SalesforceEmulator"]
    done = cli("check", str(job), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[0].startswith(f"LIVE salesforce ({server})")
    assert "ok   action assignTargetToSalesCadence" in done.stdout
    assert "remaining today" in done.stdout and done.stdout.rstrip().endswith("ready")
    after = audit(server)["SalesforceEmulator"]
    assert after["calls"] == before["calls"] and after["assignments"] == before["assignments"]  # no POST


def test_check_reports_a_version_the_org_does_not_serve(server: str, tmp_path: Path) -> None:
    job = copy_demo_job(tmp_path, SF_JOB, SF_CSV, server)
    job.write_text(job.read_text().replace("sandbox = true", 'sandbox = true\napi_version = "44.0"'))
    done = cli("check", str(job), cwd=tmp_path)
    assert done.returncode == 1
    assert "FAIL api version: v44.0 is not among the org's versions" in done.stdout
    assert "FAIL action assignTargetToSalesCadence" in done.stdout


def test_check_with_refused_credentials(server: str, tmp_path: Path) -> None:
    job = live_job(tmp_path, SF_JOB, SF_CSV, f'instance_url = "{server}"\nauth = {{ method = "env" }}')
    done = cli("check", str(job), "--json", cwd=tmp_path, env={"SF_ACCESS_TOKEN": "00Dnot!a-valid-token"})
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert not result["ok"] and any(c["name"] == "authenticate" and not c["ok"] for c in result["checks"])


def test_check_salesloft_oauth(server: str, tmp_path: Path) -> None:
    token_file = tmp_path / "sl.json"
    job = live_job(tmp_path, SL_JOB, SL_CSV, f'''base_url = "{server}"
auth = {{ method = "oauth", token_file = "{token_file}", token_url = "{server}/oauth/token" }}''')
    env = {"SALESLOFT_CLIENT_ID": "sandbox-client-id", "SALESLOFT_CLIENT_SECRET": "sandbox-client-secret",
           "SALESLOFT_REFRESH_TOKEN": "sandbox-refresh-token"}
    before = audit(server)["SalesloftEmulator"]["enrolments"]
    done = cli("check", str(job), "--json", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["mode"] == "LIVE" and result["budget"]["remaining_minute"] is not None
    assert audit(server)["SalesloftEmulator"]["enrolments"] == before
    assert token_file.exists()  # the rotated refresh token was kept


def test_check_missing_credentials_exits_2(tmp_path: Path) -> None:
    job = live_job(tmp_path, SL_JOB, SL_CSV, "")
    done = cli("check", str(job), cwd=tmp_path, env={"SALESLOFT_API_KEY": ""})
    assert done.returncode == 2 and "SALESLOFT_API_KEY" in done.stderr
