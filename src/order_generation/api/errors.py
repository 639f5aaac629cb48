"""One handler per kind of failure, all answering the same `ErrorBody` shape."""

import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pymongo.errors import ConnectionFailure
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match

from order_generation.api.schemas import ErrorBody, ErrorDetail
from order_generation.domain.errors import ServiceError

log = structlog.get_logger(__name__)

_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    trace_id = structlog.contextvars.get_contextvars().get("correlation_id") or uuid.uuid4().hex
    body = ErrorBody(
        error=ErrorDetail(
            code=code,
            message=message,
            details=details or {},
            timestamp=datetime.now(UTC),
            trace_id=trace_id,
        ),
        detail=message,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=status)


def _location(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path") else loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "body"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class Unauthorized(ServiceError):
    status = 401
    code = "UNAUTHORIZED"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "ApiKey"}


async def _service_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ServiceError)
    response = error_response(error.status, error.code, error.message, error.details)
    response.headers.update(error.headers)
    return response


async def _invalid_request(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [{"field": _location(tuple(e["loc"])), "message": e["msg"]} for e in error.errors()]
    message = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return error_response(400, "VALIDATION_ERROR", message, {"errors": problems})


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    code = _HTTP_CODES.get(error.status_code, "HTTP_ERROR")
    response = error_response(error.status_code, code, str(error.detail))
    response.headers.update(error.headers or {})
    if error.status_code == 405:
        response.headers["Allow"] = ", ".join(_allowed_methods(request))
    return response


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's);
    a route of exactly this path hides templated ones (/rebalance/preview, not /{id})."""
    scope = {"type": "http", "path": request.url.path, "method": ""}
    routes = [
        route
        for route in api_routes(request.app.router.routes)
        if route.matches(scope)[0] != Match.NONE
    ]
    exact = [route for route in routes if route.path == request.url.path]
    return sorted({method for route in exact or routes for method in route.methods or ()})


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """The API routes, including those of included routers (which FastAPI wraps)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif (router := getattr(route, "original_router", None)) is not None:
            yield from api_routes(router.routes)


def unexpected_error(path: str, error: Exception) -> JSONResponse:
    """The 500 for an error no handler expected, logged with its traceback."""
    log.error("unexpected_error", path=path, exc_info=error)
    return error_response(500, "INTERNAL_ERROR", "an unexpected error occurred")


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    # Last resort, outside all middleware: middleware.UnexpectedErrors answers the others.
    return unexpected_error(request.url.path, error)


DATABASE_RETRY_AFTER_SECONDS = 5


async def _database_unavailable(request: Request, error: Exception) -> JSONResponse:
    log.warning("database_unavailable", path=request.url.path, reason=type(error).__name__)
    response = error_response(
        503,
        "DATABASE_UNAVAILABLE",
        "the database is unavailable; retry shortly",
        {"retry_after_seconds": DATABASE_RETRY_AFTER_SECONDS},
    )
    response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)
    # ServerSelectionTimeoutError, AutoReconnect, NetworkTimeout, WaitQueueTimeoutError
    app.add_exception_handler(ConnectionFailure, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)
