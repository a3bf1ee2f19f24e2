"""The job file: a TOML description of one bulk run, parsed into a typed model.

Every key is checked here, before anything is read or sent: an unknown key, a wrong type or an
unknown operation stops the job with a message naming it and what would be valid (exit 2).
Relative paths are relative to the job file, so a job runs the same from any directory.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from batchrunner.errors import JobError, did_you_mean
from batchrunner.platforms import PLATFORM_NAMES

PLATFORMS = PLATFORM_NAMES  # the registry (platforms/__init__.py) is the one list of platforms


@dataclass
class Limits:
    concurrency: int = 4  # requests in flight: the ceiling where adaptive, else fixed ("fixed:N": fixed); concurrency.py
    batch_size: int = 200  # Salesforce inputs per request (max unconfirmed: docs/platforms.md)
    requests_per_minute: int = 600  # Salesloft cost budget per minute, shared by the team
    max_attempts: int = 5  # per row, counting the first
    timeout: float = 120.0  # seconds per request
    backoff_base: float = 1.0  # seconds; exponential backoff with full jitter
    backoff_max: float = 60.0
    api_reserve: int = 0  # Salesforce: stop before the org's remaining daily calls fall below this
    rate_window: str = "fixed"  # Salesloft budget window: "fixed" clock minute or "rolling" 60 s (unconfirmed)
    # issue 13/14 (docs/limits.md): bounds on what a server can make the run do
    max_server_wait: float = 3900.0  # longest Retry-After obeyed (an hourly window + slack); past it: stop, resumably
    max_response_bytes: int = 32 * 1024 * 1024  # a longer answer is not read (RESPONSE_TOO_LARGE)
    circuit_breaker: int = 20  # stop if the first N requests fail every row with one code (0 = off)
    #: not a key: how `concurrency` was written -- "default" (absent), "ceiling" (a number), "fixed" ("fixed:N")
    concurrency_mode: str = field(default="default", init=False)


#: [limits] keys that must be at least 1 (0 would mean "none", "no wait" or "unlimited" by accident)
_AT_LEAST_ONE = ("concurrency", "batch_size", "max_attempts", "requests_per_minute", "max_response_bytes")
#: [limits] keys that must be a number above 0
_POSITIVE = ("timeout", "max_server_wait")


def check_limits(limits: Limits) -> None:
    """Refuse [limits] values that cannot mean what the user wants: 0 for a budget or a timeout
    (httpx reads timeout = 0 as "fail at once", a 0 budget used to turn the cap off), NaN, inf."""
    for name in ("timeout", "backoff_base", "backoff_max", "max_server_wait"):
        value = getattr(limits, name)
        if not math.isfinite(value):
            raise JobError(f"limits.{name} must be a finite number of seconds, got {value!r}.")
    for name in _AT_LEAST_ONE:
        if getattr(limits, name) < 1:
            raise JobError(f"limits.{name} must be at least 1, got {getattr(limits, name)!r}.")
    for name in _POSITIVE:
        if not getattr(limits, name) > 0:
            raise JobError(f"limits.{name} must be more than 0 seconds, got {getattr(limits, name)!r}.")
    if limits.rate_window not in ("fixed", "rolling"):
        raise JobError(f"limits.rate_window must be \"fixed\" or \"rolling\", got {limits.rate_window!r}.")


@dataclass
class OutreachSettings:
    """``[outreach]``: Outreach facts that are unconfirmed, as settings with safe defaults (docs/outreach.md)."""

    mailbox_id: int = 0  # mailbox for `add` rows that name none (0 = none: the row's own, or no mailbox)
    mailbox_email: str | None = None  # the same, looked up by email (give one of the two)
    require_mailbox: bool = False  # refuse `add` rows with no mailbox at all (row or default)
    page_size: int = 100  # JSON:API page[size] for look-ups (the documented maximum 1000 is unconfirmed)
    lookup_batch: int = 50  # values per filter list (filter[emails]=a,b,...), kept short for URL length
    users: dict[str, Any] = field(default_factory=dict)  # user email -> {token_file | token_env}: rows sent as them


@dataclass
class SandboxSettings:
    """Fault injection and budgets for the embedded emulator (ignored for live targets)."""

    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    error_rate: float = 0.0  # fraction of requests answered 500/503
    reset_rate: float = 0.0  # fraction of requests whose connection is reset
    timeout_rate: float = 0.0  # fraction of requests that hang until the client times out
    burst_429_every: int = 0  # every Nth request starts a burst of 429s ...
    burst_429_length: int = 0  # ... this many long
    token_expires_after: int = 0  # the token goes stale after N requests (0 = never)
    external_spend: float = 0.0  # fraction of the Salesloft budget another integration spends
    batch_ceiling: int = 0  # Salesforce: reject a request with more inputs than this (0 = none)
    knee_in_flight: int = 0  # latency flat up to this many requests in flight, then growing with them (0 = flat)
    lock_in_flight: int = 0  # Salesforce: past this many in flight, inputs fail UNABLE_TO_LOCK_ROW (0 = never)
    lock_error_rate: float = 0.02  # ... each input's chance, per request in flight past lock_in_flight
    budget_per_minute: int = 600  # Salesloft team budget in the emulator
    api_limit: int = 15000  # Salesforce daily API allocation in the emulator
    api_used: int = 0
    partial_save_allowed: bool = True
    #: fault injection for `verify` (docs/sandbox.md): comma-separated Salesforce target IDs and
    #: Salesloft person emails or IDs whose accepted enrolment does not become active
    not_started: str = ""
    seed: int = 0  # random seed for injected faults
    # OAuth token endpoints of the emulator (sandbox/oauth.py): the one registered client, the
    # refresh token it accepts first, the certificate's public key for JWT bearer, token lifetime
    oauth_client_id: str = "sandbox-client-id"
    oauth_client_secret: str = "sandbox-client-secret"
    oauth_refresh_token: str = "sandbox-refresh-token"
    jwt_public_key_file: str = ""
    oauth_token_ttl: float = 7200.0  # seconds an issued access token is accepted
    oauth_token_uses: int = 0  # an issued access token is refused after this many requests (0 = never)
    oauth_sf_rotate_refresh: bool = False  # Salesforce refresh token rotation (a connected-app option)
    outreach_budget_per_hour: int = 10000  # Outreach per-user hourly request budget in the emulator
    outreach_token_interval: float = 60.0  # Outreach: seconds between new access tokens per user/app
    outreach_rotate_refresh: bool = False  # Outreach: whether a refresh returns a new refresh token


@dataclass
class VerifySettings:
    """``[verify]``: check after every run that what succeeded is in the promised state (verify.py)."""

    after_run: bool = False  # run `batchrunner verify` at the end of every run (docs/verify.md)


@dataclass
class Notify:
    """``[notify]``: a webhook told when a run ends. The URL is a secret (anyone holding it can post
    to the channel), so the job names the environment variable that holds it, never the URL."""

    webhook_env: str | None = None
    on: list[str] = field(default_factory=lambda: ["failed", "stopped"])  # failed | stopped | always


NOTIFY_ON = ("failed", "stopped", "always")


@dataclass
class Connection:
    sandbox: bool = False
    instance_url: str | None = None  # Salesforce
    base_url: str | None = None  # Salesloft
    api_version: str | None = None  # Salesforce, e.g. "62.0"
    auth: dict[str, Any] = field(default_factory=dict)


@dataclass
class ColumnSpec:
    """Where an operation field's value comes from: a CSV column, or a constant for every row."""

    column: str | None = None
    value: str | None = None


