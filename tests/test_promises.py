"""The paths between features where the "nothing lost, nothing sent twice" promise used to break
(issue 13 items 1, 2, 7, 8, 17; issue 14 items 2, 3, 4, 7). In-process sandbox; what was applied is
judged from the sandbox's own audit, not from the runner's report."""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from batchrunner.cli import main
from batchrunner.errors import JobError, NothingToRetry, RunAborted
from batchrunner.job import load_job
from batchrunner.runner import prepare, resume_async, retry_rows, run_prepared
from batchrunner.sandbox.factory import build_sandbox

pytestmark = pytest.mark.anyio

def _sf_job(tmp_path: Path, rows: int = 40, batch_size: int = 4, extra: str = "", delimiter: str = ",",
            encoding: str = "utf-8", names: list[str] | None = None) -> Path:
    """A Salesforce assign job over ``rows`` seeded-looking leads (the sandbox accepts any lead id
    that starts with 00Q and is well formed)."""
    from batchrunner.platforms.salesforce.ids import to18

    lines = [f"Lead Id{delimiter}Company"]
    for i in range(rows):
        name = names[i] if names else f"Company {i}"
        lines.append(f"{to18(f'00Q{i + 1:012d}')}{delimiter}{name}")
    (tmp_path / "leads.csv").write_bytes(("\n".join(lines) + "\n").encode(encoding))
    job = tmp_path / "job.toml"
    job.write_text(f'''name = "promise"
platform = "salesforce"
operation = "assign"
input = "leads.csv"
output_dir = "runs"
encoding = "{encoding}"
delimiter = "{delimiter}"
{extra}
[columns]
targetId = "Lead Id"
salesCadenceNameOrId = {{ value = "Q4 Outbound" }}

[connection]
sandbox = true

[limits]
concurrency = 2
batch_size = {batch_size}
''', encoding="utf-8")
    return job


class Hooked:
    """The sandbox, with a hook called before each action request (to break things mid-run)."""

    def __init__(self, hook: Any = None) -> None:
        from batchrunner.platforms.salesforce.ids import to18

        self.app = build_sandbox()
        self.hook = hook
        self.actions = 0
        org = self.emulator()
        for i in range(1, 201):  # leads the generated files name, none on a cadence yet
            lead = to18(f"00Q{i:012d}")
            org.targets[lead] = {"id": lead, "first_name": "L", "last_name": str(i)}
            org.target_kind[lead] = "Lead"

    def emulator(self) -> Any:
        return next(e for e in self.app.emulators if type(e).__name__ == "SalesforceEmulator")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and "/actions/" in scope.get("path", ""):
            self.actions += 1
            if self.hook is not None:
                self.hook(self.actions)
        await self.app(scope, receive, send)

    def assignments(self) -> dict[str, int]:
        return dict(self.emulator().assignments)


def _rows(path: Path, encoding: str = "utf-8") -> list[dict[str, str]]:
    with path.open(newline="", encoding=encoding) as f:
        return list(csv.DictReader(f))


def _run_dirs(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "runs").iterdir() if p.is_dir())


async def test_a_deleted_run_directory_stops_the_run_at_once_and_keeps_every_outcome(tmp_path: Path) -> None:
    """Issue 13.7: SQLite went on writing into the deleted journal; every outcome was lost."""
    job = _sf_job(tmp_path, rows=40, batch_size=2)

    def delete_run_dir(n: int) -> None:
        if n == 4:
            shutil.rmtree(_run_dirs(tmp_path)[0])

    app = Hooked(delete_run_dir)
    result = await run_prepared(prepare(load_job(job)), sandbox_app=app, progress=False)
    assert result.exit_code == 4
    assert result.summary["stopped"]["code"] == "JOURNAL_FAILED"
    # fail-stop: the request that found the journal gone was never sent, nor any after it (the
    # other worker's request already on the wire is the only one that may follow)
    assert app.actions <= 5
    run_dir = result.run_dir
    assert (run_dir / "journal.sqlite").is_file() and (run_dir / "results.csv").is_file()
    results = _rows(run_dir / "results.csv")
    assert len(results) == 40
    done = [r for r in results if r["_status"] == "succeeded"]
    assert len(done) >= 2  # what was recorded before the deletion survives
    resumed = await resume_async(run_dir, sandbox_app=app, progress=False)
    assert resumed.exit_code == 0, resumed.summary
    final = _rows(run_dir / "results.csv")
    assert [r["_status"] for r in final] == ["succeeded"] * 40
    assigned = app.assignments()
    assert len(assigned) == 40 and max(assigned.values()) == 1  # none applied twice, none lost


