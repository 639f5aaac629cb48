"""What every GlobeCo client shares: retries, a circuit breaker, a single-flight TTL cache."""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal
from functools import partial
from typing import Any, ClassVar, Literal, Self
from urllib.parse import quote

import httpx
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from order_generation.adapters.deadline import DeadlineExceeded, time_left
from order_generation.config import Settings
from order_generation.domain.errors import UpstreamBadResponse, UpstreamUnavailable
from order_generation.metrics import (
    CACHE_HITS,
    CACHE_MISSES,
    CIRCUIT_BREAKER_STATE,
    GLOBECO_DURATION,
    GLOBECO_ERRORS,
    GLOBECO_RETRIES,
)

log = structlog.get_logger(__name__)

BreakerState = Literal["closed", "open", "half-open"]
_BREAKER_CODES: dict[BreakerState, int] = {"closed": 0, "half-open": 1, "open": 2}

# Connections per service, all kept alive. httpx's default (100, of which 20 kept alive) churns
# connections past 20 concurrent calls, and its pool's per-request bookkeeping grows with the
# connection count: at 64 concurrent calls to the simulator, 64 connections gave ~250 calls/s
# and 8 to 32 gave ~700-1,000.
POOL_SIZE = 16
# Up to this many cache misses are fetched one by one (concurrently); more take one list call.
PER_KEY_LIMIT = 4


class CircuitBreaker:
    """Opens after `threshold` consecutive failed calls; after `reset_seconds` admits one trial."""

    def __init__(self, threshold: int, reset_seconds: float) -> None:
        self.threshold = threshold
        self.reset_seconds = reset_seconds
        self.state: BreakerState = "closed"
        self.failures = 0
        self._opened_at = 0.0
        self._trial_running = False

    def allow(self) -> bool:
        """Whether a call may go out now; in half-open state only the first caller may."""
        if self.state == "open" and self.retry_in() == 0:
            self.state = "half-open"
        if self.state == "open" or (self.state == "half-open" and self._trial_running):
            return False
        self._trial_running = self.state == "half-open"
        return True

    def retry_in(self) -> float:
        """Seconds left before an open breaker admits a trial call."""
        return max(0.0, self._opened_at + self.reset_seconds - time.monotonic())

    def record_success(self) -> None:
        """The service answered: close the breaker."""
        self.state, self.failures, self._trial_running = "closed", 0, False

    def record_failure(self) -> None:
        """A call failed after its retries: count it, and open at the threshold or after a trial."""
        self.failures += 1
        if self.state == "half-open" or self.failures >= self.threshold:
            self.state, self._opened_at = "open", time.monotonic()
        self._trial_running = False

    def release(self) -> None:
        """The call ended without a verdict (e.g. cancelled): let another caller be the trial."""
        self._trial_running = False


class TtlCache[K, V]:
    """Values expire after `ttl` seconds; concurrent misses for one key share one load."""

    def __init__(self, ttl: float, name: str = "") -> None:
        self.ttl = ttl
        self.name = name
        self.hits = 0
        self.misses = 0
        self._values: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Task[Mapping[K, V]]] = {}

    async def get_many(
        self, keys: Iterable[K], load: Callable[[list[K]], Awaitable[Mapping[K, V]]]
    ) -> dict[K, V]:
        """The value of each key, loading the missing ones in one call; unknown keys are absent.

        `load` may return more keys than it was asked for; they are cached too.
        """
        found: dict[K, V] = {}
        waits: dict[K, asyncio.Task[Mapping[K, V]]] = {}
        missing: list[K] = []
        now = time.monotonic()
        for key in dict.fromkeys(keys):
            entry = self._values.get(key)
            if entry is not None and entry[0] > now:
                found[key] = entry[1]
                continue
            if (task := self._loading.get(key)) is not None:
                waits[key] = task
            else:
                missing.append(key)
        self._count(len(found), len(waits) + len(missing))
        if missing:
            task = asyncio.create_task(self._load(missing, load))
            task.add_done_callback(_retrieve_exception)
            for key in missing:
                self._loading[key] = waits[key] = task
        for key, task in waits.items():
            # Shielded: a cancelled caller must not cancel a load that others are waiting for.
            loaded = await asyncio.shield(task)
            if key in loaded:
                found[key] = loaded[key]
        return found

    def _count(self, hits: int, misses: int) -> None:
        # Once per call, not per key: a 100-position rebalance asks for 200 keys, and each
        # multiprocess metric update costs microseconds on the event loop.
        self.hits += hits
        self.misses += misses
        if hits:
            CACHE_HITS.labels(self.name).inc(hits)
        if misses:
            CACHE_MISSES.labels(self.name).inc(misses)

    async def _load(
        self, keys: list[K], load: Callable[[list[K]], Awaitable[Mapping[K, V]]]
    ) -> Mapping[K, V]:
        try:
            loaded = await load(keys)
        finally:
            for key in keys:
                self._loading.pop(key, None)
        expires = time.monotonic() + self.ttl
        self._values.update((key, (expires, value)) for key, value in loaded.items())
        return loaded


