"""Replay a stored run: rebuild each portfolio's problem from what the run stored, solve it
again with the engine, and compare the orders. Nothing is read from GlobeCo.

A run keeps, per rebalanced portfolio, every input of its solve: the policy applied (mode,
bands, withdrawal, cash reserve, restrictions, lots and minimums), the cash before, and per
security its price, the quantity held and the model's target and band (0, 0, 0 for a
held security the model lacks). Runs stored with the model's version keep all of it; a run
without one was stored before, and is refused.
"""

import asyncio
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from decimal import Decimal
from functools import partial

import structlog

from order_generation.domain.drifts import Drift
from order_generation.domain.errors import Conflict, ServiceError
from order_generation.domain.models import Position
from order_generation.domain.policy import Policy
from order_generation.domain.rebalance import RebalanceProblem, Trade, solve
from order_generation.domain.runs import PortfolioFailure, PortfolioOutcome, RebalanceRun

log = structlog.get_logger(__name__)


class NotReplayable(Conflict):
    """A run stored before runs kept what a replay needs (HTTP 409)."""

    code = "NOT_REPLAYABLE"


@dataclass(frozen=True)
class Recorded:
    """What a run stored of one rebalanced portfolio: its inputs and its orders."""

    portfolio_id: str
    drifts: tuple[Drift, ...]
    """Per security, in the order of the result: price, held quantity, target and band."""
    cash_before: Decimal
    policy: Policy
    trades: tuple[Trade, ...]

    @classmethod
    def of(cls, outcome: PortfolioOutcome) -> "Recorded":
        result = outcome.result
        return cls(
            outcome.portfolio_id, result.drifts, result.cash_before, result.policy, result.trades
        )


@dataclass(frozen=True)
class RecordedRun:
    """A stored run as a replay reads it: the portfolios rebalanced, and those that failed
    (which stored no inputs, so there is nothing to replay)."""

    rebalance_id: str | None
    model_id: str
    model_version: int
    portfolios: tuple[Recorded, ...]
    failures: tuple[PortfolioFailure, ...]

    @classmethod
    def of(cls, run: RebalanceRun) -> "RecordedRun":
        if run.model_version is None:
            raise not_replayable(run.rebalance_id)
        return cls(
            run.rebalance_id,
            run.model_id,
            run.model_version,
            tuple(Recorded.of(o) for o in run.succeeded),
            tuple(o for o in run.outcomes if isinstance(o, PortfolioFailure)),
        )


def not_replayable(rebalance_id: str | None) -> NotReplayable:
    return NotReplayable(
        f"rebalance {rebalance_id} cannot be replayed: it was stored before runs kept the "
        "model version and every input of their solve",
        {"rebalance_id": rebalance_id, "reason": "no model_version"},
    )


@dataclass(frozen=True)
class OrderDifference:
    """One security whose order differs; None where that side has no order."""

    security_id: str
    stored: Trade | None
    replayed: Trade | None


@dataclass(frozen=True)
class PortfolioReplay:
    """One portfolio solved again: the orders that differ, or why the solve failed now."""

    portfolio_id: str
    orders: int
    differences: tuple[OrderDifference, ...] = ()
    error: ServiceError | None = None

    @property
    def same(self) -> bool:
        return self.error is None and not self.differences


@dataclass(frozen=True)
class RunReplay:
    run: RecordedRun
    portfolios: tuple[PortfolioReplay, ...]

    @property
    def same(self) -> bool:
        return all(p.same for p in self.portfolios)


def problem_of(recorded: Recorded) -> RebalanceProblem:
    """The problem the run solved for this portfolio. The model's securities are the rows
    with a target or a band, in the result's (the model's) order; a held security the model
    lacks has neither, and a model has no position of target 0. Listing every row in
    `holdings` changes nothing: a security the portfolio did not hold has quantity 0."""
    rows = recorded.drifts
    return RebalanceProblem(
        positions=tuple(
            Position(d.security_id, d.target, d.low_drift, d.high_drift)
            for d in rows
            if d.target or d.low_drift or d.high_drift
        ),
        holdings={d.security_id: d.original_quantity for d in rows},
        cash=recorded.cash_before,
        prices={d.security_id: d.price for d in rows},
        policy=recorded.policy,
    )


def replay_portfolio(recorded: Recorded, time_limit: float) -> PortfolioReplay:
    """Solve the stored problem again and compare its orders with the stored ones."""
    orders = len(recorded.trades)
    try:
        replayed = solve(problem_of(recorded), time_limit=time_limit)
    except ServiceError as error:
        return PortfolioReplay(recorded.portfolio_id, orders, error=error)
    differences = order_differences(recorded, replayed.trades)
    return PortfolioReplay(recorded.portfolio_id, orders, differences)


def order_differences(recorded: Recorded, replayed: Iterable[Trade]) -> tuple[OrderDifference, ...]:
    """Every security whose stored and replayed orders differ, in the order of the result."""
    stored = {t.security_id: t for t in recorded.trades}
    again = {t.security_id: t for t in replayed}
    securities = dict.fromkeys([*(d.security_id for d in recorded.drifts), *stored, *again])
    return tuple(
        OrderDifference(sid, stored.get(sid), again.get(sid))
        for sid in securities
        if stored.get(sid) != again.get(sid)
    )


async def replay_run(
    run: RecordedRun, *, time_limit: float, executor: Executor | None = None
) -> RunReplay:
    """Replay every rebalanced portfolio, one at a time off the event loop, as a rebalance
    solves."""
    loop = asyncio.get_running_loop()
    replays = []
    for recorded in run.portfolios:
        job = partial(replay_portfolio, recorded, time_limit)
        replays.append(await loop.run_in_executor(executor, job))
    replay = RunReplay(run, tuple(replays))
    log.info(
        "rebalance_replayed",
        rebalance_id=run.rebalance_id,
        portfolios=len(replays),
        differing=sum(not p.same for p in replays),
    )
    return replay


def replay_all(run: RecordedRun, *, time_limit: float) -> RunReplay:
    """`replay_run` in the calling thread (the command line)."""
    return RunReplay(run, tuple(replay_portfolio(p, time_limit) for p in run.portfolios))


def describe(replay: RunReplay) -> Iterator[str]:
    """The replay in lines of text: a heading, then each portfolio and each difference."""
    run = replay.run
    verdict = "every order is the same" if replay.same else "some orders differ"
    yield (
        f"rebalance {run.rebalance_id} (model {run.model_id} version {run.model_version}): "
        f"{len(replay.portfolios)} portfolios replayed, {verdict}"
    )
    for portfolio in replay.portfolios:
        if portfolio.error is not None:
            error = portfolio.error
            yield f"{portfolio.portfolio_id}: the replay failed: {error.code}: {error.message}"
        elif portfolio.same:
            yield f"{portfolio.portfolio_id}: same orders ({portfolio.orders})"
        else:
            count = len(portfolio.differences)
            securities = "security" if count == 1 else "securities"
            yield (
                f"{portfolio.portfolio_id}: orders differ for {count} {securities} "
                f"({portfolio.orders} stored)"
            )
        for difference in portfolio.differences:
            yield (
                f"  {difference.security_id}: stored {_order(difference.stored)}, "
                f"replayed {_order(difference.replayed)}"
            )
    for failure in run.failures:
        yield f"{failure.portfolio_id}: not replayed, it failed in the run ({failure.code})"


def _order(trade: Trade | None) -> str:
    return f"{trade.side} {trade.quantity}" if trade else "no order"
