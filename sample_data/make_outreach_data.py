"""Regenerate the Outreach sandbox seed and demo CSVs (deterministic):
``python sample_data/make_outreach_data.py``. The prospects are the Salesloft seed team's people
(same names and emails, Outreach ids 80001...), so migration demos can move people between the two."""

from __future__ import annotations

import csv
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    team = json.loads((HERE / "sandbox" / "salesloft_team.json").read_text(encoding="utf-8"))
    people = team["people"][:40]
    prospects = [{"id": 80001 + i, "emails": [p["email_address"]], "first_name": p["first_name"],
                  "last_name": p["last_name"], "company": p.get("company")} for i, p in enumerate(people)]
    prospects[7]["emails"] = []  # no email at all: cannot be added to a sequence with email steps
    prospects[8]["undeliverable"] = True  # bounced address: no deliverable email
    prospects.append({"id": 80101, "emails": [people[9]["email_address"]], "first_name": "Duplicate",
                      "last_name": "Record", "company": None})  # two prospects share an email: ambiguous
    sequences = [
        {"id": 301, "name": "Q4 Outbound", "email_steps": True},
        {"id": 302, "name": "Inbound Demo Request", "email_steps": True},
        {"id": 303, "name": "Call Blitz", "email_steps": False},
        {"id": 304, "name": "Renewal Nurture", "email_steps": True},
        {"id": 305, "name": "Renewal Nurture", "email_steps": True},  # one name, two sequences: ambiguous
    ]
    mailboxes = [{"id": 11, "email": "dana.whitaker@acme.example.com", "user_id": 1},
                 {"id": 12, "email": "rafael.ortiz@acme.example.com", "user_id": 2},
                 {"id": 13, "email": "busy.sender@acme.example.com", "user_id": 3, "daily_limit_reached": True}]
    states = [{"id": 600001 + i, "prospect_id": 80021 + i, "sequence_id": 301, "mailbox_id": 11,
               "state": ["active", "paused", "active", "finished", "active", "pending"][i]} for i in range(6)]
    org = {"name": "Acme Outreach (sandbox)",
           "users": [{"id": 1, "name": "Dana Whitaker", "email": "dana.whitaker@acme.example.com"},
                     {"id": 2, "name": "Rafael Ortiz", "email": "rafael.ortiz@acme.example.com"},
                     {"id": 3, "name": "Busy Sender", "email": "busy.sender@acme.example.com"}],
           "tokens": {"sandbox-outreach-token": 1, "sandbox-outreach-token-rafael": 2,
                      "sandbox-outreach-token-busy": 3},
           "refresh_tokens": {"sandbox-refresh-token": 1},
           "prospects": prospects, "sequences": sequences, "mailboxes": mailboxes, "sequence_states": states}
    (HERE / "sandbox" / "outreach_org.json").write_text(json.dumps(org, indent=1) + "\n", encoding="utf-8")

    def email(i: int) -> str:
        return people[i]["email_address"]

    enrol = [(email(i), "Q4 Outbound", "") for i in range(0, 6)]
    enrol += [(email(10), "Inbound Demo Request", "rafael.ortiz@acme.example.com"),
              (email(11), "Call Blitz", ""),
              (email(12), "Inbound Demo Request", "busy.sender@acme.example.com"),  # accepted, pending
              (email(21), "Q4 Outbound", ""),  # paused (still in the sequence): skipped
              (email(22), "Q4 Outbound", ""),  # already active: skipped
              ("nobody@nowhere.example.com", "Q4 Outbound", ""),  # no such prospect: failed
              (email(13), "No Such Sequence", ""),  # failed
              (email(14), "Renewal Nurture", ""),  # two sequences with this name: failed
              (email(8), "Q4 Outbound", ""),  # undeliverable: failed (422)
              (email(9), "Q4 Outbound", ""),  # two prospects with this email: failed
              ("not-an-email", "Q4 Outbound", ""),  # invalid
              (email(15), "", "")]  # no sequence: invalid
    with (HERE / "outreach_enrolment.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["Email", "Sequence", "Mailbox"])
        w.writerows(enrol)
    changes = [("pause", email(20), "Q4 Outbound", ""), ("pause", email(22), "Q4 Outbound", ""),
               ("resume", email(22), "Q4 Outbound", ""), ("finish", email(24), "Q4 Outbound", ""),
               ("finish", email(23), "Q4 Outbound", ""), ("remove", "", "", "600006"),
               ("remove", email(30), "Q4 Outbound", ""), ("finish", "", "", "699999"),
               ("resume", email(21), "Q4 Outbound", ""), ("stop", email(20), "Q4 Outbound", ""),
               ("pause", email(25), "", "")]
    with (HERE / "outreach_state_changes.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["Action", "Email", "Sequence", "State Id"])
        w.writerows(changes)


if __name__ == "__main__":
    main()
