"""The end-of-run screen: what happened, what went wrong most, where the reports are, what to do next.

A pure function of summary.json (and the run directory), so the terminal, the HTML report and the
tests all say the same thing. Colour only on a terminal, never when ``NO_COLOR`` is set
(https://no-color.org/).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

#: the order counts are shown in, and the colour each status gets on a terminal
STATUS_ORDER = ("succeeded", "skipped", "failed", "invalid", "not_attempted")
_COLOURS = {"succeeded": "32", "skipped": "36", "failed": "31", "invalid": "33", "not_attempted": "35"}
TOP_CODES = 5

EXIT_MEANINGS = {
    0: "every row succeeded or was skipped",
    1: "some rows failed or were invalid",
    2: "the job could not start",
    3: "the run stopped early and can be resumed",
    4: "the run could not go on after it had started sending; resume it once the cause is fixed",
}


@dataclass(frozen=True)
class NextStep:
    """One thing the user can do next: why, and the command (None when it is advice, not a command)."""

    why: str
    command: str | None = None


def _q(path: Any) -> str:
    return shlex.quote(str(path))


def next_steps(summary: dict[str, Any], run_dir: Path) -> list[NextStep]:
    """What to run next, most urgent first: resume a stopped run, run a clean dry run for real,
    retry failed rows, fix invalid rows and feed errors.csv back."""
    counts = summary.get("counts") or {}
    stopped = summary.get("stopped") or {}
    job_file = summary.get("job_file") or "JOB.toml"
    steps: list[NextStep] = []
    if summary.get("prediction"):  # batchrunner predict (predict.py): nothing was sent
        if counts.get("fail") or counts.get("invalid"):
            steps.append(NextStep("rows predicted to fail or invalid: results.csv says why (_prediction_reason); "
                                  "fix them in the input before the real run"))
        steps.append(NextStep("a prediction sends nothing; to send for real", f"batchrunner run {_q(job_file)}"))
        return steps
    if stopped.get("code") == "DRY_RUN":
        if counts.get("invalid"):
            steps.append(NextStep(f"{counts['invalid']} invalid rows: fix them in errors.csv (the _ columns "
                                  "say why) before the real run"))
        steps.append(NextStep("nothing was sent; to send for real", f"batchrunner run {_q(job_file)}"))
        return steps
    handoff = (summary.get("handoff") or {}).get("counts") or {}
    if stopped or counts.get("not_attempted"):
        steps.append(NextStep("the run stopped early; continue it (rows already done are not sent again)",
                              f"batchrunner resume {_q(run_dir)}"))
    elif handoff.get("pending"):
        steps.append(NextStep("the hand-off to the source is not finished; continue it",
                              f"batchrunner resume {_q(run_dir)}"))
    elif handoff.get("failed") and not counts.get("failed", 0):
        steps.append(NextStep(f"{handoff['failed']} people are still in the source (its removal failed); send "
                              "them again", f"batchrunner retry {_q(run_dir)}"))
    failed, invalid = counts.get("failed", 0), counts.get("invalid", 0)
    retry = f"batchrunner retry {_q(run_dir)}"
    if invalid:
        also = f" (it also holds the {failed} failed rows: this replaces a retry)" if failed else ""
        steps.append(NextStep(f"{invalid} rows were invalid; fix them in errors.csv, then run it{also}",
                              f"batchrunner run {_q(job_file)} --input {_q(Path(run_dir) / 'errors.csv')}"))
        if failed and not summary.get("sync"):
            steps.append(NextStep(f"or send only the {failed} failed rows again now", retry))
    elif failed and not summary.get("sync"):
        steps.append(NextStep(f"{failed} rows failed; send them again in a new run (after fixing the cause if "
                              "the error is not temporary)", retry))
    return steps


def report_paths(run_dir: Path) -> list[Path]:
    """The run's reports that exist, report.html first."""
    names = ("report.html", "results.csv", "errors.csv", "results.xlsx", "errors.xlsx", "summary.json")
    return [Path(run_dir) / n for n in names if (Path(run_dir) / n).exists()]