async def test_an_unexpected_error_after_sending_is_exit_4_with_reports_and_resumable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13.8: a crash after sending was a traceback and exit 1 ("some rows failed")."""
    from batchrunner import execute

    job = _sf_job(tmp_path, rows=20, batch_size=2)
    real = execute.Executor._apply
    calls = {"n": 0}

    def flaky(self, unit, verdict, requeue):  # noqa: ANN001
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real(self, unit, verdict, requeue)

    monkeypatch.setattr(execute.Executor, "_apply", flaky)
    app = Hooked()
    with pytest.raises(RunAborted) as caught:
        await run_prepared(prepare(load_job(job)), sandbox_app=app, progress=False)
    assert caught.value.exit_code == 4 and caught.value.sent
    assert "No space left on device" in str(caught.value) and "batchrunner resume" in str(caught.value)
    run_dir = _run_dirs(tmp_path)[0]
    assert len(_rows(run_dir / "results.csv")) == 20  # reports for what is known
    monkeypatch.setattr(execute.Executor, "_apply", real)
    resumed = await resume_async(run_dir, sandbox_app=app, progress=False)
    assert resumed.exit_code == 0
    assert max(app.assignments().values()) == 1 and len(app.assignments()) == 20


def test_cli_never_shows_a_traceback_and_json_always_has_an_exit_code(tmp_path: Path, capsys,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13.8: an output directory that cannot be written was a traceback and exit 1. (Root
    ignores file modes, so the directory is made unusable by being a file.)"""
    job = _sf_job(tmp_path, rows=3)
    (tmp_path / "runs").write_text("not a directory")
    code = main(["run", str(job), "--no-progress", "--json"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in err and "error:" in err
    assert json.loads(out.strip().splitlines()[-1])["exit_code"] == 2


def test_cli_unexpected_error_is_one_line_and_json(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    import batchrunner.runner as runner

    job = _sf_job(tmp_path, rows=3)

    def boom(*a: Any, **k: Any) -> None:
        raise PermissionError(13, "Permission denied", str(tmp_path / "runs"))

    monkeypatch.setattr(runner, "new_run_dir", boom)
    code = main(["run", str(job), "--no-progress", "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err and "Permission denied" in err
    assert json.loads(out.strip().splitlines()[-1]) == {"error": json.loads(out.strip().splitlines()[-1])["error"],
                                                        "exit_code": 2}


async def test_run_directories_and_files_are_private(tmp_path: Path) -> None:
    """Issue 13.17: results.csv holds every input column (emails, names): 0600 in a 0700 directory."""
    old = os.umask(0o022)
    try:
        job = _sf_job(tmp_path, rows=4)
        result = await run_prepared(prepare(load_job(job)), sandbox_app=Hooked(), progress=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(result.run_dir.stat().st_mode) == 0o700
    files = [p for p in result.run_dir.iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"results.csv", "errors.csv", "summary.json", "journal.sqlite", "run.log"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    lock = tmp_path / ".job.toml.lock"
    assert lock.is_file() and stat.S_IMODE(lock.stat().st_mode) == 0o600


async def test_a_dry_run_is_marked_and_cannot_be_resumed_or_retried(tmp_path: Path) -> None:
    """Issue 14.4: a dry run looked like a real run and `resume` then sent everything."""
    job = _sf_job(tmp_path, rows=5)
    app = Hooked()
    result = await run_prepared(prepare(load_job(job)), dry_run=True, sandbox_app=app, progress=False)
    assert result.exit_code == 0 and result.summary["dry_run"] is True
    rows = _rows(result.run_dir / "results.csv")
    assert {r["_error_code"] for r in rows} == {"DRY_RUN"}
    assert not any("resume" in r["_error_message"] for r in rows)
    assert _rows(result.run_dir / "errors.csv") == []  # nothing is wrong with a valid row
    with pytest.raises(JobError, match="is a dry run"):
        await resume_async(result.run_dir, sandbox_app=app, progress=False)
    with pytest.raises(JobError, match="is a dry run"):
        retry_rows(result.run_dir)
    assert app.actions == 0


async def _failing_run(tmp_path: Path, job: Path, fail_every: int = 2) -> tuple[Any, Hooked]:
    """A run where the platform answers 503 for good to some requests, so rows end failed."""
    from batchrunner.execute import RetryPolicy  # noqa: F401 - (max_attempts comes from the job)

    app = Hooked()
    inner = app.app

    async def app503(scope, receive, send):  # noqa: ANN001
        if scope.get("type") == "http" and "/actions/" in scope.get("path", ""):
            app.actions += 1
            if app.actions % fail_every == 0:
                await send({"type": "http.response.start", "status": 400, "headers": [(b"content-type",
                                                                                       b"application/json")]})
                await send({"type": "http.response.body", "body": json.dumps(
                    [{"errorCode": "UNKNOWN_EXCEPTION", "message": "try again"}]).encode()})
                return
        await inner(scope, receive, send)

    result = await run_prepared(prepare(load_job(job)), sandbox_app=app503, progress=False)
    return result, app


async def test_retry_then_resume_and_retry_twice_are_refused(tmp_path: Path) -> None:
    """Issue 13.2: `retry RUN` then `resume RUN` sent every retried row twice."""
    job = _sf_job(tmp_path, rows=12, batch_size=1, extra="")
    first, app = await _failing_run(tmp_path, job, fail_every=3)
    failed = [r for r in _rows(first.run_dir / "results.csv") if r["_status"] == "failed"]
    assert failed, "the fixture must leave failed rows"
    selection = retry_rows(first.run_dir)
    assert len(selection.rows) == len(failed)
    second = await run_prepared(prepare(load_job(job), selection.input_path), sandbox_app=app.app,
                                progress=False, retry_of=first.run_dir)
    assert second.exit_code == 0
    with pytest.raises(JobError, match="handed to `batchrunner retry`") as refused:
        await resume_async(first.run_dir, sandbox_app=app.app, progress=False)
    assert str(second.run_dir) in str(refused.value)
    with pytest.raises(JobError, match="handed to `batchrunner retry`"):
        retry_rows(first.run_dir)
    assert max(app.assignments().values()) == 1 and len(app.assignments()) == 12


async def test_retry_uses_the_rows_the_run_read_not_next_weeks_file(tmp_path: Path) -> None:
    """Issue 14.2: retry re-read the job's input by row number; after next week's list replaced it,
    retry enrolled someone who was never in the run."""
    job = _sf_job(tmp_path, rows=6, batch_size=1)
    first, app = await _failing_run(tmp_path, job, fail_every=2)
    failed_ids = [r["Lead Id"] for r in _rows(first.run_dir / "results.csv") if r["_status"] == "failed"]
    _sf_job(tmp_path, rows=6, batch_size=1, names=[f"Next week {i}" for i in range(6)])  # same ids, new file
    lines = (tmp_path / "leads.csv").read_text().splitlines()
    (tmp_path / "leads.csv").write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")  # and re-sorted
    selection = retry_rows(first.run_dir)
    retried = _rows(selection.input_path)
    assert [r["Lead Id"] for r in retried] == failed_ids
    assert all(r["Company"].startswith("Company ") for r in retried)  # the run's own rows


@pytest.mark.parametrize(("delimiter", "encoding"), [(";", "utf-8"), (",", "cp1252"), ("\t", "cp1252")])
async def test_retry_writes_the_jobs_own_dialect(tmp_path: Path, delimiter: str, encoding: str) -> None:
    """Issue 14.3: the retry file was UTF-8 with commas, read back with the job's settings."""
    names = ["Müller GmbH", "Façade; SA", "Ørsted, A/S", "Plain", "Zoë", "Ärger"]
    job = _sf_job(tmp_path, rows=6, batch_size=1, delimiter=delimiter, encoding=encoding, names=names)
    first, app = await _failing_run(tmp_path, job, fail_every=2)
    selection = retry_rows(first.run_dir)
    prepared = prepare(load_job(job), selection.input_path)
    assert prepared.invalid.height == 0
    second = await run_prepared(prepared, sandbox_app=app.app, progress=False, retry_of=first.run_dir)
    assert second.exit_code == 0
    companies = [r["Company"] for r in _rows(second.run_dir / "results.csv")]
    assert set(companies) <= set(names) and len(companies) == len(selection.rows)


async def test_retry_with_only_invalid_rows_says_what_is_true(tmp_path: Path) -> None:
    """Issue 14.7: "every row succeeded or was skipped" and exit 2, after a run with invalid rows."""
    from batchrunner.platforms.salesforce.ids import to18

    job = _sf_job(tmp_path, rows=0)
    (tmp_path / "leads.csv").write_text(f"Lead Id,Company\n{to18('00Q000000000001')},A\nnot-an-id,B\n")
    first = await run_prepared(prepare(load_job(job)), sandbox_app=Hooked(), progress=False)
    assert first.summary["counts"]["invalid"] == 1
    with pytest.raises(NothingToRetry) as caught:
        retry_rows(first.run_dir)
    assert caught.value.exit_code == 1
    assert "1 row is invalid" in str(caught.value) and "--input" in str(caught.value)
    assert "every row succeeded" not in str(caught.value)
