import polars as pl
import pytest

from batchrunner.platforms.salesforce.ids import InvalidId, checksum, object_of, to18, to18_expr

VECTORS = {  # docs/platforms.md "Record IDs"
    "001M000000qfPyS": "001M000000qfPySIAU",
    "a0FE000000D6r3F": "a0FE000000D6r3FMAR",
    "AbCdEfGhIjKlMnO": "AbCdEfGhIjKlMnOVKV",
    "aBcDEfgHIJKLMNO": "aBcDEfgHIJKLMNO025",
}


@pytest.mark.parametrize("id15,id18", VECTORS.items())
def test_vectors(id15, id18):
    assert to18(id15) == id18
    assert to18(id18) == id18
    assert checksum(id15) == id18[15:]


def test_18_char_suffix_is_case_insensitive_but_base_is_not():
    assert to18("001M000000qfPySiau") == "001M000000qfPySIAU"
    with pytest.raises(InvalidId, match="bad checksum"):
        to18("001m000000qfPySIAU")  # lower-cased base: different record


@pytest.mark.parametrize("bad", ["", "001M000000qfPy", "001M000000qfPySIA", "001M000000qfPyS!", "001M000000qfPySIAUX"])
def test_shape_rejected(bad):
    with pytest.raises(InvalidId):
        to18(bad)


def test_expr_matches_scalar():
    values = [*VECTORS, *VECTORS.values(), "001M000000qfPySAAA", "nope", None]
    out = pl.DataFrame({"v": values}, schema={"v": pl.String}).select(to18_expr(pl.col("v"))).to_series().to_list()
    expected = []
    for v in values:
        try:
            expected.append(to18(v) if v is not None else None)
        except InvalidId:
            expected.append(None)
    assert out == expected


def test_object_of():
    assert object_of("00Q000000000001") == "Lead"
    assert object_of("0qB000000000001") == "ActionCadenceTracker"
    assert object_of("zzz000000000001") is None
