"""Stored-runs benchmark on the embedded default: its SQLite file, its own process.

    python -m bench.store            # full run: 100,000 stored results, a 1,000 x 100 run
    python -m bench.store --quick    # the same steps at a small size (under a minute)
    python -m bench.store --results 20000   # fill to 20,000 results only (checkpoints 0, 10%, 50%)

Starts, each as a process stopped by its PID: the embedded MongoDB on a SQLite file in a
temporary folder, as `serve` starts it, and `order-generation serve` on it (one worker). The
benchmark writes runs through the service's own RunStore (the real driver, the real wire
protocol) and reads them through the service's HTTP API. It prints:

1. the time to store one portfolio result (a probe run of 20-position portfolios) when the
   file holds 0 results, and again after it was filled (with 1-position results) to each
   checkpoint up to 100,000, as a ratio to the first;
2. the time to store a 1,000 x 100 model rebalance while GET /model/{id} is sent one
   request after another, and that GET's p50, p99 and longest answer;
3. that run read back a page at a time (GET /rebalance/{id}/portfolios?offset=&limit=10),
   the first read right after the write and then the median of 5 at three offsets, and one
   portfolio's positions; and the runs including 1,000 portfolio ids (of the
   filling runs: a found run is answered whole).
"""

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from statistics import median

import httpx
from rich.console import Console
from rich.table import Table

from bench.service_procs import ready_line_child, service
from bench.service_stats import ms, percentile
from order_generation.adapters.mongo import MongoStore
from order_generation.domain.models import Position
from order_generation.domain.rebalance import RebalanceProblem, solve
from order_generation.domain.runs import PortfolioOutcome, RebalanceRun

console = Console(width=150)
DATABASE = "bench-store"
TARGET_GROWTH = 1.5  # time per stored result, last checkpoint / first
TARGET_RUN_SECONDS = 30.0  # 1,000 x 100 stored
TARGET_GET_P99_MS = 50.0  # GET /model/{id} meanwhile
MODEL_PORTFOLIOS = 10**7  # the model run's first portfolio number: apart from the others


@dataclass(frozen=True)
class Plan:
    checkpoints: tuple[int, ...]  # stored results at which the probe run is timed
    fill_run: int  # portfolios per filling run
    probe: int  # portfolios of the probe run (20 positions each)
    portfolios: int  # of the model rebalance (100 positions each)


FULL = Plan((0, 10_000, 50_000, 100_000), 1_000, 100, 1_000)
QUICK = Plan((0, 100, 200), 100, 10, 20)


def outcome(portfolio: int, positions: int) -> PortfolioOutcome:
    """A solved portfolio of `positions` securities (as many drift rows)."""
    securities = [f"S{i:023d}" for i in range(positions)]
    target = Decimal(1) / Decimal(positions + 1)
    model = tuple(
        Position(s, target.quantize(Decimal("0.0001")), Decimal("0.01"), Decimal("0.01"))
        for s in securities
    )
    held = {s: i % 7 for i, s in enumerate(securities)}
    prices = {s: Decimal("7.25") + Decimal(i) * Decimal("0.37") for i, s in enumerate(securities)}
    result = solve(RebalanceProblem(model, held, Decimal("98765.43"), prices))
    return PortfolioOutcome(f"P{portfolio:023d}", f"Fund {portfolio}", result, date(2026, 1, 5))


def a_run(name: str, template: PortfolioOutcome, count: int, first: int = 0) -> RebalanceRun:
    """`count` portfolios with the template's result, each with an id of its own."""
    outcomes = tuple(
        replace(template, portfolio_id=f"P{n:023d}") for n in range(first, first + count)
    )
    return RebalanceRun("m" * 24, name, datetime.now(UTC), outcomes)


async def growth(store: MongoStore, plan: Plan) -> list[tuple[int, float]]:
    """(results stored before, seconds per result of the probe run) at each checkpoint."""
    probe, filler = outcome(0, 20), outcome(0, 1)
    stored, rows = 0, []
    for checkpoint in plan.checkpoints:
        while stored < checkpoint:
            count = min(plan.fill_run, checkpoint - stored)
            await store.runs.insert_rebalance(a_run("fill", filler, count, stored))
            stored += count
        started = time.perf_counter()
        await store.runs.insert_rebalance(a_run("probe", probe, plan.probe, 10**6))
        rows.append((checkpoint, (time.perf_counter() - started) / plan.probe))
        stored += plan.probe
        console.print(f"  {stored:,} results stored", style="dim")
    return rows


async def poll(http: httpx.AsyncClient, path: str, stop: asyncio.Event) -> list[float]:
    """GET `path` one request after another until `stop`: each latency in ms."""
    latencies = []
    while not stop.is_set():
        started = time.perf_counter()
        answer = await http.get(path)
        answer.raise_for_status()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def model_run(
    store: MongoStore, http: httpx.AsyncClient, plan: Plan
) -> tuple[str, float, list[float]]:
    """Store a `portfolios` x 100 run while GET /model/{id} polls: (id, seconds, ms)."""
    template = outcome(0, 100)
    body = {
        "name": "bench",
        "positions": [
            {
                "security_id": d.security_id,
                "target": "0.005",
                "low_drift": "0.001",
                "high_drift": "0.001",
            }
            for d in template.result.drifts
        ],
        "portfolios": [f"P{n:023d}" for n in range(10)],
    }
    created = await http.post("/api/v1/models", json=body)
    created.raise_for_status()
    path = f"/api/v1/model/{created.json()['model_id']}"
    stop = asyncio.Event()
    poller = asyncio.create_task(poll(http, path, stop))
    await asyncio.sleep(1)  # a few quiet polls first
    started = time.perf_counter()
    model_run = a_run("model", template, plan.portfolios, MODEL_PORTFOLIOS)
    run = await store.runs.insert_rebalance(model_run)
    seconds = time.perf_counter() - started
    stop.set()
    assert run.rebalance_id is not None
    return run.rebalance_id, seconds, await poller