@dataclass
class Mapping:
    """``[mappings.FIELD]``: fill an operation field by joining an input column with a lookup CSV."""

    file: Path
    on: str  # the input CSV column whose value is looked up
    lookup: str  # the lookup file's column matched against it
    value: str  # the lookup file's column whose value fills the field
    ignore_case: bool = False


MAPPING_KEYS = ("file", "on", "lookup", "value", "ignore_case")
MODES = ("once", "sync")


@dataclass
class Job:
    path: Path
    name: str
    platform: str
    input: Path
    output_dir: Path
    operation: str | None = None
    columns: dict[str, ColumnSpec] = field(default_factory=dict)
    operation_column: str | None = None
    connection: Connection = field(default_factory=Connection)
    limits: Limits = field(default_factory=Limits)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    wire_values: dict[str, dict[str, str]] = field(default_factory=dict)
    encoding: str = "utf-8"
    delimiter: str | None = None  # None: sniff comma / semicolon / tab
    sheet: str | None = None  # .xlsx input: the sheet to read (None: the first); docs/input-files.md
    mappings: dict[str, Mapping] = field(default_factory=dict)  # operation field -> lookup join (mappings.py)
    mode: str = "once"  # "once" | "sync" (sync.py: recurring lists)
    key: list[str] = field(default_factory=list)  # sync: the input column(s) naming a row's person
    remove_missing: bool = False  # sync: remove people who left the list
    inline: dict[str, Any] | None = None  # a job given as a dict (api.load): kept so `resume` can rebuild it
    notify: Notify = field(default_factory=Notify)
    report_bom: bool = False  # results.csv / errors.csv start with a UTF-8 BOM (for Excel; docs/reports.md)
    report_xlsx: bool = False  # also results.xlsx / errors.xlsx, every cell text (needs the [xlsx] extra)
    max_removals: int | str | None = None  # sync: removal guard, a count or "N%" (sync.parse_max_removals)
    outreach: OutreachSettings = field(default_factory=OutreachSettings)  # [outreach]
    handoff: str | None = None  # migration: "remove_from_source" once the target enrolment is confirmed (handoff.py)
    source: Any = None  # with handoff: the [source] table, a handoff.Source (the tool the people leave)
    verify: VerifySettings = field(default_factory=VerifySettings)  # [verify]

    @property
    def is_sandbox(self) -> bool:
        return self.connection.sandbox


