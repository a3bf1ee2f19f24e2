from __future__ import annotations

import textwrap
from pathlib import Path

import pytest


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def write_job(tmp_path: Path):
    """Write a CSV and a job file into tmp_path; return the job file's path."""

    def write(csv: str, toml: str, name: str = "job.toml", csv_name: str = "input.csv") -> Path:
        (tmp_path / csv_name).write_text(textwrap.dedent(csv).lstrip(), encoding="utf-8")
        job = tmp_path / name
        job.write_text(textwrap.dedent(toml).lstrip(), encoding="utf-8")
        return job

    return write
