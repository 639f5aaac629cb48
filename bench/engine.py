"""Rebalance engine benchmark: the exact engine against baselines measured in the same run.

    python -m bench.engine [--quick] [--seed N]

Per N it prints median and p95 milliseconds per solve, how many answers break a constraint,
how many are worse than the optimum, and the largest gap in basis points of market value,
for the engine, for (a) the original service's rounded CVXPY/CLARABEL relaxation and for
(b) a CVXPY MILP solved by HiGHS (bench/engine_baselines.py). The engine's objective is the
optimum the others are judged against; an answer of (b) that beats it counts against the
engine. Then: how many orders mode `bands` saves against `full` on those portfolios;
1,000 portfolios of 100 positions; a stress set where cash binds; and a policy mix (every
setting of `domain/policy.py`, alone and combined), the engine against the policy MILP of
`domain/milp.py`, each answer rechecked against the rules by `engine_problems.audit`.
Infeasible problems (the engine says why) are counted and left out of the plain tables.
"""

import argparse
import dataclasses
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
from order_generation.domain import milp as policy_milp
from order_generation.domain.errors import Infeasible, SolverTimeout
from order_generation.domain.policy import Policy
from order_generation.domain.rebalance import RebalanceProblem, RebalanceResult, solve

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
N = 500 exceeds the model rules' 100 positions; its targets use 0.0001 steps
Policy mix: every policy setting alone or two to four together (bench/engine_problems.py),
    the engine against the HiGHS MILP of the same policy problem (domain/milp.py); MILP/engine
    is the ratio of their medians over the problems both solved; both answers rechecked
    against the policy's rules in Fractions; objective = (total amount outside the bands,
    PD), compared in that order; excess in bp of MV, of the first part that differs"""


@dataclass(frozen=True)
class Plan:
    """How many problems each solver sees, per N."""

    engine: dict[int, int]
    relaxation: dict[int, int]
    milp: dict[int, int]
    stress: dict[int, int]
    stress_milp: dict[int, int]
    policy: dict[int, int]
    policy_milp: dict[int, int]
    portfolios: int = 1_000


FULL = Plan(
    engine={10: 400, 50: 400, 100: 400, 500: 100},
    relaxation={10: 100, 50: 100, 100: 100, 500: 30},
    milp={10: 60, 50: 40, 100: 30, 500: 8},
    stress={100: 25, 500: 10},
    stress_milp={100: 25, 500: 3},
    policy={10: 300, 100: 100, 500: 20},
    policy_milp={10: 150, 100: 40, 500: 6},
)
QUICK = Plan(
    engine={10: 80, 50: 80, 100: 80, 500: 20},
    relaxation={10: 20, 50: 20, 100: 20, 500: 6},
    milp={10: 12, 50: 8, 100: 8, 500: 2},
    stress={100: 10, 500: 3},
    stress_milp={100: 10, 500: 1},
    policy={10: 60, 100: 20, 500: 4},
    policy_milp={10: 30, 100: 10, 500: 1},
)
POLICY_TARGET = 20
"""The policy MILP's median over the engine's, at N = 100, that issue 12 asks for."""


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
) -> dict[int, tuple[tuple[Tally, Tally, Tally], list[Run]]]:
    """The tables per N; the tallies and the engine's runs by N."""
    console.rule("Realistic problems: new, near and far from target, holdings outside the model")
    results = {}
    for n in SIZES:
        runs, infeasible = run_engine(problems.realistic(seed, n, plan.engine[n]))
        tallies = compare(runs, plan.relaxation[n], plan.milp[n])
        methods = Counter(result.method for _, result, _ in runs)
        console.print(table(f"N = {n}", tallies))
        console.print(
            f"  engine paths {dict(methods)}; infeasible (left out): {infeasible}; "
            f"(a) broke: {dict(tallies[1].broken) or 'nothing'}"
        )
        results[n] = tallies, runs
    return results


@dataclass
class Orders:
    """Orders per portfolio under mode full and mode bands, over the same portfolios."""

    full: list[int] = field(default_factory=list)
    bands: list[int] = field(default_factory=list)
    fell_back: int = 0
    bands_seconds: list[float] = field(default_factory=list)


def count_orders(runs: list[Run]) -> Orders:
    """Each run's problem solved again under mode bands (no other setting); a problem the
    bands solve cannot answer in time is left out of both counts."""
    orders = Orders()
    gc.collect()
    for problem, result, _ in runs:
        banded = dataclasses.replace(problem, policy=Policy(mode="bands"))
        try:
            seconds, again = timed(partial(solve, banded))
        except SolverTimeout:
            continue
        orders.full.append(len(result.trades))
        orders.bands.append(len(again.trades))
        orders.fell_back += again.mode == "full"
        orders.bands_seconds.append(seconds)
    return orders


