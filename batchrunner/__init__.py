"""batchrunner: apply CSV lists of cadence operations in bulk to sales-engagement platforms.

The Python API (docs/orchestrators.md)::

    import batchrunner
    result = batchrunner.run("jobs/salesforce-weekly-assign.toml", output_dir="out")
    print(result.exit_code, result.counts, result.results_csv)

Everything here is loaded on first use, so ``batchrunner --version`` stays instant.
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any

# polars allocates with jemalloc, which by default keeps freed pages: a big run's RSS then shows
# every stage's peak at once, not what it holds (docs/memory.md). Return freed pages promptly, on
# jemalloc's own background thread; it is read once, when polars is first imported, so a program
# that imported polars before batchrunner keeps its own setting, as does a user who set it.
os.environ.setdefault("_RJEM_MALLOC_CONF", "background_thread:true,dirty_decay_ms:200,muzzy_decay_ms:0")

__version__ = "0.1.0"

__all__ = [
    "run", "arun", "resume", "aresume", "retry", "aretry", "validate", "check", "acheck", "export", "aexport",
    "verify", "averify", "predict", "apredict", "PredictResult", "load", "RunResult", "StartInfo", "JobError",
    "RunAborted", "NothingToRetry", "__version__",
]

_FROM = {
    "run": "api", "arun": "api", "resume": "api", "aresume": "api", "retry": "api", "aretry": "api",
    "validate": "api", "check": "api", "acheck": "api", "export": "api", "aexport": "api", "load": "api",
    "verify": "api", "averify": "api", "predict": "api", "apredict": "api", "PredictResult": "predict",
    "StartInfo": "api", "RunResult": "runner", "JobError": "errors", "RunAborted": "errors",
    "NothingToRetry": "errors",
}


def __getattr__(name: str) -> Any:
    if name in _FROM:
        import importlib

        return getattr(importlib.import_module(f"batchrunner.{_FROM[name]}"), name)
    raise AttributeError(f"module 'batchrunner' has no attribute {name!r}")


class _Package(types.ModuleType):
    """Five API functions share their names with modules (`validate`, `check`, `export`, `verify`,
    `predict`). Python sets a package attribute for every submodule it imports, which would replace
    the function by the module the first time a run imported it; the submodule stays in
    ``sys.modules`` (and ``from batchrunner.validate import …`` keeps working), the package
    attribute stays the API."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FROM and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
