"""Model writes on the embedded default: the service and its SQLite-file MongoDB as processes.

    python -m bench.store_models [--quick]

First 100 concurrent position additions to one model (how many answered what) and 100 trials
of two writers adding one portfolio at once (how many ended with the portfolio in two models).
Then, per number of portfolios in a model, the milliseconds of creating it, replacing it (PUT,
one portfolio swapped), adding as many portfolios again and removing them, reading it and its
history, and adding a position to another, small model, each also as a ratio to the
10-portfolio model of the same run. The sized models stay, so the book grows from row to row:
the last column shows what every write to `models` pays for the portfolios stored (the
embedded engine checks a unique index on an array against every stored document).
"""

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.service_procs import ready_line_child, service

API = "/api/v1"
_ids = itertools.count(1)


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    concurrent_adds: int
    races: int


FULL = Plan(sizes=(10, 1_000, 5_000, 20_000), concurrent_adds=100, races=100)
QUICK = Plan(sizes=(10, 300), concurrent_adds=10, races=5)
OPERATIONS = ("create", "put", "add", "remove", "get", "history", "small edit")


@dataclass
class Results:
    """Milliseconds per operation per size; every status seen; the two concurrency counts."""

    ms: dict[int, dict[str, float]] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    add_statuses: Counter[int] = field(default_factory=Counter)
    add_seconds: float = 0.0
    shared_portfolios: int = 0


def _id(prefix: str) -> str:
    return f"{prefix}{next(_ids):023d}"


def _model(portfolios: int) -> dict[str, Any]:
    return {
        "name": f"bench {_id('M')}",
        "positions": [
            {"security_id": _id("S"), "target": "0.1", "low_drift": "0.02", "high_drift": "0.03"}
        ],
        "portfolios": [_id("P") for _ in range(portfolios)],
    }


async def _timed(
    results: Results, call: Callable[[], Awaitable[httpx.Response]]
) -> tuple[float, Any]:
    started = time.perf_counter()
    response = await call()
    elapsed = (time.perf_counter() - started) * 1000
    results.statuses[response.status_code] += 1
    return elapsed, response.json() if response.content else None


async def model_writes(http: httpx.AsyncClient, size: int, results: Results) -> None:
    body = _model(size)
    ms: dict[str, float] = {}
    ms["create"], created = await _timed(results, lambda: http.post(f"{API}/models", json=body))
    url = f"{API}/model/{created['model_id']}"
    swapped = body | {"version": 1, "portfolios": [*body["portfolios"][1:], _id("P")]}
    ms["put"], _ = await _timed(results, lambda: http.put(url, json=swapped))
    more = {"portfolios": [_id("P") for _ in range(size)]}
    ms["add"], _ = await _timed(results, lambda: http.post(f"{url}/portfolio", json=more))
    ms["remove"], _ = await _timed(
        results, lambda: http.request("DELETE", f"{url}/portfolio", json=more)
    )
    ms["get"], _ = await _timed(results, lambda: http.get(url))
    ms["history"], _ = await _timed(results, lambda: http.get(f"{url}/history"))
    small = (await http.post(f"{API}/models", json=_model(1) | {"positions": []})).json()
    add = {"security_id": _id("S"), "target": "0.01", "low_drift": "0", "high_drift": "0"}
    ms["small edit"], _ = await _timed(
        results, lambda: http.post(f"{API}/model/{small['model_id']}/position", json=add)
    )
    results.ms[size] = ms


async def concurrent_adds(http: httpx.AsyncClient, count: int, results: Results) -> None:
    created = (await http.post(f"{API}/models", json=_model(1) | {"positions": []})).json()
    url = f"{API}/model/{created['model_id']}/position"
    positions = [
        {"security_id": _id("S"), "target": "0.005", "low_drift": "0", "high_drift": "0"}
        for _ in range(count)
    ]
    started = time.perf_counter()
    responses = await asyncio.gather(*(http.post(url, json=p) for p in positions))
    results.add_seconds = time.perf_counter() - started
    results.add_statuses.update(r.status_code for r in responses)


async def portfolio_races(http: httpx.AsyncClient, trials: int, results: Results) -> None:
    contested = [_id("P") for _ in range(trials)]
    for portfolio in contested:
        bodies = [_model(0) | {"portfolios": [portfolio]} for _ in range(2)]
        await asyncio.gather(*(http.post(f"{API}/models", json=b) for b in bodies))
    holders: Counter[str] = Counter()
    offset = 0
    while page := (await http.get(f"{API}/models", params={"offset": offset})).json():
        holders.update(p for model in page for p in model["portfolios"] if p in contested)
        offset += len(page)
    results.shared_portfolios = sum(count > 1 for count in holders.values())


async def measure(base_url: str, plan: Plan) -> Results:
    results = Results()
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as http:
        await http.post(f"{API}/models", json=_model(1))  # the first write creates collections
        await concurrent_adds(http, plan.concurrent_adds, results)
        await portfolio_races(http, plan.races, results)
        for size in plan.sizes:
            await model_writes(http, size, results)
    return results


def run(plan: Plan) -> Results:
    """Start the embedded MongoDB on a SQLite file and the service, each its own process."""
    with tempfile.TemporaryDirectory() as directory:
        data = Path(directory) / "bench.sqlite"
        command = [sys.executable, "-m", "order_generation.adapters.embedded_mongo", str(data)]
        with (
            ready_line_child(command) as (_, uri),
            (Path(directory) / "service.log").open("wb") as log,
            service({"MONGODB_URL": uri, "LOG_LEVEL": "WARNING"}, log) as (_, base_url),
        ):
            return asyncio.run(measure(base_url, plan))


def table(results: Results) -> Table:
    grid = Table(title="model writes on the embedded default (ms, and x the 10-portfolio row)")
    grid.add_column("portfolios (book)", justify="right")
    for operation in OPERATIONS:
        grid.add_column(operation, justify="right")
    baseline = results.ms[min(results.ms)]
    book = 0
    for size, ms in results.ms.items():
        book += size
        cells = [f"{ms[op]:,.0f} (x{ms[op] / baseline[op]:.1f})" for op in OPERATIONS]
        grid.add_row(f"{size:,} ({book:,})", *cells)
    return grid


def report(console: Console, results: Results, plan: Plan) -> None:
    console.print(table(results))
    adds = ", ".join(f"{n} x {status}" for status, n in sorted(results.add_statuses.items()))
    console.print(
        f"{plan.concurrent_adds} concurrent position additions to one model: {adds} "
        f"in {results.add_seconds:.1f} s"
    )
    console.print(
        f"{plan.races} trials of two writers adding one portfolio at once: "
        f"{results.shared_portfolios} ended with the portfolio in two models"
    )
    console.print(f"statuses of the sized writes: {dict(sorted(results.statuses.items()))}")
    if 5_000 in results.ms:
        slowest = max(results.ms[5_000][op] for op in ("create", "put", "add", "remove"))
        met = slowest <= 1_000
        console.print(
            f"  [{'green' if met else 'red'}]{'met ' if met else 'MISSED'}[/] creating or editing "
            f"a 5,000-portfolio model takes at most 1 s (slowest: {slowest:,.0f} ms)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few trials")
    plan = QUICK if parser.parse_args().quick else FULL
    console = Console(width=160)
    report(console, run(plan), plan)


if __name__ == "__main__":
    main()
