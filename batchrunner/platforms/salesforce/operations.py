"""The catalog of the eight Salesforce Sales Engagement cadence actions.

Source: Salesforce's Sales Engagement invocable-actions reference (developer.salesforce.com; docs/platforms.md) (fields, required rules, enumerations, minimum API
versions) and docs/platforms.md (where the seed disagrees with itself).
"""

from __future__ import annotations

from batchrunner.fieldtypes import Boolean, Choice, DateTimeUTC, Text
from batchrunner.platforms.base import Catalog, Field, Operation
from batchrunner.platforms.salesforce.ids import SalesforceId

TARGET = SalesforceId("Lead", "Contact", "Account")  # seed: "contact, a lead, or person account"
USER = SalesforceId("User")
RELATED = SalesforceId("Opportunity", "Invoice")  # seed: "related opportunity or invoice"
TRACKER = SalesforceId("ActionCadenceTracker")
STEP_TRACKER = SalesforceId("ActionCadenceStepTracker")

DISPOSITIONS = (
    "Success", "Customer Engaged", "Customer Connected", "Contact Later", "No Response",
    "Not Interested", "Disqualified", "Bad Data", "Duplicate",
)
ATTRIBUTION = ("Activation", "Maturation", "Collected")
#: seed table: "Skip or ManualComplete"; its sample sends "Manual Complete". docs/platforms.md: accept
#: both, send the table's spelling unless the job overrides the wire value.
EVENT_TYPES = ("Skip", "ManualComplete")


def _related() -> tuple[Field, ...]:
    return (
        Field("relatedToId", RELATED, description="Related opportunity or invoice (needs the org setting)"),
        Field("relatedToAttributionType", Choice(ATTRIBUTION)),
    )


def build_catalog(wire_values: dict[str, dict[str, str]] | None = None) -> Catalog:
    """The catalog; ``wire_values`` lets a job choose what is sent for an enumeration value
    (e.g. ``{"eventType": {"ManualComplete": "Manual Complete"}}``)."""
    wire = wire_values or {}
    ops = (
        Operation(
            "assign", "assignTargetToSalesCadence",
            (
                Field("salesCadenceNameOrId", Text(), required=True, description="Cadence name or 77C… ID"),
                Field("targetId", TARGET, required=True),
                Field("startStepNameOrId", Text(), description="Step name or ID to start on"),
                Field("userId", USER, description="Target assignee (defaults to the running user)"),
                Field("relatedToId", RELATED),
            ),
            "Add a lead, contact or person account to a cadence",
            target_fields=("targetId",), min_api_version=45.0,
        ),
        Operation(
            "remove", "removeTargetFromSalesCadence",
            (
                Field("targetId", TARGET),
                Field("actionCadenceTrackerId", TRACKER),
                Field("completionReasonCode", Choice(("ManuallyRemoved",)), required=True, default="ManuallyRemoved",
                      description="Only ManuallyRemoved is valid; filled in when absent"),
                Field("completionDisposition", Choice(DISPOSITIONS, wire.get("completionDisposition", {}))),
                *_related(),
                Field("shouldApplyUserContext", Boolean(), description="Only trackers owned by the running user"),
            ),
            "Remove a target from its cadence",
            one_of=(("targetId", "actionCadenceTrackerId"),),
            target_fields=("targetId", "actionCadenceTrackerId"), min_api_version=45.0,
        ),
        Operation(
            "pause", "pauseSalesCadenceTracker",
            (Field("targetId", TARGET, required=True), Field("resumeTime", DateTimeUTC())),
            "Pause a target in its cadence", target_fields=("targetId",), min_api_version=50.0,
        ),
        Operation(
            "resume", "resumeSalesCadenceTracker",
            (Field("targetId", TARGET, required=True),),
            "Resume a paused target", target_fields=("targetId",), min_api_version=50.0,
        ),
        Operation(
            "change_assignee", "changeSalesCadenceTargetAssignee",
            (Field("targetId", TARGET, required=True), Field("userId", USER)),
            "Give a target's cadence to another rep", target_fields=("targetId",), min_api_version=50.0,
        ),
        Operation(
            "modify_tracker", "modifyCadenceTrackerAttributes",
            (
                Field("actionCadenceTrackerId", TRACKER, required=True),
                Field("completionDisposition", Choice(DISPOSITIONS, wire.get("completionDisposition", {}))),
                *_related(),
            ),
            "Set a cadence tracker's disposition or related record",
            target_fields=("actionCadenceTrackerId",), min_api_version=51.0,
        ),
        Operation(
            "send_event", "sendSalesCadenceEvent",
            (
                Field("recordId", STEP_TRACKER, required=True),
                Field("eventType", Choice(EVENT_TYPES, wire.get("eventType", {})), required=True),
            ),
            "Skip or manually complete a cadence step", target_fields=("recordId",), min_api_version=52.0,
        ),
        Operation(
            "select_template", "selectTemplateForSalesCadenceStepTracker",
            (Field("stepTrackerId", STEP_TRACKER, required=True),),
            "Get the email template or call script for a step", target_fields=("stepTrackerId",),
            min_api_version=53.0,
        ),
    )
    return Catalog("salesforce", ops)


CATALOG = build_catalog()
