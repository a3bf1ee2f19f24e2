"""batchrunner: apply CSV lists of cadence operations in bulk to sales-engagement platforms."""

__version__ = "0.1.0"
