"""Helpers for tests of the live code paths against a sandbox served on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import httpx

from conftest import REPO

SF_JOB = "salesforce-weekly-assign.toml"
SF_CSV = "salesforce_weekly_leads.csv"
SL_JOB = "salesloft-weekly-enrolment.toml"
SL_CSV = "salesloft_weekly_enrolment.csv"


def live_job(tmp_path: Path, job: str, csv_name: str, connection: str, *, limits: str = "", name: str | None = None
             ) -> Path:
    """A demo job copied into tmp_path as a LIVE job (sandbox = false) with this [connection] body."""
    (tmp_path / "data").mkdir(exist_ok=True)
    shutil.copy(REPO / "sample_data" / csv_name, tmp_path / "data" / csv_name)
    text = (REPO / "jobs" / job).read_text(encoding="utf-8")
    text = text.replace("../sample_data/", "data/").replace('output_dir = "../runs"', 'output_dir = "runs"')
    text = text.replace("sandbox = true", "sandbox = false\n" + connection.strip())
    if limits:
        text = text.split("[limits]")[0] + "[limits]\n" + limits.strip() + "\n"
    path = tmp_path / (name or job)
    path.write_text(text, encoding="utf-8")
    return path


def run_job(path: Path, **kw):
    from batchrunner.job import load_job
    from batchrunner.runner import prepare, run_prepared

    prepared = prepare(load_job(path))
    return anyio.run(lambda: run_prepared(prepared, progress=False, **kw))


def audit(url: str) -> dict:
    return httpx.get(f"{url}/_sandbox/audit").json()


def make_rsa_key(directory: Path) -> tuple[Path, Path]:
    """A fresh RSA key pair written as PEM files (private, public); generated at test time."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = directory / "server.key"
    public = directory / "server.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def summary_of(result) -> dict:
    return json.loads((result.run_dir / "summary.json").read_text())
