"""`POST /rebalance/{id}/replay`: solve a stored run again from what it stored, and say whether
every order is the same. Also reads an exported run (`GET /rebalance/{id}`) for the CLI."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from order_generation.api.dependencies import StoreDep
from order_generation.api.rebalance_schemas import (
    FailureDetail,
    StoredFailure,
    StoredPortfolio,
    StoredRebalance,
)
from order_generation.api.schemas import ErrorBody, StoredId
from order_generation.config import Settings
from order_generation.domain.drifts import Drift
from order_generation.domain.rebalance import Trade
from order_generation.domain.runs import PortfolioFailure
from order_generation.service.replay import (
    OrderDifference,
    PortfolioReplay,
    Recorded,
    RecordedRun,
    RunReplay,
    not_replayable,
    replay_run,
)

router = APIRouter(
    prefix="/api/v1",
    tags=["rebalance"],
    responses={
        400: {"model": ErrorBody, "description": "Invalid input"},
        404: {"model": ErrorBody, "description": "Not found"},
    },
)
Side = Literal["BUY", "SELL"]


class OrderDifferenceOut(BaseModel):
    """A security whose order differs; side and quantity are null where there is no order."""

    security_id: str
    stored_side: Side | None
    stored_quantity: int | None
    replayed_side: Side | None
    replayed_quantity: int | None

    @classmethod
    def of(cls, difference: OrderDifference) -> "OrderDifferenceOut":
        stored, replayed = difference.stored, difference.replayed
        return cls(
            security_id=difference.security_id,
            stored_side=stored.side if stored else None,
            stored_quantity=stored.quantity if stored else None,
            replayed_side=replayed.side if replayed else None,
            replayed_quantity=replayed.quantity if replayed else None,
        )


class PortfolioReplayOut(BaseModel):
    portfolio_id: str
    same: bool
    orders: Annotated[int, Field(description="Orders the run stored for this portfolio")]
    differences: list[OrderDifferenceOut]
    error: Annotated[
        FailureDetail | None,
        Field(description="Why solving the stored inputs again failed (e.g. now infeasible)"),
    ]

    @classmethod
    def of(cls, replay: PortfolioReplay) -> "PortfolioReplayOut":
        error = replay.error
        return cls(
            portfolio_id=replay.portfolio_id,
            same=replay.same,
            orders=replay.orders,
            differences=[OrderDifferenceOut.of(d) for d in replay.differences],
            error=FailureDetail(code=error.code, message=error.message) if error else None,
        )


class ReplayOut(BaseModel):
    """Every rebalanced portfolio of the run solved again from the run's own data."""

    rebalance_id: str | None
    model_id: str
    model_version: int
    same: Annotated[bool, Field(description="Every replayed order is the stored one")]
    portfolios: list[PortfolioReplayOut]
    not_replayed: Annotated[
        list[StoredFailure],
        Field(description="Portfolios that failed in the run: they stored no inputs"),
    ]

    @classmethod
    def of(cls, replay: RunReplay) -> "ReplayOut":
        run = replay.run
        return cls(
            rebalance_id=run.rebalance_id,
            model_id=run.model_id,
            model_version=run.model_version,
            same=replay.same,
            portfolios=[PortfolioReplayOut.of(p) for p in replay.portfolios],
            not_replayed=[
                StoredFailure(
                    portfolio_id=f.portfolio_id, error=FailureDetail(code=f.code, message=f.message)
                )
                for f in run.failures
            ],
        )


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@router.post(
    "/rebalance/{rebalance_id}/replay",
    responses={409: {"model": ErrorBody, "description": "Stored before runs could be replayed"}},
)
async def replay_rebalance(
    rebalance_id: StoredId,
    store: StoreDep,
    settings: Annotated[Settings, Depends(_settings)],
) -> ReplayOut:
    """Solve every rebalanced portfolio of a stored run again from the prices, quantities,
    cash, targets and policy the run stored (no GlobeCo call, nothing stored), and compare
    the orders."""
    stored = await store.runs.get_rebalance(rebalance_id)
    recorded = RecordedRun.of(stored.run)
    return ReplayOut.of(await replay_run(recorded, time_limit=settings.max_optimization_time))


def recorded_of_export(export: StoredRebalance) -> RecordedRun:
    """An exported run (the JSON of `GET /rebalance/{id}`) as a replay reads it."""
    if export.model_version is None:
        raise not_replayable(export.rebalance_id)
    return RecordedRun(
        export.rebalance_id,
        export.model_id,
        export.model_version,
        tuple(_recorded(p) for p in export.portfolios),
        tuple(
            PortfolioFailure(f.portfolio_id, f.error.code, f.error.message) for f in export.failures
        ),
    )


def _recorded(portfolio: StoredPortfolio) -> Recorded:
    positions = portfolio.positions
    drifts = tuple(
        Drift(
            p.security_id,
            p.price,
            p.original_quantity,
            p.adjusted_quantity,
            p.target,
            p.low_drift,
            p.high_drift,
            p.actual,
            p.actual_drift,
        )
        for p in positions
    )
    trades = tuple(
        Trade(p.security_id, p.transaction_type, p.trade_quantity or 0)
        for p in positions
        if p.transaction_type
    )
    return Recorded(
        portfolio.portfolio_id,
        drifts,
        portfolio.cash_before_rebalance,
        portfolio.policy.to_domain(),
        trades,
    )
