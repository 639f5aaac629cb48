"""Rebalance shapes: RebalanceDTO (decimals as exact strings) and stored runs (JSON numbers).

The portal reads stored-run figures as JSON numbers; storage itself stays Decimal128.
"""

from collections.abc import Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, Field, PlainSerializer

from order_generation.adapters.mongo import StoredRun
from order_generation.api.schemas import PolicyBody
from order_generation.domain.drifts import Drift
from order_generation.domain.policy import Mode
from order_generation.domain.rebalance import RebalanceResult, Trade
from order_generation.domain.runs import PortfolioFailure, PortfolioOutcome, RebalanceRun

Number = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]


class TransactionOut(BaseModel):
    transaction_type: Literal["BUY", "SELL"]
    security_id: str
    quantity: int
    trade_date: date


class DriftOut(BaseModel):
    security_id: str
    ticker: Annotated[
        str | None, Field(description="The Security service's ticker; null in a preview")
    ]
    price: Annotated[Decimal, Field(description="The price the rebalance used")]
    original_quantity: Decimal
    adjusted_quantity: Decimal
    target: Decimal
    high_drift: Decimal
    low_drift: Decimal
    actual: Decimal
    actual_drift: Decimal
    breached: bool


class BreachOut(BaseModel):
    """A band left under best-effort bands: its floor and ceiling amounts, the amount after,
    by how much it lies outside, and why."""

    security_id: str
    floor: Decimal
    ceiling: Decimal
    amount: Decimal
    outside: Decimal
    reason: str


Status = Annotated[
    str,
    Field(description="optimal, or feasible: every constraint holds, optimality not proven"),
]
UsedMode = Annotated[Mode, Field(description="The mode used: full when bands fell back")]


class FailureDetail(BaseModel):
    code: str
    message: str


class RebalanceOut(BaseModel):
    """One portfolio's orders and drifts (the RebalanceDTO)."""

    rebalance_id: str | None
    model_id: str | None
    portfolio_id: str | None
    portfolio_name: str | None
    market_value: Decimal
    cash_before_rebalance: Decimal
    cash_after_rebalance: Decimal
    transactions: list[TransactionOut]
    drifts: list[DriftOut]
    policy: PolicyBody
    mode: UsedMode
    status: Status
    breaches: list[BreachOut]

    @classmethod
    def of(
        cls, run: RebalanceRun, outcome: PortfolioOutcome, tickers: Mapping[str, str]
    ) -> "RebalanceOut":
        return cls.of_result(
            outcome.result,
            outcome.trade_date,
            rebalance_id=run.rebalance_id,
            model_id=run.model_id,
            portfolio_id=outcome.portfolio_id,
            portfolio_name=outcome.portfolio_name,
            tickers=tickers,
        )

    @classmethod
    def of_result(
        cls,
        result: RebalanceResult,
        trade_date: date,
        *,
        rebalance_id: str | None,
        model_id: str | None,
        portfolio_id: str | None,
        portfolio_name: str | None,
        tickers: Mapping[str, str] | None = None,
    ) -> "RebalanceOut":
        """One solved portfolio; a preview or a run from files has no rebalance_id, and no
        tickers (security id -> ticker).

        Validated from plain data in one call: a model instance per drift row, built one by
        one, took most of the time of answering a 1,000-portfolio rebalance.
        """
        return cls.model_validate(
            {
                "rebalance_id": rebalance_id,
                "model_id": model_id,
                "portfolio_id": portfolio_id,
                "portfolio_name": portfolio_name,
                "market_value": result.market_value,
                "cash_before_rebalance": result.cash_before,
                "cash_after_rebalance": result.cash_after,
                "transactions": [
                    {
                        "transaction_type": t.side,
                        "security_id": t.security_id,
                        "quantity": t.quantity,
                        "trade_date": trade_date,
                    }
                    for t in result.trades
                ],
                "drifts": [
                    d._asdict() | {"ticker": (tickers or {}).get(d.security_id)}
                    for d in result.drifts
                ],
                "policy": result.policy,
                "mode": result.mode,
                "status": result.status,
                "breaches": [b._asdict() for b in result.breaches],
            }
        )


class RebalanceFailureOut(BaseModel):
    """A portfolio of a model rebalance that failed, and why."""

    rebalance_id: str | None
    portfolio_id: str
    error: FailureDetail


def run_out(
    run: RebalanceRun, tickers: Mapping[str, str]
) -> Iterator[RebalanceOut | RebalanceFailureOut]:
    """One entry per portfolio of the run, in the model's portfolio order."""
    for o in run.outcomes:
        if isinstance(o, PortfolioOutcome):
            yield RebalanceOut.of(run, o, tickers)
        else:
            yield RebalanceFailureOut(
                rebalance_id=run.rebalance_id,
                portfolio_id=o.portfolio_id,
                error=FailureDetail(code=o.code, message=o.message),
            )


