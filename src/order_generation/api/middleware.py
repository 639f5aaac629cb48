"""Pure ASGI middleware around every request: correlation id, request log and metrics,
security headers, the request body size limit, and the answer to an unexpected error."""

import re
import time
import uuid

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from order_generation.api.errors import PayloadTooLarge, error_response, unexpected_error
from order_generation.metrics import HTTP_DURATION, HTTP_REQUESTS

log = structlog.get_logger("order_generation.request")

_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# Metric labels stay a bounded set: a route's template (or one label for no route), and the
# methods HTTP defines (or one label for any other), whatever a client sends.
UNMATCHED_ROUTE = "unmatched"
OTHER_METHOD = "OTHER"
_KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
)
_API_ONLY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
}


def correlation_id(headers: Headers) -> str:
    """The caller's X-Correlation-ID, else the trace id of a W3C traceparent, else a new one."""
    given = headers.get("x-correlation-id", "")
    if _SAFE_ID.fullmatch(given):
        return given
    if match := _TRACEPARENT.fullmatch(headers.get("traceparent", "").strip().lower()):
        return match.group(1)
    return uuid.uuid4().hex


class RequestContext:
    """Binds the correlation id to every log line of the request and answers it in a header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cid = correlation_id(Headers(scope=scope))
        structlog.contextvars.clear_contextvars()
        client = scope.get("client")
        structlog.contextvars.bind_contextvars(
            correlation_id=cid, client=client[0] if client else None
        )
        extra = _API_ONLY_HEADERS if scope["path"].startswith("/api/") else {}
        status = 500
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Correlation-ID"] = cid
                for name, value in {**_SECURITY_HEADERS, **extra}.items():
                    headers.setdefault(name, value)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    @staticmethod
    def _record(scope: Scope, status: int, elapsed: float) -> None:
        route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
        method = scope["method"] if scope["method"] in _KNOWN_METHODS else OTHER_METHOD
        HTTP_REQUESTS.labels(method, route, str(status)).inc()
        HTTP_DURATION.labels(method, route).observe(elapsed)
        if route not in ("/metrics", "/health/live", "/health/ready"):
            log.info(
                "request",
                method=method,
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )


class BodySizeLimit:
    """Refuses request bodies above `max_bytes`, declared or streamed, with HTTP 413.

    FastAPI turns any error while reading a body into a 400, so an oversized stream is
    answered here: the app's own answer is replaced by the 413.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received, exceeded = 0, False

        async def limited() -> Message:
            nonlocal received, exceeded
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                exceeded = True
                raise PayloadTooLarge(self._message())
            return message

        async def send_unless_exceeded(message: Message) -> None:
            if not exceeded:
                await send(message)
            elif message["type"] == "http.response.start":
                await self._refuse(scope, receive, send)

        await self.app(scope, limited, send_unless_exceeded)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        details = {"max_bytes": self.max_bytes}
        response = error_response(413, PayloadTooLarge.code, self._message(), details)
        await response(scope, receive, send)

    def _message(self) -> str:
        return f"request body is larger than {self.max_bytes} bytes"


class UnexpectedErrors:
    """Answers an exception no handler took with the 500 of the one error shape, inside the
    other middleware, so it carries the correlation id, security and CORS headers, and the
    connection stays open for the client's next request.

    Starlette's own handler for `Exception` sits outside all middleware and re-raises, so the
    server closed the keep-alive connection. Once an answer has started (a streamed array)
    only closing the connection tells the client it is cut short, so the error goes on up.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as error:
            if started:
                raise
            await unexpected_error(scope["path"], error)(scope, receive, send)
