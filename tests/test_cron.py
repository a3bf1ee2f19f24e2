"""Cron fit: the docs' crontab line and systemd ExecStart run as written; --json, --fail-on,
--keep-runs and the UTC run.log."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from batchrunner.retention import prune, run_dirs
from batchrunner.runner import fail_on_code
from conftest import REPO, cli

DOC = REPO / "docs" / "cron.md"
ROOT = "/srv/batchrunner"


def _block(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def _install(tmp_path: Path) -> Path:
    """A stand-in for /srv/batchrunner: a venv's batchrunner, a (sandbox) weekly job, weekly.env."""
    root = tmp_path / "srv"
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "batchrunner").symlink_to(Path(sys.executable).parent / "batchrunner")
    (root / "jobs").mkdir()
    (root / "data").mkdir()
    shutil.copy(REPO / "sample_data" / "salesforce_weekly_leads.csv", root / "data" / "leads.csv")
    text = (REPO / "jobs" / "salesforce-weekly-assign.toml").read_text(encoding="utf-8")
    text = text.replace("../sample_data/salesforce_weekly_leads.csv", "../data/leads.csv")
    text = text.replace('name = "sf-weekly-assign"', 'name = "weekly"')
    (root / "jobs" / "weekly.toml").write_text(text, encoding="utf-8")
    (root / "weekly.env").write_text("BATCHRUNNER_EXAMPLE=1\n", encoding="utf-8")
    (root / "runs").mkdir()
    return root


def _old_runs(root: Path) -> None:
    """Nine earlier weekly runs (and one that stopped early, which must survive pruning)."""
    for week in range(1, 10):
        d = root / "runs" / f"weekly-202610{week:02d}T063000Z"
        d.mkdir()
        (d / "journal.sqlite").write_bytes(b"")
        (d / "summary.json").write_text(json.dumps({"exit_code": 3 if week == 1 else 1}))


def _cron_env(root: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(root), "SHELL": "/bin/sh", "LANG": "C.UTF-8"}


def test_the_crontab_line_runs_as_written(tmp_path: Path) -> None:
    [block] = _block("crontab")
    [line] = [l for l in block.splitlines() if l.strip() and not l.startswith("#")]
    fields = line.split(None, 5)
    assert fields[:5] == ["30", "6", "*", "*", "1"]  # Mondays 06:30
    assert "--keep-runs 8" in fields[5] and "--json" in fields[5]
    root = _install(tmp_path)
    _old_runs(root)
    command = fields[5].replace(ROOT, str(root))
    done = subprocess.run(["/bin/sh", "-c", command], env=_cron_env(root), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, (done.stdout, done.stderr, (root / "runs" / "weekly.log").read_text())
    assert done.stdout == done.stderr == ""  # everything went to the files the line names
    [summary_line] = (root / "runs" / "weekly.jsonl").read_text().splitlines()
    summary = json.loads(summary_line)
    assert summary["mode"] == "SANDBOX" and summary["exit_code"] == 1 and summary["counts"]["failed"] > 0
    assert (root / "runs" / "weekly.log").read_text().startswith("SANDBOX salesforce")
    kept = [p.name for p in run_dirs(root / "runs", "weekly")]
    assert len(kept) == 9 and kept[0] == "weekly-20261001T063000Z"  # 8 newest + the resumable one
    assert Path(summary["run_dir"]).name == kept[-1]
    assert len(summary["deleted_run_dirs"]) == 1


def test_the_systemd_units(tmp_path: Path) -> None:
    service, timer = _block("ini")
    assert "OnCalendar=Mon *-*-* 06:30:00 UTC" in timer and "Persistent=true" in timer
    keys = dict(l.split("=", 1) for l in service.splitlines() if "=" in l and not l.startswith("#"))
    root = _install(tmp_path)
    cwd = Path(keys["WorkingDirectory"].replace(ROOT, str(root)))
    env = _cron_env(root)
    for l in Path(keys["EnvironmentFile"].replace(ROOT, str(root))).read_text().splitlines():
        k, _, v = l.partition("=")
        env[k] = v
    argv = shlex.split(keys["ExecStart"].replace(ROOT, str(root)))
    done = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=120)
    assert str(done.returncode) in ("0", *keys["SuccessExitStatus"].split()), done.stderr
    summary = json.loads(done.stdout)  # one JSON object on stdout, nothing else
    assert summary["mode"] == "SANDBOX"
    assert done.stderr.splitlines()[0].startswith("SANDBOX salesforce")


def test_json_stdout_is_one_object_and_run_log_is_utc(tmp_path: Path) -> None:
    root = _install(tmp_path)
    done = cli("run", "jobs/weekly.toml", "--json", cwd=root)
    assert done.returncode == 1
    summary = json.loads(done.stdout)
    assert set(summary) >= {"counts", "exit_code", "run_dir", "mode", "endpoint"}
    log = (Path(summary["run_dir"]) / "run.log").read_text()
    first = log.splitlines()[0]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO ", first), first
    assert "SANDBOX" in first


def test_json_error_when_the_job_cannot_start(tmp_path: Path) -> None:
    done = cli("run", str(tmp_path / "missing.toml"), "--json", cwd=tmp_path)
    assert done.returncode == 2
    assert json.loads(done.stdout)["exit_code"] == 2


@pytest.mark.parametrize("fail_on,counts,expected", [
    ("invalid", {"failed": 0, "invalid": 2}, 1),
    ("failed", {"failed": 0, "invalid": 2}, 0),
    ("failed", {"failed": 1, "invalid": 2}, 1),
    ("never", {"failed": 5, "invalid": 2}, 0),
])
def test_fail_on(fail_on: str, counts: dict[str, int], expected: int) -> None:
    assert fail_on_code(1, counts, fail_on) == expected
    assert fail_on_code(3, counts, fail_on) == 3 and fail_on_code(0, counts, fail_on) == 0


def test_fail_on_from_the_cli(tmp_path: Path) -> None:
    root = _install(tmp_path)
    assert cli("run", "jobs/weekly.toml", "--fail-on", "never", cwd=root).returncode == 0
    done = cli("run", "jobs/weekly.toml", "--fail-on", "failed", "--json", cwd=root)
    assert done.returncode == 1 and json.loads(done.stdout)["exit_code"] == 1


def test_prune_keeps_the_newest_and_never_touches_others(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    out.mkdir()
    for name in ("weekly-20260101T000000Z", "weekly-20260108T000000Z", "weekly-20260108T000000Z-2",
                 "weekly-20260115T000000Z", "weekly-extra-20260101T000000Z", "notes"):
        (out / name).mkdir()
        (out / name / "journal.sqlite").write_bytes(b"")
        (out / name / "summary.json").write_text('{"exit_code": 0}')
    (out / "weekly-20250101T000000Z").mkdir()  # no journal: not a run, left alone
    deleted = prune(out, "weekly", 2)
    assert sorted(p.name for p in deleted) == ["weekly-20260101T000000Z", "weekly-20260108T000000Z"]
    assert sorted(p.name for p in out.iterdir()) == ["notes", "weekly-20250101T000000Z", "weekly-20260108T000000Z-2",
                                                    "weekly-20260115T000000Z", "weekly-extra-20260101T000000Z"]


def test_no_prompt_without_a_terminal(tmp_path: Path) -> None:
    root = _install(tmp_path)
    done = subprocess.run([sys.executable, "-m", "batchrunner", "run", "jobs/weekly.toml", "--no-progress"], cwd=root,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 1 and "report.html" in done.stdout
