"""Named places where a test can make the process die as a real crash would (SIGKILL).

``BATCHRUNNER_FAILPOINT=execute.after_send:3`` kills the process the third time that point is
reached; ``execute.after_send:3:SIGTERM`` sends it SIGTERM there instead (or SIGHUP, SIGINT). Nothing happens when the variable is unset, which is always the case outside the crash
tests; the points mark the moments a crash is hardest to survive:

* ``run.before_send``   the journal holds every row, no request has been sent
* ``execute.after_send`` a request was answered but its outcome is not yet journaled (in flight)
* ``execute.after_record`` an outcome was just committed
* ``report.writing``    results.csv is half written (the temporary file exists, not yet renamed)
* ``handoff.before_confirm`` a migration hand-off's target run is journaled, its source side not begun
"""

from __future__ import annotations

import os
import signal

_ENV = "BATCHRUNNER_FAILPOINT"
_hits: dict[str, int] = {}


def hit(name: str) -> None:
    """``NAME[:N[:SIGNAL]]``: send SIGNAL (default SIGKILL) to this process the Nth time NAME is
    reached (once: a SIGTERM or SIGHUP then takes its course, as if a person or the system sent it)."""
    spec = os.environ.get(_ENV)
    if not spec:
        return
    wanted, _, rest = spec.partition(":")
    if wanted != name:
        return
    nth, _, signame = rest.partition(":")
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == int(nth or 1) or (not signame and _hits[name] > int(nth or 1)):
        os.kill(os.getpid(), getattr(signal, signame or "SIGKILL"))
