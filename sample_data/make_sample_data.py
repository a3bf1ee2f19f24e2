"""Regenerate the sandbox seeds and the demo CSVs (deterministic). Run from anywhere:
``python sample_data/make_sample_data.py``. The files it writes are committed; this script only
documents how they were made and keeps their IDs valid (18-character IDs need a checksum)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from batchrunner.platforms.salesforce.ids import to18

HERE = Path(__file__).resolve().parent
rng = random.Random(20261123)

FIRST = ["Maya", "Jonas", "Priya", "Liam", "Sofia", "Ethan", "Amara", "Noah", "Chloe", "Mateo", "Hannah", "Ravi",
         "Olivia", "Kenji", "Isabel", "Marcus", "Fatima", "Lucas", "Grace", "Diego", "Elena", "Samuel", "Aisha",
         "Tomás", "Nora", "Oscar", "Leah", "Arjun", "Zoe", "Felix", "Ingrid", "Kwame", "Yara", "Henrik", "Mei",
         "Caleb", "Lucía", "Omar", "Freya", "Daniel", "Anika", "Bruno", "Clara", "Dmitri", "Eva"]
LAST = ["Okafor", "Lindqvist", "Raman", "Brennan", "Moreau", "Whitfield", "Nwosu", "Keller", "Dubois", "Alvarez",
        "Schmidt", "Patel", "Hughes", "Tanaka", "Ferreira", "Bell", "Haddad", "Costa", "Murphy", "Ortega", "Petrov",
        "Adeyemi", "Khan", "Silva", "Berg", "Nakamura", "Walsh", "Mehta", "Fischer", "Novak", "Larsen", "Mensah",
        "Rossi", "Holm", "Chen", "Foster", "Romero", "Aziz", "Nilsson", "Wright", "Kapoor", "Lopes", "Weber",
        "Ivanova", "Jensen"]
COMPANIES = ["Northwind Logistics", "Brightpath Analytics", "Cobalt Health", "Evergreen Foods", "Helix Robotics",
             "Lumen Retail", "Meridian Capital", "Orbit Telecom", "Pioneer Freight", "Quanta Energy",
             "Redwood Learning", "Summit Insurance", "Tidewater Marine", "Vertex Manufacturing", "Wavelength Media"]


def sfid(prefix: str, n: int) -> str:
    return to18(f"{prefix}5e{n:010d}")


def person(i: int) -> dict[str, str]:
    first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
    company = COMPANIES[i % len(COMPANIES)]
    domain = company.split()[0].lower() + ".example.com"
    return {"first_name": first, "last_name": last, "company": company,
            "email": f"{first.lower().replace('á', 'a').replace('í', 'i')}.{last.lower()}@{domain}"}


#: Salesloft people (700NN) whose crm_id is a lead in the org and who are on a Salesloft cadence
SYNCED_PEOPLE = (3, 21, 24, 30, 36)
#: ... and those synced as contacts (their crm_id is a contact ID)
SYNCED_CONTACTS = (4, 22, 23, 25)
#: migration demo: when the seed's memberships were last touched (fixed, so exports are reproducible)
STAMP = "2026-11-02T09:00:00.000000+00:00"


def salesforce() -> None:
    users = [{"id": sfid("005", n), "name": name, "email": email} for n, (name, email) in enumerate([
        ("Integration User", "integration@acme.example.com"), ("Dana Whitaker", "dana.whitaker@acme.example.com"),
        ("Rafael Ortiz", "rafael.ortiz@acme.example.com"), ("Keiko Sato", "keiko.sato@acme.example.com")], 1)]

    def steps(cadence: int, names: list[str], splits: list[list[int]]) -> list[dict]:
        out = []
        for s, (name, split) in enumerate(zip(names, splits, strict=True)):
            out.append({"id": sfid("0qC", cadence * 10 + s), "name": name, "templates": [
                {"id": sfid("00X", cadence * 100 + s * 10 + t), "split": p} for t, p in enumerate(split)]})
        return out

    cadences = [
        {"id": sfid("77C", 1), "name": "Q4 Outbound", "state": "Active",
         "steps": steps(1, ["Intro email", "Follow-up call", "Breakup email"], [[70, 30], [100], [100]])},
        {"id": sfid("77C", 2), "name": "Webinar Follow-up", "state": "Active",
         "steps": steps(2, ["Thanks for attending", "Recording + deck", "Manual LinkedIn touch"], [[100], [100], []])},
        {"id": sfid("77C", 3), "name": "Inbound Nurture", "state": "Active",
         "steps": steps(3, ["Welcome", "Case study", "Check-in call"], [[50, 50], [100], [100]])},
        {"id": sfid("77C", 4), "name": "Legacy Q2", "state": "Inactive", "steps": steps(4, ["Old intro"], [[100]])},
    ]
    leads = [{"id": sfid("00Q", n), **person(n)} for n in range(1, 41)]
    # migration demo: the leads that Salesloft people on cadences carry as crm_id (see salesloft())
    leads += [{"id": sfid("00Q", 500 + n), **person(300 + n)} for n in SYNCED_PEOPLE]
    contacts = [{"id": sfid("003", n), **person(100 + n)} for n in range(1, 11)]
    contacts += [{"id": sfid("003", 500 + n), **person(300 + n)} for n in SYNCED_CONTACTS]  # migration demo
    accounts = [{"id": sfid("001", n), **person(200 + n)} for n in range(1, 4)]
    trackers = []
    # leads 31-36 and contacts 1-4 are already on cadences (some paused); step trackers fixed for the demo
    for k, target in enumerate([l["id"] for l in leads[30:36]] + [c["id"] for c in contacts[:4]]):
        trackers.append({"id": sfid("0qB", k + 1), "target_id": target, "cadence_id": cadences[k % 3]["id"],
                         "owner_id": users[1 + k % 3]["id"], "state": "Paused" if k in (2, 5) else "Running",
                         "current_step": 2 if k == 7 else k % 3, "step_tracker_id": sfid("8HF", k + 1)})
    org = {"name": "Acme Sandbox Org", "related_records_enabled": False, "users": users, "cadences": cadences,
           "leads": leads, "contacts": contacts, "person_accounts": accounts, "trackers": trackers,
           "related_records": [sfid("006", 1), sfid("006", 2)], "locked_targets": []}
    (HERE / "sandbox" / "salesforce_org.json").write_text(json.dumps(org, indent=1, ensure_ascii=False) + "\n",
                                                          encoding="utf-8")

    # weekly assign: leads 1-20 (succeed), 31 (already in a cadence), an unknown lead, bad rows, a duplicate
    rows = []
    for lead in leads[:20]:
        lid = lead["id"][:15] if rng.random() < 0.4 else lead["id"]
        rows.append([lid, lead["first_name"], lead["last_name"], lead["company"], lead["email"]])
    rows.insert(6, [leads[30]["id"], leads[30]["first_name"], leads[30]["last_name"], leads[30]["company"],
                    leads[30]["email"]])  # already in a cadence -> failed
    rows.insert(11, [sfid("00Q", 999), "Ghost", "Record", "Nowhere Ltd", "ghost.record@nowhere.example.com"])
    bad = leads[20]["id"][:15] + ("AAA" if not leads[20]["id"].endswith("AAA") else "AAB")
    rows.insert(14, [bad, leads[20]["first_name"], leads[20]["last_name"], leads[20]["company"], leads[20]["email"]])
    rows.insert(17, [users[2]["id"], "Rafael", "Ortiz", "Acme", "rafael.ortiz@acme.example.com"])  # a User id
    rows.insert(19, ["", "Pat", "Unknown", "Blank Id Co", "pat@blank.example.com"])
    rows.append(list(rows[3]))  # an exact duplicate line -> skipped
    _csv(HERE / "salesforce_weekly_leads.csv", ["Lead Id", "First Name", "Last Name", "Company", "Email"], rows)

    # mixed actions
    L = [l["id"] for l in leads]
    mixed = [
        ["assign", L[21], "Q4 Outbound", "", ""],
        ["assign", L[22], "Inbound Nurture", "", ""],
        ["assign", L[23], "Webinar Follow-up", "", ""],
        ["pause", L[21], "", "", "2026-12-01T09:00:00+01:00"],          # after its assign above (file order)
        ["pauseSalesCadenceTracker", L[31], "", "", ""],
        ["resume", L[32], "", "", ""],                                    # seeded as paused
        ["resume", L[33], "", "", ""],                                    # running, not paused -> failed
        ["remove", L[34], "", "Not Interested", ""],
        ["remove", L[30], "", "Customer Engaged", ""],
        ["removeTargetFromSalesCadence", L[35], "", "No Response", ""],
        ["remove", L[24], "", "Maybe Later", ""],                         # not a disposition -> invalid
        ["assign", L[34], "Q4 Outbound", "", ""],                         # after its removal: back on a cadence
        ["resume", L[21][:15], "", "", ""],                               # after its pause (15-char form)
    ]
    _csv(HERE / "salesforce_mixed_actions.csv", ["Action", "Record Id", "Cadence", "Disposition", "Resume At"], mixed)

    names = {t["id"]: next(p for p in leads + contacts if p["id"] == t["target_id"]) for t in trackers}
    template_rows = []
    for t in trackers[:8]:
        who = names[t["id"]]
        template_rows.append([t["step_tracker_id"], f"{who['first_name']} {who['last_name']}"])
    template_rows.append(["8HF5e00000ZZZ", "Typo Id"])  # wrong length/shape -> invalid
    template_rows.append([sfid("8HF", 777), "Removed Step"])  # valid id the org doesn't have -> failed
    _csv(HERE / "salesforce_select_template.csv", ["Step Tracker Id", "Target Name"], template_rows)


def salesloft() -> None:
    users = [
        {"id": 101, "name": "Dana Whitaker", "email": "dana.whitaker@acme.example.com", "admin": True,
         "personal_cadence_admin": True},
        {"id": 102, "name": "Rafael Ortiz", "email": "rafael.ortiz@acme.example.com"},
        {"id": 103, "name": "Keiko Sato", "email": "keiko.sato@acme.example.com"},
        {"id": 104, "name": "Sam Reyes", "email": "sam.reyes@acme.example.com"},
        {"id": 105, "name": "Integration Bot", "email": "integrations@acme.example.com"},
    ]
    keys = {"sandbox-key": 105, "sandbox-key-dana": 101, "sandbox-key-rafael": 102}
    cadences = [
        {"id": 5001, "name": "Q4 Outbound", "team_cadence": True, "owner_id": 101, "step_ids": [50011, 50012, 50013]},
        {"id": 5002, "name": "Webinar Follow-up", "team_cadence": True, "owner_id": 101, "step_ids": [50021, 50022]},
        {"id": 5003, "name": "Webinar Follow-up", "team_cadence": False, "shared": True, "owner_id": 103,
         "step_ids": [50031]},
        {"id": 5004, "name": "Inbound Demo Request", "team_cadence": True, "owner_id": 101, "step_ids": [50041, 50042]},
        {"id": 5005, "name": "Customer Expansion", "team_cadence": True, "owner_id": 102, "step_ids": [50051]},
        {"id": 5006, "name": "Rafael's Personal Touch", "team_cadence": False, "owner_id": 102, "step_ids": [50061]},
    ]
    people = []
    for n in range(1, 46):
        p = person(300 + n)
        people.append({"id": 70000 + n, "first_name": p["first_name"], "last_name": p["last_name"],
                       "email_address": p["email"], "company": p["company"], "owner_id": users[n % 4]["id"],
                       "crm_id": sfid("00Q", 500 + n) if n % 3 == 0 else None})
    for n in SYNCED_CONTACTS:  # migration demo: synced from Salesforce contacts
        people[n - 1]["crm_id"] = sfid("003", 500 + n)
    # two people share one email (a merged-contact leftover): looking it up is ambiguous
    people.append({"id": 70099, "first_name": people[9]["first_name"], "last_name": people[9]["last_name"],
                   "email_address": people[9]["email_address"].upper(), "company": people[9]["company"],
                   "owner_id": 102, "crm_id": None})
    memberships = [
        {"id": 8000001, "person_id": 70003, "cadence_id": 5001, "user_id": 101},
        {"id": 8000002, "person_id": 70004, "cadence_id": 5001, "user_id": 101},
        {"id": 8000003, "person_id": 70021, "cadence_id": 5004, "user_id": 102},
        {"id": 8000004, "person_id": 70022, "cadence_id": 5004, "user_id": 102},
        {"id": 8000005, "person_id": 70023, "cadence_id": 5005, "user_id": 102},
        {"id": 8000006, "person_id": 70024, "cadence_id": 5001, "user_id": 103},
        {"id": 8000007, "person_id": 70025, "cadence_id": 5001, "user_id": 103},
        {"id": 8000008, "person_id": 70005, "cadence_id": 5001, "user_id": 101, "currently_on_cadence": False},
        # migration demo: more synced people on cadences (Salesloft -> Salesforce)
        {"id": 8000009, "person_id": 70030, "cadence_id": 5005, "user_id": 102},
        {"id": 8000010, "person_id": 70036, "cadence_id": 5002, "user_id": 101},
    ]
    for k, m in enumerate(memberships):
        stamp = STAMP.replace("09:00:00", f"09:{k:02d}:00")
        m.update(created_at=stamp, added_at=stamp, updated_at=stamp)
    # migration demo (Salesforce -> Salesloft): the people the org's cadence trackers target, synced to
    # Salesloft with their Salesforce ID as crm_id, on no Salesloft cadence yet. The sample names repeat, so
    # these records get an address of their own (".sf") that no other demo row uses.
    org = json.loads((HERE / "sandbox" / "salesforce_org.json").read_text(encoding="utf-8"))
    by_id = {r["id"]: r for r in org["leads"] + org["contacts"]}
    for k, tracker in enumerate(org["trackers"]):
        target = by_id[tracker["target_id"]]
        people.append({"id": 70101 + k, "first_name": target["first_name"], "last_name": target["last_name"],
                       "email_address": target["email"].replace("@", ".sf@"), "company": target["company"],
                       "owner_id": 101,
                       "crm_id": target["id"]})
    team = {"name": "Acme Sales (sandbox)", "users": users, "api_keys": keys, "cadences": cadences,
            "people": people, "memberships": memberships}
    (HERE / "sandbox" / "salesloft_team.json").write_text(json.dumps(team, indent=1, ensure_ascii=False) + "\n",
                                                          encoding="utf-8")
    byid = {p["id"]: p for p in people}
    rows = []
    for pid in range(70001, 70019):
        p = byid[pid]
        email = p["email_address"].title() if pid == 70007 else p["email_address"]  # mixed case still matches
        rows.append([email, p["first_name"], p["last_name"], p["company"],
                     "Inbound Demo Request" if pid % 4 == 0 else "Q4 Outbound"])
    rows.insert(5, ["olga.unknown@nowhere.example.com", "Olga", "Unknown", "Nowhere Ltd", "Q4 Outbound"])
    rows.insert(9, [byid[70019]["email_address"], byid[70019]["first_name"], byid[70019]["last_name"],
                    byid[70019]["company"], "Webinar Follow-up"])  # two cadences with that name
    rows.insert(12, ["not-an-email", "Broken", "Row", "Typo Inc", "Q4 Outbound"])
    rows.insert(14, [byid[70010]["email_address"], byid[70010]["first_name"], byid[70010]["last_name"],
                     byid[70010]["company"], "Customer Expansion"])  # two people with that email
    rows.append([byid[70020]["email_address"], byid[70020]["first_name"], byid[70020]["last_name"],
                 byid[70020]["company"], "Q4 Outbound Campaign"])  # no such cadence
    rows.append(list(rows[1]))  # an exact duplicate line
    _csv(HERE / "salesloft_weekly_enrolment.csv", ["Email", "First Name", "Last Name", "Company", "Cadence"], rows)
    removals = [[byid[70021]["email_address"], "Inbound Demo Request"],
                [byid[70022]["email_address"], "Inbound Demo Request"],
                [byid[70023]["email_address"], "Customer Expansion"],
                [byid[70024]["email_address"], "Q4 Outbound"],
                [byid[70025]["email_address"].upper(), "Q4 Outbound"],
                [byid[70026]["email_address"], "Q4 Outbound"],  # not on it -> skipped
                [byid[70005]["email_address"], "Q4 Outbound"],  # removed earlier -> skipped
                ["someone@nowhere.example.com", "Q4 Outbound"]]  # unknown person -> failed
    _csv(HERE / "salesloft_removals.csv", ["Email", "Cadence"], removals)


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def migration() -> None:
    """The migration demo's inputs: what `batchrunner export` reads from the seeds, and the cadence maps."""
    import anyio

    from batchrunner.export import export_job, write_csv
    from batchrunner.export.salesforce import COLUMNS as SF_COLUMNS
    from batchrunner.export.salesforce import export_trackers
    from batchrunner.export.salesloft import COLUMNS as SL_COLUMNS
    from batchrunner.export.salesloft import export_memberships

    folder = HERE / "migration"
    folder.mkdir(exist_ok=True)
    sl = anyio.run(lambda: export_memberships(export_job("salesloft", sandbox=True), on_cadence_only=True))
    write_csv(folder / "salesloft_memberships.csv", sl.rows, SL_COLUMNS)
    sf = anyio.run(lambda: export_trackers(export_job("salesforce", sandbox=True)))
    write_csv(folder / "salesforce_trackers.csv", sf.rows, SF_COLUMNS)
    _csv(folder / "salesloft_to_salesforce_cadences.csv", ["salesloft_cadence", "salesforce_cadence"], [
        ["Q4 Outbound", "Q4 Outbound"], ["Inbound Demo Request", "Inbound Nurture"],
        ["Webinar Follow-up", "Webinar Follow-up"], ["Customer Expansion", "Inbound Nurture"]])  # two -> one
    # Salesloft has two cadences named "Webinar Follow-up": map to the team cadence's ID, not the name
    _csv(folder / "salesforce_to_salesloft_cadences.csv", ["salesforce_cadence", "salesloft_cadence_id"], [
        ["Q4 Outbound", "5001"], ["Webinar Follow-up", "5002"], ["Inbound Nurture", "5004"]])


if __name__ == "__main__":
    (HERE / "sandbox").mkdir(exist_ok=True)
    salesforce()
    salesloft()
    migration()
