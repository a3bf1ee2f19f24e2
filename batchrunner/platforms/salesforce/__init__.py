"""Salesforce Sales Engagement: the eight standard cadence actions, sent as `inputs` arrays."""

from batchrunner.platforms.salesforce.platform import SalesforcePlatform

__all__ = ["SalesforcePlatform"]
