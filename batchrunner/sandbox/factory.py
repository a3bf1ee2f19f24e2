"""Build the sandbox app a job asks for: every emulator, with the job's budgets and faults."""

from __future__ import annotations

from batchrunner.job import SandboxSettings
from batchrunner.sandbox.app import SandboxApp
from batchrunner.sandbox.faults import FaultyApp


def build_sandbox(settings: SandboxSettings | None = None, *, record_requests: bool = False
                  ) -> SandboxApp | FaultyApp:
    from batchrunner.sandbox.oauth import OAuthServer
    from batchrunner.sandbox.outreach import OutreachEmulator
    from batchrunner.sandbox.salesforce import SalesforceEmulator
    from batchrunner.sandbox.salesloft import SalesloftEmulator

    settings = settings or SandboxSettings()
    not_started = [v for v in str(settings.not_started or "").split(",") if v.strip()]  # fault injection (verify)
    emulators = [
        _oauth(settings, OAuthServer),  # first: its token endpoints sit under /services/ too
        SalesforceEmulator(api_limit=settings.api_limit, api_used=settings.api_used,
                           partial_save_allowed=settings.partial_save_allowed, not_started=not_started),
        SalesloftEmulator(budget_per_minute=settings.budget_per_minute, not_started=not_started),
        OutreachEmulator(budget_per_hour=settings.outreach_budget_per_hour,
                         token_interval=settings.outreach_token_interval,
                         rotate_refresh=settings.outreach_rotate_refresh, client_id=settings.oauth_client_id,
                         client_secret=settings.oauth_client_secret, token_ttl=settings.oauth_token_ttl),
    ]
    app = SandboxApp(emulators, record_requests=record_requests)
    faults = (settings.latency_ms, settings.latency_jitter_ms, settings.error_rate, settings.reset_rate,
              settings.timeout_rate, settings.burst_429_every, settings.token_expires_after, settings.external_spend,
              settings.batch_ceiling, settings.lock_in_flight)
    return FaultyApp(app, settings) if any(faults) else app


def _oauth(settings: SandboxSettings, server: type) -> object:
    from pathlib import Path

    from batchrunner.sandbox.seeds import load_seed

    key = None
    if settings.jwt_public_key_file:
        key = Path(settings.jwt_public_key_file).expanduser().read_text(encoding="utf-8")
    usernames = tuple(u.get("email") for u in load_seed("salesforce_org.json").get("users", []) if u.get("email"))
    return server(client_id=settings.oauth_client_id, client_secret=settings.oauth_client_secret,
                  refresh_token=settings.oauth_refresh_token, jwt_public_key=key, usernames=usernames,
                  token_ttl=settings.oauth_token_ttl, token_uses=settings.oauth_token_uses,
                  sf_rotate=settings.oauth_sf_rotate_refresh)
