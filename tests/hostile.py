"""A hostile platform for tests: the sandbox's emulators behind a small ``http.server`` on
127.0.0.1 that misbehaves, on purpose, on the requests that *change* something (a Salesforce
action POST, a Salesloft cadence-membership POST or DELETE). Everything else (versions, describes,
look-ups, token endpoints, ``/_sandbox/audit``) is answered by the real emulators, so a live job
(``sandbox = false``, any token) runs against it as it would against a real org or team.

Modes (``HostileServer.mode``, changeable between runs):

- ``echo_token``: the change is not applied; every row gets an error message made from
  ``message`` (default: repeats the request's ``Authorization`` header, plain, URL-encoded and
  JSON-escaped). Salesforce: a per-input array, odd inputs failed with that message, even ones
  "succeeded" with the message in ``outputValues`` (so ``_result`` is exercised too). Salesloft:
  HTTP 400 ``{"errors": {"base": [message]}}``.
- ``html_error``: the change is not applied; HTTP 502 with an HTML page (a proxy's error page)
  with the token straddling its 300th character (catches an excerpt cut before redaction).
- ``truncated_json``: the change IS applied; the emulator's JSON answer is cut in half (HTTP 200).
- ``error_after_apply``: the change IS applied; the answer is HTTP 503 with an empty JSON error.

Any bearer token is accepted: it is swapped for the emulators' own key before they see the
request. ``requests`` records (method, path, Authorization) of every request, for assertions;
"was it applied twice" is judged from the emulators' ``/_sandbox/audit``, as elsewhere.

    with HostileServer("echo_token") as server:
        job = live_job(tmp_path, SF_JOB, SF_CSV, f'instance_url = "{server.url}"')
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from batchrunner.sandbox.app import SandboxApp
from batchrunner.sandbox.base import SandboxRequest, SandboxResponse
from batchrunner.sandbox.factory import build_sandbox
from batchrunner.sandbox.oauth import SF_NATIVE, SL_NATIVE

MODES = ("echo_token", "html_error", "truncated_json", "error_after_apply")
_SF_ACTION = re.compile(r"^/services/data/v\d+\.\d/actions/standard/\w+/?$")
_SL_CHANGE = re.compile(r"^/v2/cadence_memberships(/\d+)?(\.json)?$")
_OR_CHANGE = re.compile(r"^/api/v2/sequenceStates(/\d+(/actions/\w+)?)?$")
OR_NATIVE = "sandbox-outreach-token"


def echo_message(authorization: str) -> str:
    """The default ``echo_token`` message: the header as received, URL-encoded and JSON-escaped."""
    token = authorization.removeprefix("Bearer ").strip()
    return (f"Request rejected: header Authorization: {authorization}; see "
            f"https://example.invalid/help?access_token={quote(token, safe='')}; "
            f"request was {json.dumps(json.dumps({'token': token}))}")


class HostileServer:
    """Context manager: serves on 127.0.0.1 (a free port) in a daemon thread; ``url`` is its base."""

    def __init__(self, mode: str = "echo_token", *, message: str | None = None, app: SandboxApp | None = None
                 ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode = mode
        #: ``echo_token`` message template; ``{authorization}`` and ``{token}`` are filled in
        self.message = message
        self.app = app or build_sandbox()
        self.requests: list[tuple[str, str, str]] = []
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> HostileServer:
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                hostile._handle(self)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = _any

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet tests
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- requests -----------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        authorization = handler.headers.get("authorization", "")
        self.requests.append((handler.command, parts.path, authorization))
        headers = {k.lower(): v for k, v in handler.headers.items()}
        platform = ("salesloft" if parts.path.startswith("/v2/") else
                    "outreach" if parts.path.startswith("/api/v2/") else "salesforce")
        if authorization.lower().startswith("bearer "):  # any token is good: the emulators see their own key
            native = {"salesloft": SL_NATIVE, "outreach": OR_NATIVE}.get(platform, SF_NATIVE)
            headers["authorization"] = f"Bearer {native}"
        request = SandboxRequest(handler.command, parts.path,
                                 parse_qsl(parts.query, keep_blank_values=True), headers, body)
        changes = ((handler.command == "POST" and _SF_ACTION.match(parts.path) is not None)
                   or (handler.command in ("POST", "DELETE") and (_SL_CHANGE.match(parts.path) is not None
                                                                  or _OR_CHANGE.match(parts.path) is not None)))
        if not changes:
            self._send(handler, self.app.dispatch(request))
            return
        if self.mode == "echo_token":
            self._send(handler, self._echo(platform, request, authorization))
        elif self.mode == "html_error":
            self._send_raw(handler, 502, self._html(authorization), "text/html; charset=utf-8")
        elif self.mode == "truncated_json":
            answer = self.app.dispatch(request)
            payload = answer.encoded()
            self._send_raw(handler, 200, payload[: len(payload) // 2], "application/json", answer.headers)
        else:  # error_after_apply
            self.app.dispatch(request)
            error = {"salesforce": [{"errorCode": "SERVER_UNAVAILABLE", "message": "Service Unavailable"}],
                     "outreach": {"errors": [{"id": "serviceUnavailable", "title": "Service Unavailable"}]},
                     }.get(platform, {"error": "Service Unavailable"})
            self._send(handler, SandboxResponse(503, error))

    def _text(self, authorization: str) -> str:
        if self.message is None:
            return echo_message(authorization)
        return self.message.format(authorization=authorization,
                                   token=authorization.removeprefix("Bearer ").strip())

    def _echo(self, platform: str, request: SandboxRequest, authorization: str) -> SandboxResponse:
        text = self._text(authorization)
        if platform == "salesloft":
            return SandboxResponse(400, {"errors": {"base": [text]}})
        if platform == "outreach":  # a JSON:API refusal (https://jsonapi.org/format/#errors)
            return SandboxResponse(422, {"errors": [{"id": "hostile", "title": "Rejected", "detail": text}]})
        inputs = (request.json() or {}).get("inputs") or []
        results = []
        for i, _ in enumerate(inputs):
            if i % 2 == 0:
                results.append({"actionName": "hostile", "isSuccess": True, "errors": None,
                                "outputValues": {"output": text}})
            else:
                results.append({"actionName": "hostile", "isSuccess": False, "outputValues": None,
                                "errors": [{"statusCode": "INVALID_INPUT", "message": text, "fields": []}]})
        return SandboxResponse(400 if any(not r["isSuccess"] for r in results) else 200, results)

    @staticmethod
    def _html(authorization: str) -> str:
        # the token starts at character 290: an excerpt of the first 300 cuts it in half
        filler = ("The upstream server did not answer in time. " * 5)[:181]
        return (f"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1>"
                f"<p>{filler}</p><pre>{authorization}</pre></body></html>")

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, answer: SandboxResponse) -> None:
        HostileServer._send_raw(handler, answer.status, answer.encoded(), "application/json;charset=UTF-8",
                                answer.headers)

    @staticmethod
    def _send_raw(handler: BaseHTTPRequestHandler, status: int, payload: bytes | str, content_type: str,
                  headers: dict[str, str] | None = None) -> None:
        data = payload.encode("utf-8") if isinstance(payload, str) else payload
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, str(value))
        if data:
            handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)
