"""[mappings]: operation fields filled by joining an input column with a lookup CSV (batchrunner/mappings.py)."""

from __future__ import annotations

import pytest

from batchrunner.errors import JobError
from batchrunner.job import load_job
from batchrunner.runner import prepare
from batchrunner.validate import CODE, MESSAGE

LEAD_A, LEAD_B = "00Q5e0000000001EAA", "00Q5e0000000002EAA"

def write(tmp_path, write_job, csv: str, toml: str, cadences: str | None = None, leads: str | None = None):
    (tmp_path / "cadences.csv").write_text(cadences or "salesloft_name,salesforce_name\nQ4 Outbound,Q4 Outbound\n"
                                           "Inbound Demo Request,Inbound Nurture\n", encoding="utf-8")
    (tmp_path / "leads.csv").write_text(leads or f"Email,Id\nA@x.example.com,{LEAD_A}\nb@x.example.com,{LEAD_B}\n",
                                        encoding="utf-8")
    return write_job(csv, toml)


TOML = """
    name = "mapped"
    platform = "salesforce"
    operation = "assign"
    input = "input.csv"
    [mappings.salesCadenceNameOrId]
    file = "cadences.csv"
    on = "Cadence"
    lookup = "salesloft_name"
    value = "salesforce_name"
    [mappings.targetId]
    file = "leads.csv"
    on = "Email"
    value = "Id"
    ignore_case = true
    [connection]
    sandbox = true
"""


def test_join_fills_fields_and_a_miss_is_invalid_naming_the_key(tmp_path, write_job) -> None:
    job = write(tmp_path, write_job, """
        Email,Cadence
        a@x.example.com,Inbound Demo Request
        B@X.example.com ,Q4 Outbound
        c@x.example.com,Q4 Outbound
        a@x.example.com,Webinar Follow-up
        b@x.example.com,
    """, TOML)
    prepared = prepare(load_job(job))
    v = prepared.validated
    assert v["targetId"].to_list()[:2] == [LEAD_A, LEAD_B]
    assert v["salesCadenceNameOrId"].to_list()[:2] == ["Inbound Nurture", "Q4 Outbound"]
    codes, messages = v[CODE].to_list(), v[MESSAGE].to_list()
    assert codes[:2] == [None, None]
    assert codes[2] == "MAPPING_NO_MATCH" and "Email = 'c@x.example.com'" in messages[2] and "leads.csv" in messages[2]
    assert codes[3] == "MAPPING_NO_MATCH" and "salesloft_name = 'Webinar Follow-up'" in messages[3]
    assert codes[4] == "REQUIRED_FIELD_MISSING"  # an empty key is left to validation
    # the report keeps the input's own columns
    assert prepared.loaded.frame.columns == ["Email", "Cadence"]


def test_lookup_file_problems_stop_the_job(tmp_path, write_job) -> None:
    job = write(tmp_path, write_job, "Email,Cadence\na@x.example.com,Q4 Outbound\n", TOML,
                cadences="salesloft_name,salesforce_name\nQ4 Outbound,Q4 Outbound\nQ4 Outbound,Inbound Nurture\n")
    with pytest.raises(JobError, match="more than one salesforce_name"):
        prepare(load_job(job))
    job = write(tmp_path, write_job, "Email,Cadence\na@x.example.com,Q4 Outbound\n",
                TOML.replace('value = "salesforce_name"', 'value = "sf_name"'))
    with pytest.raises(JobError, match="no column 'sf_name'"):
        prepare(load_job(job))


def test_job_file_errors(tmp_path, write_job) -> None:
    with pytest.raises(JobError, match="Unknown key 'valeu'"):
        load_job(write_job("x\n", TOML.replace('value = "Id"', 'valeu = "Id"')))
    with pytest.raises(JobError, match="needs value"):
        load_job(write_job("x\n", TOML.replace('value = "Id"', "")))
    with pytest.raises(JobError, match="also in \\[columns\\]"):
        load_job(write_job("x\n", TOML.replace("[mappings.targetId]", "[columns]\ntargetId = \"Email\"\n"
                                                                           "[mappings.targetId]")))
