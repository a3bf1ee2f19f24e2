"""`batchrunner verify` and `[verify] after_run`: succeeded rows re-read on the platform (batchrunner/verify.py).

In-process sandbox throughout; "not active" is made with the documented fault injection
`[sandbox] not_started` (docs/sandbox.md), and "verify sends nothing" is judged from the sandbox's
own record of the requests that may change data (SandboxApp.received).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from batchrunner import api
from batchrunner.cli import main
from batchrunner.endscreen import render
from batchrunner.errors import JobError
from batchrunner.job import load_job
from batchrunner.runner import prepare, run_prepared
from batchrunner.sandbox.factory import build_sandbox

L = [f"00Q5e000000000{i}EAA" for i in range(1, 6)]  # free leads of the seed org (no tracker)

SF_CSV = f"""
    Lead,Action,Cadence
    {L[0]},assign,Q4 Outbound
    {L[1]},assign,Q4 Outbound
    {L[1]},pause,
    {L[2]},assign,Q4 Outbound
    00Q5e0000000099EAA,assign,Q4 Outbound
"""

SF_JOB = """
    name = "sf-verify"
    platform = "salesforce"
    input = "input.csv"
    output_dir = "runs"
    [columns]
    operation = "Action"
    targetId = "Lead"
    salesCadenceNameOrId = "Cadence"
    [connection]
    sandbox = true
"""

SL_CSV = """
    Email,Cadence
    kwame.aziz@brightpath.example.com,Q4 Outbound
    yara.jensen@cobalt.example.com,Q4 Outbound
    lucia.mehta@meridian.example.com,Q4 Outbound
    omar.chen@orbit.example.com,Q4 Outbound
"""

SL_JOB = """
    name = "sl-verify"
    platform = "salesloft"
    operation = "add"
    input = "input.csv"
    output_dir = "runs"
    [columns]
    person_email = "Email"
    cadence_name = "Cadence"
    [connection]
    sandbox = true
    [limits]
    requests_per_minute = 100000
"""


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


async def run(job_path: Path, app):
    return await run_prepared(prepare(load_job(job_path)), sandbox_app=app, progress=False)


@pytest.mark.anyio
async def test_a_clean_salesforce_run_verifies_clean_and_verify_sends_nothing(write_job):
    job = write_job(SF_CSV, SF_JOB)
    app = build_sandbox(record_requests=True)
    result = await run(job, app)
    assert result.counts["succeeded"] == 4 and result.counts["failed"] == 1  # the unknown lead
    sent = len(app.received)
    checked = await api.averify(result.run_dir, sandbox_app=app)
    assert len(app.received) == sent  # not one request that may change data
    assert checked.exit_code == 0
    rows = read_csv(result.run_dir / "verify.csv")
    assert [(r["_row"], r["_operation"], r["targetId"], r["verified"]) for r in rows] == [
        ("1", "assign", L[0], "ok"), ("2", "assign", L[1], "superseded"), ("3", "pause", L[1], "ok"),
        ("4", "assign", L[2], "ok")]
    assert rows[2]["expected"] == "Paused" and rows[2]["observed"].startswith("Paused on Q4 Outbound")
    block = json.loads((result.run_dir / "summary.json").read_text())["verify"]
    assert block["counts"]["ok"] == 3 and block["counts"]["mismatch"] == 0 and block["requests"] == 1  # one SOQL


@pytest.mark.anyio
async def test_salesforce_trackers_that_ended_are_exactly_the_mismatches(write_job):
    job = write_job(SF_CSV, SF_JOB + f'    [sandbox]\n    not_started = "{L[0]},{L[2]}"\n')
    app = build_sandbox(load_job(job).sandbox, record_requests=True)
    result = await run(job, app)
    assert result.counts["succeeded"] == 4  # the run itself cannot see it: the assign was accepted
    checked = await api.averify(result.run_dir, sandbox_app=app)
    assert checked.exit_code == 1
    mismatched = [(r["_row"], r["targetId"]) for r in read_csv(result.run_dir / "verify.csv")
                  if r["verified"] == "mismatch"]
    assert mismatched == [("1", L[0]), ("4", L[2])]
    assert checked.counts["mismatch"] == 2 and checked.counts["ok"] == 1


@pytest.mark.anyio
async def test_salesloft_staged_memberships_are_mismatches_after_the_run(write_job):
    """[verify] after_run: the run's rows and exit code stay its own; summary and end screen say it."""
    job = write_job(SL_CSV, SL_JOB + '    [sandbox]\n    not_started = "lucia.mehta@meridian.example.com"\n'
                                     '    [verify]\n    after_run = true\n')
    app = build_sandbox(load_job(job).sandbox, record_requests=True)
    result = await run(job, app)
    assert result.exit_code == 0 and result.counts["succeeded"] == 4
    assert {r["_status"] for r in read_csv(result.results_csv)} == {"succeeded"}
    rows = read_csv(result.run_dir / "verify.csv")
    assert [(r["person_email"], r["verified"]) for r in rows if r["verified"] != "ok"] == [
        ("lucia.mehta@meridian.example.com", "mismatch")]
    staged = next(r for r in rows if r["verified"] == "mismatch")
    assert staged["observed"] == "staged, on the cadence" and staged["reason"].startswith("staged")
    assert len(rows) == 4 and all(r["membership_id"] == "" for r in rows)  # identity from the row, not the answer
    block = json.loads(result.summary_json.read_text())["verify"]
    assert block == result.summary["verify"] and block["counts"]["mismatch"] == 1 and block["requests"] == 4
    assert "verify: 3 ok, 1 mismatch (4 requests)" in render(result.summary, result.run_dir)
    text = (result.run_dir / "verify.csv").read_text() + result.summary_json.read_text()
    assert "sandbox-key" not in text and "Bearer" not in text  # the team's key appears nowhere