def bands_section(console: Console, runs: dict[int, list[Run]]) -> dict[int, Orders]:
    console.rule("Orders: mode bands against mode full, on the realistic portfolios above")
    grid = Table(title_justify="left")
    for heading in (
        "N",
        "portfolios",
        "orders\nfull",
        "orders\nbands",
        "saved",
        "median\nfull",
        "median\nbands",
        "bands fell\nback to full",
        "bands\nmedian ms",
    ):
        grid.add_column(heading, justify="right", no_wrap=True)
    counted = {}
    for n, batch in runs.items():
        orders = counted[n] = count_orders(batch)
        full, bands = sum(orders.full), sum(orders.bands)
        grid.add_row(
            str(n),
            str(len(orders.full)),
            f"{full:,}",
            f"{bands:,}",
            f"{1 - bands / full:.0%}" if full else "-",
            f"{statistics.median(orders.full):g}" if orders.full else "-",
            f"{statistics.median(orders.bands):g}" if orders.bands else "-",
            f"{orders.fell_back / len(orders.full):.0%}" if orders.full else "-",
            f"{statistics.median(orders.bands_seconds) * 1e3:.3f}" if orders.full else "-",
        )
    console.print(grid)
    console.print(
        "  bands keeps every model security already inside its band (an all-cash portfolio has "
        "none there)"
    )
    return counted


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


@dataclass
class PolicyTally:
    """The engine and the policy MILP over one N of the policy mix."""

    n: int
    engine_seconds: list[float] = field(default_factory=list)
    shared_engine_seconds: list[float] = field(default_factory=list)
    milp_seconds: list[float] = field(default_factory=list)
    methods: Counter[str] = field(default_factory=Counter)
    engine_unproven: int = 0
    """Engine answers whose status is not "optimal" (the MILP fallback ran)."""
    engine_infeasible: int = 0
    engine_timeouts: int = 0
    violated: int = 0
    """Engine answers that break something (`engine_problems_found`)."""
    violations: Counter[str] = field(default_factory=Counter)
    compared: int = 0
    milp_better: int = 0
    milp_worse: int = 0
    excess_bp: list[float] = field(default_factory=list)
    both_infeasible: int = 0
    only_engine_infeasible: int = 0
    only_milp_infeasible: int = 0
    milp_unproven: int = 0
    milp_broken: Counter[str] = field(default_factory=Counter)
    modes_differ: int = 0
    findings: list[str] = field(default_factory=list)
    """What counts against the engine: problem number, label and what happened."""
    milp_findings: list[str] = field(default_factory=list)
    """What counts against the MILP (its infeasible verdicts the engine answers)."""

    def engine_median_ms(self) -> float:
        return _median_ms(self.engine_seconds)

    def engine_p95_ms(self) -> float:
        return _p95_ms(self.engine_seconds)

    def ratio(self) -> float:
        """The MILP's median over the engine's, on the problems both solved."""
        return _median_ms(self.milp_seconds) / _median_ms(self.shared_engine_seconds)


def _median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1e3 if seconds else float("nan")


def _p95_ms(seconds: list[float]) -> float:
    if not seconds:
        return float("nan")
    ordered = sorted(seconds)
    return ordered[round(0.95 * (len(ordered) - 1))] * 1e3


def engine_problems_found(problem: RebalanceProblem, result: RebalanceResult) -> list[str]:
    """What the engine's answer breaks: the policy's rules (`audit`), the mode it reports, and
    its reported PD and amounts outside against the exact ones."""
    policy = problem.policy
    audit = problems.audit(problem, result.quantities, kept=result.mode == "bands")
    found = list(audit.broken)
    allowed = ("bands", "full") if policy.mode == "bands" else (policy.mode,)
    if result.mode not in allowed:
        found.append(f"mode {result.mode}")
    if Fraction(result.objective) != audit.deviation:
        found.append("PD misreported")
    if sum((Fraction(b.outside) for b in result.breaches), Fraction(0)) != audit.outside:
        found.append("breaches misreported")
    return found


def attempt[T](call: Callable[[], T]) -> tuple[float, T | Infeasible | SolverTimeout]:
    """`timed`, with the engine's infeasible and timeout verdicts as values."""
    started = time.perf_counter()
    try:
        value: T | Infeasible | SolverTimeout = call()
    except (Infeasible, SolverTimeout) as error:
        value = error
    return time.perf_counter() - started, value


