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

#: failure codes of rows that may already have been applied and whose state could not be read
#: (docs/reconciliation.md): they stay in errors.csv for a person to check, but `retry` must not
#: send them again on its own (a second Skip skips a second step)
CHECK_BEFORE_RETRY = frozenset({"UNKNOWN_OUTCOME"})


def retryable(status: str | None, code: str | None) -> bool:
    """May `retry` send this row again without a person looking first? Failed and not-attempted
    rows, except those whose earlier send may have applied (``CHECK_BEFORE_RETRY``)."""
    if status in (Status.NOT_ATTEMPTED, None):
        return True
    return status == Status.FAILED and code not in CHECK_BEFORE_RETRY


@dataclass(slots=True)
class RowOutcome:
    row: int  # 0-based index into the input frame
    status: Status
    code: str | None = None
    message: str | None = None
    result: Any = None  # JSON-serialisable: what the platform returned for this row
    attempts: int = 0