TOP_KEYS = (
    "name", "platform", "operation", "input", "output_dir", "columns", "connection", "limits", "sandbox",
    "wire_values", "encoding", "delimiter", "sheet", "mappings", "mode", "key", "remove_missing", "notify",
    "report_bom", "report_xlsx", "max_removals", "outreach", "handoff", "source", "verify",
)


def _typed_table(table: Any, cls: type, where: str) -> Any:
    """Build dataclass ``cls`` from a TOML table, refusing unknown keys and wrong types."""
    if not isinstance(table, dict):
        raise JobError(f"[{where}] must be a table.")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in names:
            raise JobError(f"Unknown key {key!r} in [{where}].{did_you_mean(key, names)}")
        expected = hints[key]
        if expected in (int, float) and isinstance(value, bool):
            raise JobError(f"[{where}] {key} must be a number, got {value!r}.")
        if expected is float and isinstance(value, int):
            value = float(value)
        ok = {
            int: isinstance(value, int), float: isinstance(value, float), bool: isinstance(value, bool),
            str | None: isinstance(value, str), dict[str, Any]: isinstance(value, dict),
        }.get(expected, True)
        if not ok:  # the value is not echoed: a token pasted where a table belongs must not reach a log
            expected_name = {dict[str, Any]: "a table", str | None: "a string"}.get(
                expected, getattr(expected, "__name__", str(expected)))
            raise JobError(f"[{where}] {key} must be {expected_name}, got a {type(value).__name__}.")
        if expected in (int, float) and value < 0:
            raise JobError(f"[{where}] {key} must not be negative, got {value!r}.")
        values[key] = value
    return cls(**values)


def parse_limits(table: Any) -> Limits:
    """``[limits]``; ``concurrency`` may also be ``"fixed:N"`` (concurrency.parse_setting)."""
    from batchrunner.concurrency import parse_setting

    mode = "default"
    if isinstance(table, dict) and "concurrency" in table:
        try:
            mode, number = parse_setting(table["concurrency"])
        except ValueError:
            raise JobError("[limits] concurrency must be a number (the most requests in flight; adapted below it "
                           "where the platform publishes no budget) or \"fixed:N\" (N, never adapted), got "
                           f"a {type(table['concurrency']).__name__} that is neither.") from None
        table = {**table, "concurrency": number}
    limits = _typed_table(table, Limits, "limits")
    limits.concurrency_mode = mode
    return limits


