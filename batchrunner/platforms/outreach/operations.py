"""The Outreach operations: sequence states, one JSON:API request per prospect.

Sources: Outreach's OpenAPI document (https://api.outreach.io/api/v2/schema/openapi.json):
``POST /api/v2/sequenceStates`` with prospect, sequence and mailbox relationships;
``POST /api/v2/sequenceStates/{id}/actions/finish|pause|resume``; ``DELETE /api/v2/sequenceStates/{id}``;
look-ups ``filter[emails]`` on prospects, ``filter[name]`` on sequences, ``filter[email]`` on
mailboxes. The spec does not mark ``mailbox`` required; practitioners report enrolment into a
sequence with email steps needs one, so a job may give a default mailbox (docs/outreach.md).
IDs are positive integers: spreadsheet-mangled forms such as ``12.0`` are refused, not repaired.
"""

from __future__ import annotations

from batchrunner.fieldtypes import Email, PositiveInt, Text
from batchrunner.platforms.base import Catalog, Field, Operation

PROSPECT = ("prospect_id", "prospect_email")
SEQUENCE = ("sequence_id", "sequence_name")
MAILBOX = ("mailbox_id", "mailbox_email")
STATE = "sequence_state_id"

_prospect = (
    Field("prospect_id", PositiveInt(), description="Outreach prospect ID"),
    Field("prospect_email", Email(), send=False, description="looked up: GET /api/v2/prospects?filter[emails]="),
)
_sequence = (
    Field("sequence_id", PositiveInt(), description="Outreach sequence ID"),
    Field("sequence_name", Text(), send=False, description="looked up by exact name; two sequences with one name fail"),
)
_user = Field("user_email", Email(), send=False,
              description="send the row as this Outreach user (a key of [outreach.users]); default: the token's user")
_mailbox = (
    Field("mailbox_id", PositiveInt(), description="sending mailbox ID (default: [outreach] mailbox_id of the job)"),
    Field("mailbox_email", Email(), send=False,
          description="looked up: GET /api/v2/mailboxes?filter[email]= (default: [outreach] mailbox_email)"),
)


def _state_operation(name: str, wire: str, description: str, aliases: tuple[str, ...]) -> Operation:
    """finish / pause / resume / remove all name one sequence state: by its id, or prospect + sequence."""
    return Operation(
        name, wire,
        (Field(STATE, PositiveInt(), description="sequence state ID"), *_prospect, *_sequence, _user),
        description,
        one_of=((STATE, *PROSPECT),), one_of_unless=((STATE, SEQUENCE),),
        target_fields=(STATE, *PROSPECT), aliases=aliases,
    )


CATALOG = Catalog(
    "outreach",
    (
        Operation(
            "add", "POST /api/v2/sequenceStates",
            (*_prospect, *_sequence, *_mailbox, _user),
            "Add (enrol) a prospect to a sequence",
            one_of=(PROSPECT, SEQUENCE), at_most_one=(MAILBOX,),
            target_fields=PROSPECT, aliases=("enrol", "enroll", "create_sequence_state", "add_to_sequence"),
        ),
        _state_operation("finish", "POST /api/v2/sequenceStates/{id}/actions/finish",
                         "Finish a prospect's sequence state (ends it; the record stays)",
                         ("finish_sequence_state", "complete")),
        _state_operation("pause", "POST /api/v2/sequenceStates/{id}/actions/pause",
                         "Pause a prospect's sequence state", ("pause_sequence_state",)),
        _state_operation("resume", "POST /api/v2/sequenceStates/{id}/actions/resume",
                         "Resume a paused sequence state", ("resume_sequence_state", "unpause")),
        _state_operation("remove", "DELETE /api/v2/sequenceStates/{id}",
                         "Delete a prospect's sequence state (by ID, or prospect + sequence)",
                         ("delete_sequence_state", "unenrol", "unenroll")),
    ),
)
