"""The interface every platform implements.

The executor and the rest of the pipeline only see these types: a platform supplies its operation
catalog, turns a work unit (one operation over some rows) into an HTTP request, and turns the
response into per-row outcomes, retry decisions and rate-limit signals. Adding a platform means
adding one package under ``batchrunner/platforms`` and one line in its registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from batchrunner.fieldtypes import FieldType
from batchrunner.outcome import RowOutcome

if TYPE_CHECKING:
    from batchrunner.job import Job


@dataclass(frozen=True)
class Field:
    name: str  # the wire name; also the key a job maps to a CSV column
    type: FieldType
    required: bool = False
    default: str | None = None  # sent when the row gives nothing (e.g. completionReasonCode)
    description: str = ""
    send: bool = True  # False for look-up inputs that the platform resolves (an email -> an id)


@dataclass(frozen=True)
class Operation:
    name: str  # short name users write: "assign"
    wire_name: str  # the platform's own name: "assignTargetToSalesCadence"
    fields: tuple[Field, ...]
    description: str = ""
    #: groups of fields of which a row must give exactly one (e.g. targetId / actionCadenceTrackerId)
    one_of: tuple[tuple[str, ...], ...] = ()
    #: fields naming the record the row acts on; rows for one record are applied in file order
    target_fields: tuple[str, ...] = ()
    min_api_version: float | None = None
    aliases: tuple[str, ...] = ()
    #: groups of fields of which a row may give at most one (e.g. user_id / user_email)
    at_most_one: tuple[tuple[str, ...], ...] = ()
    #: groups needed only when the row does not give ``when_absent`` (remove by person needs a cadence)
    one_of_unless: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class Catalog:
    platform: str
    operations: tuple[Operation, ...]

    def resolve(self, name: str) -> Operation | None:
        """Find an operation by short name, wire name or alias, ignoring case and separators."""
        key = _key(name)
        for op in self.operations:
            if key in {_key(op.name), _key(op.wire_name), *(_key(a) for a in op.aliases)}:
                return op
        return None

    def spellings(self) -> dict[str, str]:
        """Every accepted spelling (normalised) -> short name, for vectorised look-up."""
        out: dict[str, str] = {}
        for op in self.operations:
            for name in (op.name, op.wire_name, *op.aliases):
                out[_key(name)] = op.name
        return out

    def field_names(self) -> list[str]:
        seen: dict[str, None] = {}
        for op in self.operations:
            for f in op.fields:
                seen[f.name] = None
        return list(seen)


def _key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def operation_key_expr(column: Any) -> Any:
    """Vectorised twin of ``_key`` for a polars expression."""
    return column.str.to_lowercase().str.replace_all(r"[^a-z0-9]", "")


@dataclass
class WorkUnit:
    """One request's worth of work: an operation over some rows (0-based input indices)."""

    operation: str
    rows: list[int]
    attempts: int = 0  # requests already sent carrying these rows
    last_error: tuple[str, str] | None = None  # (code, message) of the last failed attempt
    failures: int = 0  # transient failures so far (what max_attempts limits; splits do not count)
    #: rows sent by an earlier process whose answer was never read (resume): the session checks
    #: what happened before sending them again, or reports UNKNOWN_OUTCOME
    unsure: frozenset[int] = frozenset()
    #: whose budget the request spends, when a platform's budget is per user (Outreach: the user
    #: whose token sends it); set by the session in ``prepare``. None: the connection's own budget
    rate_key: str | None = None

    def part(self, rows: list[int], **changes: Any) -> WorkUnit:
        """A unit over some of these rows, keeping the history (attempts, failures, unsure) and
        whose budget it spends."""
        values = {"attempts": self.attempts, "last_error": self.last_error, "failures": self.failures,
                  "unsure": self.unsure & frozenset(rows), "rate_key": self.rate_key, **changes}
        return WorkUnit(self.operation, rows, **values)


