"""The small, framework-free request/response types every emulator speaks.

Emulators are plain synchronous objects over in-memory state, so they can be unit-tested without
HTTP at all; ``sandbox.app`` adapts them to ASGI (in-process via httpx, or served by uvicorn).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from batchrunner import jsonio


@dataclass
class SandboxRequest:
    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # keys lower-case
    body: bytes = b""

    def json(self) -> Any:
        return jsonio.loads(self.body) if self.body else None

    def param(self, name: str) -> str | None:
        """Last value of a query parameter (or None)."""
        found = None
        for key, value in self.query:
            if key == name:
                found = value
        return found

    def params(self, name: str) -> list[str]:
        """Every value of a repeated query parameter such as ``email_addresses[]``."""
        return [value for key, value in self.query if key == name]

    def bearer_token(self) -> str | None:
        auth = self.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return None


@dataclass
class SandboxResponse:
    status: int
    body: Any = None  # JSON-serialisable value; None means an empty body
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        return b"" if self.body is None else jsonio.dumps(self.body)


class Emulator(Protocol):
    """One platform's emulator. ``prefixes`` are the URL path prefixes it answers."""

    prefixes: tuple[str, ...]

    def handle(self, request: SandboxRequest) -> SandboxResponse: ...
