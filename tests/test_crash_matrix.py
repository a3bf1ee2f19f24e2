"""The crash matrix (issue 13): a served sandbox, the CLI stopped at many points by SIGKILL,
SIGTERM or SIGHUP, then `resume`; judged from the sandbox's own record of every request that
could change data (`/_sandbox/requests`) and of what it applied (`/_sandbox/audit`):

- no mutation was *sent* twice for the same person (not merely applied once);
- nothing was applied twice;
- every input row has exactly one final line, none left not_attempted.

The signal is sent by the process to itself at a named point (failpoints.py), so the moment is
exact and the test needs no sleeps.
"""

from __future__ import annotations

import csv
import json
import signal
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest

from batchrunner.platforms.salesforce.ids import to18
from conftest import cli, copy_demo_job, sandbox_server

PLATFORMS = {
    "salesforce": ("salesforce-weekly-assign.toml", "salesforce_weekly_leads.csv", {"batch_size": 2}),
    "salesloft": ("salesloft-weekly-enrolment.toml", "salesloft_weekly_enrolment.csv", {}),
    "outreach": ("outreach-enrolment.toml", "outreach_enrolment.csv", {}),
}
POINTS = ["run.before_send", "execute.after_send:1", "execute.after_send:4", "execute.after_record:3"]
SIGNALS = ["SIGKILL", "SIGTERM", "SIGHUP"]
FULL = ("salesforce", "salesloft")  # every point and signal; the suite's time allows a subset for the others
CASES = [(p, point, sig) for p in FULL for point in POINTS for sig in SIGNALS]
CASES += [(p, "report.writing", "SIGKILL") for p in FULL]
# Outreach (no idempotency key: a lost answer is reconciled by reading the sequence states): an
# answer lost to a kill, a graceful stop mid-run, a stop after outcomes were recorded
CASES += [("outreach", "execute.after_send:1", "SIGKILL"), ("outreach", "execute.after_send:4", "SIGTERM"),
          ("outreach", "execute.after_record:3", "SIGHUP")]
APPLIED = {"salesforce": ("SalesforceEmulator", "assignments"), "salesloft": ("SalesloftEmulator", "enrolments"),
           "outreach": ("OutreachEmulator", "enrolments")}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def mutations_per_person(url: str) -> Counter[str]:
    """How often each person (Salesforce target, Salesloft person, Outreach prospect or sequence
    state) was named in a request that
    could change data, from the sandbox's own record of what it received."""
    sent: Counter[str] = Counter()
    for request in httpx.get(f"{url}/_sandbox/requests").json():
        if request["path"].startswith("/api/v2/sequenceStates"):  # Outreach: a prospect, or a state acted on
            body = json.loads(request["body"] or "{}")
            prospect = (((body.get("data") or {}).get("relationships") or {}).get("prospect") or {}).get("data") or {}
            sent[f"{request['method']} {prospect.get('id') or request['path']}"] += 1
        elif "/actions/" in request["path"]:  # Salesforce: one entry per input
            for entry in json.loads(request["body"] or "{}").get("inputs", []):
                sent[to18(entry.get("targetId") or entry.get("actionCadenceTrackerId") or "?")] += 1
        elif request["path"].startswith("/v2/cadence_memberships") and request["method"] in ("POST", "DELETE"):
            query = dict(request["query"]) if isinstance(request["query"], list) else dict(
                parse_qsl(request["query"]))
            sent[f"{request['method']} {query.get('person_id') or request['path']}"] += 1
    return sent


@pytest.mark.parametrize(("platform", "point", "sig"), CASES)
def test_stop_anywhere_then_resume_sends_nothing_twice_and_loses_nothing(tmp_path: Path, platform: str, point: str,
                                                                        sig: str) -> None:
    job_name, csv_name, limits = PLATFORMS[platform]
    name, _, nth = point.partition(":")
    with sandbox_server() as url:
        job = copy_demo_job(tmp_path, job_name, csv_name, url, concurrency=1, **limits)
        first = cli("run", str(job), "--no-progress", cwd=tmp_path,
                    env={"BATCHRUNNER_FAILPOINT": f"{name}:{nth or 1}:{sig}"})
        if sig == "SIGKILL":
            assert first.returncode == -signal.SIGKILL, first.stderr
        else:  # a graceful stop: reports written, resumable
            assert first.returncode == 3, (first.returncode, first.stderr[-2000:])
            assert "Traceback" not in first.stderr
            assert "batchrunner resume" in first.stdout + first.stderr
        runs = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
        assert len(runs) == 1
        run_dir = runs[0]
        done = cli("resume", str(run_dir), "--no-progress", cwd=tmp_path)
        assert done.returncode == 1, done.stderr[-2000:]  # the demo's own failed / invalid rows, nothing else
        assert "Traceback" not in done.stderr

        source = _rows(tmp_path / "data" / csv_name)
        results = _rows(run_dir / "results.csv")
        assert [r["_row"] for r in results] == [str(i) for i in range(1, len(source) + 1)]  # each row once
        assert not [r for r in results if r["_status"] == "not_attempted"]
        assert not [r for r in results if r["_error_code"] == "UNKNOWN_OUTCOME"]  # every unsure row reconciled

        sent = mutations_per_person(url)
        assert sent, "the sandbox recorded no mutation"
        twice = {person: n for person, n in sent.items() if n > 1}
        assert not twice, f"sent more than once: {twice}"
        audit = httpx.get(f"{url}/_sandbox/audit").json()
        emulator, record = APPLIED[platform]
        applied = audit[emulator][record]
        assert applied and max(applied.values()) == 1
