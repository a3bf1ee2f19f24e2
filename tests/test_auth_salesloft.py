"""Salesloft authentication: API key, and OAuth refresh with rotation against the sandbox's
token endpoint (served on 127.0.0.1, and in-process with a fake clock for the expiry rule)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import anyio
import httpx

from batchrunner.auth import BearerAuth, write_token_file
from batchrunner.clock import FakeClock
from batchrunner.platforms.salesloft.auth import OAuthRefresh
from batchrunner.sandbox.app import SandboxApp
from batchrunner.sandbox.oauth import OAuthServer
from conftest import cli, sandbox_server
from live_helpers import SL_CSV, SL_JOB, audit, live_job, run_job, summary_of

OAUTH_ENV = {"SALESLOFT_CLIENT_ID": "sandbox-client-id", "SALESLOFT_CLIENT_SECRET": "sandbox-client-secret"}


def _oauth_job(tmp_path: Path, url: str, token_file: Path) -> Path:
    return live_job(tmp_path, SL_JOB, SL_CSV, f'''
base_url = "{url}"
auth = {{ method = "oauth", token_file = "{token_file}", token_url = "{url}/oauth/token" }}''')


def test_oauth_refresh_rotates_and_stores_the_new_token_0600(tmp_path: Path, monkeypatch) -> None:
    for k, v in OAUTH_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("SALESLOFT_REFRESH_TOKEN", "sandbox-refresh-token")
    token_file = tmp_path / "secret" / "salesloft-token.json"
    with sandbox_server() as url:
        job = _oauth_job(tmp_path, url, token_file)
        first = run_job(job)
        summary = summary_of(first)
        assert summary["mode"] == "LIVE" and summary["stopped"] is None
        assert summary["counts"]["succeeded"] > 0 and summary["counts"]["not_attempted"] == 0
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        stored = json.loads(token_file.read_text())["refresh_token"]
        server = audit(url)["OAuthServer"]
        assert stored != "sandbox-refresh-token" and stored in server["refresh_tokens"]
        assert "sandbox-refresh-token" in server["revoked"]  # rotation: the old one is dead
        # the next run reads the file (the seed variable is now revoked and must not be used)
        monkeypatch.setenv("SALESLOFT_REFRESH_TOKEN", "sandbox-refresh-token")
        second = run_job(job)
        assert summary_of(second)["stopped"] is None
        assert json.loads(token_file.read_text())["refresh_token"] not in (stored, "sandbox-refresh-token")
        assert audit(url)["OAuthServer"]["grants"].count("salesloft:refresh_token") == 2


def test_oauth_with_a_revoked_refresh_token_stops_resumably(tmp_path: Path, monkeypatch) -> None:
    for k, v in OAUTH_ENV.items():
        monkeypatch.setenv(k, v)
    token_file = tmp_path / "t.json"
    write_token_file(token_file, {"refresh_token": "revoked-or-unknown-token"})
    with sandbox_server() as url:
        result = run_job(_oauth_job(tmp_path, url, token_file))
    summary = summary_of(result)
    assert result.exit_code == 3 and summary["stopped"]["code"] == "AUTH_FAILED"
    assert "invalid_grant" in summary["stopped"]["message"]
    assert "revoked-or-unknown-token" not in json.dumps(summary)


def _in_process(server: OAuthServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url="http://127.0.0.1", transport=httpx.ASGITransport(app=SandboxApp([server])))


def test_refreshes_ahead_of_the_7200_s_expiry(tmp_path: Path) -> None:
    clock = FakeClock()
    server = OAuthServer(clock=clock.wall)
    token_file = tmp_path / "t.json"

    async def go() -> None:
        http = _in_process(server)
        provider = OAuthRefresh("http://127.0.0.1/oauth/token", "sandbox-client-id", "sandbox-client-secret",
                                token_file, "sandbox-refresh-token", clock=clock, http=http)
        first = await provider.get_token()
        assert await provider.get_token() == first  # still fresh
        await clock.sleep(7200 - provider.refresh_ahead - 1)
        assert await provider.get_token() == first
        await clock.sleep(2)  # inside the refresh-ahead window: a new token before the old one expires
        second = await provider.get_token()
        assert second != first
        assert server.issued[first].expires_at > clock.now()  # the old one had not expired yet
        assert json.loads(token_file.read_text())["refresh_token"] in server.sl_refresh_tokens
        await http.aclose()

    anyio.run(go)
    assert server.grants == ["salesloft:refresh_token", "salesloft:refresh_token"]


def test_concurrent_401s_share_one_refresh(tmp_path: Path) -> None:
    """Rotation makes a double refresh fatal (the second would present a revoked token)."""
    clock = FakeClock()
    server = OAuthServer(clock=clock.wall)

    async def go() -> None:
        http = _in_process(server)
        provider = OAuthRefresh("http://127.0.0.1/oauth/token", "sandbox-client-id", "sandbox-client-secret",
                                tmp_path / "t.json", "sandbox-refresh-token", clock=clock, http=http)
        stale = await provider.get_token()
        results = []

        async def refresh() -> None:
            results.append(await provider.refresh(stale))

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(refresh)
        assert len(set(results)) == 1 and results[0] != stale
        await http.aclose()

    anyio.run(go)
    assert server.grants.count("salesloft:refresh_token") == 2


def test_expired_issued_token_gets_the_documented_401_and_bearer_auth_refreshes_once(tmp_path: Path) -> None:
    from batchrunner.sandbox.salesloft import SalesloftEmulator

    clock = FakeClock()
    server = OAuthServer(clock=clock.wall)
    app = SandboxApp([server, SalesloftEmulator()])

    async def go() -> None:
        http = httpx.AsyncClient(base_url="http://127.0.0.1", transport=httpx.ASGITransport(app=app))
        provider = OAuthRefresh("http://127.0.0.1/oauth/token", "sandbox-client-id", "sandbox-client-secret",
                                tmp_path / "t.json", "sandbox-refresh-token", clock=clock, http=http)
        token = await provider.get_token()
        assert (await http.get("/v2/me", headers={"Authorization": f"Bearer {token}"})).status_code == 200
        await http.post("/_sandbox/oauth/expire")
        expired = await http.get("/v2/me", headers={"Authorization": f"Bearer {token}"})
        assert expired.status_code == 401 and expired.json() == {"error": "Unauthorized"}
        api = httpx.AsyncClient(base_url="http://127.0.0.1", transport=httpx.ASGITransport(app=app),
                                auth=BearerAuth(provider))
        assert (await api.get("/v2/me")).status_code == 200  # 401 -> one refresh -> sent again
        assert provider.refreshes == 1
        await api.aclose()
        await http.aclose()

    anyio.run(go)


def test_api_key_from_env(tmp_path: Path) -> None:
    with sandbox_server() as url:
        job = live_job(tmp_path, SL_JOB, SL_CSV, f'base_url = "{url}"\nauth = {{ method = "api_key" }}')
        done = cli("run", str(job), "--no-progress", cwd=tmp_path, env={"SALESLOFT_API_KEY": "sandbox-key"})
        assert done.returncode in (0, 1), done.stderr
        assert done.stdout.splitlines()[0].startswith(f"LIVE salesloft ({url})")


def test_missing_api_key_exits_2_naming_the_variable(tmp_path: Path) -> None:
    job = live_job(tmp_path, SL_JOB, SL_CSV, "")
    done = cli("run", str(job), cwd=tmp_path, env={"SALESLOFT_API_KEY": ""})
    assert done.returncode == 2 and "SALESLOFT_API_KEY" in done.stderr


def test_oauth_without_a_token_file_or_seed_exits_2(tmp_path: Path) -> None:
    job = live_job(tmp_path, SL_JOB, SL_CSV, f'auth = {{ method = "oauth", token_file = "{tmp_path}/none.json" }}')
    env = {**OAUTH_ENV, "SALESLOFT_REFRESH_TOKEN": ""}
    done = cli("validate", str(job), cwd=tmp_path, env=env)
    assert done.returncode == 2 and "SALESLOFT_REFRESH_TOKEN" in done.stderr


def test_token_file_write_is_atomic_and_private(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text('{"refresh_token": "old"}')
    os.chmod(path, 0o644)
    write_token_file(path, {"refresh_token": "new-token"})
    assert json.loads(path.read_text()) == {"refresh_token": "new-token"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]  # no temporary file left behind
