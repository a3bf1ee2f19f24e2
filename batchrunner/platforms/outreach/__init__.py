"""Outreach: sequence states (enrol, finish, pause, resume, remove), one request per prospect,
with look-ups by email and sequence / mailbox name."""

from batchrunner.platforms.outreach.platform import OutreachPlatform

__all__ = ["OutreachPlatform"]
