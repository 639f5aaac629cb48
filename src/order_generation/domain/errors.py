"""The one error family of the service; each error carries its HTTP status and code."""

from typing import Any


class ServiceError(Exception):
    """Root of every error the service reports to a caller."""

    status: int = 500
    code: str = "INTERNAL_ERROR"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides the body."""
        return {}

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take other constructor arguments; rebuild from state, e.g. across processes.
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(
    kind: type[ServiceError], args: tuple[Any, ...], state: dict[str, Any]
) -> ServiceError:
    error = kind.__new__(kind)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class InvalidInput(ServiceError):
    """A business rule or input shape is violated; the message names the field and rule."""

    status = 400
    code = "VALIDATION_ERROR"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", {"field": field})
        self.field = field
        self.rule = message


class NotFound(ServiceError):
    status = 404
    code = "NOT_FOUND"


class Conflict(ServiceError):
    status = 409
    code = "CONFLICT"


class VersionConflict(Conflict):
    code = "VERSION_CONFLICT"


class OptimizationFailed(ServiceError):
    """The rebalance problem has no answer the service can give (HTTP 422)."""

    status = 422
    code = "OPTIMIZATION_FAILED"


class Infeasible(OptimizationFailed):
    """No integer holdings satisfy every constraint."""


class SolverTimeout(OptimizationFailed):
    """The solver passed its time limit before proving an optimum."""

    code = "OPTIMIZATION_TIMEOUT"


class UpstreamUnavailable(ServiceError):
    """A GlobeCo service could not be reached after retries (HTTP 503)."""

    status = 503
    code = "SERVICE_UNAVAILABLE"


class UpstreamBadResponse(ServiceError):
    """A GlobeCo service answered, but not with anything the service can use (HTTP 502)."""

    status = 502
    code = "UPSTREAM_BAD_RESPONSE"


class Overloaded(ServiceError):
    """Too much rebalance work in flight; the caller should come back shortly (HTTP 503)."""

    status = 503
    code = "OVERLOADED"

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message, {"retry_after_seconds": retry_after_seconds})
        self.retry_after_seconds = retry_after_seconds

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}
