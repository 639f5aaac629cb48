"""What a rebalance run produced, per portfolio: the engine's result, or why it failed."""

from dataclasses import dataclass
from datetime import date, datetime

from order_generation.domain.rebalance import RebalanceResult


@dataclass(frozen=True)
class PortfolioOutcome:
    """One portfolio rebalanced: the orders and drifts, dated."""

    portfolio_id: str
    portfolio_name: str | None
    result: RebalanceResult
    trade_date: date


@dataclass(frozen=True)
class PortfolioFailure:
    """One portfolio that could not be rebalanced, and why."""

    portfolio_id: str
    code: str
    message: str


@dataclass(frozen=True)
class RebalanceRun:
    """A rebalance of one or many portfolios of a model."""

    model_id: str
    model_name: str
    rebalance_date: datetime
    outcomes: tuple[PortfolioOutcome | PortfolioFailure, ...]
    rebalance_id: str | None = None
    version: int = 1
    model_version: int | None = None
    """The version of the model the run used; None for runs stored before it was kept."""

    @property
    def succeeded(self) -> tuple[PortfolioOutcome, ...]:
        return tuple(o for o in self.outcomes if isinstance(o, PortfolioOutcome))
