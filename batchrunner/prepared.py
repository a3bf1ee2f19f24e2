"""What every stage after validation works from: the checked job, its rows and the plan.

Its own module so that modes that plan differently (sync.py) build one without importing the
runner: the runner calls them, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from batchrunner.job import Job
from batchrunner.plan import Plan
from batchrunner.source import LoadedInput
from batchrunner.validate import CODE


@dataclass
class Prepared:
    """Everything known before the first request: the checked job, its rows and the plan."""

    job: Job
    platform: Any
    loaded: LoadedInput
    validated: pl.DataFrame
    plan: Plan
    target: str  # what it will talk to, for the first line of output
    sync: Any = None  # mode = "sync": the sync.SyncDiff against the last runs
    session: Any = None  # a platform session already open (constants.verify_constants); its opener closes it

    @property
    def invalid(self) -> pl.DataFrame:
        return self.validated.filter(pl.col(CODE).is_not_null())
