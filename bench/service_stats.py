"""Drive HTTP requests at a fixed concurrency, bounded in count and time; latency statistics."""

import asyncio
import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter

import httpx

# route label (e.g. "GET /model/{id}"), method, URL path
Request = tuple[str, str, str]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), interpolated between the closest ranks; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class RouteStats:
    """Latencies of the successful answers (ms), when each was sent and answered (monotonic
    clock), and a count of every outcome by status."""

    latencies_ms: list[float] = field(default_factory=list)
    windows: list[tuple[float, float]] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def count(self) -> int:
        return sum(self.outcomes.values())

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.outcomes.items() if not status.startswith("2"))

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    def error_text(self) -> str:
        """e.g. "422 x3, ReadTimeout x1", or "0"."""
        bad = sorted((s, n) for s, n in self.outcomes.items() if not s.startswith("2"))
        return ", ".join(f"{s} x{n}" for s, n in bad) or "0"


@dataclass
class DriveResult:
    routes: dict[str, RouteStats]
    seconds: float

    @property
    def total(self) -> RouteStats:
        merged = RouteStats()
        for stats in self.routes.values():
            merged.latencies_ms += stats.latencies_ms
            merged.windows += stats.windows
            merged.outcomes += stats.outcomes
        return merged

    def throughput(self) -> float:
        return self.total.count / self.seconds if self.seconds else math.nan


async def drive(
    client: httpx.AsyncClient,
    pick: Callable[[int], Request],
    *,
    concurrency: int,
    count: int | None = None,
    seconds: float | None = None,
) -> DriveResult:
    """Send requests `pick(0)`, `pick(1)`, ... from `concurrency` workers until `count` were
    sent or `seconds` passed (whichever comes first); a transport error counts by its name."""
    if count is None and seconds is None:
        raise ValueError("give a count, a duration, or both")
    routes: dict[str, RouteStats] = defaultdict(RouteStats)
    indexes = itertools.count()
    limit = count if count is not None else math.inf
    started = perf_counter()
    deadline = started + seconds if seconds is not None else math.inf

    async def worker() -> None:
        while (index := next(indexes)) < limit and perf_counter() < deadline:
            route, method, url = pick(index)
            sent = perf_counter()
            try:
                response = await client.request(method, url)
            except httpx.HTTPError as error:
                routes[route].outcomes[type(error).__name__] += 1
                continue
            done = perf_counter()
            routes[route].outcomes[str(response.status_code)] += 1
            if response.is_success:
                routes[route].latencies_ms.append((done - sent) * 1000)
                routes[route].windows.append((sent, done))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return DriveResult(dict(routes), perf_counter() - started)


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"
