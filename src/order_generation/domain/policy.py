"""Rebalance policies: which trades a run may make, and what the cash must keep.

A policy narrows, per security, the whole quantities u' a rebalance may choose, and adds a
floor to the cash row. With V = MV - withdraw (the value that stays in the portfolio, on
which targets, bands and actual weights are reckoned) and held quantity u:

- `mode`: `full` trades anything; `bands` keeps u' = u for every model security whose amount
  u·p already lies in its band (a held security the model lacks never does), and falls back
  to `full` when that leaves no feasible answer; `buy_only` needs u' >= u; `sell_only` u' <= u.
- restrictions: `no_buy` ids need u' <= u, `no_sell` ids u' >= u, `hold` ids u' = u.
- trade sizing: an order (u' != u) must be a multiple of the security's lot (`round_lots`,
  else `round_lot`), at least `min_trade_quantity` shares and worth at least
  `min_trade_value` (|u' - u|·p); closing the whole position (u' = 0) is always allowed.
- cash: cash after the trades >= withdraw + max(min_cash, min_cash_fraction·V).
- `bands`: `strict` makes every band a constraint; `best_effort` lets an amount leave its
  band, first minimising the total amount outside the bands, then the drift objective.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from order_generation.domain.errors import InvalidInput
from order_generation.domain.ids import check_id

Mode = Literal["full", "bands", "buy_only", "sell_only"]
Bands = Literal["strict", "best_effort"]
MODES: tuple[Mode, ...] = ("full", "bands", "buy_only", "sell_only")
BANDS: tuple[Bands, ...] = ("strict", "best_effort")
ZERO = Decimal(0)


@dataclass(frozen=True)
class Policy:
    """One set of policy settings; the defaults are a plain full rebalance."""

    mode: Mode = "full"
    min_cash: Decimal = ZERO
    min_cash_fraction: Decimal = ZERO
    withdraw: Decimal = ZERO
    no_buy: frozenset[str] = frozenset()
    no_sell: frozenset[str] = frozenset()
    hold: frozenset[str] = frozenset()
    min_trade_value: Decimal = ZERO
    min_trade_quantity: int = 0
    round_lot: int = 1
    round_lots: Mapping[str, int] = field(default_factory=dict)
    bands: Bands = "strict"
    _unbuyable: frozenset[str] = field(init=False, repr=False, compare=False)
    _unsellable: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("no_buy", "no_sell", "hold"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))
        object.__setattr__(self, "round_lots", dict(self.round_lots))
        check_policy(self)
        object.__setattr__(self, "_unbuyable", self.no_buy | self.hold)
        object.__setattr__(self, "_unsellable", self.no_sell | self.hold)

    def lot(self, security_id: str) -> int:
        return self.round_lots.get(security_id, self.round_lot)

    def may_buy(self, security_id: str) -> bool:
        return self.mode != "sell_only" and security_id not in self._unbuyable

    def may_sell(self, security_id: str) -> bool:
        return self.mode != "buy_only" and security_id not in self._unsellable

    @property
    def sizes_trades(self) -> bool:
        """Whether any order size is refused (lots or minimums)."""
        lots = self.round_lot != 1 or any(lot != 1 for lot in self.round_lots.values())
        return lots or self.min_trade_quantity > 0 or self.min_trade_value > 0

    def reserve(self, value: Decimal) -> Decimal:
        """The cash that must remain beside the withdrawal, for a portfolio worth `value`."""
        return max(self.min_cash, self.min_cash_fraction * value)

    def as_dict(self) -> dict[str, object]:
        """The settings as plain values (sorted id lists), e.g. to store or to answer."""
        return {
            "mode": self.mode,
            "min_cash": self.min_cash,
            "min_cash_fraction": self.min_cash_fraction,
            "withdraw": self.withdraw,
            "no_buy": sorted(self.no_buy),
            "no_sell": sorted(self.no_sell),
            "hold": sorted(self.hold),
            "min_trade_value": self.min_trade_value,
            "min_trade_quantity": self.min_trade_quantity,
            "round_lot": self.round_lot,
            "round_lots": dict(sorted(self.round_lots.items())),
            "bands": self.bands,
        }


def check_policy(policy: Policy, where: str = "policy") -> None:
    """Every rule of a policy; errors name the field."""
    if policy.mode not in MODES:
        raise InvalidInput(f"{where}.mode", f"must be one of {', '.join(MODES)}")
    if policy.bands not in BANDS:
        raise InvalidInput(f"{where}.bands", f"must be one of {', '.join(BANDS)}")
    for name in ("min_cash", "withdraw", "min_trade_value"):
        _check_amount(getattr(policy, name), f"{where}.{name}")
    _check_amount(policy.min_cash_fraction, f"{where}.min_cash_fraction")
    if policy.min_cash_fraction > 1:
        raise InvalidInput(f"{where}.min_cash_fraction", "must be between 0 and 1")
    _check_count(policy.min_trade_quantity, f"{where}.min_trade_quantity", least=0)
    _check_count(policy.round_lot, f"{where}.round_lot", least=1)
    for security_id, lot in policy.round_lots.items():
        check_id(security_id, f"{where}.round_lots")
        _check_count(lot, f"{where}.round_lots.{security_id}", least=1)
    for name in ("no_buy", "no_sell", "hold"):
        _check_ids(getattr(policy, name), f"{where}.{name}")


def _check_amount(value: Decimal, name: str) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise InvalidInput(name, "must be a decimal of at least 0")


def _check_count(value: int, name: str, *, least: int) -> None:
    if type(value) is not int or value < least:
        raise InvalidInput(name, f"must be a whole number of at least {least}")


def _check_ids(ids: Iterable[str], name: str) -> None:
    for security_id in sorted(ids, key=str):
        check_id(security_id, name)


DEFAULT_POLICY = Policy()
