"""Outreach's budget is per user per hour: with several users' tokens in one run, each user's
requests spend from (and wait for) that user's budget only. Judged from the emulator's own record
of who sent what when, under virtual time (trio's MockClock), so an hour passes in milliseconds."""

from __future__ import annotations

import math
from pathlib import Path

import anyio
import pytest
import trio.testing

from batchrunner.clock import EventLoopClock, FakeClock
from batchrunner.job import load_job
from batchrunner.platforms.base import RateSignal
from batchrunner.platforms.outreach.platform import OutreachPlatform
from batchrunner.ratelimit import KeyedRateLimiter, RateLimiter
from batchrunner.runner import prepare, run_prepared
from batchrunner.sandbox.app import SandboxApp
from batchrunner.sandbox.outreach import OutreachEmulator

START = 1_800_000_000 - 1_800_000_000 % 3600 + 600  # ten minutes into a clock hour
USERS = {"": 1, "rafael.ortiz@acme.example.com": 2, "busy.sender@acme.example.com": 3}  # "" = the job's own


def test_one_budgets_429_holds_only_that_budget() -> None:
    clock = FakeClock()
    limiter = KeyedRateLimiter(lambda: RateLimiter(clock=clock))
    limiter.observe(RateSignal(pause_all=True, retry_after=600.0, key="rafael"))

    async def spend() -> None:
        await limiter.acquire(1.0, key="busy")  # another user's budget: not held
        await limiter.acquire(1.0)  # the connection's own: not held
        assert clock.slept == 0
        await limiter.acquire(1.0, key="rafael")
        assert clock.slept >= 600

    anyio.run(spend)
    assert limiter.waited >= 600 and set(limiter.limiters) == {None, "busy", "rafael"}
    limiter.waited += 5  # the executor adds its backoffs
    assert limiter.waited == pytest.approx(limiter.limiters["rafael"].waited + 5)


def _job(tmp_path: Path, per_user: int) -> Path:
    lines = ["Prospect,Owner"] + [f"{80027 + 3 * i + j},{owner}" for i in range(per_user)
                                  for j, owner in enumerate(USERS)]
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    users = "\n".join(f'"{email}" = {{ token_env = "UNUSED_IN_THE_SANDBOX" }}' for email in USERS if email)
    job = tmp_path / "users.toml"
    job.write_text(f'name = "users"\nplatform = "outreach"\noperation = "add"\ninput = "in.csv"\n'
                   f'output_dir = "{tmp_path}/runs"\n[columns]\nprospect_id = "Prospect"\nuser_email = "Owner"\n'
                   'sequence_id = { value = "301" }\n[outreach]\nmailbox_id = 11\n[outreach.users]\n'
                   f'{users}\n[connection]\nsandbox = true\n[limits]\nconcurrency = 2\n', encoding="utf-8")
    return job


def test_a_user_whose_hour_is_spent_holds_only_their_own_rows(tmp_path: Path, monkeypatch) -> None:
    """Rafael has one request left this hour; Dana (the job's user) and Busy have plenty. Rafael's
    rows wait for his reset; theirs go at once; nobody gets a 429."""
    prepared = prepare(load_job(_job(tmp_path, 4)))
    sent: list[tuple[float, int]] = []  # (when, acting user) of every enrolment the emulator received

    async def main() -> tuple[OutreachEmulator, object]:
        clock = EventLoopClock(wall_at_start=START)
        monkeypatch.setattr(OutreachPlatform, "wall", staticmethod(clock.wall))
        emu = OutreachEmulator(budget_per_hour=10, clock=clock.wall)
        emu.budget.used[2] = (math.floor(START / 3600), 9)  # Rafael's other integrations spent 9 of 10
        handle = emu.handle

        def spy(request):
            response = handle(request)
            if request.method == "POST" and response.status == 201:
                sent.append((clock.wall(), emu.acting))
            return response

        emu.handle = spy  # type: ignore[method-assign]
        result = await run_prepared(prepared, sandbox_app=SandboxApp([emu]), progress=False, clock=clock)
        return emu, result

    emu, result = anyio.run(main, backend="trio", backend_options={"clock": trio.testing.MockClock(autojump_threshold=0)})
    assert result.summary["counts"]["succeeded"] == 12
    assert emu.rejected_429 == 0
    reset = (math.floor(START / 3600) + 1) * 3600
    before = sorted(user for when, user in sent if when < reset)
    after = sorted(user for when, user in sent if when >= reset)
    assert before == [1, 1, 1, 1, 2, 3, 3, 3, 3]  # Rafael's last request of the hour, everyone else's rows
    assert after == [2, 2, 2]  # Rafael's other rows waited for his reset, alone
    assert emu.audit()["enrolled_by"] == {"1": 4, "2": 4, "3": 4}


def test_sync_mode_on_outreach_is_refused_naming_the_alternative(tmp_path: Path) -> None:
    """Before: a KeyError ('outreach') instead of a message."""
    from batchrunner.errors import JobError
    from batchrunner.sync import check_sync_job

    job = _job(tmp_path, 1)
    job.write_text(job.read_text().replace('operation = "add"', 'operation = "add"\nmode = "sync"\nkey = "Prospect"'))
    with pytest.raises(JobError, match="not available on outreach"):
        check_sync_job(load_job(job))
