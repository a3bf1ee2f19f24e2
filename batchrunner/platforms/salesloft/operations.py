"""The Salesloft operations: cadence memberships, one request per person.

Source: Salesloft's "Create a cadence membership" reference (developers.salesloft.com; docs/platforms.md) (person_id / cadence_id required, optional user_id,
step_id, task_id as query parameters) and docs/platforms.md (remove is DELETE /v2/cadence_memberships/{id};
look-ups by email, crm_id, cadence name, user email). IDs are positive integers: spreadsheet-mangled
forms such as ``12.0`` or ``1.2E+05`` are refused rather than repaired.
"""

from __future__ import annotations

from batchrunner.fieldtypes import Email, PositiveInt, Text
from batchrunner.platforms.base import Catalog, Field, Operation

PERSON = ("person_id", "person_email", "person_crm_id")
CADENCE = ("cadence_id", "cadence_name")

_person = (
    Field("person_id", PositiveInt(), description="Salesloft person ID"),
    Field("person_email", Email(), send=False, description="looked up: GET /v2/people?email_addresses[]="),
    Field("person_crm_id", Text(), send=False, description="looked up: GET /v2/people?crm_id[]= (e.g. a Salesforce ID)"),
)
_cadence = (
    Field("cadence_id", PositiveInt(), description="Salesloft cadence ID"),
    Field("cadence_name", Text(), send=False, description="looked up by exact name; two cadences with one name fail"),
)

CATALOG = Catalog(
    "salesloft",
    (
        Operation(
            "add", "POST /v2/cadence_memberships",
            (
                *_person, *_cadence,
                Field("user_id", PositiveInt(), description="acting user (defaults to the API key's user)"),
                Field("user_email", Email(), send=False, description="looked up in the team's users"),
                Field("step_id", PositiveInt(), description="start on this step"),
                Field("task_id", PositiveInt(), description="task completed by this enrolment"),
            ),
            "Add (enrol) a person to a cadence",
            one_of=(PERSON, CADENCE), at_most_one=(("user_id", "user_email"),),
            target_fields=PERSON, aliases=("enrol", "enroll", "create_cadence_membership"),
        ),
        Operation(
            "remove", "DELETE /v2/cadence_memberships/{id}",
            (Field("membership_id", PositiveInt(), description="cadence membership ID"), *_person, *_cadence),
            "Remove a person from a cadence (by membership ID, or person + cadence)",
            one_of=(("membership_id", *PERSON),), one_of_unless=(("membership_id", CADENCE),),
            target_fields=("membership_id", *PERSON), aliases=("unenrol", "unenroll", "delete_cadence_membership"),
        ),
    ),
)
