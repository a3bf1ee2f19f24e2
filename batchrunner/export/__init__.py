"""Read-only exports for migrations: Salesloft cadence memberships and Salesforce cadence trackers as CSV.

``batchrunner export salesloft-memberships`` and ``batchrunner export salesforce-trackers``; each
writes a CSV that a migration job (jobs/migrate-*.toml) reads as its input.
"""

from batchrunner.export.common import ExportResult, Reader, export_job, write_csv

__all__ = ["ExportResult", "Reader", "export_job", "write_csv"]
