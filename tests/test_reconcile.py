

# -- the demos under heavy faults report what a clean run reports --------------------------------
@pytest.mark.parametrize("job_name", ["salesloft-weekly-enrolment.toml", "salesforce-weekly-assign.toml"])
@pytest.mark.parametrize("seed", [2, 9])
def test_demo_under_5xx_and_resets_reports_what_a_clean_run_reports(tmp_path, job_name, seed) -> None:
    import random

    from batchrunner.job import SandboxSettings
    from batchrunner.sandbox.factory import build_sandbox

    repo = Path(__file__).resolve().parents[1]

    def statuses(settings: SandboxSettings, out: Path) -> tuple[list[tuple[str, str]], Any]:
        job = load_job(repo / "jobs" / job_name)
        job.limits.backoff_base, job.limits.backoff_max, job.limits.max_attempts = 0.001, 0.002, 8
        app = build_sandbox(settings)
        result = anyio.run(lambda: run_prepared(prepare(job), output_dir=out, sandbox_app=app, progress=False,
                                                rng=random.Random(seed)))
        with (result.run_dir / "results.csv").open(newline="", encoding="utf-8") as f:
            return [(r["_status"], r["_error_code"]) for r in csv.DictReader(f)], app

    clean, _ = statuses(SandboxSettings(), tmp_path / "clean")
    faulty, app = statuses(SandboxSettings(error_rate=0.3, reset_rate=0.2, seed=seed), tmp_path / "faulty")
    assert app.injected.get("reset") and app.injected.get("5xx")
    # before: a person already on the cadence, whose answer was lost, was reported succeeded
    assert faulty == clean
    emulators = {type(e).__name__: e for e in app.emulators}
    assert max(emulators["SalesloftEmulator"].posts.values() or [1]) == 1
    assert max(emulators["SalesforceEmulator"].applied.values() or [1]) == 1


def test_a_reset_after_a_skip_applied_is_reconciled_not_unknown() -> None:
    from batchrunner.platforms.salesforce.operations import CATALOG
    from batchrunner.platforms.salesforce.platform import SalesforceSession

    app, emulator = sf_app()
    io = EmulatorIO(app)
    session = SalesforceSession(io.client, CATALOG, "62.0", 200)
    data = [{"recordId": STEP_RUNNING, "eventType": "Skip"}, {"recordId": "8HF5e0000000002GAA", "eventType": "Skip"}]
    emulator.send_event(data[0])  # the org applied the first; the connection was reset before the answer
    verdict = anyio.run(session.transport_error, WorkUnit("send_event", [0, 1]), data,
                        httpx.RemoteProtocolError("reset"), io)
    assert [(o.row, o.status, o.result["reconciled"]) for o in verdict.outcomes] == [(0, Status.SUCCEEDED, True)]
    assert verdict.retry == [1] and not verdict.maybe_applied  # its step is still Active: it did not apply
