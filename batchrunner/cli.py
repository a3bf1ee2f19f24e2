"""Command line: argument parsing and printing only; the work is done by `batchrunner.runner`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import polars as pl

from batchrunner import __version__
from batchrunner.errors import JobError

EPILOG = """exit codes: 0 every row succeeded or was skipped; 1 some row failed or was invalid;
2 the job could not start (job file, input file, credentials); 3 the run stopped early and can be
resumed with `batchrunner resume RUN_DIR`."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchrunner",
        description="Apply CSV lists of cadence operations in bulk to Salesforce Sales Engagement or Salesloft, "
        "with one honest outcome per row.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"batchrunner {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a job: validate, send, and write results.csv / errors.csv / summary.json",
                         description="Run a job file. Writes OUTPUT_DIR/<job name>-<UTC time>/ with results.csv "
                         "(one line per input row), errors.csv (re-runnable), summary.json and journal.sqlite.",
                         epilog=EPILOG)
    run.add_argument("job", type=Path, help="the job file (TOML)")
    run.add_argument("--input", type=Path, help="read this CSV instead of the job's input")
    run.add_argument("--output-dir", type=Path, help="put the run directory here instead of the job's output_dir")
    run.add_argument("--dry-run", action="store_true", help="validate and plan, write the reports, send nothing")
    run.add_argument("--no-progress", action="store_true", help="no progress bar (it is off anyway when stderr "
                     "is not a terminal)")
    _cron_options(run)

    val = sub.add_parser("validate", help="check the job and every row and print the plan; sends nothing",
                         description="Check the job file and every input row, and print the plan: rows per "
                         "operation, invalid rows by problem, requests needed and an estimated duration. Sends "
                         "nothing. Exit 0 when every row is valid, 1 when some are invalid, 2 when the job "
                         "cannot start.")
    val.add_argument("job", type=Path)
    val.add_argument("--input", type=Path, help="check this CSV instead of the job's input")

    res = sub.add_parser("resume", help="finish a run that stopped (crash, Ctrl-C, budget stop)",
                         description="Continue a run from its journal. Rows that already have an outcome are "
                         "never sent again; rows that were in flight when it stopped are checked with the "
                         "platform first (or reported UNKNOWN_OUTCOME when that cannot be known). Rewrites the "
                         "run directory's reports.", epilog=EPILOG)
    res.add_argument("run_dir", type=Path, help="the run directory (it holds journal.sqlite)")
    res.add_argument("--allow-changed-input", action="store_true",
                     help="resume even though the input file's sha256 changed since the run started")
    res.add_argument("--no-progress", action="store_true")
    _cron_options(res)

    rty = sub.add_parser("retry", help="a new run of the same job over an earlier run's failed and not_attempted rows",
                         description="Start a new run of the run's job over the rows that failed or were not "
                         "attempted. Their input lines are copied to RUN_DIR/retry-input.csv.", epilog=EPILOG)
    rty.add_argument("run_dir", type=Path)
    rty.add_argument("--output-dir", type=Path)
    rty.add_argument("--no-progress", action="store_true")
    _cron_options(rty)

    chk = sub.add_parser("check", help="authenticate and check the org/team is ready for the job; changes nothing",
                         description="Authenticate with the job's [connection.auth], resolve the API version "
                         "against the org (GET /services/data/), check the job's actions exist (describe), and "
                         "report the daily API calls left (Salesforce) or the budget headers (Salesloft). Only "
                         "GET requests: nothing that changes data is sent. Exit 0 ready, 1 a check failed, 2 the "
                         "job or its credentials' variables are wrong.")
    chk.add_argument("job", type=Path)
    chk.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")

    ops = sub.add_parser("operations", help="list the operations of a platform and their fields",
                         description="The operation catalog: operations, their fields, which are required and "
                         "what values are allowed.")
    ops.add_argument("platform", nargs="?", choices=["salesforce", "salesloft", "outreach"],
                     help="one platform (default: all)")

    exp = sub.add_parser("export", help="export Salesloft memberships or Salesforce cadence trackers as CSV",
                         description="Read (never write) what is on cadences, as a CSV a migration job can read: "
                         "salesloft-memberships (memberships joined with each person's email and crm_id and each "
                         "cadence's name; paged with filters and an updated_at cursor, never a page beyond 99) or "
                         "salesforce-trackers (active ActionCadenceTracker records with the cadence name and the "
                         "target's ID, object and email). The connection comes from --job, --sandbox, or the "
                         "environment (SALESLOFT_API_KEY; SF_ACCESS_TOKEN and SF_INSTANCE_URL).", epilog=EPILOG)
    exp.add_argument("what", choices=["salesloft-memberships", "salesforce-trackers", "outreach-sequence-states"])
    exp.add_argument("--cadence", action="append", default=[], metavar="NAME|ID",
                     help="only this cadence (repeatable); names are matched exactly")
    exp.add_argument("--on-cadence-only", action="store_true",
                     help="salesloft-memberships: only people currently on the cadence; "
                     "outreach-sequence-states: only active, pending or paused states")
    exp.add_argument("--output", "-o", type=Path, help="write the CSV here (default: standard output)")
    exp.add_argument("--job", type=Path, help="use this job file's [connection], [limits] and [sandbox]")
    exp.add_argument("--sandbox", action="store_true", help="read the in-process sandbox (its seed data)")
    exp.add_argument("--url", help="base_url (Salesloft) or instance_url (Salesforce), e.g. a `batchrunner "
                     "sandbox` at http://127.0.0.1:8765 (with --sandbox: its tokens)")

    sbx = sub.add_parser("sandbox", help="serve the emulator of both APIs over HTTP",
                         description="Serve the sandbox (an emulator of the Salesforce actions and Salesloft APIs) "
                         "on a real port. Point a job at it with [connection] sandbox = true and instance_url "
                         "(Salesforce) or base_url (Salesloft) = \"http://127.0.0.1:PORT\". Tokens: Salesforce "
                         "'sandbox-token', Salesloft 'sandbox-key'. State lives as long as the server. It also serves the "
                         "OAuth token endpoints (Salesforce /services/oauth2/token, Salesloft /oauth/token) for one "
                         "client, id 'sandbox-client-id', secret 'sandbox-client-secret', refresh token "
                         "'sandbox-refresh-token' (see the README's sandbox section). Outreach: base_url, token "
                         "'sandbox-outreach-token', OAuth at /outreach/oauth/token (docs/outreach.md).")
    sbx.add_argument("--host", default="127.0.0.1")
    sbx.add_argument("--port", type=int, default=8765)
    sbx.add_argument("--job", type=Path, help="take budgets and fault injection from this job's [sandbox] table")
    sbx.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="one [sandbox] setting, e.g. --set error_rate=0.05 --set budget_per_minute=600 "
                     "(see the README's [sandbox] reference); repeatable, applied after --job")
    return parser