def use_colour(stream: TextIO) -> bool:
    """Colour for people at a terminal that did not opt out with NO_COLOR."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def render(summary: dict[str, Any], run_dir: Path, *, colour: bool = False) -> str:
    """The end-of-run text for ``summary`` (summary.json's content) of the run in ``run_dir``."""

    def paint(text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if colour else text

    counts = summary.get("counts") or {}
    lines: list[str] = []
    shown = [s for s in STATUS_ORDER if counts.get(s)] + [s for s in counts if s not in STATUS_ORDER and counts[s]]
    total = summary.get("rows", sum(counts.values()))
    parts = [paint(f"{counts[s]} {s}", _COLOURS.get(s, "0")) for s in shown]
    lines.append(f"{total} rows: " + (", ".join(parts) if parts else "no rows"))
    if sync := summary.get("sync"):  # mode = "sync" (sync.py)
        removals = sync.get("removals") or {}
        done = ", ".join(f"{n} {s}" for s, n in (removals.get("counts") or {}).items() if n)
        lines.append(f"sync: {sync['added']} added, {sync['changed']} changed, {sync['unchanged']} unchanged, "
                     f"{sync['left_the_list']} left the list"
                     + (f"; removals: {done} ({removals['report']})" if removals.get("sent") else
                        f"; removals not sent: {removals['why']}" if removals else ""))
    if handoff := summary.get("handoff"):  # migration hand-off (handoff.py)
        done = ", ".join(f"{n} {s}" for s, n in (handoff.get("counts") or {}).items() if n)
        lines.append(f"hand-off, source {handoff['source_platform']}: {done or 'nothing'}"
                     + (f" ({handoff['why']})" if handoff.get("why") else ""))
    if (check := summary.get("verify")) is not None:  # [verify] after_run, or `batchrunner verify` (verify.py)
        lines.append(verify_line(check, colour))
    if (stop := summary.get("stopped")) and stop.get("code") != "DRY_RUN":
        lines.append(paint(f"stopped early: {stop['code']}: {stop['message']}", "1"))
    codes = {c: n for c, n in (summary.get("error_codes") or {}).items() if c != "NOT_ATTEMPTED"}  # said above
    messages = summary.get("error_messages") or {}
    if codes:
        lines.append("by error code:")
        width = max(len(str(n)) for n in codes.values())
        for code, n in list(codes.items())[:TOP_CODES]:
            message = _one_line(messages.get(code) or "")
            lines.append(f"  {n:>{width}} × {code}" + (f": {message}" if message else ""))
        if len(codes) > TOP_CODES:
            rest = sum(list(codes.values())[TOP_CODES:])
            lines.append(f"  … {len(codes) - TOP_CODES} more codes ({rest} rows): see report.html")
    code = summary.get("exit_code")
    if code is not None:
        lines.append(f"exit code {code}: {EXIT_MEANINGS.get(code, 'see batchrunner --help')}")
    paths = report_paths(run_dir)
    if paths:
        lines.append("reports:")
        lines.extend(f"  {p}" for p in paths)
    lines.append(f"run directory: {run_dir}")
    steps = next_steps(summary, run_dir)
    if steps:
        lines.append("next:")
        for step in steps:
            lines.append(f"  {step.why}" + (":" if step.command else ""))
            if step.command:
                lines.append("    " + paint(step.command, "1"))
    return "\n".join(lines)


def verify_line(block: dict[str, Any], colour: bool = False) -> str:
    """One line for summary.json's ``verify`` block: the platform state of the succeeded rows."""
    if block.get("error"):
        return f"verify: not done ({_one_line(block['error'])})"
    counts = block.get("counts") or {}
    parts = ", ".join(f"{n} {v}" for v, n in counts.items() if n) or "no succeeded rows"
    line = f"verify: {parts} ({block.get('requests', 0)} requests); see {block.get('file', 'verify.csv')}"
    bad = counts.get("mismatch", 0) or counts.get("unreadable", 0)
    return f"\033[31m{line}\033[0m" if colour and bad else line


def _one_line(text: str, limit: int = 160) -> str:
    """A platform message on one line, cut to ``limit`` characters (terminal control characters out)."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in str(text)).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