def judge_policy(
    tally: PolicyTally, i: int, label: str, problem: RebalanceProblem, *, with_milp: bool
) -> None:
    """Solve one problem of the mix with the engine (and the MILP) and record the verdicts."""
    seconds, outcome = attempt(partial(solve, problem, time_limit=MILP_TIME_LIMIT))
    tally.engine_seconds.append(seconds)
    where = f"#{i} {label}"
    result = outcome if isinstance(outcome, RebalanceResult) else None
    if isinstance(outcome, SolverTimeout):
        tally.engine_timeouts += 1
        tally.findings.append(f"{where}: the engine timed out")
    elif isinstance(outcome, Infeasible):
        tally.engine_infeasible += 1
    else:
        tally.methods[outcome.method] += 1
        tally.engine_unproven += outcome.status != "optimal"
        broken = engine_problems_found(problem, outcome)
        tally.violations.update(broken)
        tally.violated += bool(broken)
        if broken:
            tally.findings.append(f"{where}: the engine's answer breaks {', '.join(broken)}")
            result = None
    if not with_milp:
        return
    took, reference = timed(
        partial(policy_milp.solve_policy_milp, problem, time_limit=MILP_TIME_LIMIT)
    )
    tally.shared_engine_seconds.append(seconds)
    tally.milp_seconds.append(took)
    tally.milp_unproven += reference.status in ("time_limit", "failed")
    answer = None
    if reference.quantities is not None:
        answer = problems.audit(problem, reference.quantities, kept=reference.mode == "bands")
        tally.milp_broken.update(answer.broken)
        answer = None if answer.broken else answer
    if reference.status == "infeasible":
        if isinstance(outcome, Infeasible):
            tally.both_infeasible += 1
        elif result is not None:
            tally.only_milp_infeasible += 1
            tally.milp_findings.append(f"{where}: the MILP says infeasible, the engine answers")
    elif isinstance(outcome, Infeasible) and answer is not None:
        tally.only_engine_infeasible += 1
        tally.findings.append(f"{where}: the engine says infeasible, the MILP answers")
    if result is None or answer is None:
        return
    if result.mode != reference.mode:
        tally.modes_differ += 1
        tally.findings.append(f"{where}: engine mode {result.mode}, MILP mode {reference.mode}")
        return
    mine = problems.audit(problem, result.quantities, kept=result.mode == "bands")
    tally.compared += 1
    if answer.objective < mine.objective:
        tally.milp_better += 1
        tally.findings.append(f"{where}: the MILP's answer is better")
    elif answer.objective > mine.objective:
        tally.milp_worse += 1
        differ = answer.outside - mine.outside or answer.deviation - mine.deviation
        tally.excess_bp.append(float(differ * 10_000 / mine.market_value))


def policy_section(console: Console, plan: Plan, seed: int) -> dict[int, PolicyTally]:
    console.rule("Policy mix: the engine against the policy MILP, every answer rechecked")
    warm = problems.policy_mix(seed, 10, 1)[0][1]
    policy_milp.solve_policy_milp(warm, time_limit=MILP_TIME_LIMIT)  # starts its worker
    tallies = {}
    for n, count in plan.policy.items():
        tally = tallies[n] = PolicyTally(n)
        gc.collect()
        for i, (label, problem) in enumerate(problems.policy_mix(seed, n, count)):
            judge_policy(tally, i, label, problem, with_milp=i < plan.policy_milp[n])
    console.print(policy_speed_table(tallies))
    console.print(policy_answer_table(tallies))
    for n, tally in tallies.items():
        console.print(
            f"  N = {n}: engine paths {dict(tally.methods)}, not proven optimal "
            f"{tally.engine_unproven}; engine broke: "
            f"{dict(tally.violations) or 'nothing'}; MILP answers that broke a rule: "
            f"{dict(tally.milp_broken) or 'none'}"
        )
        for line in tally.findings[:10]:
            console.print(f"  [red]against the engine[/] N = {n} {line}")
        for line in tally.milp_findings[:5]:
            console.print(f"  against the MILP N = {n} {line}")
    return tallies


