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
