"""Command line: argument parsing and printing only; the work is done by `batchrunner.runner`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import polars as pl

from batchrunner import __version__
from batchrunner.errors import JobError, NothingToRetry, RunAborted, root_cause
from batchrunner.platforms import PLATFORM_NAMES

EPILOG = """exit codes: 0 every row succeeded or was skipped; 1 some row failed or was invalid;
2 the job could not start, nothing was sent (job file, input file, credentials); 3 the run stopped
early and can be resumed with `batchrunner resume RUN_DIR`; 4 the run could not go on after it had
started sending (disk full, journal lost, unexpected error): resumable when its journal is intact.
Set BATCHRUNNER_DEBUG=1 (or --debug) to see a Python traceback instead of a one-line error."""


EXPORT_EPILOG = """exit codes: 0 the CSV was written; 2 it could not be (connection, credentials, a
cadence that does not exist). Nothing on the platform is changed."""

EXPORTS = {
    "salesloft-memberships": (
        "Salesloft cadence memberships, with each person's email and crm_id and each cadence's name",
        "Paged with filters and an updated_at cursor, never a page beyond 99 (the documented deep-paging limit)."),
    "salesforce-trackers": (
        "Salesforce active ActionCadenceTracker records, with the cadence name and the target's ID, object and email",
        "Read with SOQL queries (GET), paged by the query's nextRecordsUrl."),
    "outreach-sequence-states": (
        "Outreach sequence states, with each prospect's email and each sequence's name",
        "Paged by links.next; --on-cadence-only keeps active, pending and paused states (docs/outreach.md)."),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchrunner",
        description="Apply CSV lists of cadence operations in bulk to Salesforce Sales Engagement or Salesloft, "
        "with one honest outcome per row.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"batchrunner {__version__}")
    parser.add_argument("--verbose", "-v", action="store_true", help="print every event (retries, 429 pauses, "
                        "splits, stops) on stderr as it happens, as run.log records them")
    parser.add_argument("--debug", action="store_true", help="show a Python traceback when something unexpected "
                        "fails (default: a one-line message)")
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
    run.add_argument("--allow-mass-removal", action="store_true", help="sync jobs: send the removals even when "
                     "they exceed max_removals (docs/sync.md)")
    _cron_options(run)

    val = sub.add_parser("validate", help="check the job and every row and print the plan; sends nothing",
                         description="Check the job file and every input row, and print the plan: rows per "
                         "operation, invalid rows by problem, requests needed and an estimated duration. Sends "
                         "nothing. Exit 0 when every row is valid, 1 when some are invalid, 2 when the job "
                         "cannot start.")
    val.add_argument("job", type=Path, help="the job file (TOML)")
    val.add_argument("--input", type=Path, help="check this CSV instead of the job's input")
    val.add_argument("--json", action="store_true", help="also print the result as one JSON object on stdout "
                     "(the human-readable lines go to stderr)")

    prd = sub.add_parser("predict", help="read the platform and predict each row's outcome; sends nothing",
                         description="Read the platform (GET only, in batches, within the job's budget) and "
                         "predict what each row would do in a real run: apply, skip, fail or invalid, with the error "
                         "code the run would report. Writes a run directory marked as a prediction (results.csv "
                         "with _prediction and _prediction_reason, summary.json, report.html); it cannot be resumed "
                         "or retried. Exit 0 every row would apply or be skipped, 1 some would fail or are invalid, "
                         "2 the job could not start or the estimate is over --max-requests (docs/predict.md).")
    prd.add_argument("job", type=Path, help="the job file (TOML)")
    prd.add_argument("--input", type=Path, help="predict this CSV instead of the job's input")
    prd.add_argument("--output-dir", type=Path, help="put the prediction's directory here instead of the job's "
                     "output_dir")
    prd.add_argument("--max-requests", type=int, metavar="N", help="refuse (exit 2) when the estimated requests are "
                     "more than N, and stop if the reads go past N")
    prd.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout "
                     "(everything else goes to stderr)")

    res = sub.add_parser("resume", help="finish a run that stopped (crash, Ctrl-C, budget stop)",
                         description="Continue a run from its journal. Rows that already have an outcome are "
                         "never sent again; rows that were in flight when it stopped are checked with the "
                         "platform first (or reported UNKNOWN_OUTCOME when that cannot be known). Rewrites the "
                         "run directory's reports.", epilog=EPILOG)
    res.add_argument("run_dir", type=Path, help="the run directory (it holds journal.sqlite)")
    res.add_argument("--allow-changed-input", action="store_true",
                     help="resume even though the input file's sha256 changed since the run started")
    res.add_argument("--no-progress", action="store_true", help="no progress bar")
    _cron_options(res)

    rty = sub.add_parser("retry", help="a new run of the same job over an earlier run's failed and not_attempted rows",
                         description="Start a new run of the run's job over the rows that failed or were not "
                         "attempted, exactly as that run read them (not the input file as it is now). They are "
                         "written to RUN_DIR/retry-input.csv in the job's delimiter and encoding. The earlier run "
                         "is then handed over: it can no longer be resumed or retried (that would send its rows "
                         "twice); the new run can. A run with rows in flight must be resumed first.",
                         epilog=EPILOG)
    rty.add_argument("run_dir", type=Path, help="the earlier run's directory")
    rty.add_argument("--output-dir", type=Path, help="put the new run directory here (default: beside RUN_DIR)")
    rty.add_argument("--include-unknown", action="store_true",
                     help="also send rows whose outcome is unknown (UNKNOWN_OUTCOME: sent, answer lost, maybe "
                     "applied); by default they are left out, since sending them again may apply them twice")
    rty.add_argument("--no-progress", action="store_true", help="no progress bar")
    _cron_options(rty)

    ver = sub.add_parser("verify", help="re-read the platform state of a run's succeeded rows; reads only",
                         description="Read (never write) the platform state of every row the run reported "
                         "succeeded and report those not in the state their operation promised (a Salesloft "
                         "membership still staged, a Salesforce tracker that ended or is paused...). Writes "
                         "RUN_DIR/verify.csv and a verify block in summary.json (docs/verify.md).",
                         epilog="exit codes: 0 every succeeded row is in its promised state; 1 some are not, or "
                         "could not be read (verify.csv says which); 2 not a run directory, a dry run or a "
                         "prediction, or the platform refused the credentials.")
    ver.add_argument("run_dir", type=Path, help="the run directory (it holds journal.sqlite)")
    ver.add_argument("--json", action="store_true", help="print the verify block as one JSON object on stdout")

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
    ops.add_argument("platform", nargs="?", choices=list(PLATFORM_NAMES),
                     help="one platform (default: all)")
    ops.add_argument("--json", action="store_true", help="print the catalog as one JSON object")

    exp = sub.add_parser("export", help="export Salesloft memberships or Salesforce cadence trackers as CSV",
                         description="Read (never write) what is on cadences, as a CSV a migration job can read. "
                         "`batchrunner export WHAT --help` tells more about each.", epilog=EXPORT_EPILOG)
    kinds = exp.add_subparsers(dest="what", metavar="WHAT", required=True)
    for what, (summary, details) in EXPORTS.items():
        kind = kinds.add_parser(what, help=summary, description=f"{summary}. {details} The connection comes from "
                                "--job, --sandbox, or the environment (SALESLOFT_API_KEY; SF_ACCESS_TOKEN and "
                                "SF_INSTANCE_URL).", epilog=EXPORT_EPILOG)
        kind.add_argument("--cadence", action="append", default=[], metavar="NAME|ID",
                          help="only this cadence (repeatable); names are matched exactly")
        if what != "salesforce-trackers":
            kind.add_argument("--on-cadence-only", action="store_true", help="only people currently on the "
                              "cadence (Outreach: active, pending or paused states)")
        kind.add_argument("--output", "-o", type=Path, help="write the CSV here (default: standard output)")
        kind.add_argument("--job", type=Path, help="use this job file's [connection], [limits] and [sandbox]")
        kind.add_argument("--sandbox", action="store_true", help="read the in-process sandbox (its seed data)")
        kind.add_argument("--url", help="base_url (Salesloft) or instance_url (Salesforce), e.g. a `batchrunner "
                          "sandbox` at http://127.0.0.1:8765 (with --sandbox: its tokens)")

    rns = sub.add_parser("runs", help="list the runs in an output directory, newest first",
                         description="List the run directories under OUTPUT_DIR (default ./runs), newest first: job, "
                         "start, duration, kind (run / dry run / resume / retry), counts, exit code, whether it can be "
                         "resumed, and the retry run it was handed to. Reads summary.json and the journal.")
    rns.add_argument("output_dir", nargs="?", type=Path, default=Path("runs"))
    rns.add_argument("--json", action="store_true", help="print the runs as a JSON list")

    sbx = sub.add_parser("sandbox", help="serve the emulator of both APIs over HTTP",
                         description="Serve the sandbox (an emulator of the Salesforce actions and Salesloft APIs) "
                         "on a real port. Point a job at it with [connection] sandbox = true and instance_url "
                         "(Salesforce) or base_url (Salesloft) = \"http://127.0.0.1:PORT\". Tokens: Salesforce "
                         "'sandbox-token', Salesloft 'sandbox-key'. State lives as long as the server. It also serves the "
                         "OAuth token endpoints (Salesforce /services/oauth2/token, Salesloft /oauth/token) for one "
                         "client, id 'sandbox-client-id', secret 'sandbox-client-secret', refresh token "
                         "'sandbox-refresh-token' (see docs/sandbox.md). Outreach: base_url, token "
                         "'sandbox-outreach-token', OAuth at /outreach/oauth/token (docs/outreach.md).")
    sbx.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    sbx.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    sbx.add_argument("--job", type=Path, help="take budgets and fault injection from this job's [sandbox] table")
    sbx.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="one [sandbox] setting, e.g. --set error_rate=0.05 --set budget_per_minute=600 "
                     "(every setting: docs/sandbox.md); repeatable, applied after --job")
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

    # log lines to stderr: warnings for people at a terminal; everything (INFO) with --json (for cron)
    # or --verbose (retries, 429 pauses, splits, stops as they happen; run.log always has them)
    runlog.to_stderr(logging.INFO if getattr(args, "json", False) or args.verbose else logging.WARNING)
    json_mode = getattr(args, "json", False)
    debug = args.debug or os.environ.get("BATCHRUNNER_DEBUG") not in (None, "", "0")

    def fail(message: str, code: int, **extra: object) -> int:
        print(f"error: {redact(message)}", file=sys.stderr, flush=True)
        if json_mode:
            print(json.dumps({"error": redact(message), "exit_code": code, **extra}), flush=True)
        return code

    try:
        code = _dispatch(parser, args)
        sys.stdout.flush()  # a reader that left (`| head -1`) is found here, not at interpreter exit
        return code
    except NothingToRetry as exc:
        print(redact(exc), file=_out(args), flush=True)
        if json_mode:
            print(json.dumps({"nothing_to_retry": True, "message": redact(exc), "exit_code": exc.exit_code}))
        return exc.exit_code
    except JobError as exc:
        return fail(str(exc), exc.exit_code)
    except RunAborted as exc:
        extra = {"run_dir": str(exc.run_dir)} if exc.run_dir is not None else {}
        return fail(str(exc), exc.exit_code, **extra)
    except KeyboardInterrupt:
        return fail("interrupted", 3)
    except BrokenPipeError:  # `batchrunner operations | head -1`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as exc:  # the crash barrier: an environment error is a message, not a traceback
        if debug:
            raise
        cause = root_cause(exc)
        if isinstance(cause, (JobError, RunAborted)):  # raised inside a task group
            return fail(str(cause), cause.exit_code)
        return fail(f"{type(cause).__name__}: {cause} (BATCHRUNNER_DEBUG=1 shows the traceback)", 2)


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    commands = {"run": _run, "resume": _resume, "retry": _retry, "validate": _validate, "operations": _operations,
                "sandbox": _sandbox, "export": _export, "check": _check, "runs": _runs, "verify": _verify,
                "predict": _predict}
    if args.command not in commands:
        parser.print_help()
        return 2
    return commands[args.command](args)


def _out(args: argparse.Namespace):
    """Where human-readable lines go: stdout, or stderr when --json keeps stdout for the JSON."""
    return sys.stderr if getattr(args, "json", False) else sys.stdout


def _run(args: argparse.Namespace) -> int:
    from batchrunner import api

    result = api.run(args.job, input=args.input, output_dir=args.output_dir, dry_run=args.dry_run,
                     progress=_progress(args), on_start=_announce(args), handle_signals=True, fail_on=args.fail_on,
                     allow_mass_removal=args.allow_mass_removal)
    return _finish(result, args)


def _progress(args: argparse.Namespace) -> bool | None:
    """No bar with --no-progress; otherwise tqdm's own choice (a bar only on a terminal)."""
    return False if args.no_progress else None


