"""The Python API (issue 15): the snippets of docs/orchestrators.md run as written, with small
stand-ins for the `airflow` and `dagster` packages (the snippets' own logic is what is tested),
and the API's promises: a path or a dict job, progress, typed errors, resume and retry."""

from __future__ import annotations

import re
import shutil
import sys
import types
from pathlib import Path

import pytest

import batchrunner

REPO = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "orchestrators.md").read_text(encoding="utf-8"),
                    re.DOTALL)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(REPO / "jobs", tmp_path / "jobs")
    shutil.copytree(REPO / "sample_data", tmp_path / "sample_data")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Just enough of airflow and dagster for the documented task and asset to be called."""
    airflow = types.ModuleType("airflow")
    decorators = types.ModuleType("airflow.decorators")
    exceptions = types.ModuleType("airflow.exceptions")

    def task(fn):  # noqa: ANN001, ANN202
        fn.function = fn
        return fn

    decorators.task = task
    exceptions.AirflowException = type("AirflowException", (Exception,), {})
    dagster = types.ModuleType("dagster")
    dagster.asset = lambda fn: fn
    dagster.Failure = type("Failure", (Exception,), {"__init__": lambda self, description="": None})
    dagster.MaterializeResult = type("MaterializeResult", (), {
        "__init__": lambda self, metadata=None: setattr(self, "metadata", metadata or {})})
    for name, module in {"airflow": airflow, "airflow.decorators": decorators, "airflow.exceptions": exceptions,
                         "dagster": dagster}.items():
        monkeypatch.setitem(sys.modules, name, module)


def test_the_page_has_the_snippets_it_promises() -> None:
    assert len(BLOCKS) >= 5
    assert any("airflow" in b for b in BLOCKS) and any("dagster" in b for b in BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_documented_snippet_runs(index: int, workdir: Path, stand_ins: None, capsys) -> None:
    exec(compile(BLOCKS[index], f"docs/orchestrators.md block {index + 1}", "exec"), {"__name__": "snippet"})


def test_run_result_and_progress(workdir: Path) -> None:
    calls: list[tuple[int, int]] = []
    result = batchrunner.run("jobs/salesforce-weekly-assign.toml", output_dir="out",
                             on_progress=lambda done, total: calls.append((done, total)))
    assert result.exit_code == 1 and result.counts["succeeded"] == 20
    assert result.results_csv.is_file() and result.errors_csv.is_file() and result.summary_json.is_file()
    assert calls and calls[-1][0] == calls[-1][1]  # every row to send was reported done
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert not result.resumable


def test_dict_job_resumes_from_its_journal(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dict job has no file: the run keeps the dict, and resume rebuilds the job from it."""
    from batchrunner import execute

    job = {"name": "inline", "platform": "salesloft", "operation": "add",
           "input": "sample_data/salesloft_weekly_enrolment.csv",
           "columns": {"person_email": "Email", "cadence_name": "Cadence"}, "connection": {"sandbox": True}}
    real = execute.Executor._apply
    calls = {"n": 0}

    def stop_after_three(self, unit, verdict, requeue):  # noqa: ANN001
        calls["n"] += 1
        if calls["n"] == 3:
            self.request_stop("INTERRUPTED", "stopped by the test")
        return real(self, unit, verdict, requeue)

    monkeypatch.setattr(execute.Executor, "_apply", stop_after_three)
    first = batchrunner.run(job, base_dir=workdir, output_dir="out")
    assert first.exit_code == 3 and first.resumable
    monkeypatch.setattr(execute.Executor, "_apply", real)
    (workdir / "sample_data" / "salesloft_weekly_enrolment.csv").unlink()  # the rows live in the run now
    done = batchrunner.resume(first.run_dir)
    assert done.exit_code == 1 and done.counts["not_attempted"] == 0
    assert sum(done.counts.values()) == 24


def test_errors_are_typed(workdir: Path) -> None:
    with pytest.raises(batchrunner.JobError):
        batchrunner.run({"name": "x", "platform": "nowhere", "input": "a.csv"})
    with pytest.raises(batchrunner.JobError, match="needs name"):
        batchrunner.run({"platform": "salesforce", "input": "a.csv"})
    first = batchrunner.run("jobs/salesforce-weekly-assign.toml", output_dir="out")
    retried = batchrunner.retry(first.run_dir)
    assert retried.run_dir.parent == first.run_dir.parent  # beside the run it retried
    with pytest.raises(batchrunner.JobError, match="handed to"):
        batchrunner.retry(first.run_dir)
    summary = batchrunner.validate("jobs/salesforce-weekly-assign.toml")
    assert summary["sent"] == 0 and summary["invalid"] == 3
