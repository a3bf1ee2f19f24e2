"""Row outcomes: the vocabulary every stage uses to say what happened to a row."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INVALID = "invalid"
    SKIPPED = "skipped"
    NOT_ATTEMPTED = "not_attempted"


#: statuses that belong in errors.csv (a re-runnable input file)
RERUNNABLE = (Status.FAILED, Status.INVALID, Status.NOT_ATTEMPTED)


@dataclass(slots=True)
class RowOutcome:
    row: int  # 0-based index into the input frame
    status: Status
    code: str | None = None
    message: str | None = None
    result: Any = None  # JSON-serialisable: what the platform returned for this row
    attempts: int = 0
