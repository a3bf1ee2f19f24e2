"""What the executor learns from answers to protect the rest of a run, platform-blind.

``BatchCeiling`` remembers the request size a platform accepts after it rejected a bigger one;
``CircuitBreaker`` stops a run whose first requests all fail every row the same way. Both read
only work units and verdicts (``platforms/base.py``), so they hold for any platform.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from batchrunner.journal import Journal
from batchrunner.outcome import RowOutcome, Status
from batchrunner.platforms.base import Verdict, WorkUnit

#: split reasons that say the request carried too many inputs, not that one of them is bad: the
#: size that failed is remembered (``BatchCeiling``). A session may name its own in
#: ``size_rejections``. HTTP_413 is "Payload Too Large" on any platform.
SIZE_REJECTIONS = frozenset({"LIMIT_EXCEEDED", "HTTP_413", "REQUEST_ENTITY_TOO_LARGE"})
CEILING_META = "batch_ceiling"  # journal meta key: {operation: inputs per request}

# "at most 50", "maximum of 50", "limit of 50", "max 50", "up to 50": a rejection that names the
# size it takes. Salesforce does not document the wording of a too-many-inputs answer
# (docs/platforms.md: the ceiling is unconfirmed), so a named figure is only a hint, used when it
# is below the rejected size; without one the size is halved.
_NAMED_LIMIT = re.compile(r"(?:at most|maximum(?: of)?|max(?:imum)?\.?|limit(?: of| is)?|up to|exceeds?)\s*:?\s*\(?(\d{1,6})\b",
                          re.IGNORECASE)


def named_limit(message: str, rejected: int) -> int | None:
    """The size a rejection message names, if it names one smaller than what was rejected."""
    sizes = [int(m) for m in _NAMED_LIMIT.findall(message or "")]
    sizes = [n for n in sizes if 0 < n < rejected]
    return min(sizes) if sizes else None


class BatchCeiling:
    """The largest request each operation's platform accepts, learnt from size rejections.

    A request rejected for carrying too many inputs is bisected (180 -> 90 -> 45); without a
    memory every later full unit is rejected and bisected again. After the first size rejection,
    later units of that operation are cut to the largest size that went through (until one has:
    the size the rejection message names, else half the rejected size), and the figure goes to
    the journal meta so `resume` starts with it. With a named size, 180 rows against a ceiling
    of 50 take ceil(180/50) + 1 requests instead of 6 (180 -> 90 -> 45)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        saved = journal.meta().get(CEILING_META) or {}
        self.ok: dict[str, int] = {op: int(n) for op, n in saved.items()}  # largest accepted after a rejection
        self.rejected: dict[str, int] = {op: int(n) + 1 for op, n in saved.items()}  # smallest size rejected
        self.named: dict[str, int] = {}  # the size a rejection message named, until one is accepted

    def limit(self, operation: str) -> int | None:
        """Inputs per request for ``operation`` now, or None while nothing was rejected for size."""
        if operation not in self.rejected:
            return None
        return self.ok.get(operation) or self.named.get(operation) or max(1, self.rejected[operation] // 2)

    def observe(self, unit: WorkUnit, verdict: Verdict, size_codes: frozenset[str]) -> None:
        """Feed the verdict on a request that was answered."""
        op, n = unit.operation, len(unit.rows)
        if verdict.split and verdict.split_reason and verdict.split_reason[0] in size_codes:
            if n < self.rejected.get(op, n + 1):
                self.rejected[op] = n
                if self.ok.get(op, 0) >= n:
                    del self.ok[op]
                if (hint := named_limit(verdict.split_reason[1], n)) is not None:
                    self.named[op] = hint
                elif self.named.get(op, 0) >= n:
                    del self.named[op]
                self._save()
        elif (op in self.rejected and verdict.outcomes and not verdict.split and verdict.stop is None
              and self.ok.get(op, 0) < n < self.rejected[op]):
            self.ok[op] = n
            self._save()

    def _save(self) -> None:
        self.journal.set_meta(**{CEILING_META: {op: self.limit(op) for op in self.rejected}})


class CircuitBreaker:
    """Stop a run that is failing every row the same way (the leads do not exist, the cadence is
    wrong): when each of the first ``threshold`` requests answers with every row failed for one
    platform error code, more requests would only spend the budget on the same failure. Any other
    answer (a success, another code) disarms it for the rest of the run; retries do not count."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.armed = threshold > 0
        self.requests = 0
        self.rows = 0
        self.code: str | None = None

    def observe(self, outcomes: Sequence[RowOutcome]) -> tuple[str, str] | None:
        """Feed one request's final outcomes; return the stop (code, message) when it opens."""
        if not self.armed or not outcomes:
            return None
        codes = {o.code if o.status == Status.FAILED else None for o in outcomes}
        code = codes.pop() if len(codes) == 1 else None
        if code is None or (self.code is not None and code != self.code):
            self.armed = False
            return None
        self.code, self.requests, self.rows = code, self.requests + 1, self.rows + len(outcomes)
        if self.requests < self.threshold:
            return None
        self.armed = False
        return ("CIRCUIT_OPEN",
                f"the first {self.requests} requests failed every row ({self.rows} rows) with {code}; stopped "
                "before spending more on the same failure. Fix the cause (the input or the platform's records) "
                "and `batchrunner resume RUN_DIR` for the rest (`batchrunner retry RUN_DIR` for the failed rows), "
                "or set limits.circuit_breaker = 0 to send everything regardless")