def _retrieve_exception(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class _ServerError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")


class GlobecoClient:
    """One pooled HTTP client to one GlobeCo service, guarded by retries and a circuit breaker."""

    service: ClassVar[str]
    title: ClassVar[str]

    def __init__(self, base_url: str, settings: Settings) -> None:
        self.breaker = CircuitBreaker(
            settings.circuit_breaker_threshold, settings.circuit_breaker_reset_seconds
        )
        self._attempts = settings.external_service_retries + 1
        self._backoff = settings.retry_backoff_seconds
        self._timeout = settings.external_service_timeout
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=settings.external_service_timeout,
            limits=httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE),
            headers={"Accept": "application/json"},
        )

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    async def probe(self, seconds: float) -> str | None:
        """None when the service answers HTTP at all (any status); otherwise why not.

        One request, outside the retries and the breaker, so a health check neither waits
        for backoffs nor moves the breaker; an open breaker is reported as it is.
        """
        if self.breaker.state == "open":
            return f"circuit breaker open after {self.breaker.failures} consecutive failures"
        try:
            await self._http.get("/", timeout=seconds)
        except httpx.HTTPError as error:
            return _describe(error)
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _get(self, path: str) -> httpx.Response:
        """GET `path`: any answer below 500, or UpstreamUnavailable after retries."""
        if not self.breaker.allow():
            raise self._unavailable(
                f"circuit breaker open after {self.breaker.failures} consecutive failures, "
                f"next try in {self.breaker.retry_in():.1f} s",
                path,
            )
        try:
            response = await self._send(path)
        except (httpx.TransportError, _ServerError) as exc:
            if time_left() == 0:
                # Cut short by the request's deadline: no verdict on the service.
                self.breaker.release()
                raise self._past_deadline(path) from exc
            self.breaker.record_failure()
            GLOBECO_ERRORS.labels(self.service).inc()
            raise self._unavailable(
                f"{_describe(exc)} after {self._attempts} attempt(s)", path
            ) from exc
        except BaseException:
            self.breaker.release()
            raise
        else:
            self.breaker.record_success()
            return response
        finally:
            CIRCUIT_BREAKER_STATE.labels(self.service).set(_BREAKER_CODES[self.breaker.state])

    async def _send(self, path: str) -> httpx.Response:
        retrying = AsyncRetrying(
            stop=partial(self._stop_retrying, path),
            wait=wait_exponential_jitter(multiplier=self._backoff, jitter=self._backoff),
            retry=retry_if_exception_type((httpx.TransportError, _ServerError)),
            before_sleep=lambda state: self._log_retry(state, path),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if self.breaker.state == "open":
                    raise self._unavailable("circuit breaker opened during retries", path)
                if (left := time_left()) == 0:
                    raise self._past_deadline(path)
                timeout = self._timeout if left is None else min(self._timeout, left)
                response = await self._attempt(path, timeout)
                if response.is_server_error:
                    raise _ServerError(response.status_code)
                return response
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _attempt(self, path: str, seconds: float) -> httpx.Response:
        """One HTTP attempt, timed, logged, carrying the request's correlation id."""
        correlation_id = structlog.contextvars.get_contextvars().get("correlation_id")
        headers = {"X-Correlation-ID": correlation_id} if correlation_id else None
        started = time.perf_counter()
        outcome = "error"
        try:
            response = await self._http.get(path, headers=headers, timeout=seconds)
            outcome = f"{response.status_code // 100}xx"
            return response
        finally:
            elapsed = time.perf_counter() - started
            GLOBECO_DURATION.labels(self.service, outcome).observe(elapsed)
            log.info(
                "globeco_call",
                service=self.service,
                path=path,
                outcome=outcome,
                duration_ms=round(elapsed * 1000, 2),
            )

    def _log_retry(self, state: RetryCallState, path: str) -> None:
        GLOBECO_RETRIES.labels(self.service).inc()
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "globeco_retry",
            service=self.service,
            path=path,
            attempt=state.attempt_number,
            reason=_describe(error),
        )

    async def _fetch[V](
        self,
        keys: list[str],
        list_path: str,
        parse_list: Callable[[Any], Mapping[str, V]],
        item_path: str,
        parse_item: Callable[[Any], V],
    ) -> Mapping[str, V]:
        """Look keys up: a few one call each (concurrently), more in one list call.

        `item_path` has one `{}` for the quoted key; a 404 there means the key is unknown.
        """
        if len(keys) > PER_KEY_LIMIT:
            return self._decode(await self._get(list_path), parse_list)

        async def one(key: str) -> dict[str, V]:
            response = await self._get(item_path.format(quote(key, safe="")))
            if response.status_code == 404:
                return {}
            return self._decode(response, lambda body: {key: parse_item(body)})

        return await fetch_each(keys, one)

    def _decode[T](self, response: httpx.Response, parse: Callable[[Any], T]) -> T:
        """Parse a 2xx JSON body (floats as Decimal) with `parse`; any other answer is an error."""
        if not response.is_success:
            raise self._bad(f"answered HTTP {response.status_code} to GET {response.url.path}")
        try:
            return parse(json.loads(response.content, parse_float=Decimal))
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            raise self._bad(
                f"answered GET {response.url.path} with an unexpected body ({type(exc).__name__})"
            ) from exc

    def _unavailable(self, reason: str, path: str) -> UpstreamUnavailable:
        return UpstreamUnavailable(
            f"{self.title} service is unavailable: {reason} (GET {path})",
            {"service": self.service},
        )

    def _stop_retrying(self, path: str, state: RetryCallState) -> bool:
        """Stop after the last attempt; give up as soon as the next backoff would end past
        the request's deadline."""
        if state.attempt_number >= self._attempts:
            return True
        left = time_left()
        if left is not None and left <= state.upcoming_sleep:
            raise self._past_deadline(path)
        return False

    def _past_deadline(self, path: str) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"{self.title} service did not answer within the request's deadline (GET {path})",
            {"service": self.service},
        )

    def _bad(self, message: str, **details: Any) -> UpstreamBadResponse:
        return UpstreamBadResponse(
            f"{self.title} service {message}", {"service": self.service, **details}
        )


async def fetch_each[K, V](
    keys: Iterable[K], fetch: Callable[[K], Awaitable[Mapping[K, V]]]
) -> dict[K, V]:
    """Run `fetch` for every key concurrently and merge the answers; the first error wins."""
    tasks = [asyncio.ensure_future(fetch(key)) for key in keys]
    try:
        answers = await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    return {key: value for answer in answers for key, value in answer.items()}


def _describe(error: BaseException | None) -> str:
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    if isinstance(error, httpx.ConnectError):
        return "connection refused or failed"
    if isinstance(error, httpx.TransportError):
        return f"connection error ({type(error).__name__})"
    return str(error)


def to_decimal(value: object) -> Decimal:
    """A finite Decimal from a JSON string or number; TypeError/ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value}")
    return number