def _announce(args: argparse.Namespace):  # noqa: ANN202
    """The first lines a person sees: what is about to be talked to, and notes about the input."""
    def show(info) -> None:  # noqa: ANN001
        print(info.banner(), file=_out(args), flush=True)
        for note in info.notes:
            print(f"note: {note}", file=_out(args), flush=True)
    return show


def _finish(result, args: argparse.Namespace | None = None) -> int:
    out = _out(args) if args is not None else sys.stdout
    from batchrunner.endscreen import render, use_colour

    print(render(result.summary, result.run_dir, colour=use_colour(out)), file=out)
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
    from batchrunner import api

    print(f"resuming {args.run_dir}", file=_out(args))
    result = api.resume(args.run_dir, allow_changed_input=args.allow_changed_input, progress=_progress(args),
                        handle_signals=True, fail_on=args.fail_on)
    return _finish(result, args)


def _retry(args: argparse.Namespace) -> int:
    from batchrunner import api

    result = api.retry(args.run_dir, output_dir=args.output_dir, include_unknown=args.include_unknown,
                       progress=_progress(args), on_start=_announce(args), handle_signals=True, fail_on=args.fail_on)
    return _finish(result, args)


def _validate(args: argparse.Namespace) -> int:
    from batchrunner import api

    report = api.validate(args.job, input=args.input)
    out = _out(args)
    print(report["banner"], file=out)
    for note in report["notes"]:
        print(f"note: {note}", file=out)
    print(f"{_n(report['rows'], 'row')}: {report['valid']} valid, {report['invalid']} invalid, "
          f"{report['duplicates']} duplicate (skipped)", file=out)
    for op, n in report["rows_by_operation"].items():
        print(f"  {op}: {_n(n, 'row')}", file=out)
    if report["problems"]:
        print("invalid rows by problem:", file=out)
        for problem in report["problems"]:
            more = ", …" if problem["count"] > len(problem["rows"]) else ""
            print(f"  {problem['code']} ×{problem['count']} (rows {', '.join(map(str, problem['rows']))}{more}): "
                  f"e.g. {problem['example']}", file=out)
    for line in report.get("sync") or []:
        print(line, file=out)
    budget = report["budget_per_minute"]
    print(f"requests needed: {report['requests']} in {report['waves']} wave(s); estimated duration ≈ "
          f"{report['estimated_seconds']:.0f} s at concurrency {report['concurrency']}"
          + (f" and {budget:.0f}/min" if budget else ""), file=out)
    if report.get("constants_note"):  # constants naming platform records are looked up by check / run
        print(report["constants_note"], file=out)
    print("nothing was sent", file=out)
    if args.json:
        print(json.dumps(report))
    return report["exit_code"]


