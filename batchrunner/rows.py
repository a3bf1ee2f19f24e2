"""Hand the executor the normalised field values of the rows a request carries.

Values stay in the validated polars frame (columnar, compact) and are turned into dicts only for
the rows of the request being built, so a million-row run never holds a million Python dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl


class FrameRows:
    def __init__(self, frame: pl.DataFrame, columns: Sequence[str]) -> None:
        self.frame = frame.select(columns)

    def rows(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        return self.frame[list(indices)].to_dicts()
