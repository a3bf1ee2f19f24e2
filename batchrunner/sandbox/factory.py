"""Build the sandbox app a job asks for: both emulators, with the job's budgets and faults."""

from __future__ import annotations

from batchrunner.job import SandboxSettings
from batchrunner.sandbox.app import SandboxApp
from batchrunner.sandbox.faults import FaultyApp


def build_sandbox(settings: SandboxSettings | None = None) -> SandboxApp | FaultyApp:
    from batchrunner.sandbox.salesforce import SalesforceEmulator
    from batchrunner.sandbox.salesloft import SalesloftEmulator

    settings = settings or SandboxSettings()
    emulators = [
        SalesforceEmulator(api_limit=settings.api_limit, api_used=settings.api_used,
                           partial_save_allowed=settings.partial_save_allowed),
        SalesloftEmulator(budget_per_minute=settings.budget_per_minute),
    ]
    app = SandboxApp(emulators)
    faults = (settings.latency_ms, settings.latency_jitter_ms, settings.error_rate, settings.reset_rate,
              settings.timeout_rate, settings.burst_429_every, settings.token_expires_after, settings.external_spend,
              settings.batch_ceiling)
    return FaultyApp(app, settings) if any(faults) else app
