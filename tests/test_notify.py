"""[notify] (issue 15): a webhook on 127.0.0.1 receives a short Slack-compatible JSON summary when
a run ends, as the job's `on` asks; its URL (a secret) never reaches a log or a report."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import batchrunner

REPO = Path(__file__).resolve().parents[1]


class Hook:
    def __init__(self, status: int = 200) -> None:
        received: list[dict] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                received.append({"path": self.path, "body": json.loads(self.rfile.read(length)),
                                 "type": self.headers.get("content-type")})
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/secret-hook-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def _job(tmp_path: Path, on: str) -> Path:
    shutil.copy(REPO / "sample_data" / "salesforce_weekly_leads.csv", tmp_path / "leads.csv")
    text = (REPO / "jobs" / "salesforce-weekly-assign.toml").read_text()
    text = text.replace("../sample_data/salesforce_weekly_leads.csv", "leads.csv").replace('"../runs"', '"runs"')
    text += f'\n[notify]\nwebhook_env = "TEST_WEBHOOK_URL"\non = {on}\n'
    (tmp_path / "job.toml").write_text(text)
    return tmp_path / "job.toml"


def test_a_run_with_failed_rows_is_announced(tmp_path: Path, hook: Hook, monkeypatch, caplog) -> None:
    monkeypatch.setenv("TEST_WEBHOOK_URL", hook.url)
    result = batchrunner.run(_job(tmp_path, '["failed"]'))
    assert result.exit_code == 1
    assert len(hook.received) == 1
    got = hook.received[0]
    assert got["type"].startswith("application/json")
    text = got["body"]["text"]
    assert "exit 1" in text and "20 succeeded" in text and "1 failed" in text and str(result.run_dir) in text
    assert got["body"]["batchrunner"]["counts"]["failed"] == 1
    for path in result.run_dir.iterdir():  # the URL is a secret
        if path.is_file():
            assert b"secret-hook-token" not in path.read_bytes(), path.name
    assert "secret-hook-token" not in caplog.text


def test_only_what_the_job_asks_for(tmp_path: Path, hook: Hook, monkeypatch) -> None:
    monkeypatch.setenv("TEST_WEBHOOK_URL", hook.url)
    assert batchrunner.run(_job(tmp_path, '["stopped"]')).exit_code == 1
    assert hook.received == []  # exit 1 is not a stop
    assert batchrunner.run(_job(tmp_path, '["always"]')).exit_code == 1
    assert len(hook.received) == 1


def test_a_job_that_cannot_start_is_announced_as_failed(tmp_path: Path, hook: Hook, monkeypatch) -> None:
    monkeypatch.setenv("TEST_WEBHOOK_URL", hook.url)
    job = _job(tmp_path, '["failed"]')
    (tmp_path / "leads.csv").unlink()
    with pytest.raises(batchrunner.JobError):
        batchrunner.run(job)
    assert len(hook.received) == 1 and "exit 2" in hook.received[0]["body"]["text"]


def test_a_missing_variable_stops_before_sending_and_a_dead_webhook_changes_nothing(tmp_path: Path,
                                                                                     monkeypatch) -> None:
    monkeypatch.delenv("TEST_WEBHOOK_URL", raising=False)
    with pytest.raises(batchrunner.JobError, match="TEST_WEBHOOK_URL"):
        batchrunner.run(_job(tmp_path, '["always"]'))
    assert not (tmp_path / "runs").exists()  # nothing was started
    monkeypatch.setenv("TEST_WEBHOOK_URL", "http://127.0.0.1:9/hook")  # nobody listens there
    assert batchrunner.run(_job(tmp_path, '["always"]')).exit_code == 1


def test_the_url_never_sits_in_the_job_file(tmp_path: Path) -> None:
    job = _job(tmp_path, '["failed"]')
    job.write_text(job.read_text().replace('webhook_env = "TEST_WEBHOOK_URL"',
                                           'webhook_url = "https://hooks.example.com/T/B/secret"'))
    with pytest.raises(batchrunner.JobError) as caught:
        batchrunner.run(job)
    assert "environment variable" in str(caught.value) and "secret" not in str(caught.value).split("(")[0]
    assert "hooks.example.com" not in str(caught.value)
