"""An in-process emulator of the Salesforce Sales Engagement actions and Salesloft APIs.

The sandbox is part of the product: demo jobs target it, tests lean on it, and every rule it
enforces cites the document it comes from (summarised with its public source in ``docs/platforms.md``).
"""

from batchrunner.sandbox.base import Emulator, SandboxRequest, SandboxResponse

__all__ = ["Emulator", "SandboxRequest", "SandboxResponse"]
