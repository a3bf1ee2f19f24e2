"""Where the emulators' starting state comes from.

The demo org and team live in ``sample_data/sandbox/*.json`` so a reader can see (and edit) what
the demo jobs run against. A wheel carries a copy under ``batchrunner/sandbox/seeds/`` (see
pyproject's force-include), so ``pip install .`` works outside the repository too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_PACKAGED = Path(__file__).parent / "seeds"
_REPO = Path(__file__).resolve().parents[2] / "sample_data" / "sandbox"


def seed_path(name: str) -> Path:
    """Path of a seed file such as ``salesforce_org.json``: packaged copy first, then the repo's."""
    for folder in (_PACKAGED, _REPO):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"sandbox seed {name!r} not found in {_PACKAGED} or {_REPO}")


def load_seed(name: str) -> dict[str, Any]:
    return json.loads(seed_path(name).read_text(encoding="utf-8"))