def _cron_options(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout; "
                     "everything else goes to stderr (for cron and scripts)")
    cmd.add_argument("--fail-on", choices=["invalid", "failed", "never"], default="invalid",
                     help="which row outcomes make the exit code 1: invalid (default: failed or invalid rows), "
                     "failed (failed rows only), never (exit 0 unless the job could not start or stopped early)")
    cmd.add_argument("--keep-runs", type=int, metavar="N", help="after the run, delete this job's older run "
                     "directories, keeping the newest N (runs that stopped early and can be resumed are kept)")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "keep_runs", None) is not None and args.keep_runs < 1:
        parser.error("--keep-runs must be at least 1")
    from batchrunner import runlog
    from batchrunner.secrets import redact

    # log lines to stderr: warnings for people at a terminal; everything (INFO) with --json, for cron
    runlog.to_stderr(logging.INFO if getattr(args, "json", False) else logging.WARNING)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "resume":
            return _resume(args)
        if args.command == "retry":
            return _retry(args)
        if args.command == "validate":
            return _validate(args)
        if args.command == "operations":
            return _operations(args)
        if args.command == "sandbox":
            return _sandbox(args)
        if args.command == "export":
            return _export(args)
        if args.command == "check":
            return _check(args)
    except JobError as exc:
        print(f"error: {redact(exc)}", file=sys.stderr)
        if getattr(args, "json", False):
            print(json.dumps({"error": redact(exc), "exit_code": exc.exit_code}))
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 3
    parser.print_help()
    return 2