class StoredPosition(BaseModel):
    security_id: str
    ticker: Annotated[str | None, Field(description="null for runs stored before tickers")]
    price: Number
    original_quantity: int
    adjusted_quantity: int
    original_position_market_value: Number
    adjusted_position_market_value: Number
    target: Number
    high_drift: Number
    low_drift: Number
    actual: Number
    actual_drift: Number
    transaction_type: Literal["BUY", "SELL"] | None
    trade_quantity: int | None
    trade_date: date | None


class StoredPolicy(PolicyBody):
    """The policy a stored run applied, its amounts as JSON numbers."""

    min_cash: Number
    min_cash_fraction: Number
    withdraw: Number
    min_trade_value: Number


class StoredBreach(BreachOut):
    floor: Number
    ceiling: Number
    amount: Number
    outside: Number


class StoredPortfolio(BaseModel):
    portfolio_id: str
    portfolio_name: str | None
    market_value: Number
    cash_before_rebalance: Number
    cash_after_rebalance: Number
    positions: list[StoredPosition]
    policy: StoredPolicy
    mode: UsedMode
    status: Status
    breaches: list[StoredBreach]

    @classmethod
    def of(cls, outcome: PortfolioOutcome, tickers: Mapping[str, str]) -> "StoredPortfolio":
        result = outcome.result
        return cls(
            portfolio_id=outcome.portfolio_id,
            portfolio_name=outcome.portfolio_name,
            market_value=result.market_value,
            cash_before_rebalance=result.cash_before,
            cash_after_rebalance=result.cash_after,
            positions=stored_positions(outcome, tickers),
            policy=StoredPolicy.model_validate(result.policy),
            mode=result.mode,
            status=result.status,
            breaches=[StoredBreach.model_validate(b._asdict()) for b in result.breaches],
        )


def stored_positions(outcome: PortfolioOutcome, tickers: Mapping[str, str]) -> list[StoredPosition]:
    """One stored portfolio's positions, in the order of its drift report."""
    trades = {t.security_id: t for t in outcome.result.trades}
    return [
        _stored_position(d, trades, outcome.trade_date, tickers.get(d.security_id))
        for d in outcome.result.drifts
    ]


def _stored_position(
    drift: Drift, trades: dict[str, Trade], trade_date: date, ticker: str | None
) -> StoredPosition:
    trade = trades.get(drift.security_id)
    return StoredPosition(
        security_id=drift.security_id,
        ticker=ticker,
        price=drift.price,
        original_quantity=drift.original_quantity,
        adjusted_quantity=drift.adjusted_quantity,
        original_position_market_value=drift.original_market_value,
        adjusted_position_market_value=drift.adjusted_market_value,
        target=drift.target,
        high_drift=drift.high_drift,
        low_drift=drift.low_drift,
        actual=drift.actual,
        actual_drift=drift.actual_drift,
        transaction_type=trade.side if trade else None,
        trade_quantity=trade.quantity if trade else None,
        trade_date=trade_date if trade else None,
    )


class StoredFailure(BaseModel):
    portfolio_id: str
    error: FailureDetail


class StoredRebalance(BaseModel):
    """A stored run as `GET /rebalance…` returns it."""

    rebalance_id: str
    model_id: str
    model_name: str
    rebalance_date: datetime
    created_at: Annotated[datetime, Field(description="When the run was stored")]
    number_of_portfolios: int
    portfolios: list[StoredPortfolio]
    failures: list[StoredFailure]
    version: int
    model_version: Annotated[
        int | None,
        Field(
            description="The model version the run used; null in runs stored before it was "
            "kept, which cannot be replayed"
        ),
    ] = None

    @classmethod
    def of(cls, stored: StoredRun) -> "StoredRebalance":
        run = stored.run
        assert run.rebalance_id is not None
        return cls(
            rebalance_id=run.rebalance_id,
            model_id=run.model_id,
            model_name=run.model_name,
            rebalance_date=run.rebalance_date,
            created_at=stored.created_at,
            number_of_portfolios=stored.number_of_portfolios,
            portfolios=[StoredPortfolio.of(o, stored.tickers) for o in run.succeeded],
            failures=[
                StoredFailure(
                    portfolio_id=o.portfolio_id, error=FailureDetail(code=o.code, message=o.message)
                )
                for o in run.outcomes
                if isinstance(o, PortfolioFailure)
            ],
            version=run.version,
            model_version=run.model_version,
        )
