"""Hand the executor the normalised field values of the rows a request carries.

Values stay in the validated polars frame (columnar, compact) and are turned into dicts only for
the rows of the request being built, so a million-row run never holds a million Python dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl


class FrameRows:
    """Row dicts on demand. A field empty in every row is left out of the dicts (sessions read
    fields with ``.get``): the catalog has a column for every field of every operation, and a
    file uses a few, so this halves the work of building each request."""

    def __init__(self, frame: pl.DataFrame, columns: Sequence[str]) -> None:
        used = [c for c in columns if frame[c].null_count() < frame.height]
        self.frame = frame.select(used)

    def rows(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        if indices and indices[-1] - indices[0] == len(indices) - 1 and list(indices) == list(
                range(indices[0], indices[-1] + 1)):
            return self.frame.slice(indices[0], len(indices)).to_dicts()  # a run of rows: no gather
        return self.frame[list(indices)].to_dicts()
