"""ASGI adapter: routes HTTP requests to the emulators by path prefix.

The same app runs in-process (``httpx.ASGITransport``, the demo default: no port, no server) and
on a real socket (``batchrunner sandbox`` serves it with uvicorn).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

from batchrunner.sandbox.base import Emulator, SandboxRequest, SandboxResponse


class SandboxApp:
    """An ASGI application over one or more emulators.

    Emulators are synchronous and keep their state in memory; a lock serialises them so the
    threaded real server and the in-process transport see the same consistent state.
    """

    def __init__(self, emulators: Sequence[Emulator], *, record_requests: bool = False) -> None:
        self.emulators = list(emulators)
        self._lock = threading.Lock()
        #: every request that may change data (not GET), as received: the record a test reads to
        #: prove that nothing was *sent* twice, whatever the emulator did with it (off in-process:
        #: a million-row benchmark would hold every body)
        self.received: list[dict[str, Any]] | None = [] if record_requests else None

    def dispatch(self, request: SandboxRequest) -> SandboxResponse:
        if request.path == "/_sandbox/requests":
            with self._lock:
                return SandboxResponse(200, list(self.received or []))
        if self.received is not None and request.method != "GET" and not request.path.startswith("/_sandbox"):
            with self._lock:
                self.received.append({"method": request.method, "path": request.path, "query": request.query,
                                      "body": request.body.decode("utf-8", "replace")})
        if request.path == "/_sandbox/audit":
            # the emulators' own records (e.g. how often each target was assigned), for crash tests
            with self._lock:
                return SandboxResponse(200, {type(e).__name__: e.audit() for e in self.emulators
                                             if hasattr(e, "audit")})
        for emulator in self.emulators:  # issued OAuth tokens (sandbox/oauth.py): accepted or expired
            rewrite = getattr(emulator, "rewrite", None)
            if rewrite is not None:
                with self._lock:
                    answer = rewrite(request)
                if answer is not None:
                    return answer
        for emulator in self.emulators:
            if any(request.path.startswith(prefix) for prefix in emulator.prefixes):
                with self._lock:
                    return emulator.handle(request)
        return SandboxResponse(
            404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        request = SandboxRequest(
            method=scope["method"].upper(),
            path=scope["path"],
            query=parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True),
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            body=body,
        )
        response = self.dispatch(request)
        payload = response.encoded()
        headers = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in response.headers.items()]
        if payload:
            headers.append((b"content-type", b"application/json;charset=UTF-8"))
        headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


async def read_body(receive: Any) -> bytes:
    """The whole request body of an ASGI request."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body
