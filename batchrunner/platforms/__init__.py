"""Platform registry: one entry per supported platform package."""

from __future__ import annotations

from typing import Any

from batchrunner.errors import JobError, did_you_mean


def get_platform(name: str) -> Any:
    if name == "salesforce":
        from batchrunner.platforms.salesforce import SalesforcePlatform

        return SalesforcePlatform()
    if name == "salesloft":
        from batchrunner.platforms.salesloft import SalesloftPlatform

        return SalesloftPlatform()
    if name == "outreach":
        from batchrunner.platforms.outreach import OutreachPlatform

        return OutreachPlatform()
    raise JobError(f"Unknown platform {name!r}.{did_you_mean(name, PLATFORM_NAMES)}")


PLATFORM_NAMES = ("salesforce", "salesloft", "outreach")
