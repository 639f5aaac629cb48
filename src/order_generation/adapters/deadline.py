"""One deadline for all the GlobeCo calls of a request, retries and backoffs included."""

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

from order_generation.domain.errors import UpstreamUnavailable

# When the GlobeCo calls of the current request must be over (time.monotonic()), if ever.
_DEADLINE: ContextVar[float | None] = ContextVar("globeco_deadline", default=None)


class DeadlineExceeded(UpstreamUnavailable):
    """The request's deadline passed before the GlobeCo services answered (HTTP 503)."""

    code = "DEADLINE_EXCEEDED"


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Every GlobeCo call made within, retries and backoffs included (and in tasks started
    within), ends by `seconds` from now; past it a call raises DeadlineExceeded."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def time_left() -> float | None:
    """Seconds before the current deadline (0 once past it); None without a deadline."""
    end = _DEADLINE.get()
    return None if end is None else max(0.0, end - time.monotonic())
