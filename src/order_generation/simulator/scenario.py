"""What the simulator serves: securities, prices, portfolios, and models for the service."""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Security:
    security_id: str
    ticker: str


@dataclass(frozen=True)
class Portfolio:
    """A portfolio as the GlobeCo services know it.

    `name` None: unknown to the Portfolio service. `new`: unknown to Portfolio Accounting (404).
    """

    portfolio_id: str
    name: str | None = None
    cash: Decimal = Decimal(0)
    holdings: dict[str, int] = field(default_factory=dict)
    new: bool = False


@dataclass(frozen=True)
class Scenario:
    """The whole simulated world; `prices` maps ticker to close (None: a price without close)."""

    securities: tuple[Security, ...] = ()
    prices: dict[str, Decimal | None] = field(default_factory=dict)
    portfolios: tuple[Portfolio, ...] = ()
    models: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Scenario":
        """Build from the scenario file's JSON shape (decimals as strings or numbers)."""
        return cls(
            securities=tuple(Security(s["security_id"], s["ticker"]) for s in data["securities"]),
            prices={
                ticker: None if close is None else Decimal(str(close))
                for ticker, close in data.get("prices", {}).items()
            },
            portfolios=tuple(_portfolio(p) for p in data.get("portfolios", ())),
            models=tuple(data.get("models", ())),
        )

    def to_dict(self) -> dict[str, Any]:
        """The scenario file's JSON shape, every decimal as a string."""
        data = {
            "securities": [
                {"security_id": s.security_id, "ticker": s.ticker} for s in self.securities
            ],
            "prices": {ticker: _text(close) for ticker, close in self.prices.items()},
            "portfolios": [_portfolio_dict(p) for p in self.portfolios],
            "models": list(self.models),
        }
        result: dict[str, Any] = json.loads(json.dumps(data, default=str))
        return result

    @classmethod
    def load(cls, path: Path) -> "Scenario":
        """Read a scenario file."""
        return cls.from_dict(json.loads(path.read_text(), parse_float=Decimal))

    def dump(self, path: Path) -> None:
        """Write a scenario file."""
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def _portfolio(data: Mapping[str, Any]) -> Portfolio:
    return Portfolio(
        portfolio_id=data["portfolio_id"],
        name=data.get("name"),
        cash=Decimal(str(data.get("cash", 0))),
        holdings={security_id: int(q) for security_id, q in data.get("holdings", {}).items()},
        new=bool(data.get("new", False)),
    )


def _portfolio_dict(portfolio: Portfolio) -> dict[str, Any]:
    return {
        "portfolio_id": portfolio.portfolio_id,
        "name": portfolio.name,
        "cash": str(portfolio.cash),
        "holdings": portfolio.holdings,
        "new": portfolio.new,
    }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
