"""Rebalance engine benchmark: the exact engine against two baselines, in one run.

    python -m bench.engine [--quick] [--seed N]

Per N it prints median and p95 milliseconds per solve, how many answers break a constraint,
how many are worse than the optimum, and the largest gap in basis points of market value,
for the engine, for (a) the original service's rounded CVXPY/CLARABEL relaxation and for
(b) a CVXPY MILP solved by HiGHS (bench/engine_baselines.py). The engine's objective is the
optimum the others are judged against; an answer of (b) that beats it counts against the
engine. At N = 100 it also times `read_and_write`, the engine's reading of the input and
writing of the rows with nothing solved, a floor under `solve` as it is built. Then:
1,000 portfolios of 100 positions, and a stress set where cash binds. Infeasible problems
(the engine says why) are counted and left out of the tables.
"""

import argparse
import gc
import platform
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial

from rich.console import Console
from rich.table import Table

from bench import engine_baselines as baselines
from bench import engine_problems as problems
from order_generation.domain.allocation import ZERO4, Book
from order_generation.domain.errors import Infeasible
from order_generation.domain.rebalance import (
    Drift,
    RebalanceProblem,
    RebalanceResult,
    drift_rows,
    solve,
)

SIZES = (10, 50, 100, 500)
MILP_TIME_LIMIT = 20.0
Run = tuple[RebalanceProblem, RebalanceResult, float]
LEGEND = """\
(a) the original approach: CVXPY continuous relaxation of the model's securities, no cash row,
    CLARABEL, rebuilt per portfolio, rounded to the nearest share
(b) CVXPY MILP of the whole problem, HiGHS with mip_rel_gap 0, rebuilt per portfolio
violating: breaks a band, overspends cash, keeps a holding the model lacks, or no answer
suboptimal: no violation but PD above the engine's (engine: (b) found a lower PD)
max gap: largest PD above the engine's among answers without violations, in bp of MV
N = 500 exceeds the model rules' 100 positions; its targets use 0.0001 steps"""


@dataclass(frozen=True)
class Plan:
    """How many problems each solver sees, per N."""

    engine: dict[int, int]
    relaxation: dict[int, int]
    milp: dict[int, int]
    stress: dict[int, int]
    stress_milp: dict[int, int]
    portfolios: int = 1_000


FULL = Plan(
    engine={10: 400, 50: 400, 100: 400, 500: 100},
    relaxation={10: 100, 50: 100, 100: 100, 500: 30},
    milp={10: 60, 50: 40, 100: 30, 500: 8},
    stress={100: 25, 500: 10},
    stress_milp={100: 25, 500: 3},
)
QUICK = Plan(
    engine={10: 80, 50: 80, 100: 80, 500: 20},
    relaxation={10: 20, 50: 20, 100: 20, 500: 6},
    milp={10: 12, 50: 8, 100: 8, 500: 2},
    stress={100: 10, 500: 3},
    stress_milp={100: 10, 500: 1},
)


@dataclass
class Tally:
    """Timings and verdicts of one solver over one set of problems."""

    name: str
    seconds: list[float] = field(default_factory=list)
    broken: Counter[str] = field(default_factory=Counter)
    violating: int = 0
    suboptimal: int = 0
    gaps_bp: list[float] = field(default_factory=list)

    def record(
        self,
        seconds: float,
        problem: RebalanceProblem,
        answer: Mapping[str, int] | None,
        optimum: Fraction,
    ) -> Fraction | None:
        """Judge one answer; returns its PD when it breaks nothing."""
        self.seconds.append(seconds)
        if answer is None:
            self.violating += 1
            self.broken["no answer"] += 1
            return None
        verdict = problems.judge(problem, answer)
        if verdict.broken:
            self.violating += 1
            self.broken.update(verdict.broken)
            return None
        gap = verdict.deviation - optimum
        self.suboptimal += gap > 0
        self.gaps_bp.append(float(gap * 10_000 / verdict.market_value) if gap else 0.0)
        return verdict.deviation

    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1e3 if self.seconds else float("nan")

    def p95_ms(self) -> float:
        if not self.seconds:
            return float("nan")
        ordered = sorted(self.seconds)
        return ordered[round(0.95 * (len(ordered) - 1))] * 1e3