async def timed_get(http: httpx.AsyncClient, path: str, times: int = 5) -> float:
    """The median of `times` answers to GET `path`, in ms."""
    latencies = []
    for _ in range(times):
        started = time.perf_counter()
        (await http.get(path)).raise_for_status()
        latencies.append((time.perf_counter() - started) * 1000)
    return median(latencies)


async def reads(http: httpx.AsyncClient, rebalance_id: str, plan: Plan) -> list[tuple[str, float]]:
    last = plan.portfolios - 10
    # The embedded engine forgets what it knows of a collection at every write: the first
    # read after one pays for learning it again.
    first = f"/api/v1/rebalance/{rebalance_id}/portfolios?offset=0&limit=10"
    rows = [
        (
            "GET .../portfolios?offset=0&limit=10, first after the write",
            await timed_get(http, first, 1),
        )
    ]
    for offset in (0, plan.portfolios // 2, last):
        path = f"/api/v1/rebalance/{rebalance_id}/portfolios?offset={offset}&limit=10"
        rows.append((f"GET .../portfolios?offset={offset}&limit=10", await timed_get(http, path)))
    portfolio = f"P{MODEL_PORTFOLIOS + last:023d}"
    positions = f"/api/v1/rebalance/{rebalance_id}/portfolio/{portfolio}/positions"
    rows.append(("GET .../portfolio/{id}/positions (100)", await timed_get(http, positions)))
    ids = [f"P{n:023d}" for n in range(plan.fill_run)]  # in the first filling runs
    started = time.perf_counter()
    found = await http.post("/api/v1/rebalances/portfolios?limit=1", json={"portfolios": ids})
    found.raise_for_status()
    label = f"POST /rebalances/portfolios ({len(ids):,} ids of 1-position results)"
    rows.append((label, (time.perf_counter() - started) * 1000))
    return rows


@contextlib.contextmanager
def embedded_mongo(folder: Path) -> Iterator[str]:
    """The embedded MongoDB on a SQLite file, in its own process, as `serve` starts it."""
    module = "order_generation.adapters.embedded_mongo"
    command = [sys.executable, "-m", module, str(folder / "bench.sqlite")]
    with ready_line_child(command) as (_, uri):
        yield uri


async def bench(plan: Plan, folder: Path) -> None:
    with (
        embedded_mongo(folder) as uri,
        (folder / "service.log").open("wb") as log,
        service({"MONGODB_URL": uri, "MONGODB_DATABASE": DATABASE, "WORKERS": "1"}, log) as (
            _,
            base_url,
        ),
    ):
        store = MongoStore(uri, DATABASE)
        await store.open()
        try:
            console.print("Storing results ...")
            rows = await growth(store, plan)
            async with httpx.AsyncClient(base_url=base_url, timeout=600) as http:
                console.print(f"Storing a {plan.portfolios:,} x 100 run ...")
                rebalance_id, seconds, polls = await model_run(store, http, plan)
                read_rows = await reads(http, rebalance_id, plan)
        finally:
            await store.close()
    print_growth(rows)
    print_run(plan, seconds, polls)
    print_reads(read_rows)


def print_growth(rows: list[tuple[int, float]]) -> None:
    table = Table(title="Time to store one portfolio result (20 positions) as results accumulate")
    for column in ("results already stored", "ms per result", "vs the first"):
        table.add_column(column, justify="right")
    first = rows[0][1]
    for stored, seconds in rows:
        table.add_row(f"{stored:,}", ms(seconds * 1000), f"{seconds / first:.2f}x")
    console.print(table)
    ratio = rows[-1][1] / first
    verdict = "within" if ratio <= TARGET_GROWTH else "OVER"
    console.print(f"last / first: {ratio:.2f}x ({verdict} the {TARGET_GROWTH}x target)")


def print_run(plan: Plan, seconds: float, polls: list[float]) -> None:
    table = Table(title=f"A {plan.portfolios:,} x 100 run stored while GET /model/{{id}} polls")
    for column in ("stored in (s)", "GETs", "GET p50 ms", "GET p99 ms", "GET max ms"):
        table.add_column(column, justify="right")
    p99 = percentile(polls, 99)
    table.add_row(
        f"{seconds:.1f}",
        str(len(polls)),
        ms(percentile(polls, 50)),
        ms(p99),
        ms(max(polls)),
    )
    console.print(table)
    scaled = seconds * 1_000 / plan.portfolios
    console.print(
        f"targets: stored in <= {TARGET_RUN_SECONDS:.0f} s for 1,000 portfolios "
        f"(this run, per 1,000: {scaled:.1f} s), GET p99 <= {TARGET_GET_P99_MS:.0f} ms "
        f"({'met' if p99 <= TARGET_GET_P99_MS else 'NOT met'})"
    )


def print_reads(rows: list[tuple[str, float]]) -> None:
    table = Table(title="Reading that run back (through HTTP; median of 5 but the first row)")
    table.add_column("request")
    table.add_column("ms", justify="right")
    for label, latency in rows:
        table.add_row(label, ms(latency))
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run of the same steps")
    parser.add_argument("--results", type=int, help="stored results to fill up to")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.results:
        last = args.results
        plan = replace(plan, checkpoints=(0, last // 10, last // 2, last))
    with tempfile.TemporaryDirectory(prefix="bench-store-") as folder:
        asyncio.run(bench(plan, Path(folder)))


if __name__ == "__main__":
    main()