def sandbox_settings(base: SandboxSettings, overrides: dict[str, str]) -> SandboxSettings:
    """``base`` with string overrides (from ``batchrunner sandbox --set``) parsed to each field's type."""
    hints = get_type_hints(SandboxSettings)
    values: dict[str, Any] = {}
    for key, text in overrides.items():
        if key not in hints:
            raise JobError(f"Unknown sandbox setting {key!r}.{did_you_mean(key, list(hints))}")
        kind = hints[key]
        try:
            values[key] = (text.lower() in ("1", "true", "yes", "on")) if kind is bool else kind(text)
        except ValueError:
            raise JobError(f"sandbox setting {key} must be a {kind.__name__}, got {text!r}") from None
    merged = dataclasses.asdict(base) | values
    return _typed_table(merged, SandboxSettings, "sandbox")


def load_job(path: str | Path) -> Job:
    """Read and check a job file. Raises ``JobError`` naming the first mistake."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JobError(f"Job file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise JobError(f"{path} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JobError(f"Cannot read job file {path}: {exc}") from None
    return parse_job(raw, path)


def parse_job(raw: dict[str, Any], path: Path) -> Job:
    """A checked `Job`. A file with several independent mistakes gets them all in one message (a
    person fixes three things at once, not one per attempt); otherwise the first, as found."""
    problems = _survey(raw)
    if len(problems) > 1:
        raise JobError(f"{len(problems)} problems in {path.name}:\n" + "\n".join(f"  - {p}" for p in problems))
    return _parse_job(raw, path)


def _survey(raw: dict[str, Any]) -> list[str]:
    """The job file's mistakes that do not depend on each other, each checked on its own."""
    problems: list[str] = []

    def collect(check: Any) -> None:
        try:
            check()
        except JobError as exc:
            problems.append(str(exc))

    def unknown(key: str) -> None:
        raise JobError(f"Unknown key {key!r}.{did_you_mean(key, TOP_KEYS)}")

    for key in raw:
        if key not in TOP_KEYS:
            collect(lambda key=key: unknown(key))

    def platform() -> None:
        value = raw.get("platform")
        if value not in PLATFORMS:
            raise JobError("platform must be given." if value is None else
                           f"Unknown platform {value!r}.{did_you_mean(str(value), PLATFORMS)}")

    def source() -> None:
        if not isinstance(raw.get("input"), str) or not raw.get("input"):
            raise JobError("input must name the file to read (relative to the job file).")

    def limits() -> None:
        check_limits(parse_limits(raw.get("limits", {})))

    collect(platform)
    collect(source)
    collect(limits)
    for table, cls in (("connection", Connection), ("sandbox", SandboxSettings), ("outreach", OutreachSettings),
                       ("verify", VerifySettings)):
        collect(lambda table=table, cls=cls: _typed_table(raw.get(table, {}), cls, table))
    collect(lambda: _notify(raw.get("notify", {})))
    mode = raw.get("mode", "once")
    if mode not in MODES:
        problems.append(f"Unknown mode {mode!r}.{did_you_mean(str(mode), MODES)}")
    return problems


