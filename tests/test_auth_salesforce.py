"""Salesforce authentication flows against the token endpoint the sandbox serves on 127.0.0.1."""

from __future__ import annotations

import csv
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from conftest import cli, sandbox_server
from live_helpers import SF_CSV, SF_JOB, audit, live_job, make_rsa_key, run_job, summary_of

CC_ENV = {"SF_CLIENT_ID": "sandbox-client-id", "SF_CLIENT_SECRET": "sandbox-client-secret"}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return make_rsa_key(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def server(keys):
    with sandbox_server(f"jwt_public_key_file={keys[1]}") as url:
        yield url


def _statuses(result) -> dict[str, int]:
    return summary_of(result)["counts"]


def _expect_normal_demo(result) -> None:
    """Every row was answered by the org (the served org keeps state between tests, so a second
    run's assignments fail as "already in a cadence": answered all the same)."""
    summary = summary_of(result)
    assert summary["mode"] == "LIVE" and summary["target"] == "live"
    assert summary["stopped"] is None, summary["stopped"]
    assert summary["counts"]["not_attempted"] == 0
    assert summary["counts"]["succeeded"] + summary["counts"]["failed"] > 0
    assert "401" not in summary["http_statuses"]
    assert result.exit_code == 1  # the demo has failed and invalid rows on purpose


def test_client_credentials(server: str, tmp_path: Path, monkeypatch) -> None:
    for k, v in CC_ENV.items():
        monkeypatch.setenv(k, v)
    job = live_job(tmp_path, SF_JOB, SF_CSV, f'''
instance_url = "{server}"
auth = {{ method = "client_credentials" }}''')
    before = audit(server)["OAuthServer"]["grants"].count("client_credentials")
    result = run_job(job)
    _expect_normal_demo(result)
    assert audit(server)["OAuthServer"]["grants"].count("client_credentials") == before + 1
    assert summary_of(result)["auth_method"] == "client_credentials"


def test_client_credentials_wrong_secret_stops_resumably_before_sending(server: str, tmp_path: Path,
                                                                         monkeypatch) -> None:
    monkeypatch.setenv("SF_CLIENT_ID", "sandbox-client-id")
    monkeypatch.setenv("SF_CLIENT_SECRET", "not-the-secret-at-all")
    job = live_job(tmp_path, SF_JOB, SF_CSV, f'instance_url = "{server}"\nauth = {{ method = "client_credentials" }}')
    calls = audit(server)["SalesforceEmulator"]["calls"]
    result = run_job(job)
    summary = summary_of(result)
    assert result.exit_code == 3 and summary["stopped"]["code"] == "AUTH_FAILED"
    assert "invalid_client" in summary["stopped"]["message"]
    assert "not-the-secret-at-all" not in json.dumps(summary)
    assert audit(server)["SalesforceEmulator"]["calls"] == calls  # nothing was sent


def test_jwt_bearer(server: str, keys, tmp_path: Path) -> None:
    job = live_job(tmp_path, SF_JOB, SF_CSV, f'''
auth = {{ method = "jwt", client_id = "sandbox-client-id", username = "integration@acme.example.com", private_key_file = "{keys[0]}", login_url = "{server}" }}''')
    result = run_job(job)
    _expect_normal_demo(result)
    assert summary_of(result)["endpoint"] == server  # the instance URL came from the token response


def test_jwt_with_the_wrong_key_is_refused(server: str, tmp_path: Path) -> None:
    other, _ = make_rsa_key(tmp_path)
    job = live_job(tmp_path, SF_JOB, SF_CSV, f'''
auth = {{ method = "jwt", client_id = "sandbox-client-id", username = "integration@acme.example.com", private_key_file = "{other}", login_url = "{server}" }}''')
    result = run_job(job)
    assert result.exit_code == 3
    assert "invalid_grant" in summary_of(result)["stopped"]["message"]


def test_jwt_assertion_claims(keys) -> None:
    import jwt

    from batchrunner.platforms.salesforce.auth import JWT_LIFETIME, JwtBearer

    provider = JwtBearer("https://login.salesforce.com", "cid", "me@example.com", keys[0].read_text())
    claims = jwt.decode(provider.assertion(), keys[1].read_text(), algorithms=["RS256"],
                        audience="https://login.salesforce.com")
    assert claims["iss"] == "cid" and claims["sub"] == "me@example.com"
    assert 0 < claims["exp"] - __import__("time").time() <= JWT_LIFETIME


def test_refresh_token(server: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SF_CLIENT_ID", "sandbox-client-id")
    monkeypatch.setenv("SF_REFRESH_TOKEN", "sandbox-refresh-token")
    job = live_job(tmp_path, SF_JOB, SF_CSV, f'''
auth = {{ method = "refresh_token", login_url = "{server}" }}''')
    result = run_job(job)
    _expect_normal_demo(result)
    assert "refresh_token" in audit(server)["OAuthServer"]["grants"]


def _fake_sf(directory: Path, url: str, token: str = "sandbox-token") -> Path:
    script = directory / "sf"
    script.write_text(f"""#!{sys.executable}
import json, sys
args = sys.argv[1:]
assert "--json" in args and args[args.index("--target-org") + 1] == "my-org", args
if args[:3] == ["org", "auth", "show-access-token"]:
    print(json.dumps({{"status": 0, "result": {{"accessToken": "{token}"}}}}))
elif args[:2] == ["org", "display"]:
    print(json.dumps({{"status": 0, "result": {{"instanceUrl": "{url}", "accessToken": "[REDACTED]"}}}}))
else:
    sys.exit(1)
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_sf_cli(server: str, tmp_path: Path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_sf(bin_dir, server)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    job = live_job(tmp_path, SF_JOB, SF_CSV, 'auth = { method = "sf_cli", target_org = "my-org" }')
    _expect_normal_demo(run_job(job))


def test_sf_cli_missing_is_a_clear_error(tmp_path: Path) -> None:
    job = live_job(tmp_path, SF_JOB, SF_CSV, 'auth = { method = "sf_cli", target_org = "my-org" }')
    done = cli("validate", str(job), cwd=tmp_path, env={"PATH": str(tmp_path / "nowhere")})
    assert done.returncode == 2
    assert "Salesforce CLI ('sf') was not found" in done.stderr


def test_expired_session_refreshes_once_and_goes_on(keys, tmp_path: Path, monkeypatch) -> None:
    """Each issued token works for 2 requests: the session refreshes on the 401 and re-sends."""
    for k, v in CC_ENV.items():
        monkeypatch.setenv(k, v)
    with sandbox_server("oauth_token_uses=2") as url:
        job = live_job(tmp_path, SF_JOB, SF_CSV, f'instance_url = "{url}"\nauth = {{ method = "client_credentials" }}',
                       limits="concurrency = 1\nbatch_size = 3")
        result = run_job(job)
        _expect_normal_demo(result)
        assert audit(url)["OAuthServer"]["grants"].count("client_credentials") >= 3
        assert summary_of(result)["counts"]["succeeded"] > 0  # a fresh org


def test_401_that_a_refresh_does_not_cure_stops_resumably(tmp_path: Path, monkeypatch) -> None:
    for k, v in CC_ENV.items():
        monkeypatch.setenv(k, v)
    with sandbox_server("token_expires_after=1") as url:
        job = live_job(tmp_path, SF_JOB, SF_CSV, f'instance_url = "{url}"\nauth = {{ method = "client_credentials" }}',
                       limits="concurrency = 1\nbatch_size = 5")
        result = run_job(job)
        summary = summary_of(result)
        assert result.exit_code == 3 and summary["stopped"]["code"] == "AUTH_LOST"
        assert summary["counts"]["not_attempted"] > 0
        # the first grant, then one refresh per refused request: the constants look-up's (constants.py: its
        # session is the run's) and the run's first POST; a refresh that does not cure is not repeated
        assert audit(url)["OAuthServer"]["grants"].count("client_credentials") == 3


def test_env_token_refused_stops_with_exit_3(server: str, tmp_path: Path) -> None:
    job = live_job(tmp_path, SF_JOB, SF_CSV, f'instance_url = "{server}"\nauth = {{ method = "env" }}')
    done = cli("run", str(job), "--no-progress", cwd=tmp_path, env={"SF_ACCESS_TOKEN": "00Dwrong!token-value"})
    assert done.returncode == 3, done.stderr
    assert "AUTH_LOST" in done.stdout and "INVALID_SESSION_ID" in done.stdout
    assert done.stdout.splitlines()[0].startswith(f"LIVE salesforce ({server})")
    results = next(l.strip() for l in done.stdout.splitlines() if l.strip().endswith("results.csv"))
    with open(results, newline="", encoding="utf-8") as f:
        assert "not_attempted" in {r["_status"] for r in csv.DictReader(f)}


def test_no_credentials_exits_2_naming_the_variable_and_never_uses_the_sandbox(tmp_path: Path) -> None:
    job = live_job(tmp_path, SF_JOB, SF_CSV, "")
    env = {k: "" for k in ("SF_ACCESS_TOKEN", "SF_INSTANCE_URL")}
    done = cli("run", str(job), "--no-progress", cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert "SF_ACCESS_TOKEN" in done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    job = live_job(tmp_path, SF_JOB, SF_CSV, 'auth = { method = "client_credentials", domain_url = "https://x.my.salesforce.com" }')
    done = cli("validate", str(job), cwd=tmp_path, env={"SF_CLIENT_ID": "", "SF_CLIENT_SECRET": ""})
    assert done.returncode == 2 and "SF_CLIENT_ID" in done.stderr


@pytest.mark.parametrize("url", ["http://example.com", "http://10.0.0.5:8765", "ftp://x.my.salesforce.com"])
def test_live_urls_must_be_https_except_loopback(tmp_path: Path, url: str) -> None:
    job = live_job(tmp_path, SF_JOB, SF_CSV, f'instance_url = "{url}"')
    done = cli("validate", str(job), cwd=tmp_path, env={"SF_ACCESS_TOKEN": "00Dx!abcdefgh"})
    assert done.returncode == 2 and "https://" in done.stderr


def test_unknown_auth_key_is_refused_with_a_hint(tmp_path: Path) -> None:
    job = live_job(tmp_path, SF_JOB, SF_CSV, 'auth = { method = "client_credentials", client_secret = "literal" }')
    done = cli("validate", str(job), cwd=tmp_path)
    assert done.returncode == 2
    assert "client_secret_env" in done.stderr and "literal" not in done.stderr


def test_a_run_stopped_by_auth_resumes_with_a_good_credential(server: str, tmp_path: Path) -> None:
    job = live_job(tmp_path, SF_JOB, SF_CSV, f'instance_url = "{server}"\nauth = {{ method = "env" }}')
    first = cli("run", str(job), "--json", cwd=tmp_path, env={"SF_ACCESS_TOKEN": "00Dexpired!token-value"})
    assert first.returncode == 3
    run_dir = json.loads(first.stdout)["run_dir"]
    done = cli("resume", run_dir, "--json", cwd=tmp_path, env={"SF_ACCESS_TOKEN": "sandbox-token"})
    assert done.returncode == 1, done.stderr  # finished: the demo's failed and invalid rows remain
    summary = json.loads(done.stdout)
    assert summary["resumed"] and summary["counts"]["not_attempted"] == 0 and summary["stopped"] is None


def test_sf_cli_failure_stops_before_sending(server: str, tmp_path: Path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "sf"
    script.write_text('#!/bin/sh\necho \'{"status": 1, "message": "No authorization information found for my-org."}\'\n'
                      'exit 1\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    job = live_job(tmp_path, SF_JOB, SF_CSV, 'auth = { method = "sf_cli", target_org = "my-org" }')
    result = run_job(job)
    summary = summary_of(result)
    assert result.exit_code == 3 and summary["stopped"]["code"] == "AUTH_FAILED"
    assert "No authorization information found" in summary["stopped"]["message"]


def test_validate_of_a_live_job_contacts_nothing(server: str, tmp_path: Path) -> None:
    job = live_job(tmp_path, SF_JOB, SF_CSV, f'instance_url = "{server}"\nauth = {{ method = "client_credentials" }}')
    before = audit(server)
    done = cli("validate", str(job), cwd=tmp_path, env=CC_ENV)
    assert done.returncode == 1, done.stderr  # the demo has invalid rows
    assert done.stdout.startswith(f"LIVE salesforce ({server})") and "nothing was sent" in done.stdout
    after = audit(server)
    assert after["OAuthServer"]["grants"] == before["OAuthServer"]["grants"]
    assert after["SalesforceEmulator"]["api_used"] == before["SalesforceEmulator"]["api_used"]


def test_refresh_token_rotation_is_stored_in_the_token_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SF_CLIENT_ID", "sandbox-client-id")
    monkeypatch.setenv("SF_REFRESH_TOKEN", "sandbox-refresh-token")
    token_file = tmp_path / "sf-token.json"
    with sandbox_server("oauth_sf_rotate_refresh=true") as url:
        job = live_job(tmp_path, SF_JOB, SF_CSV, f'''
auth = {{ method = "refresh_token", login_url = "{url}", token_file = "{token_file}" }}''')
        first = run_job(job)
        assert summary_of(first)["stopped"] is None
        stored = json.loads(token_file.read_text())["refresh_token"]
        assert stored != "sandbox-refresh-token" and stat.S_IMODE(token_file.stat().st_mode) == 0o600
        second = run_job(job)  # the variable's token is revoked now: the file's is used
        assert summary_of(second)["stopped"] is None
        assert "sandbox-refresh-token" in audit(url)["OAuthServer"]["revoked"]
