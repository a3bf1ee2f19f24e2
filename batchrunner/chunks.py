"""How many rows a stage handles at a time (docs/memory.md).

Validation (``VALIDATE_ROWS``), planning (the work units waiting to be sent) and the reports
(``ROWS``) each hold one slice of rows at a time, so a run's memory grows far slower than its
list. Internal, not job keys (tests set them small to prove the slices are real); read at call
time, so changing them here changes every stage.
"""

from __future__ import annotations

ROWS = 100_000
#: validation's slices are bigger: polars plans its rules (hundreds of expressions) once per
#: slice, about 0.3 s of CPU, so 100,000-row slices made it several times slower
VALIDATE_ROWS = 1_000_000


def rows(given: int | None = None) -> int:
    """``given`` when a caller chose a size, else `ROWS`; never below 1."""
    return max(1, given if given is not None else ROWS)


def validate_rows(given: int | None = None) -> int:
    """``given`` when a caller chose a size, else `VALIDATE_ROWS`; never below 1."""
    return max(1, given if given is not None else VALIDATE_ROWS)
