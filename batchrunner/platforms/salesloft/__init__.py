"""Salesloft: cadence memberships, one request per person, with look-ups by email and name."""

from batchrunner.platforms.salesloft.platform import SalesloftPlatform

__all__ = ["SalesloftPlatform"]
