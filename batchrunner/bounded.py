"""An HTTP transport that bounds every request in time and size.

httpx's own timeouts are per phase (connect, each read): a server that drips one byte a second
never trips a 120 s read timeout, and nothing limits how much a response may hold. Every client
the runner builds (``runner._client_factory``) wraps its transport in ``BoundedTransport``, so the
run, its look-ups, exports and checks all share one rule:

* the whole request -- sending it, the headers and the full body -- has ``deadline`` seconds;
  past it the request fails with ``httpx.ReadTimeout`` (a lost answer: the platform session
  decides whether it may be sent again);
* a body longer than ``max_bytes`` is not read further: the request fails with
  ``ResponseTooLarge``, also a lost answer, since the server did receive it. A compressed body
  (gzip, deflate) is decoded here and its decoded size counts: 32 MiB of gzip can hold gigabytes.

Both errors are ``httpx.TransportError`` subclasses, so every existing lost-answer path handles
them. Built on anyio: under a virtual clock (trio's ``MockClock``) the deadline is virtual too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx
from httpx._decoders import SUPPORTED_DECODERS  # the decoders httpx itself would apply (no public name)


class ResponseTooLarge(httpx.TransportError):
    """The response body passed ``limits.max_response_bytes``; the request did reach the server."""

    code = "RESPONSE_TOO_LARGE"


def _too_large(request: httpx.Request, max_bytes: int, seen: int | None = None) -> ResponseTooLarge:
    size = f"{seen} bytes or more" if seen is not None else "more"
    return ResponseTooLarge(f"the response held {size}, over limits.max_response_bytes = {max_bytes}; "
                            "it was not read", request=request)


class _BoundedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, request: httpx.Request, deadline: float, timeout: float,
                 max_bytes: int, decoder: object | None = None) -> None:
        self.inner = inner
        self.decoder = decoder  # an httpx ContentDecoder when the body is compressed
        self.request = request
        self.deadline = deadline  # anyio.current_time() by which the body must be read
        self.timeout = timeout
        self.max_bytes = max_bytes

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        chunks = self.inner.__aiter__()
        while True:
            try:
                with anyio.fail_after(max(0.0, self.deadline - anyio.current_time())):
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise _timed_out(self.request, self.timeout) from None
            seen = self._count(seen, chunk := self._decode(chunk))
            yield chunk
        if self.decoder is not None:
            tail = self.decoder.flush()  # type: ignore[attr-defined]
            self._count(seen, tail)
            yield tail

    def _decode(self, chunk: bytes) -> bytes:
        if self.decoder is None:
            return chunk
        try:
            return self.decoder.decode(chunk)  # type: ignore[attr-defined]
        except httpx.DecodingError as exc:
            raise httpx.DecodingError(str(exc), request=self.request) from None

    def _count(self, seen: int, chunk: bytes) -> int:
        seen += len(chunk)
        if seen > self.max_bytes:
            raise _too_large(self.request, self.max_bytes, seen)
        return seen

    async def aclose(self) -> None:
        await self.inner.aclose()


def _timed_out(request: httpx.Request, timeout: float) -> httpx.ReadTimeout:
    return httpx.ReadTimeout(f"no complete answer within limits.timeout = {timeout:g} s", request=request)


class BoundedTransport(httpx.AsyncBaseTransport):
    """``inner`` with a whole-request deadline of ``timeout`` seconds and a body cap of ``max_bytes``."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, timeout: float, max_bytes: int) -> None:
        self.inner = inner
        self.timeout = timeout
        self.max_bytes = max_bytes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        deadline = anyio.current_time() + self.timeout
        try:
            with anyio.fail_after(self.timeout):
                response = await self.inner.handle_async_request(request)
        except TimeoutError:
            raise _timed_out(request, self.timeout) from None
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            await response.aclose()
            raise _too_large(request, self.max_bytes, int(length))
        assert isinstance(response.stream, httpx.AsyncByteStream)
        headers, decoder = response.headers, None
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding in SUPPORTED_DECODERS and encoding != "identity":
            # decoded here, so the cap counts what the body becomes; httpx sees a plain body
            decoder = SUPPORTED_DECODERS[encoding]()
            headers = httpx.Headers([(k, v) for k, v in headers.multi_items()
                                     if k.lower() not in ("content-encoding", "content-length")])
        stream = _BoundedStream(response.stream, request, deadline, self.timeout, self.max_bytes, decoder)
        return httpx.Response(response.status_code, headers=headers, stream=stream,
                              extensions=response.extensions, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def bound_client(client: httpx.AsyncClient, *, timeout: float, max_bytes: int) -> httpx.AsyncClient:
    """Wrap every transport of ``client`` -- its own and the proxy ones httpx mounts from the
    environment (HTTPS_PROXY) -- so no request escapes the bounds. httpx has no public hook for
    this; the attributes are stable since httpx 0.18."""
    client._transport = BoundedTransport(client._transport, timeout=timeout, max_bytes=max_bytes)
    client._mounts = {pattern: None if inner is None else BoundedTransport(inner, timeout=timeout, max_bytes=max_bytes)
                      for pattern, inner in client._mounts.items()}
    return client