def _verify(args: argparse.Namespace) -> int:
    from batchrunner import api
    from batchrunner.endscreen import verify_line
    from batchrunner.secrets import redact

    result = api.verify(args.run_dir)
    out = _out(args)
    print(verify_line(result.block), file=out)
    shown = [c for c in result.checks if c.verified in ("mismatch", "unreadable")]
    for check in shown[:10]:  # platform text: masked like every report
        print(redact(f"  row {check.row + 1}: {check.verified}: expected {check.expected}, found "
                     f"{check.observed or '?'}" + (f" ({check.reason})" if check.reason else "")), file=out)
    if len(shown) > 10:
        print(f"  … {len(shown) - 10} more in {result.verify_csv}", file=out)
    print(f"verify.csv: {result.verify_csv}", file=out)
    if args.json:
        print(json.dumps({**result.block, "run_dir": str(result.run_dir)}))
    return result.exit_code


def _predict(args: argparse.Namespace) -> int:
    from batchrunner import api

    if args.max_requests is not None and args.max_requests < 1:
        raise JobError("--max-requests must be at least 1")

    def estimate(requests: int, rows: int) -> None:  # stderr, before the first request
        cap = f" (cap {args.max_requests})" if args.max_requests is not None else ""
        print(f"predict: about {_n(requests, 'request')} to read the platform for {_n(rows, 'row')}{cap} (invalid and "
              "duplicate rows need none); nothing is sent", file=sys.stderr, flush=True)

    result = api.predict(args.job, input=args.input, output_dir=args.output_dir, max_requests=args.max_requests,
                         on_estimate=estimate)
    out, summary = _out(args), result.summary
    counts = ", ".join(f"{n} {name}" for name, n in summary["counts"].items() if n) or "no rows"
    print(f"prediction: {counts} ({summary['requests_sent']} requests)", file=out)
    for reason, n in list(summary["reasons"].items())[:5]:
        print(f"  {reason} ×{n}", file=out)
    print(f"results: {result.results_csv}  (nothing was sent; `batchrunner run {args.job}` sends)", file=out)
    if args.json:
        print(json.dumps({**summary, "run_dir": str(result.run_dir)}), flush=True)
    return result.exit_code


