"""What each simulated service answers, in the shapes of the real services' contracts."""

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from order_generation.simulator.scenario import Scenario


def render_pages(scenario: Scenario) -> dict[str, dict[str, bytes]]:
    """Every answer each service can give, rendered once: service -> path -> JSON body."""
    now = datetime.now(UTC).isoformat()
    securities = {s.security_id: _security(s.security_id, s.ticker) for s in scenario.securities}
    prices = {
        t: _price(i + 1, t, close, now[:10]) for i, (t, close) in enumerate(scenario.prices.items())
    }
    named = [p for p in scenario.portfolios if p.name is not None]
    portfolios = {p.portfolio_id: _portfolio(p.portfolio_id, p.name or "", now) for p in named}
    summaries = {
        p.portfolio_id: _summary(p.portfolio_id, p.cash, p.holdings, now)
        for p in scenario.portfolios
        if not p.new
    }
    return {
        "accounting": _encode(
            {f"/api/v1/portfolios/{pid}/summary": body for pid, body in summaries.items()}
        ),
        "security": _encode(
            {
                "/api/v1/securities": list(securities.values()),
                **{f"/api/v1/security/{sid}": body for sid, body in securities.items()},
            }
        ),
        "pricing": _encode(
            {
                "/api/v1/prices": list(prices.values()),
                **{f"/api/v1/price/{ticker}": body for ticker, body in prices.items()},
            }
        ),
        "portfolio": _encode(
            {
                "/api/v1/portfolios": list(portfolios.values()),
                **{f"/api/v1/portfolio/{pid}": body for pid, body in portfolios.items()},
            }
        ),
    }


def _encode(pages: Mapping[str, object]) -> dict[str, bytes]:
    return {path: json.dumps(body).encode() for path, body in pages.items()}


def _summary(
    portfolio_id: str, cash: Decimal, holdings: Mapping[str, int], now: str
) -> dict[str, Any]:
    """Portfolio Accounting's PortfolioSummaryDTO; its numbers are strings, as the service sends."""
    positions = [
        {
            "securityId": security_id,
            "quantityLong": str(max(quantity, 0)),
            "quantityShort": str(max(-quantity, 0)),
            "netQuantity": str(quantity),
            "lastUpdated": now,
        }
        for security_id, quantity in holdings.items()
    ]
    return {
        "portfolioId": portfolio_id,
        "cashBalance": str(cash),
        "securityCount": len(positions),
        "lastUpdated": now,
        "securities": positions,
    }


def _security(security_id: str, ticker: str) -> dict[str, Any]:
    type_id = "5" * 24
    return {
        "securityId": security_id,
        "ticker": ticker,
        "description": f"{ticker} (simulated)",
        "securityTypeId": type_id,
        "version": 1,
        "securityType": {
            "securityTypeId": type_id,
            "abbreviation": "CS",
            "description": "Common Stock",
        },
    }


def _price(price_id: int, ticker: str, close: Decimal | None, date: str) -> dict[str, Any]:
    """Pricing's PriceDto; its numbers are JSON numbers, as in the contract."""
    number = None if close is None else float(close)
    return {
        "id": price_id,
        "ticker": ticker,
        "date": date,
        "open": number,
        "close": number,
        "high": number,
        "low": number,
        "volume": 1_000_000,
    }


def _portfolio(portfolio_id: str, name: str, now: str) -> dict[str, Any]:
    return {"portfolioId": portfolio_id, "name": name, "dateCreated": now, "version": 1}


def not_found_body(service: str, path: str) -> dict[str, Any]:
    """Each real service's own 404 shape."""
    if service == "accounting":
        return {"error": {"code": "NOT_FOUND", "message": "Portfolio not found", "details": {}}}
    if service == "pricing":
        return {"status": 404, "error": "Not Found", "path": path}
    return {"detail": "Not found"}
