"""Valid request bodies for the model endpoints."""

import itertools
from typing import Any

_ids = itertools.count(1)


def entity_id(prefix: str = "S") -> str:
    """A fresh 24-character alphanumeric id."""
    return f"{prefix}{next(_ids):023d}"


def position(target: str = "0.1", low: str = "0.02", high: str = "0.03") -> dict[str, Any]:
    return {"security_id": entity_id("S"), "target": target, "low_drift": low, "high_drift": high}


def model_body(name: str | None = None, positions: int = 3, portfolios: int = 2) -> dict[str, Any]:
    return {
        "name": name or f"model {entity_id('M')}",
        "positions": [position() for _ in range(positions)],
        "portfolios": [entity_id("P") for _ in range(portfolios)],
    }
