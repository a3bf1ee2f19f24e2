"""Errors that stop a job before anything is sent (exit code 2) and runs that stop early (3)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class JobError(Exception):
    """The job cannot start: a job-file mistake, a missing input, missing credentials."""

    exit_code = 2


def did_you_mean(word: str, valid: Iterable[str]) -> str:
    valid = list(valid)
    close = difflib.get_close_matches(word, valid, n=3, cutoff=0.6)
    lowered = {v.lower(): v for v in valid}
    if not close and word.lower() in lowered:
        close = [lowered[word.lower()]]
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"{hint} Valid: {', '.join(valid)}."


class RunAborted(Exception):
    """A run that could not go on after it had started (the journal failed, the disk filled, an
    unexpected error): exit 4, or 2 when nothing had been sent yet. ``run_dir`` holds what is known;
    it can be resumed when ``resumable`` (its journal is intact)."""

    def __init__(self, message: str, *, run_dir: object = None, sent: bool = True, resumable: bool = True) -> None:
        super().__init__(message)
        self.run_dir = run_dir
        self.sent = sent
        self.resumable = resumable
        self.exit_code = 4 if sent else 2


class NothingToRetry(JobError):
    """`retry` found no row it could send. Not an error in itself: exit 0 when every row is done,
    1 when invalid rows (or rows of unknown outcome) still need a person."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def root_cause(exc: BaseException) -> BaseException:
    """The first real exception inside (nested) exception groups: what a person needs to read,
    not "unhandled errors in a TaskGroup"."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