def _parse_job(raw: dict[str, Any], path: Path) -> Job:
    for key in raw:
        if key not in TOP_KEYS:
            raise JobError(f"Unknown key {key!r} in {path.name}.{did_you_mean(key, TOP_KEYS)}")
    base = path.resolve().parent

    def text(key: str, default: str | None = None) -> str | None:
        value = raw.get(key, default)
        if value is not None and not isinstance(value, str):
            raise JobError(f"{key} must be a string, got {value!r}.")
        return value

    platform = text("platform")
    if platform not in PLATFORMS:
        raise JobError(f"platform must be given.{did_you_mean(platform or '', PLATFORMS)}" if platform is None
                       else f"Unknown platform {platform!r}.{did_you_mean(platform, PLATFORMS)}")
    input_path = text("input")
    if not input_path:
        raise JobError("input must name the CSV file to read (relative to the job file).")
    columns_raw = raw.get("columns", {})
    if not isinstance(columns_raw, dict):
        raise JobError("[columns] must be a table of field = \"CSV column\" or field = { value = \"...\" }.")
    columns: dict[str, ColumnSpec] = {}
    operation_column = None
    for key, spec in columns_raw.items():
        if key == "operation":
            if not isinstance(spec, str):
                raise JobError("columns.operation must name the CSV column that holds each row's operation.")
            operation_column = spec
        else:
            columns[key] = column_spec(key, spec, "columns")
    wire_values = raw.get("wire_values", {})
    if not isinstance(wire_values, dict) or not all(
        isinstance(v, dict) and all(isinstance(x, str) for x in v.values()) for v in wire_values.values()
    ):
        raise JobError("[wire_values] must map a field to a table of documented value = \"value to send\".")
    mappings = _mappings(raw.get("mappings", {}), base, columns)
    for name, mapping in mappings.items():  # the field is read from `on`, then replaced by the join
        columns[name] = ColumnSpec(column=mapping.on)
    mode = text("mode") or "once"
    if mode not in MODES:
        raise JobError(f"Unknown mode {mode!r}.{did_you_mean(mode, MODES)}")
    key_raw = raw.get("key", [])
    key = [key_raw] if isinstance(key_raw, str) else key_raw
    if not isinstance(key, list) or not all(isinstance(k, str) and k for k in key):
        raise JobError("key must name an input column (or a list of columns) that identifies each row's person.")
    remove_missing = raw.get("remove_missing", False)
    if not isinstance(remove_missing, bool):
        raise JobError(f"remove_missing must be true or false, got {remove_missing!r}.")
    for flag in ("report_bom", "report_xlsx"):
        if not isinstance(raw.get(flag, False), bool):
            raise JobError(f"{flag} must be true or false, got a {type(raw[flag]).__name__}.")
    if mode == "sync" and not key:
        raise JobError("mode = \"sync\" needs key = \"COLUMN\": the input column that identifies each row's person.")
    if mode != "sync" and (key or remove_missing):
        raise JobError("key and remove_missing only apply to mode = \"sync\".")
    max_removals = raw.get("max_removals")
    if max_removals is not None:  # the removal guard (sync.py); exit 2 on a value it cannot read
        from batchrunner.sync import parse_max_removals

        if mode != "sync":
            raise JobError("max_removals only applies to mode = \"sync\".")
        parse_max_removals(max_removals)
    job = Job(
        path=path.resolve(),
        name=text("name") or path.stem,
        platform=platform,
        input=(base / input_path).resolve(),
        output_dir=(base / (text("output_dir") or "runs")).resolve(),
        operation=text("operation"),
        columns=columns,
        operation_column=operation_column,
        connection=_typed_table(raw.get("connection", {}), Connection, "connection"),
        limits=parse_limits(raw.get("limits", {})),
        sandbox=_typed_table(raw.get("sandbox", {}), SandboxSettings, "sandbox"),
        wire_values=wire_values,
        encoding=text("encoding") or "utf-8",
        delimiter=text("delimiter"),
        sheet=text("sheet"),
        mappings=mappings,
        mode=mode,
        key=key,
        remove_missing=remove_missing,
        notify=_notify(raw.get("notify", {})),
        report_bom=raw.get("report_bom", False),
        report_xlsx=raw.get("report_xlsx", False),
        max_removals=max_removals,
        outreach=_typed_table(raw.get("outreach", {}), OutreachSettings, "outreach"),
        verify=_typed_table(raw.get("verify", {}), VerifySettings, "verify"),
    )
    check_limits(job.limits)
    if "handoff" in raw or "source" in raw:  # migration hand-off (handoff.py): checked once the job is built
        from batchrunner.handoff import parse_source

        job.handoff, job.source = parse_source(raw.get("handoff"), raw.get("source"), job)
    if job.mode == "sync" and (job.operation_column is not None or job.operation is None):
        raise JobError("mode = \"sync\" needs one operation for every row (operation = \"assign\" or \"add\"), "
                       "not columns.operation.")
    if job.operation is None and job.operation_column is None:
        raise JobError("Give operation = \"...\" (for every row) or columns.operation (a column naming each row's).")
    return job