def _banner(prepared) -> str:
    job = prepared.job
    kind = "SANDBOX" if job.is_sandbox else "LIVE"
    return f"{kind} {job.platform} ({prepared.target}) · job {job.name} · input {prepared.loaded.path}"


def _out(args: argparse.Namespace):
    """Where human-readable lines go: stdout, or stderr when --json keeps stdout for the JSON."""
    return sys.stderr if getattr(args, "json", False) else sys.stdout


def _run(args: argparse.Namespace) -> int:
    import anyio

    from batchrunner.job import load_job
    from batchrunner.runner import prepare, run_prepared

    job = load_job(args.job)
    prepared = prepare(job, args.input)
    print(_banner(prepared), file=_out(args), flush=True)
    for note in prepared.loaded.notes:
        print(f"note: {note}", file=_out(args))
    result = anyio.run(lambda: run_prepared(prepared, output_dir=args.output_dir, dry_run=args.dry_run,
                                            progress=False if args.no_progress else None, handle_signals=True,
                                            fail_on=args.fail_on))
    return _finish(result, args)


def _finish(result, args: argparse.Namespace | None = None) -> int:
    out = _out(args) if args is not None else sys.stdout
    counts = result.summary["counts"]
    print(", ".join(f"{n} {status}" for status, n in counts.items() if n) or "no rows", file=out)
    if sync := result.summary.get("sync"):  # mode = "sync" (sync.py)
        removals = sync.get("removals") or {}
        done = ", ".join(f"{n} {s}" for s, n in (removals.get("counts") or {}).items() if n)
        print(f"sync: {sync['added']} added, {sync['changed']} changed, {sync['unchanged']} unchanged, "
              f"{sync['left_the_list']} left the list"
              + (f"; removals: {done} ({removals['report']})" if removals.get("sent") else
                 f"; removals not sent: {removals['why']}" if removals else ""), file=out)
    if result.summary.get("stopped"):
        stop = result.summary["stopped"]
        print(f"stopped early: {stop['code']}: {stop['message']}", file=out)
    print(f"report: {result.run_dir / 'results.csv'}", file=out)
    print(f"run directory: {result.run_dir}", file=out)
    deleted = []
    if args is not None and getattr(args, "keep_runs", None):
        from batchrunner.retention import prune

        deleted = prune(result.run_dir.parent, result.summary.get("job") or "", args.keep_runs,
                        current=result.run_dir)
        for path in deleted:
            print(f"deleted old run directory: {path}", file=out)
    if args is not None and getattr(args, "json", False):
        print(json.dumps({**result.summary, "run_dir": str(result.run_dir),
                          "deleted_run_dirs": [str(p) for p in deleted]}), flush=True)
    return result.exit_code


def _resume(args: argparse.Namespace) -> int:
    from batchrunner.runner import resume

    print(f"resuming {args.run_dir}", file=_out(args))
    result = resume(args.run_dir, allow_changed_input=args.allow_changed_input,
                    progress=False if args.no_progress else None, handle_signals=True, fail_on=args.fail_on)
    return _finish(result, args)


def _retry(args: argparse.Namespace) -> int:
    import anyio

    from batchrunner.job import load_job
    from batchrunner.runner import prepare, retry_rows, run_prepared

    job_path, input_path = retry_rows(args.run_dir)
    prepared = prepare(load_job(job_path), input_path)
    print(_banner(prepared), file=_out(args), flush=True)
    result = anyio.run(lambda: run_prepared(prepared, output_dir=args.output_dir,
                                            progress=False if args.no_progress else None, handle_signals=True,
                                            fail_on=args.fail_on))
    return _finish(result, args)


