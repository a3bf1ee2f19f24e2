from pathlib import Path

import polars as pl

from batchrunner.plan import plan
from batchrunner.platforms.salesforce.ids import checksum
from batchrunner.platforms.salesforce.operations import CATALOG
from batchrunner.source import OPERATION, LoadedInput
from batchrunner.validate import validate


def lead(n: int) -> str:
    base = f"00Q5e{n:010d}"
    return base + checksum(base)


def validated(rows: list[dict]) -> pl.DataFrame:
    names = sorted({k for r in rows for k in r})
    frame = pl.DataFrame([{n: r.get(n) for n in names} for r in rows], schema={n: pl.String for n in names})
    frame = frame.rename({"op": OPERATION})
    return validate(LoadedInput(Path("x"), "0", frame, frame), CATALOG, 62.0)


SIZES = {op.name: 200 for op in CATALOG.operations}


def test_450_rows_make_200_200_50_in_file_order():
    rows = [{"op": "assign", "targetId": lead(i), "salesCadenceNameOrId": "Q4"} for i in range(450)]
    result = plan(validated(rows), CATALOG, SIZES)
    assert len(result.waves) == 1
    assert [len(u.rows) for u in result.waves[0]] == [200, 200, 50]
    assert [r for u in result.waves[0] for r in u.rows] == list(range(450))
    assert result.requests == 3 and result.rows_to_send == 450


def test_groups_by_operation_and_skips_invalid():
    rows = [
        {"op": "assign", "targetId": lead(1), "salesCadenceNameOrId": "Q4"},
        {"op": "pause", "targetId": lead(2)},
        {"op": "assign", "targetId": "bad", "salesCadenceNameOrId": "Q4"},
        {"op": "assign", "targetId": lead(3), "salesCadenceNameOrId": "Q4"},
        {"op": "pause", "targetId": lead(4)},
    ]
    result = plan(validated(rows), CATALOG, SIZES)
    units = {(u.operation, tuple(u.rows)) for u in result.waves[0]}
    assert units == {("assign", (0, 3)), ("pause", (1, 4))}
    assert result.rows_by_operation == {"assign": 2, "pause": 2}


def test_rows_for_one_target_go_in_file_order_across_waves():
    target = lead(7)
    rows = [
        {"op": "assign", "targetId": target, "salesCadenceNameOrId": "Q4"},
        {"op": "assign", "targetId": lead(8), "salesCadenceNameOrId": "Q4"},
        {"op": "pause", "targetId": target},
        {"op": "resume", "targetId": target},
        {"op": "remove", "targetId": lead(8)},
    ]
    result = plan(validated(rows), CATALOG, SIZES)
    waves = [[(u.operation, u.rows) for u in wave] for wave in result.waves]
    assert waves == [[("assign", [0, 1])], [("pause", [2]), ("remove", [4])], [("resume", [3])]]


def test_15_and_18_char_forms_are_one_target():
    base = "00Q5e00000AbCdE"
    rows = [{"op": "assign", "targetId": base, "salesCadenceNameOrId": "Q4"},
            {"op": "pause", "targetId": base + checksum(base)}]
    assert len(plan(validated(rows), CATALOG, SIZES).waves) == 2


def test_exact_duplicates_are_skipped_once_sent():
    rows = [
        {"op": "assign", "targetId": lead(1), "salesCadenceNameOrId": "Q4"},
        {"op": "assign", "targetId": lead(1)[:15], "salesCadenceNameOrId": "Q4"},  # same after normalising
        {"op": "assign", "targetId": lead(1), "salesCadenceNameOrId": "Other"},  # conflicting: both applied
    ]
    result = plan(validated(rows), CATALOG, SIZES)
    assert [(d.row, d.code) for d in result.duplicates] == [(1, "DUPLICATE_ROW")]
    assert "row 1" in result.duplicates[0].message
    assert [[u.rows for u in w] for w in result.waves] == [[[0]], [[2]]]
