"""Plateau benchmark: the engine with and without the knapsack's plateau fill, same run.

    python -m bench.engine_plateau [--count N] [--seed N] [--time-limit S]

Realistic portfolios (bench/engine_problems.py) under buy_only + best_effort bands + a 25-share
lot on the first model security: every step outside a band is worth the same per unit, so the
greedy break falls inside a plateau of equal ratios. Per N it prints, for the engine as it is
and for the engine with `knapsack._plateau_fill` switched off (the search alone), median, p95
and max milliseconds, how many answers the search proved and how many the MILP or a timeout
ended, and the ratio of the medians.
"""

import argparse
import dataclasses
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.table import Table

from bench import engine_problems as problems
from order_generation.domain import knapsack
from order_generation.domain.errors import Infeasible, SolverTimeout
from order_generation.domain.policy import Policy
from order_generation.domain.rebalance import RebalanceProblem, solve

SIZES = (10, 100)


@contextmanager
def search_alone() -> Iterator[None]:
    """The engine with the plateau fill switched off."""
    kept = knapsack._plateau_fill
    knapsack._plateau_fill = lambda *_: None
    try:
        yield
    finally:
        knapsack._plateau_fill = kept


def plateau_problems(seed: int, n: int, count: int) -> list[RebalanceProblem]:
    found = []
    for problem in problems.realistic(seed, n, count):
        lot = {problem.positions[0].security_id: 25}
        policy = Policy(mode="buy_only", bands="best_effort", round_lots=lot)
        found.append(dataclasses.replace(problem, policy=policy))
    return found


def run(batch: list[RebalanceProblem], time_limit: float) -> tuple[list[float], Counter[str]]:
    seconds, outcomes = [], Counter[str]()
    for problem in batch:
        start = time.perf_counter()
        try:
            result = solve(problem, time_limit=time_limit)
            outcomes[f"{result.method} {result.status}"] += 1
        except (Infeasible, SolverTimeout) as error:
            outcomes[type(error).__name__] += 1
        seconds.append(time.perf_counter() - start)
    return seconds, outcomes


def row(table: Table, label: str, seconds: list[float], outcomes: Counter[str]) -> None:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    table.add_row(
        label,
        f"{statistics.median(ms):.3f}",
        f"{p95:.1f}",
        f"{ms[-1]:.1f}",
        ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20, help="portfolios per N")
    parser.add_argument("--seed", type=int, default=7, help="seed of every generated problem")
    parser.add_argument("--time-limit", type=float, default=4.0, help="seconds per solve")
    args = parser.parse_args()
    console = Console(width=120)
    for n in SIZES:
        batch = plateau_problems(args.seed, n, args.count)
        solve(batch[0])  # warm the caches
        filled = run(batch, args.time_limit)
        with search_alone():
            alone = run(batch, args.time_limit)
        table = Table(title=f"buy_only + best_effort + lot, N = {n}, {args.count} portfolios")
        for column in ("engine", "median ms", "p95 ms", "max ms", "answers"):
            table.add_column(column, justify="left" if column in ("engine", "answers") else "right")
        row(table, "plateau fill", *filled)
        row(table, "search alone", *alone)
        console.print(table)
        ratio = statistics.median(alone[0]) / statistics.median(filled[0])
        console.print(f"  search alone / plateau fill, medians: {ratio:.1f}x")


if __name__ == "__main__":
    main()
