"""`batchrunner predict` (issue 17.1): the prediction agrees with the real run on the same sandbox
state (>= 98 % of rows, the reasons equal to the run's codes), sends nothing that changes data
(judged from the sandbox's own record), refuses an estimate over --max-requests, and its run
directory is refused by resume and retry."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from batchrunner import api
from batchrunner.clock import FakeClock
from batchrunner.errors import JobError
from batchrunner.job import load_job
from batchrunner.platforms.salesforce.ids import to18
from batchrunner.predict import PREDICTION
from batchrunner.runner import prepare, run_prepared
from batchrunner.sandbox.factory import build_sandbox
from batchrunner.sandbox.seeds import load_seed

pytestmark = pytest.mark.anyio

SF_JOB = """
name = "sf-predict"
platform = "salesforce"
input = "input.csv"
output_dir = "runs"

[columns]
operation = "Action"
targetId = "Record Id"
salesCadenceNameOrId = "Cadence"
userId = "User"

[connection]
sandbox = true
"""

SL_JOB = """
name = "sl-predict"
platform = "salesloft"
input = "input.csv"
output_dir = "runs"

[columns]
operation = "Action"
person_email = "Email"
person_id = "Person Id"
cadence_name = "Cadence"
cadence_id = "Cadence Id"

[connection]
sandbox = true
"""

OR_JOB = """
name = "or-predict"
platform = "outreach"
input = "input.csv"
output_dir = "runs"

[columns]
operation = "Action"
prospect_email = "Email"
prospect_id = "Prospect Id"
sequence_name = "Sequence"
sequence_state_id = "State Id"

[outreach]
mailbox_email = "dana.whitaker@acme.example.com"