def policy_speed_table(tallies: Mapping[int, PolicyTally]) -> Table:
    grid = Table(title="Policy mix: speed", title_justify="left")
    for heading in (
        "N",
        "engine\nsolves",
        "engine\ninfeasible",
        "engine\nmedian ms",
        "engine\np95 ms",
        "engine\nmax ms",
        "MILP\nsolves",
        "MILP\nmedian ms",
        "MILP/\nengine",
    ):
        grid.add_column(heading, justify="right", no_wrap=True)
    for n, t in tallies.items():
        grid.add_row(
            str(n),
            str(len(t.engine_seconds)),
            str(t.engine_infeasible),
            f"{t.engine_median_ms():.3f}",
            f"{t.engine_p95_ms():.3f}",
            f"{max(t.engine_seconds, default=float('nan')) * 1e3:.1f}",
            str(len(t.milp_seconds)),
            f"{_median_ms(t.milp_seconds):.1f}",
            f"{t.ratio():.0f}x",
        )
    return grid


def policy_answer_table(tallies: Mapping[int, PolicyTally]) -> Table:
    grid = Table(title="Policy mix: answers (violations over all; the rest where the MILP ran)")
    grid.title_justify = "left"
    for heading in (
        "N",
        "engine\nviolations",
        "compared",
        "MILP\nbetter",
        "MILP\nworse",
        "max MILP\nexcess bp",
        "both\ninfeasible",
        "only engine\ninfeasible",
        "only MILP\ninfeasible",
        "MILP\nunproven",
        "modes\ndiffer",
    ):
        grid.add_column(heading, justify="right", no_wrap=True)
    for n, t in tallies.items():
        grid.add_row(
            str(n),
            str(t.violated),
            str(t.compared),
            str(t.milp_better),
            str(t.milp_worse),
            f"{max(t.excess_bp, default=0.0):.4f}",
            str(t.both_infeasible),
            str(t.only_engine_infeasible),
            str(t.only_milp_infeasible),
            str(t.milp_unproven),
            str(t.modes_differ),
        )
    return grid


def verdict(
    console: Console,
    realistic: dict[int, tuple[Tally, Tally, Tally]],
    total: float,
    stress: dict[int, Tally],
    policies: dict[int, PolicyTally],
) -> None:
    console.rule("Targets (issue 12)")
    engine, relaxed, _ = realistic[100]
    clean = all(t[0].violating == 0 and t[0].suboptimal == 0 for t in realistic.values())
    clean = clean and all(t.violating == 0 for t in stress.values())
    ratio = policies[100].ratio() if 100 in policies else float("nan")
    answered = all(
        t.violated == 0 and t.milp_better == 0 and t.only_engine_infeasible == 0
        for t in policies.values()
    )
    lines = [
        (
            engine.median_ms() <= 0.5,
            f"N = 100 plain median: {engine.median_ms():.3f} ms (target <= 0.5 ms); "
            f"{relaxed.median_ms() / engine.median_ms():.1f}x faster than (a) in this run",
        ),
        (total <= 0.5, f"1,000 x 100 positions: {total:.3f} s (target <= 0.5 s)"),
        (clean, "engine, plain problems: zero violating and zero suboptimal answers"),
        (
            stress[100].p95_ms() <= 5,
            f"stress N = 100: p95 {stress[100].p95_ms():.3f} ms, max "
            f"{max(stress[100].seconds) * 1e3:.3f} ms (target <= 5 ms per problem)",
        ),
        (
            ratio >= POLICY_TARGET,
            f"policy mix N = 100: the MILP's median is {ratio:.0f}x the engine's "
            f"(target >= {POLICY_TARGET}x)",
        ),
        (
            answered,
            "policy mix: no engine answer breaks a rule, none is beaten by the MILP, and no "
            "problem the MILP answers is called infeasible by the engine",
        ),
    ]
    for met, line in lines:
        console.print(f"  [{'green' if met else 'red'}]{'met ' if met else 'MISSED'}[/] {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer problems per solver")
    parser.add_argument("--seed", type=int, default=7, help="seed of every generated problem")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    console = Console(width=120)
    console.print(
        f"engine benchmark, seed {args.seed}, {'quick' if args.quick else 'full'} plan, "
        f"Python {platform.python_version()} on {platform.machine()}"
    )
    console.print(LEGEND)
    realistic = realistic_section(console, plan, args.seed)
    bands_section(console, {n: runs for n, (_, runs) in realistic.items()})
    total = portfolios_section(console, plan, args.seed)
    stress = stress_section(console, plan, args.seed)
    policies = policy_section(console, plan, args.seed)
    verdict(console, {n: t for n, (t, _) in realistic.items()}, total, stress, policies)


if __name__ == "__main__":
    main()