@dataclass
class RateSignal:
    """What a response said about the platform's budget; the rate limiter acts on it."""

    retry_after: float | None = None  # seconds; pause every worker this long
    pause_all: bool = False  # a 429: stop everyone until the window resets
    remaining: float | None = None  # budget left in the current window (Salesloft)
    cost: float | None = None  # what this request cost (Salesloft)
    api_used: int | None = None  # daily calls used (Salesforce Sforce-Limit-Info)
    api_limit: int | None = None
    lower_concurrency: bool = False  # e.g. ConcurrentPerOrgLongTxn
    #: the platform's own word that it has more than it can take (e.g. Salesforce UNABLE_TO_LOCK_ROW):
    #: an adaptive concurrency limit is cut (concurrency.py); None when the answer says nothing of it
    overload: str | None = None
    #: whose budget this answer describes (the ``rate_key`` of the unit that sent it; None: the
    #: connection's own): the limiter applies the signal to that budget only
    key: str | None = None


@dataclass
class Verdict:
    """The platform's reading of one response (or transport error) for a unit.

    Rows in ``outcomes`` are final. Rows in ``retry`` go again after a backoff (or
    ``retry_after``). ``split`` asks for the unit to be bisected (a request rejected as a whole).
    ``stop`` ends the run resumably (auth lost, daily budget spent) with the reason.
    """

    outcomes: list[RowOutcome] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    retry_reason: tuple[str, str] | None = None
    split: bool = False
    split_reason: tuple[str, str] | None = None
    stop: tuple[str, str] | None = None
    rate: RateSignal = field(default_factory=RateSignal)
    maybe_applied: bool = False  # the retried rows may already have been applied (answer lost)


class SessionIO(Protocol):
    """What the executor lends a session for look-ups: rate-limited, retried requests, and a way
    to record outcomes for rows that cannot go ahead (an unknown email)."""

    async def request(self, method: str, url: str, *, cost: float = 1.0, **kwargs: Any) -> httpx.Response: ...

    def record(self, outcomes: Sequence[RowOutcome]) -> None: ...


class Session(Protocol):
    """A connection to one org or team for the length of a run."""

    client: httpx.AsyncClient

    def rows_per_request(self, operation: str) -> int: ...

    def request_cost(self, unit: WorkUnit) -> float: ...

    async def prepare(self, units: list[WorkUnit], rows: RowSource, io: SessionIO) -> list[WorkUnit]:
        """Resolve look-ups for a wave of units; return the units that can be sent."""
        ...

    def build_request(self, unit: WorkUnit, rows: list[dict[str, Any]]) -> httpx.Request: ...

    async def interpret(self, unit: WorkUnit, rows: list[dict[str, Any]], response: httpx.Response,
                        io: SessionIO) -> Verdict:
        """Read a response into a verdict; ``io`` allows a confirming look-up (is the person
        already on the cadence?) before an outcome is decided."""
        ...

    async def transport_error(self, unit: WorkUnit, rows: list[dict[str, Any]], error: Exception,
                              io: SessionIO) -> Verdict:
        """A request whose answer never came: the session may check what happened before a resend."""
        ...

    def read_rate(self, response: httpx.Response) -> RateSignal:
        """The budget signal of any response (look-ups included)."""
        ...

    async def aclose(self) -> None: ...


class RowSource(Protocol):
    def rows(self, indices: Sequence[int]) -> list[dict[str, Any]]: ...


class Platform(Protocol):
    name: str
    catalog: Catalog

    def default_api_version(self) -> str | None: ...

    async def open_session(self, job: Job, client_factory: Callable[..., httpx.AsyncClient]) -> Session: ...


TokenProvider = Callable[[], Awaitable[str]]


class StopRun(Exception):
    """Raised by a session when the run cannot go on (auth lost during a look-up): the executor
    stops sending and leaves unsent rows pending for `resume`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


async def bearer_client(provider: Any, make_client: Callable[..., httpx.AsyncClient],
                        base_url: str | None) -> httpx.AsyncClient:
    """A client whose requests carry ``provider``'s token (refreshed once after a 401). The first
    token is fetched here, so a refused credential stops the run before any row is sent."""
    from batchrunner.auth import BearerAuth

    try:
        await provider.get_token()
    except BaseException:
        await provider.aclose()
        raise
    client = make_client(base_url, {})
    client.auth = BearerAuth(provider)
    return client
