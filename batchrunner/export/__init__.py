"""Read-only exports for migrations: Salesloft cadence memberships and Salesforce cadence trackers as CSV.

``batchrunner export salesloft-memberships`` and ``batchrunner export salesforce-trackers``; each
writes a CSV that a migration job (jobs/migrate-*.toml) reads as its input.
"""

from __future__ import annotations

from batchrunner.errors import JobError
from batchrunner.export.common import ExportResult, Reader, export_job, write_csv
from batchrunner.job import Job

__all__ = ["ExportResult", "Reader", "export_job", "run_export", "write_csv"]

WHAT = {"salesloft-memberships": "salesloft", "salesforce-trackers": "salesforce",
        "outreach-sequence-states": "outreach"}


async def run_export(what: str, job: Job, cadences: list[str] | None = None,
                     on_cadence_only: bool = False) -> tuple[ExportResult, list[str]]:
    """Run one export (``what`` as the CLI names it) over ``job``'s connection; return the rows
    and the CSV's columns. Credentials are checked before anything is read."""
    from batchrunner.platforms import get_platform

    platform = WHAT[what]
    try:
        get_platform(platform).endpoint(job)
    except JobError as exc:
        raise JobError(f"{exc} For an export: --sandbox reads the emulator, --job JOB.toml uses a job's "
                       "[connection].") from None
    if platform == "outreach":
        from batchrunner.export.outreach import COLUMNS as OUTREACH_COLUMNS
        from batchrunner.export.outreach import export_sequence_states

        return await export_sequence_states(job, sequences=cadences, live_only=on_cadence_only), OUTREACH_COLUMNS
    if platform == "salesloft":
        from batchrunner.export.salesloft import COLUMNS, export_memberships

        return await export_memberships(job, cadences=cadences, on_cadence_only=on_cadence_only), COLUMNS
    from batchrunner.export.salesforce import COLUMNS, export_trackers

    result = await export_trackers(job, cadences=cadences)
    if on_cadence_only:
        result.notes.append("salesforce-trackers exports active trackers only; --on-cadence-only changes nothing")
    return result, COLUMNS