[connection]
sandbox = true
"""


def lead(n: int) -> str:
    return to18(f"00Q5e{n:010d}")


def sf_rows() -> list[dict[str, str]]:
    """New leads, leads already on the cadence or on another one, IDs the org does not have,
    malformed rows, removals / pauses / resumes of people not on a cadence, an inactive and an
    unknown cadence, an unknown assignee, rows that depend on earlier rows of the file, a duplicate."""
    rows: list[tuple[str, str, str, str]] = []
    rows += [("assign", lead(n), "Q4 Outbound", "") for n in range(1, 21)]  # new: apply
    rows += [("assign", t, "Q4 Outbound", "") for t in (lead(31), lead(34), "0035e0000000001AAA")]  # already: skip
    rows += [("assign", lead(32), "Q4 Outbound", ""), ("assign", lead(33), "Q4 Outbound", "")]  # other cadence
    rows += [("assign", lead(n), "Q4 Outbound", "") for n in range(990, 996)]  # not in the org
    rows += [("assign", "00Q5e0000000021AAA", "Q4 Outbound", ""), ("assign", "", "Q4 Outbound", ""),
             ("assign", "0055e0000000003AAA", "Q4 Outbound", ""), ("explode", lead(22), "Q4 Outbound", "")]
    rows += [("remove", lead(n), "", "") for n in range(21, 26)]  # not on a cadence
    rows += [("pause", lead(29), "", ""), ("pause", lead(35), "", ""), ("resume", lead(36), "", ""),
             ("resume", lead(34), "", "")]
    rows += [("assign", lead(37), "Legacy Q2", ""), ("assign", lead(38), "No Such Cadence", ""),
             ("assign", lead(39), "Q4 Outbound", to18("0055e0000000099"))]
    rows += [("assign", lead(26), "Webinar Follow-up", ""), ("pause", lead(26), "", ""),  # in file order
             ("assign", lead(28), "Q4 Outbound", ""), ("assign", lead(28), "Inbound Nurture", ""),
             ("remove", lead(27), "", ""), ("assign", lead(40), "Q4 Outbound", "0055e0000000002AAA")]
    rows.append(rows[0])  # an exact duplicate
    return [{"Action": a, "Record Id": t, "Cadence": c, "User": u} for a, t, c, u in rows]


def sl_rows() -> list[dict[str, str]]:
    """New people, people already on the cadence, people on another cadence, unknown and ambiguous
    emails, ambiguous and invisible cadences, a cadence the key may not add to, unknown person
    IDs, malformed rows, removals of people on and off the cadence, rows in file order, a duplicate."""
    def row(action: str, email: str = "", cadence: str = "", person: str = "", cadence_id: str = "") -> dict[str, str]:
        return {"Action": action, "Email": email, "Person Id": person, "Cadence": cadence, "Cadence Id": cadence_id}

    emails = ["kwame.aziz", "yara.jensen", "caleb.petrov", "lucia.mehta", "freya.lopes", "daniel.brennan",
              "bruno.costa", "clara.berg", "dmitri.mensah", "eva.nilsson"]
    rows = [row("add", f"{e}@{d}.example.com", "Q4 Outbound") for e, d in zip(emails, [
        "brightpath", "cobalt", "lumen", "meridian", "pioneer", "quanta", "summit", "tidewater", "vertex",
        "wavelength"])]
    rows += [row("add", e, "Q4 Outbound") for e in ("henrik.nwosu@evergreen.example.com",  # already on: skip
                                                    "mei.tanaka@helix.example.com", "mateo.murphy@quanta.example.com")]
    rows += [row("add", e, "Q4 Outbound") for e in ("amara.weber@meridian.example.com",  # on another cadence
                                                    "chloe.patel@pioneer.example.com")]
    rows += [row("add", f"nobody{n}@nowhere.example.com", "Q4 Outbound") for n in range(4)]  # unknown
    rows += [row("add", "anika.schmidt@redwood.example.com", "Q4 Outbound"),  # two people, one email
             row("add", "maya.okafor@northwind.example.com", "Webinar Follow-up"),  # two cadences, one name
             row("add", "maya.okafor@northwind.example.com", "Rafael's Personal Touch"),  # not visible
             row("add", person="70038", cadence_id="5003"),  # visible, but not a team cadence of the key's user
             row("add", person="99999", cadence_id="5001"),  # no such person
             row("add", "not-an-email", "Q4 Outbound"), row("add", "", "Q4 Outbound"), row("add", person="1.5E+04",
                                                                                            cadence_id="5001")]
    rows += [row("remove", "hannah.nakamura@redwood.example.com", "Q4 Outbound"),  # on: apply
             row("remove", "kwame.aziz.sf@brightpath.example.com", "Inbound Demo Request"),  # not on: skip
             row("add", "omar.chen@orbit.example.com", "Customer Expansion"),
             row("remove", "omar.chen@orbit.example.com", "Customer Expansion"),
             row("add", person="70039", cadence_id="5004")]
    rows.append(rows[0])
    return rows


def or_rows() -> list[dict[str, str]]:
    """New prospects, prospects already in the sequence (active, paused, pending, finished), unknown
    emails and IDs, a prospect with no email, an ambiguous and an unknown sequence, state changes
    that apply, that are already done and that name no state, malformed rows, a duplicate."""
    def row(action: str, email: str = "", sequence: str = "Q4 Outbound", prospect: str = "",
            state: str = "") -> dict[str, str]:
        return {"Action": action, "Email": email, "Prospect Id": prospect, "Sequence": sequence, "State Id": state}

    emails = {p["id"]: (p["emails"] or [""])[0] for p in load_seed("outreach_org.json")["prospects"]}
    rows = [row("add", emails[n]) for n in range(80001, 80008)]  # new: apply
    rows += [row("add", emails[n]) for n in (80021, 80022, 80026)]  # active, paused, pending: skip
    rows += [row("add", emails[80024]), row("add", prospect="80027")]  # finished before: a new state
    rows += [row("add", f"nobody{n}@nowhere.example.com") for n in range(3)]  # unknown
    rows += [row("add", prospect="89999"), row("add", prospect="80008"),  # no such prospect; no email
             row("add", emails[80011], "Renewal Nurture"), row("add", emails[80012], "No Such Sequence"),
             row("add", "not-an-email"), row("add", "", "")]
    rows += [row("pause", emails[80021]), row("pause", emails[80022]), row("resume", emails[80023]),
             row("finish", emails[80024]), row("remove", emails[80025]), row("pause", emails[80026]),
             row("remove", emails[80013]), row("remove", sequence="", state="999999"),
             row("resume", sequence="", state="600002"), row("finish", emails[80028], "Renewal Nurture")]
    rows += [row("add", emails[80014]), row("pause", emails[80014])]  # in file order
    rows.append(rows[0])
    return rows


def write(tmp_path: Path, job: str, rows: list[dict[str, str]]) -> Path:
    with (tmp_path / "input.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    path = tmp_path / "job.toml"
    path.write_text(job, encoding="utf-8")
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def emulators(app: Any) -> dict[str, Any]:
    return {type(e).__name__: e for e in app.emulators}


LISTS = {"salesforce": (SF_JOB, sf_rows), "salesloft": (SL_JOB, sl_rows), "outreach": (OR_JOB, or_rows)}


@pytest.mark.parametrize("platform", list(LISTS))
async def test_prediction_agrees_with_the_real_run_and_sends_nothing(platform: str, tmp_path: Path) -> None:
    job_text, make_rows = LISTS[platform]
    rows = make_rows()
    job = write(tmp_path, job_text, rows)
    app = build_sandbox(record_requests=True)
    before = json.dumps({k: e.audit() for k, e in emulators(app).items() if hasattr(e, "audit")}, sort_keys=True,
                        default=str)
    estimates: list[tuple[int, int]] = []
    predicted = await api.apredict(job, sandbox_app=app, on_estimate=lambda n, r: estimates.append((n, r)),
                                     clock=FakeClock())

    # nothing that changes data reached the sandbox: its own record of mutating requests is empty,
    # and its audit (what was assigned, enrolled, applied) is unchanged; only GETs were counted
    assert app.received == []
    audit = {k: e.audit() for k, e in emulators(app).items() if hasattr(e, "audit")}
    if platform == "salesforce":
        sf = audit["SalesforceEmulator"]
        assert sf["calls"] == 0 and sf["assignments"] == {} and sf["applied"] == {} and sf["received"] == {}
        assert sf["api_used"] == predicted.summary["requests_sent"]  # every query counted, no other call
    elif platform == "outreach":
        out = audit["OutreachEmulator"]
        assert out["posts"] == {} and out["actions"] == {} and out["deletes"] == {} and out["enrolments"] == {}
    else:
        sl = audit["SalesloftEmulator"]
        assert sl["posts"] == {} and sl["enrolments"] == {}
        assert sl["on_cadence"] == json.loads(before)["SalesloftEmulator"]["on_cadence"]
        assert sl["requests"] == predicted.summary["requests_sent"]
    assert estimates and estimates[0][0] >= predicted.summary["requests_sent"] > 0

    real = await run_prepared(prepare(load_job(job)), sandbox_app=app, output_dir=tmp_path / "runs",
                              clock=FakeClock(), progress=False)
    assert app.received, "the real run sends: the record works"
    guessed, outcome = read_csv(predicted.results_csv), read_csv(real.results_csv)
    assert len(guessed) == len(outcome) == len(rows)
    agree = [PREDICTION[o["_status"]] == g["_prediction"] for g, o in zip(guessed, outcome)]
    figure = sum(agree) / len(agree)
    print(f"{platform}: prediction agrees with the real run for {sum(agree)}/{len(agree)} rows ({figure:.1%})")
    wrong = [(g["_row"], g["_prediction"], g["_prediction_reason"], o["_status"], o["_error_code"])
             for g, o, ok in zip(guessed, outcome, agree) if not ok]
    assert figure >= 0.98, wrong
    reasons = [(g["_row"], g["_prediction_reason"], o["_error_code"]) for g, o in zip(guessed, outcome)
               if o["_status"] != "succeeded" and g["_prediction_reason"] != o["_error_code"]]
    assert not reasons  # where the run failed, skipped or refused a row, the prediction named its code
    kinds = {g["_prediction"] for g in guessed}
    assert kinds == {"apply", "skip", "fail", "invalid"}  # the list exercises every prediction
    summary = json.loads((predicted.run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["prediction"] is True and summary["kind"] == "prediction"
    assert sum(summary["counts"].values()) == len(rows) and (predicted.run_dir / "report.html").is_file()


async def test_salesforce_codes_for_people_not_on_a_cadence_and_on_another(tmp_path: Path) -> None:
    job = write(tmp_path, SF_JOB, sf_rows())
    result = await api.apredict(job, sandbox_app=build_sandbox(), clock=FakeClock())
    by_target = {(r["_operation"], r["Record Id"]): r for r in read_csv(result.results_csv)}
    on_other = by_target[("assign", lead(32))]
    assert (on_other["_prediction"], on_other["_prediction_reason"]) == ("fail", "ALREADY_ON_OTHER_CADENCE")
    assert "Webinar Follow-up" in on_other["_prediction_message"]
    not_on = by_target[("remove", lead(21))]
    assert (not_on["_prediction"], not_on["_prediction_reason"]) == ("fail", "INVALID_INPUT")
    assert "not on a cadence" in not_on["_prediction_message"]
    assert by_target[("assign", lead(31))]["_prediction_reason"] == "ALREADY_ON_CADENCE"
    assert result.exit_code == 1


async def test_salesloft_memberships_are_read_in_batches_and_checked(tmp_path: Path, monkeypatch) -> None:
    """The membership read asks for 100 people at a time with person_id[] / cadence_id[]; when the
    platform ignores those filters (an unfiltered answer), the people are asked one by one and the
    prediction is the same."""
    from batchrunner.sandbox import salesloft

    job = write(tmp_path, SL_JOB, sl_rows())
    app = build_sandbox()
    first = read_csv((await api.apredict(job, sandbox_app=app, clock=FakeClock())).results_csv)
    batched = [p for m, p in emulators(app)["SalesloftEmulator"].calls if p == "/v2/cadence_memberships"]
    assert len(batched) == 1

    original = salesloft.SandboxRequest.params

    def ignore_arrays(self, name: str) -> list[str]:  # noqa: ANN001
        return [] if name in ("person_id[]", "cadence_id[]") else original(self, name)

    monkeypatch.setattr(salesloft.SandboxRequest, "params", ignore_arrays)
    app = build_sandbox()
    again = await api.apredict(job, sandbox_app=app, clock=FakeClock())
    calls = [p for m, p in emulators(app)["SalesloftEmulator"].calls if p == "/v2/cadence_memberships"]
    assert len(calls) > 2  # the batch, then one per person
    assert [r["_prediction"] for r in read_csv(again.results_csv)] == [r["_prediction"] for r in first]


async def test_max_requests_refuses_an_estimate_over_it_before_reading(tmp_path: Path) -> None:
    job = write(tmp_path, SF_JOB, sf_rows())
    app = build_sandbox()
    with pytest.raises(JobError, match=r"about \d+ requests .* more than --max-requests 1.*--max-requests \d+"):
        await api.apredict(job, sandbox_app=app, max_requests=1)
    assert emulators(app)["SalesforceEmulator"].api_used == 0  # nothing was read
    assert not (tmp_path / "runs").exists()


def test_cli_prints_the_estimate_and_refuses_over_the_cap(tmp_path: Path, capsys) -> None:
    from batchrunner.cli import main
    from batchrunner.runs import list_runs

    job = write(tmp_path, SF_JOB, sf_rows())
    assert main(["predict", str(job), "--max-requests", "2"]) == 2
    refused = capsys.readouterr()
    assert "--max-requests" in refused.err and "nothing was read" in refused.err
    assert main(["predict", str(job), "--json"]) == 1
    done = capsys.readouterr()
    assert "requests to read the platform" in done.err and "nothing is sent" in done.err
    summary = json.loads(done.out.strip().splitlines()[-1])
    assert summary["prediction"] is True and summary["counts"]["apply"] > 0
    assert [(r["kind"], r["resumable"]) for r in list_runs(tmp_path / "runs")] == [("prediction", False)]


async def test_a_prediction_is_refused_by_resume_and_retry(tmp_path: Path) -> None:
    job = write(tmp_path, SF_JOB, sf_rows())
    result = await api.apredict(job, sandbox_app=build_sandbox(), clock=FakeClock())
    with pytest.raises(JobError, match="is a prediction"):
        await api.aresume(result.run_dir)
    with pytest.raises(JobError, match="is a prediction"):
        await api.aretry(result.run_dir)


@pytest.mark.parametrize("platform", list(LISTS))
async def test_requests_per_thousand_rows(platform: str, tmp_path: Path) -> None:
    """The closing note's figure: requests predict spends per 1,000 rows (every row a different
    person; Salesloft and Outreach: a team that has all of them, every other one already on the
    cadence, the dearest case; Salesforce: the seed org, IDs it mostly does not have, which costs the
    same queries)."""
    from batchrunner.sandbox.app import SandboxApp
    from batchrunner.sandbox.outreach import OutreachEmulator
    from batchrunner.sandbox.salesloft import SalesloftEmulator

    if platform == "salesforce":
        rows = [{"Action": "assign", "Record Id": lead(n), "Cadence": "Q4 Outbound", "User": ""}
                for n in range(1, 1001)]
        app, skipped = build_sandbox(), 2  # the seed's leads 31 and 34 are on Q4 Outbound already
    elif platform == "salesloft":
        team = load_seed("salesloft_team.json")
        team["people"] = [{"id": 200000 + n, "first_name": "P", "last_name": str(n), "owner_id": 101,
                           "email_address": f"p{n}@x.example.com"} for n in range(1000)]
        team["memberships"] = [{"id": 300000 + n, "person_id": 200000 + n, "cadence_id": 5001, "user_id": 101}
                               for n in range(0, 1000, 2)]
        app, skipped = SandboxApp([SalesloftEmulator(team)]), 500
        rows = [{"Action": "add", "Email": f"p{n}@x.example.com", "Person Id": "", "Cadence": "Q4 Outbound",
                 "Cadence Id": ""} for n in range(1000)]
    else:
        org = load_seed("outreach_org.json")
        org["prospects"] = [{"id": 200000 + n, "emails": [f"p{n}@x.example.com"]} for n in range(1000)]
        org["sequence_states"] = [{"id": 300000 + n, "prospect_id": 200000 + n, "sequence_id": 301, "mailbox_id": 11,
                                   "state": "active"} for n in range(0, 1000, 2)]
        app, skipped = SandboxApp([OutreachEmulator(org)]), 500
        rows = [{"Action": "add", "Email": f"p{n}@x.example.com", "Prospect Id": "", "Sequence": "Q4 Outbound",
                 "State Id": ""} for n in range(1000)]
    job = write(tmp_path, LISTS[platform][0], rows)
    result = await api.apredict(job, sandbox_app=app, clock=FakeClock())
    assert result.summary["counts"]["skip"] == skipped
    sent, estimated = result.summary["requests_sent"], result.summary["requests_estimated"]
    print(f"{platform}: predict spent {sent} requests for 1,000 rows (estimated {estimated})")
    assert sent <= estimated <= 70


async def test_reads_stop_at_the_api_reserve_and_at_the_cap(tmp_path: Path) -> None:
    """The Salesforce API reserve stops a prediction as it stops a run; reads that go past
    --max-requests (more pages than estimated) stop it too; nothing is written either way."""
    from batchrunner.job import SandboxSettings
    from batchrunner.predict import PredictStopped, ReadOnlyIO

    job = write(tmp_path, SF_JOB + "\n[limits]\napi_reserve = 50\n", sf_rows())
    with pytest.raises(PredictStopped, match="daily API calls left"):
        await api.apredict(job, sandbox_app=build_sandbox(SandboxSettings(api_limit=1000, api_used=949)),
                           clock=FakeClock())
    assert not (tmp_path / "runs").exists()

    class Session:
        client = None

    io = ReadOnlyIO(Session(), None, None, clock=FakeClock(), rng=None,  # type: ignore[arg-type]
                    concurrency=1, max_requests=3, api_reserve=0, sent=[3])  # three sent already
    with pytest.raises(PredictStopped, match="cap of 3 requests"):
        await io.request("GET", "/v2/people")


async def test_only_get_requests_leave_the_prediction_client() -> None:
    import httpx

    from batchrunner.predict import PredictStopped, _read_only

    sent = [0]
    seen: list[str] = []
    transport = httpx.MockTransport(lambda request: (seen.append(request.method), httpx.Response(200))[1])
    async with httpx.AsyncClient(transport=transport, base_url="http://x",
                                 event_hooks={"request": [_read_only(sent)]}) as client:
        await client.get("/v2/people")
        for method in ("POST", "DELETE", "PATCH", "PUT"):
            with pytest.raises(PredictStopped, match="reads only"):
                await client.request(method, "/v2/cadence_memberships")
    assert seen == ["GET"] and sent == [1]


def test_a_platform_without_a_predict_part_and_sync_jobs_are_refused_with_a_reason(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from batchrunner.predict import platform_part, refuse_sync

    assert all(hasattr(platform_part(name), "predict") for name in LISTS)
    with pytest.raises(JobError, match="does not cover hubspot"):
        platform_part("hubspot")
    with pytest.raises(JobError, match="sync job"):
        refuse_sync(SimpleNamespace(mode="sync", path=tmp_path / "weekly.toml"))
    refuse_sync(SimpleNamespace(mode="run", path=tmp_path / "weekly.toml"))  # a plain job goes on


async def test_an_inactive_assignee_is_predicted_as_the_org_refuses_it(tmp_path: Path) -> None:
    from batchrunner.sandbox.app import SandboxApp
    from batchrunner.sandbox.salesforce import SalesforceEmulator
    from batchrunner.sandbox.seeds import load_seed

    org = load_seed("salesforce_org.json")
    org["users"][3]["active"] = False
    app = SandboxApp([SalesforceEmulator(org)])
    rows = [{"Action": "assign", "Record Id": lead(n), "Cadence": "Q4 Outbound", "User": org["users"][u]["id"]}
            for n, u in ((1, 3), (2, 2))]
    job = write(tmp_path, SF_JOB, rows)
    predicted = read_csv((await api.apredict(job, sandbox_app=app, clock=FakeClock())).results_csv)
    real = read_csv((await run_prepared(prepare(load_job(job)), sandbox_app=app, output_dir=tmp_path / "runs",
                                        clock=FakeClock(), progress=False)).results_csv)
    assert [(r["_prediction"], r["_prediction_reason"]) for r in predicted] == [
        ("fail", "INVALID_CROSS_REFERENCE_KEY"), ("apply", "")]
    assert [(r["_status"], r["_error_code"]) for r in real] == [("failed", "INVALID_CROSS_REFERENCE_KEY"),
                                                               ("succeeded", "")]


async def test_a_predictions_results_csv_can_be_predicted_again(tmp_path: Path) -> None:
    """results.csv is a valid input for the same job: its `_` columns are replaced, not doubled."""
    job = write(tmp_path, SL_JOB, sl_rows())
    first = await api.apredict(job, sandbox_app=build_sandbox(), clock=FakeClock())
    again = await api.apredict(job, input=first.results_csv, sandbox_app=build_sandbox(), clock=FakeClock())
    assert read_csv(again.results_csv) == read_csv(first.results_csv)


def test_the_package_attribute_stays_the_function() -> None:
    """`batchrunner.predict` is the API function even after the module of the same name is imported."""
    import batchrunner
    import batchrunner.predict  # noqa: F401

    assert callable(batchrunner.predict) and batchrunner.predict is api.predict
