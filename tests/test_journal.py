"""The journal's event log: every row's state is derived from start / release / finish events."""

import json

from batchrunner.journal import Journal
from batchrunner.outcome import RowOutcome, Status


def states(journal):
    return {r[0]: r[1:] for r in journal.all_rows()}


def test_rows_move_pending_in_flight_done_and_back(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    journal.add_rows(5)
    journal.start([0, 1, 2])
    journal.finish([RowOutcome(0, Status.SUCCEEDED, result={"id": "x"}, attempts=1)])
    journal.release([1])
    journal.start([3])
    journal.start([3])  # re-sent: two attempts
    got = states(journal)
    assert [got[i][0] for i in range(5)] == ["done", "pending", "in_flight", "in_flight", "pending"]
    assert got[0][1] == "succeeded" and json.loads(got[0][5]) == {"id": "x"} and got[0][6].endswith("Z")
    assert [got[i][4] for i in range(5)] == [1, 1, 1, 2, 0]
    assert journal.indices("in_flight") == [2, 3]
    assert journal.counts() == {"succeeded": 1, "not_attempted": 4}


def test_the_last_outcome_wins_and_a_reopened_journal_sees_everything(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    journal.add_rows(3)
    journal.finish_columns([0, 1], ["invalid", "invalid"], ["A", "B"], ["bad a", "bad b"])
    journal.start([2])
    journal.finish([RowOutcome(2, Status.FAILED, "X", "no", attempts=1)])
    journal.start([2])
    journal.finish([RowOutcome(2, Status.SUCCEEDED, attempts=2)])
    journal.close()
    again = Journal(tmp_path / "j.sqlite")
    got = states(again)
    assert got[0][:4] == ("done", "invalid", "A", "bad a")
    assert got[2][:2] == ("done", "succeeded") and got[2][4] == 2
    assert again.row_count() == 3 and again.counts() == {"invalid": 2, "succeeded": 1}