def _n(count: int, noun: str) -> str:
    """'1 row', '2 rows'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


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


def _runs(args: argparse.Namespace) -> int:
    from batchrunner.runs import format_runs, list_runs

    runs = list_runs(args.output_dir)
    print(json.dumps(runs, indent=2) if args.json else format_runs(runs))
    return 0


def _operations(args: argparse.Namespace) -> int:
    from batchrunner.listing import describe_catalog
    from batchrunner.platforms import PLATFORM_NAMES, get_platform

    listing: dict[str, list] = {}
    for name in [args.platform] if args.platform else PLATFORM_NAMES:
        try:
            listing[name] = describe_catalog(get_platform(name).catalog_for(None))
        except ImportError:
            continue
    if args.json:
        print(json.dumps(listing))
        return 0
    for name, operations in listing.items():
        print(f"{name}")
        for op in operations:
            version = f", API {op['min_api_version']}+" if op["min_api_version"] else ""
            print(f"  {op['name']} ({op['wire_name']}{version}): {op['description']}")
            for f in op["fields"]:
                extra = f"; default {f['default']}" if f["default"] else ""
                print(f"      {f['name']:<26} {f['need']:<40} {f['type']}{extra}")
        print()
    return 0


def _export(args: argparse.Namespace) -> int:
    from batchrunner import api
    from batchrunner.export import write_csv

    result = api.export(args.what, job=args.job, sandbox=args.sandbox, url=args.url, cadences=args.cadence,
                        on_cadence_only=getattr(args, "on_cadence_only", False), output=args.output)
    if args.output is None:
        write_csv(None, result.rows, result.columns, out=sys.stdout)
        sys.stdout.flush()
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    where = args.output or "standard output"
    print(f"{len(result.rows)} rows to {where} ({result.requests} requests, cost {result.cost:g})", file=sys.stderr)
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise JobError("`batchrunner sandbox` serves with uvicorn, which is not installed: "
                       "pip install 'batchrunner[serve]' (the demo jobs need no server: they use the sandbox "
                       "in-process)") from None

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
    uvicorn.run(build_sandbox(settings, record_requests=True), host=args.host, port=args.port, log_level="warning")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