def column_spec(key: str, spec: Any, where: str) -> ColumnSpec:
    """One ``field = "CSV column"`` or ``field = { value = "..." }`` entry of a columns table."""
    if isinstance(spec, str):
        return ColumnSpec(column=spec)
    if isinstance(spec, dict) and set(spec) == {"value"} and isinstance(spec["value"], (str, int, float, bool)):
        value = spec["value"]
        return ColumnSpec(value=str(value).lower() if isinstance(value, bool) else str(value))
    raise JobError(f"{where}.{key} must be a CSV column name or {{ value = \"...\" }}, got {spec!r}.")


def _notify(table: Any) -> Notify:
    if not isinstance(table, dict):
        raise JobError("[notify] must be a table: webhook_env = \"VARIABLE\", on = [\"failed\", \"stopped\"].")
    for key in table:
        if key not in ("webhook_env", "on", "webhook_url", "url"):
            raise JobError(f"Unknown key {key!r} in [notify].{did_you_mean(key, ['webhook_env', 'on'])}")
    if "webhook_url" in table or "url" in table:  # the value is not echoed: it is a secret
        raise JobError("[notify] takes the webhook's URL from an environment variable, never from the job file "
                       "(anyone who reads the file could post to the channel): webhook_env = \"VARIABLE\".")
    env = table.get("webhook_env")
    if env is not None and (not isinstance(env, str) or not env):
        raise JobError("[notify] webhook_env must name an environment variable.")
    on = table.get("on", ["failed", "stopped"])
    if isinstance(on, str):
        on = [on]
    if not isinstance(on, list) or not all(isinstance(x, str) and x in NOTIFY_ON for x in on):
        raise JobError(f"[notify] on must be a list of: {', '.join(NOTIFY_ON)}.")
    return Notify(webhook_env=env, on=list(on))


def _mappings(table: Any, base: Path, columns: dict[str, ColumnSpec]) -> dict[str, Mapping]:
    """``[mappings.FIELD]`` tables: file, on, value, and optionally lookup (default: ``on``), ignore_case."""
    if not isinstance(table, dict):
        raise JobError("[mappings] must hold tables: [mappings.FIELD] file = \"lookup.csv\", on = \"input column\", "
                       "value = \"lookup column\".")
    out: dict[str, Mapping] = {}
    for name, spec in table.items():
        where = f"[mappings.{name}]"
        if not isinstance(spec, dict):
            raise JobError(f"{where} must be a table with file, on and value.")
        for key in spec:
            if key not in MAPPING_KEYS:
                raise JobError(f"Unknown key {key!r} in {where}.{did_you_mean(key, MAPPING_KEYS)}")
        for key in ("file", "on", "value"):
            if not isinstance(spec.get(key), str) or not spec[key]:
                raise JobError(f"{where} needs {key} = \"...\" ({MAPPING_HELP[key]}).")
        if "lookup" in spec and (not isinstance(spec["lookup"], str) or not spec["lookup"]):
            raise JobError(f"{where} lookup must name a column of the lookup file.")
        if not isinstance(spec.get("ignore_case", False), bool):
            raise JobError(f"{where} ignore_case must be true or false.")
        if name == "operation":
            raise JobError(f"{where}: the operation cannot be mapped; map an operation field.")
        if name in columns:
            raise JobError(f"{where}: {name} is also in [columns]; give it in one place only.")
        out[name] = Mapping(file=(base / spec["file"]).resolve(), on=spec["on"], lookup=spec.get("lookup", spec["on"]),
                            value=spec["value"], ignore_case=spec.get("ignore_case", False))
    return out


MAPPING_HELP = {"file": "the lookup CSV, relative to the job file", "on": "the input column to look up",
                "value": "the lookup file's column that fills the field"}
