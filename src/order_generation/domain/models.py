"""Investment models and their rules; every rule lives here, once."""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from order_generation.domain.errors import Conflict, InvalidInput, NotFound
from order_generation.domain.ids import check_id
from order_generation.domain.policy import DEFAULT_POLICY, Policy

MAX_TOTAL_TARGET = Decimal("0.95")
TARGET_STEP = Decimal("0.005")
MAX_POSITIONS = 100
MAX_NAME_LENGTH = 255


@dataclass(frozen=True)
class Position:
    """One security of a model: target weight and the drift allowed below and above it."""

    security_id: str
    target: Decimal
    low_drift: Decimal
    high_drift: Decimal


def check_position(position: Position, where: str = "position") -> None:
    check_id(position.security_id, f"{where}.security_id")
    if not Decimal(0) <= position.target <= MAX_TOTAL_TARGET:
        raise InvalidInput(f"{where}.target", f"must be between 0 and {MAX_TOTAL_TARGET}")
    if position.target % TARGET_STEP != 0:
        raise InvalidInput(f"{where}.target", f"must be 0 or a multiple of {TARGET_STEP}")
    for name, drift in (("low_drift", position.low_drift), ("high_drift", position.high_drift)):
        if not Decimal(0) <= drift <= Decimal(1):
            raise InvalidInput(f"{where}.{name}", "must be between 0 and 1")
    if position.low_drift > position.high_drift:
        raise InvalidInput(f"{where}.low_drift", "must not exceed high_drift")


@dataclass(frozen=True)
class InvestmentModel:
    """A named target allocation and the portfolios that follow it.

    Construction enforces every model rule; positions with target 0 are checked, then dropped.
    """

    name: str
    positions: tuple[Position, ...] = ()
    portfolios: tuple[str, ...] = ()
    model_id: str | None = None
    last_rebalance_date: datetime | None = None
    version: int = 1
    policy: Policy = DEFAULT_POLICY

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.name.strip())
        _check_name(self.name)
        for index, position in enumerate(self.positions):
            check_position(position, f"positions[{index}]")
        object.__setattr__(self, "positions", tuple(p for p in self.positions if p.target != 0))
        _check_positions(self.positions)
        _check_portfolios(self.portfolios)

    def position(self, security_id: str) -> Position:
        for position in self.positions:
            if position.security_id == security_id:
                return position
        raise NotFound(f"security {security_id} is not a position of model {self.name}")

    def with_position_added(self, position: Position) -> "InvestmentModel":
        if any(p.security_id == position.security_id for p in self.positions):
            raise Conflict(f"security {position.security_id} is already a position of this model")
        return replace(self, positions=(*self.positions, position))

    def with_position_updated(self, position: Position) -> "InvestmentModel":
        self.position(position.security_id)
        positions = tuple(
            position if p.security_id == position.security_id else p for p in self.positions
        )
        return replace(self, positions=positions)

    def with_position_removed(self, position: Position) -> "InvestmentModel":
        if self.position(position.security_id) != position:
            raise Conflict(
                f"position {position.security_id} does not match the stored values; "
                "read the model again before deleting"
            )
        positions = tuple(p for p in self.positions if p.security_id != position.security_id)
        return replace(self, positions=positions)

    def with_portfolios_added(self, portfolios: Iterable[str]) -> "InvestmentModel":
        portfolios = tuple(portfolios)
        for index, portfolio_id in enumerate(portfolios):  # named as the request has them
            check_id(portfolio_id, f"portfolios[{index}]")
        return replace(self, portfolios=tuple(dict.fromkeys((*self.portfolios, *portfolios))))

    def with_portfolios_removed(self, portfolios: Iterable[str]) -> "InvestmentModel":
        removed = set(portfolios)
        return replace(self, portfolios=tuple(p for p in self.portfolios if p not in removed))


def _check_name(name: str) -> None:
    if not name:
        raise InvalidInput("name", "must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput("name", f"must be at most {MAX_NAME_LENGTH} characters")


def _check_positions(positions: tuple[Position, ...]) -> None:
    if len(positions) > MAX_POSITIONS:
        raise InvalidInput("positions", f"at most {MAX_POSITIONS} positions with target > 0")
    ids = [p.security_id for p in positions]
    if len(set(ids)) != len(ids):
        raise InvalidInput("positions", "security_id must be unique within a model")
    if sum((p.target for p in positions), Decimal(0)) > MAX_TOTAL_TARGET:
        raise InvalidInput("positions", f"sum of targets must not exceed {MAX_TOTAL_TARGET}")


def _check_portfolios(portfolios: tuple[str, ...]) -> None:
    for index, portfolio_id in enumerate(portfolios):
        check_id(portfolio_id, f"portfolios[{index}]")
    if len(set(portfolios)) != len(portfolios):
        raise InvalidInput("portfolios", "portfolio ids must be unique within a model")