def timed[T](call: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    value = call()
    return time.perf_counter() - started, value


def run_engine(batch: list[RebalanceProblem]) -> tuple[list[Run], int]:
    """The engine over a batch: (problem, result, seconds) when feasible; and the infeasible.

    Results are kept, as a model rebalance keeps them to store; the heap starts collected.
    """
    gc.collect()
    runs, infeasible = [], 0
    for problem in batch:
        try:
            seconds, result = timed(partial(solve, problem))
        except Infeasible:
            infeasible += 1
            continue
        runs.append((problem, result, seconds))
    return runs, infeasible


def read_and_write(problem: RebalanceProblem) -> list[Drift]:
    """The input read into integers and a drift row per security written, as `solve` does
    both, holdings unchanged: what a solve costs before any maths."""
    book = Book.of(problem.positions, problem.holdings, problem.cash, problem.prices)
    unrounded = [ZERO4] * len(book.ids)
    return drift_rows(book, book.held, unrounded, unrounded)


def floor_ms(runs: list[Run]) -> float:
    """Median milliseconds of `read_and_write` over the problems of `runs`."""
    gc.collect()
    return statistics.median(timed(partial(read_and_write, p))[0] for p, _, _ in runs) * 1e3


def compare(runs: list[Run], relaxations: int, milps: int) -> tuple[Tally, Tally, Tally]:
    engine = Tally("engine")
    relaxed = Tally("(a) relaxation")
    milp = Tally("(b) MILP")
    for i, (problem, result, seconds) in enumerate(runs):
        optimum = Fraction(result.objective)
        engine.record(seconds, problem, result.quantities, optimum)
        if i < relaxations:
            took, answer = timed(partial(baselines.original_relaxation, problem))
            relaxed.record(took, problem, answer, optimum)
        if i < milps:
            took, answer = timed(partial(baselines.cvxpy_milp, problem, MILP_TIME_LIMIT))
            deviation = milp.record(took, problem, answer, optimum)
            engine.suboptimal += deviation is not None and deviation < optimum
    return engine, relaxed, milp


def table(title: str, tallies: tuple[Tally, Tally, Tally]) -> Table:
    grid = Table(title=title, title_justify="left")
    for heading in (
        "solver",
        "solves",
        "median ms",
        "p95 ms",
        "speed vs (a)",
        "violating",
        "suboptimal",
        "max gap bp",
    ):
        grid.add_column(heading, justify="left" if heading == "solver" else "right", no_wrap=True)
    baseline = tallies[1].median_ms()
    for tally in tallies:
        grid.add_row(
            tally.name,
            str(len(tally.seconds)),
            f"{tally.median_ms():.3f}",
            f"{tally.p95_ms():.3f}",
            f"{baseline / tally.median_ms():.1f}x",
            str(tally.violating),
            str(tally.suboptimal),
            f"{max(tally.gaps_bp, default=0.0):.2f}",
        )
    return grid


def realistic_section(
    console: Console, plan: Plan, seed: int
) -> tuple[dict[int, tuple[Tally, Tally, Tally]], float]:
    """The tables per N, and the `read_and_write` floor at N = 100 in milliseconds."""
    console.rule("Realistic problems: new, near and far from target, holdings outside the model")
    results, floor = {}, float("nan")
    for n in SIZES:
        runs, infeasible = run_engine(problems.realistic(seed, n, plan.engine[n]))
        tallies = compare(runs, plan.relaxation[n], plan.milp[n])
        methods = Counter(result.method for _, result, _ in runs)
        console.print(table(f"N = {n}", tallies))
        console.print(
            f"  engine paths {dict(methods)}; infeasible (left out): {infeasible}; "
            f"(a) broke: {dict(tallies[1].broken) or 'nothing'}"
        )
        if n == 100:
            floor = floor_ms(runs)
            console.print(f"  reading the input and writing the rows only: {floor:.3f} ms")
        results[n] = tallies
    return results, floor


def portfolios_section(console: Console, plan: Plan, seed: int) -> float:
    console.rule(f"{plan.portfolios:,} portfolios of one 100-position model")
    batch = problems.one_model(seed, 100, plan.portfolios)
    total, outcome = timed(partial(run_engine, batch))
    runs, infeasible = outcome
    methods = Counter(result.method for _, result, _ in runs)
    console.print(
        f"  {total:.3f} s in total, {total / len(batch) * 1e3:.3f} ms per portfolio "
        f"(paths {dict(methods)}, infeasible {infeasible})"
    )
    return total


def stress_section(console: Console, plan: Plan, seed: int) -> dict[int, Tally]:
    console.rule("Stress: new portfolios where rounding every target up would overspend")
    engines = {}
    for n, count in plan.stress.items():
        runs, infeasible = run_engine(problems.binding(seed, n, count))
        tallies = compare(runs, count, plan.stress_milp[n])
        if n == 100:
            console.print(stress_rows(runs, tallies))
        console.print(table(f"Stress, N = {n}", tallies))
        console.print(
            f"  infeasible (left out): {infeasible}; (a) broke: {dict(tallies[1].broken)}"
        )
        engines[n] = tallies[0]
    return engines


def stress_rows(runs: list[Run], tallies: tuple[Tally, Tally, Tally]) -> Table:
    grid = Table(title="Stress, N = 100, per problem", title_justify="left")
    for heading in ("#", "path", "engine ms", "(a) ms", "(b) ms", "PD", "cash after"):
        grid.add_column(heading, justify="right")
    milp_seconds = tallies[2].seconds
    for i, (_, result, seconds) in enumerate(runs):
        grid.add_row(
            str(i),
            result.method,
            f"{seconds * 1e3:.3f}",
            f"{tallies[1].seconds[i] * 1e3:.1f}",
            f"{milp_seconds[i] * 1e3:.1f}" if i < len(milp_seconds) else "-",
            f"{result.objective:,.2f}",
            f"{result.cash_after:,.2f}",
        )
    return grid


def verdict(
    console: Console,
    realistic: dict[int, tuple[Tally, Tally, Tally]],
    floor: float,
    total: float,
    stress: dict[int, Tally],
) -> None:
    console.rule("Targets")
    engine, relaxed, _ = realistic[100]
    ratio = relaxed.median_ms() / engine.median_ms()
    budget = relaxed.median_ms() / 40
    clean = all(t[0].violating == 0 and t[0].suboptimal == 0 for t in realistic.values())
    clean = clean and all(t.violating == 0 for t in stress.values())
    lines = [
        (ratio >= 40, f"N = 100 median: engine {ratio:.1f}x faster than (a) (target >= 40x)"),
        (clean, "engine: zero violating and zero suboptimal answers"),
        (total < 0.5, f"1,000 x 100 positions: {total:.3f} s (target < 0.5 s)"),
        (
            stress[100].p95_ms() <= 5,
            f"stress N = 100: p95 {stress[100].p95_ms():.3f} ms, max "
            f"{max(stress[100].seconds) * 1e3:.3f} ms (target <= 5 ms per problem)",
        ),
    ]
    for met, line in lines:
        console.print(f"  [{'green' if met else 'red'}]{'met ' if met else 'MISSED'}[/] {line}")
    console.print(
        f"  40x of (a) is {budget * 1e3:.0f} us a solve at N = 100; reading the input and "
        f"writing the rows take {floor * 1e3:.0f} us of it "
        f"({relaxed.median_ms() / floor:.1f}x faster than (a)) before any maths"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer problems per solver")
    parser.add_argument("--seed", type=int, default=7, help="seed of every generated problem")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    console = Console(width=112)
    console.print(
        f"engine benchmark, seed {args.seed}, {'quick' if args.quick else 'full'} plan, "
        f"Python {platform.python_version()} on {platform.machine()}"
    )
    console.print(LEGEND)
    realistic, floor = realistic_section(console, plan, args.seed)
    total = portfolios_section(console, plan, args.seed)
    stress = stress_section(console, plan, args.seed)
    verdict(console, realistic, floor, total, stress)


if __name__ == "__main__":
    main()
