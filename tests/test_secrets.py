"""Secrets never leave memory: whole jobs run with recognisable credentials, and no file of the
run directory, no line of stdout/stderr and no --help text contains any of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import cli, sandbox_server
from live_helpers import SF_CSV, SF_JOB, SL_CSV, SL_JOB, audit, live_job

CLIENT_SECRET = "CLIENTSECRET-zebra-4711-xyzzy"
REFRESH = "REFRESHTOKEN-zebra-4711-xyzzy"
ENV_TOKEN = "00DENVTOKEN!zebra-4711-xyzzy"
MARK = "zebra-4711"


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _assert_nowhere(secrets: list[str], outputs: list[str], root: Path) -> None:
    for text in outputs:
        for secret in secrets:
            assert secret not in text
    files = _files(root)
    assert any(p.name == "run.log" for p in files) and any(p.name == "summary.json" for p in files)
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"{secret[:12]}… found in {path}"


@pytest.fixture(scope="module")
def server():
    with sandbox_server(f"oauth_client_secret={CLIENT_SECRET}", f"oauth_refresh_token={REFRESH}",
                        "oauth_token_uses=10") as url:
        yield url


def test_a_whole_job_leaks_no_token(server: str, tmp_path: Path) -> None:
    env = {"SF_CLIENT_ID": "sandbox-client-id", "SF_CLIENT_SECRET": CLIENT_SECRET,
           "SALESLOFT_CLIENT_ID": "sandbox-client-id", "SALESLOFT_CLIENT_SECRET": CLIENT_SECRET,
           "SALESLOFT_REFRESH_TOKEN": REFRESH}
    outputs: list[str] = []
    sf = live_job(tmp_path, SF_JOB, SF_CSV, f'instance_url = "{server}"\nauth = {{ method = "client_credentials" }}',
                  limits="concurrency = 2\nbatch_size = 1")  # tokens expire during the run: refreshes get logged
    done = cli("run", str(sf), "--json", cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stderr
    outputs += [done.stdout, done.stderr]
    summary = json.loads(done.stdout)
    assert summary["mode"] == "LIVE" and summary["stopped"] is None
    token_file = tmp_path / "private" / "salesloft.json"
    sl = live_job(tmp_path, SL_JOB, SL_CSV, f'''base_url = "{server}"
auth = {{ method = "oauth", token_file = "{token_file}", token_url = "{server}/oauth/token" }}''')
    done = cli("run", str(sl), "--json", cwd=tmp_path, env=env)
    assert done.returncode in (0, 1), done.stderr
    outputs += [done.stdout, done.stderr]
    # a run whose token is refused: the stop message and the log must not carry it either
    bad = live_job(tmp_path, SF_JOB, SF_CSV, f'instance_url = "{server}"\nauth = {{ method = "env" }}',
                   name="bad.toml")
    done = cli("run", str(bad), cwd=tmp_path, env={"SF_ACCESS_TOKEN": ENV_TOKEN})
    assert done.returncode == 3
    outputs += [done.stdout, done.stderr]
    # a refused client secret: the error names the problem, not the secret
    done = cli("check", str(sf), cwd=tmp_path, env={**env, "SF_CLIENT_ID": "wrong-client-id"})
    assert done.returncode == 1 and "invalid_client_id" in done.stdout
    outputs += [done.stdout, done.stderr]
    for args in (["--help"], ["run", "--help"], ["check", "--help"], ["resume", "--help"]):
        done = cli(*args, cwd=tmp_path, env=env)
        outputs += [done.stdout, done.stderr]

    issued = audit(server)["OAuthServer"]
    secrets = [CLIENT_SECRET, REFRESH, ENV_TOKEN, *issued["issued"], *issued["refresh_tokens"], *issued["revoked"]]
    assert len(issued["issued"]) >= 3  # several access tokens were issued (and refreshed) during the runs
    _assert_nowhere(secrets, outputs, tmp_path / "runs")
    assert all(MARK not in text for text in outputs)
    assert json.loads(token_file.read_text())["refresh_token"] in issued["refresh_tokens"]  # kept, but only there


def test_redaction_of_logs_and_errors() -> None:
    import logging

    from batchrunner import secrets
    from batchrunner.auth import AuthError

    secrets.register("tok-SECRET-123456")
    assert secrets.redact("Bearer tok-SECRET-123456 refused") == f"Bearer {secrets.MASK} refused"
    assert "tok-SECRET" not in str(AuthError("endpoint echoed tok-SECRET-123456"))
    record = logging.LogRecord("batchrunner", logging.INFO, __file__, 1, "token %s", ("tok-SECRET-123456",), None)
    secrets.RedactingFilter().filter(record)
    assert "tok-SECRET" not in record.getMessage()


def test_job_repr_holds_no_secret(tmp_path: Path, monkeypatch) -> None:
    from batchrunner.job import load_job
    from batchrunner.platforms import get_platform

    monkeypatch.setenv("SF_ACCESS_TOKEN", ENV_TOKEN)
    job = load_job(live_job(tmp_path, SF_JOB, SF_CSV, 'instance_url = "https://acme.my.salesforce.com"'))
    get_platform("salesforce").endpoint(job)
    assert ENV_TOKEN not in repr(job)


def test_a_token_pasted_as_the_auth_table_is_not_echoed(tmp_path: Path) -> None:
    from batchrunner.errors import JobError
    from batchrunner.job import load_job

    job = live_job(tmp_path, SF_JOB, SF_CSV, f'auth = "{ENV_TOKEN}"')
    with pytest.raises(JobError) as info:
        load_job(job)
    assert "auth must be a table" in str(info.value) and ENV_TOKEN not in str(info.value)
