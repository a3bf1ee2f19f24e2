import pytest

from batchrunner.errors import JobError
from batchrunner.job import load_job
from batchrunner.platforms import get_platform
from batchrunner.validate import check_job

BASE = """
name = "t"
platform = "salesforce"
operation = "assign"
input = "input.csv"
[columns]
targetId = "Lead Id"
salesCadenceNameOrId = { value = "Q4 Outbound" }
[connection]
sandbox = true
"""


def test_loads_and_resolves_paths(write_job, tmp_path):
    job = load_job(write_job("Lead Id\n", BASE))
    assert job.input == tmp_path / "input.csv"
    assert job.output_dir == tmp_path / "runs"
    assert job.columns["salesCadenceNameOrId"].value == "Q4 Outbound"
    assert job.limits.batch_size == 200 and job.limits.concurrency == 4


@pytest.mark.parametrize(
    "toml,needle",
    [
        (BASE + "\n[limits]\nconcurency = 3\n", "Unknown key 'concurency' in [limits]. Did you mean 'concurrency'"),
        (BASE.replace('platform = "salesforce"', 'platform = "salesfroce"'), "Did you mean 'salesforce'"),
        (BASE + "\nbatch = 3\n", "Unknown key 'batch'"),
        (BASE + "\n[limits]\nconcurrency = \"4\"\n", "concurrency must be a number (the most requests in flight"),
        (BASE + "\n[limits]\nconcurrency = 0\n", "at least 1"),
        ("name = [", "not valid TOML"),
    ],
)
def test_job_file_mistakes_are_named(write_job, toml, needle):
    with pytest.raises(JobError, match=pytest.importorskip("re").escape(needle)):
        load_job(write_job("Lead Id\n", toml))


def test_unknown_operation_and_field(write_job):
    platform = get_platform("salesforce")
    job = load_job(write_job("Lead Id\n", BASE.replace('operation = "assign"', 'operation = "asign"')))
    with pytest.raises(JobError, match="Unknown operation 'asign'.*Did you mean 'assign'"):
        check_job(job, platform.catalog_for(job), 62.0)
    job = load_job(write_job("Lead Id\n", BASE.replace("targetId =", "targetID =")))
    with pytest.raises(JobError, match="columns.targetID is not a field.*Did you mean 'targetId'"):
        check_job(job, platform.catalog_for(job), 62.0)


def test_required_field_unmapped(write_job):
    job = load_job(write_job("Lead Id\n", BASE.replace('salesCadenceNameOrId = { value = "Q4 Outbound" }', "")))
    with pytest.raises(JobError, match="assign needs salesCadenceNameOrId"):
        check_job(job, get_platform("salesforce").catalog_for(job), 62.0)


def test_api_version_too_low_for_default_operation(write_job):
    job = load_job(write_job("Lead Id\n", BASE.replace('operation = "assign"', 'operation = "select_template"')
                             + 'api_version = "52.0"\n'))
    with pytest.raises(JobError, match="needs API version 53.0"):
        check_job(job, get_platform("salesforce").catalog_for(job), 52.0)


def test_live_job_without_token_names_the_variable(write_job, monkeypatch):
    monkeypatch.delenv("SF_ACCESS_TOKEN", raising=False)
    job = load_job(write_job("Lead Id\n", BASE.replace("sandbox = true", "sandbox = false")))
    with pytest.raises(JobError, match="SF_ACCESS_TOKEN"):
        get_platform("salesforce").endpoint(job)