def _validate(args: argparse.Namespace) -> int:
    from batchrunner.job import load_job
    from batchrunner.runner import estimate_seconds, prepare
    from batchrunner.validate import CODE, IDX, MESSAGE

    prepared = prepare(load_job(args.job), args.input)
    print(_banner(prepared))
    for note in prepared.loaded.notes:
        print(f"note: {note}")
    total = prepared.validated.height
    invalid = prepared.invalid
    plan = prepared.plan
    print(f"{total} rows: {total - invalid.height} valid, {invalid.height} invalid, "
          f"{len(plan.duplicates)} duplicate (skipped)")
    for op, n in plan.rows_by_operation.items():
        print(f"  {op}: {n} rows")
    if invalid.height:
        print("invalid rows by problem:")
        grouped = (invalid.group_by(CODE, maintain_order=True)
                   .agg(pl.len().alias("n"), (pl.col(IDX) + 1).head(5).alias("rows"), pl.col(MESSAGE).first()))
        for code, n, rows, message in grouped.iter_rows():
            more = ", …" if n > len(rows) else ""
            print(f"  {code} ×{n} (rows {', '.join(map(str, rows))}{more}): e.g. {message}")
    if prepared.sync is not None:  # mode = "sync": the diff against earlier runs (sync.py)
        for line in prepared.sync.describe():
            print(line)
    seconds = estimate_seconds(prepared)
    print(f"requests needed: {plan.requests} in {len(plan.waves)} wave(s); "
          f"estimated duration ≈ {seconds:.0f} s at concurrency {prepared.job.limits.concurrency}"
          + (f" and {prepared.platform.budget_per_minute(prepared.job):.0f}/min"
             if prepared.platform.budget_per_minute(prepared.job) else ""))
    print("nothing was sent")
    return 1 if invalid.height else 0


def _check(args: argparse.Namespace) -> int:
    import anyio

    from batchrunner.check import check
    from batchrunner.job import load_job

    job = load_job(args.job)
    out = _out(args)
    result = anyio.run(lambda: check(job))
    print(f"{result.mode} {result.platform} ({result.endpoint}) · job {job.name} · check (sends nothing that "
          "changes data)", file=out)
    for item in result.checks:
        print(f"  {'ok  ' if item['ok'] else 'FAIL'} {item['name']}: {item['detail']}", file=out)
    print("ready" if result.ok else "not ready", file=out)
    if args.json:
        print(json.dumps(result.as_dict()))
    return 0 if result.ok else 1


def _operations(args: argparse.Namespace) -> int:
    from batchrunner.platforms import PLATFORM_NAMES, get_platform

    for name in [args.platform] if args.platform else PLATFORM_NAMES:
        try:
            catalog = get_platform(name).catalog_for(None)
        except ImportError:
            continue
        print(f"{name}")
        for op in catalog.operations:
            version = f", API {op.min_api_version}+" if op.min_api_version else ""
            print(f"  {op.name} ({op.wire_name}{version}): {op.description}")
            for f in op.fields:
                need = "required" if f.required else "optional"
                if any(f.name in g for g in op.one_of):
                    need = "one of " + "/".join(next(g for g in op.one_of if f.name in g))
                for unless, group in op.one_of_unless:
                    if f.name in group:
                        need = "one of " + "/".join(group) + f" (unless {unless})"
                extra = f"; default {f.default}" if f.default else ""
                print(f"      {f.name:<26} {need:<40} {f.type.label}{extra}")
        print()
    return 0


def _export(args: argparse.Namespace) -> int:
    import anyio

    from batchrunner.export import WHAT, export_job, run_export, write_csv
    from batchrunner.job import load_job

    job = export_job(WHAT[args.what], sandbox=args.sandbox, base_url=args.url,
                     job=load_job(args.job) if args.job else None)
    result, columns = anyio.run(lambda: run_export(args.what, job, args.cadence, args.on_cadence_only))
    write_csv(args.output, result.rows, columns, out=sys.stdout)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    where = args.output or "standard output"
    print(f"{len(result.rows)} rows to {where} ({result.requests} requests, cost {result.cost:g})", file=sys.stderr)
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    import uvicorn

    from batchrunner.job import SandboxSettings, load_job, sandbox_settings
    from batchrunner.sandbox.factory import build_sandbox

    settings = load_job(args.job).sandbox if args.job else SandboxSettings()
    overrides: dict[str, str] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise JobError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    settings = sandbox_settings(settings, overrides)
    print(f"sandbox listening on http://{args.host}:{args.port} (Salesforce token 'sandbox-token', "
          "Salesloft key 'sandbox-key'); Ctrl-C to stop", file=sys.stderr, flush=True)
    uvicorn.run(build_sandbox(settings), host=args.host, port=args.port, log_level="warning")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