@pytest.mark.anyio
async def test_a_removal_is_verified_off_the_cadence(write_job):
    job = write_job("""
        Email,Cadence
        henrik.nwosu@evergreen.example.com,Q4 Outbound
    """, SL_JOB.replace('operation = "add"', 'operation = "remove"'))
    app = build_sandbox(record_requests=True)
    result = await run(job, app)
    assert result.counts["succeeded"] == 1
    checked = await api.averify(result.run_dir, sandbox_app=app)
    assert checked.exit_code == 0
    assert checked.checks[0].observed == "removed, not on the cadence"


def test_verify_refuses_a_dry_run_and_a_directory_that_is_no_run(write_job, tmp_path, capsys):
    job = write_job(SF_CSV, SF_JOB)
    dry = api.run(job, dry_run=True)
    with pytest.raises(JobError, match="dry run"):
        api.verify(dry.run_dir)
    assert main(["verify", str(dry.run_dir)]) == 2
    assert main(["verify", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    sent = api.run(job)  # the in-process sandbox it ran against is gone: nothing to read, not "all mismatched"
    assert main(["verify", str(sent.run_dir)]) == 2 and "in-process sandbox" in capsys.readouterr().err
    assert not (sent.run_dir / "verify.csv").exists()
    assert not (dry.run_dir / "verify.csv").exists()


@pytest.mark.anyio
async def test_a_platform_answer_echoing_the_key_is_unreadable_and_masked(write_job, monkeypatch):
    from batchrunner import secrets
    from batchrunner.sandbox.base import SandboxResponse
    from batchrunner.sandbox.salesloft import SalesloftEmulator

    job = write_job(SL_CSV, SL_JOB)
    app = build_sandbox(record_requests=True)
    result = await run(job, app)
    emulator = next(e for e in app.emulators if isinstance(e, SalesloftEmulator))
    monkeypatch.setattr(emulator, "show_membership",
                        lambda mid, user: SandboxResponse(403, {"error": "key sandbox-key may not read this"}))
    secrets.register("sandbox-key")
    try:
        checked = await api.averify(result.run_dir, sandbox_app=app)
    finally:
        secrets.forget_all()
    assert checked.exit_code == 1 and checked.counts["unreadable"] == 4
    text = (result.run_dir / "verify.csv").read_text()
    assert "sandbox-key" not in text and secrets.MASK in text and "may not read this" in text


@pytest.mark.anyio
async def test_outreach_pending_states_are_mismatches(write_job):
    job = write_job("""
        Email,Sequence,Mailbox
        kwame.aziz@brightpath.example.com,Q4 Outbound,dana.whitaker@acme.example.com
        dmitri.mensah@vertex.example.com,Inbound Demo Request,busy.sender@acme.example.com
    """, """
        name = "or-verify"
        platform = "outreach"
        operation = "add"
        input = "input.csv"
        output_dir = "runs"
        [columns]
        prospect_email = "Email"
        sequence_name = "Sequence"
        mailbox_email = "Mailbox"
        [connection]
        sandbox = true
    """)
    app = build_sandbox(record_requests=True)
    result = await run(job, app)
    assert result.counts["succeeded"] == 2
    sent = len(app.received)
    checked = await api.averify(result.run_dir, sandbox_app=app)
    assert len(app.received) == sent
    assert [(c.row, c.verified, c.observed) for c in checked.checks] == [(0, "ok", "active"),
                                                                         (1, "mismatch", "pending")]
    assert read_csv(result.run_dir / "verify.csv")[1]["prospect_email"] == "dmitri.mensah@vertex.example.com"



@pytest.mark.anyio
async def test_a_verify_that_fails_after_the_run_leaves_the_run_as_it_was(write_job, monkeypatch):
    import importlib

    verify_module = importlib.import_module("batchrunner.verify")  # the module (batchrunner.verify is the API)

    async def broken(*args, **kwargs):
        raise RuntimeError("the platform went away")

    monkeypatch.setattr(verify_module, "read_states", broken)
    job = write_job(SL_CSV, SL_JOB + '    [verify]\n    after_run = true\n')
    result = await run(job, build_sandbox())
    assert result.exit_code == 0 and result.counts["succeeded"] == 4
    block = json.loads(result.summary_json.read_text())["verify"]
    assert block["error"] == "RuntimeError: the platform went away"
    assert "verify: not done (RuntimeError: the platform went away)" in render(result.summary, result.run_dir)
