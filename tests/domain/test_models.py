"""The model rules, property-based where the rule is arithmetic."""

import pickle
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from order_generation.domain.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    Overloaded,
    ServiceError,
)
from order_generation.domain.models import InvestmentModel, Position

STEP = Decimal("0.005")
ids = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=24, max_size=24)
drifts = st.decimals(min_value=0, max_value=1, places=4)


def pos(security_id: str, target: str | Decimal, low: str = "0.01", high: str = "0.02") -> Position:
    return Position(security_id, Decimal(target), Decimal(low), Decimal(high))


def sid(n: int) -> str:
    return f"S{n:023d}"


@given(st.integers(min_value=0, max_value=190))
def test_any_multiple_of_the_step_up_to_095_is_a_valid_target(steps: int):
    model = InvestmentModel("m", positions=(pos(sid(1), STEP * steps),))
    assert len(model.positions) == (1 if steps else 0)


@given(st.decimals(min_value=0, max_value=Decimal("0.95"), places=6))
def test_a_target_off_the_step_is_rejected(target: Decimal):
    position = pos(sid(1), target)
    if target % STEP == 0:
        InvestmentModel("m", positions=(position,))
    else:
        with pytest.raises(InvalidInput, match=r"multiple of 0\.005") as error:
            InvestmentModel("m", positions=(position,))
        assert error.value.field == "positions[0].target"


@given(st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=30))
def test_targets_may_sum_to_at_most_095(steps: list[int]):
    positions = tuple(pos(sid(i), STEP * n) for i, n in enumerate(steps))
    if sum(steps) * STEP <= Decimal("0.95"):
        assert InvestmentModel("m", positions=positions).positions == positions
    else:
        with pytest.raises(InvalidInput, match="sum of targets"):
            InvestmentModel("m", positions=positions)


@given(drifts, drifts)
def test_low_drift_must_not_exceed_high_drift(low: Decimal, high: Decimal):
    position = Position(sid(1), Decimal("0.1"), low, high)
    if low <= high:
        InvestmentModel("m", positions=(position,))
    else:
        with pytest.raises(InvalidInput, match="high_drift"):
            InvestmentModel("m", positions=(position,))


@given(st.lists(ids, max_size=8), st.lists(ids, max_size=8))
def test_adding_portfolios_keeps_order_and_drops_duplicates(first: list[str], more: list[str]):
    model = InvestmentModel("m", portfolios=tuple(dict.fromkeys(first)))
    added = model.with_portfolios_added(more)
    assert list(added.portfolios) == list(dict.fromkeys([*first, *more]))
    assert added.with_portfolios_removed(more).portfolios == tuple(
        p for p in dict.fromkeys(first) if p not in more
    )


def test_at_most_100_positions():
    InvestmentModel("m", positions=tuple(pos(sid(i), "0.005") for i in range(100)))
    with pytest.raises(InvalidInput, match="at most 100"):
        InvestmentModel("m", positions=tuple(pos(sid(i), "0.005") for i in range(101)))


def test_name_is_stripped_and_required():
    assert InvestmentModel("  growth  ").name == "growth"
    with pytest.raises(InvalidInput, match="name"):
        InvestmentModel(" ")


def test_position_changes():
    model = InvestmentModel("m", positions=(pos(sid(1), "0.1"),))
    with pytest.raises(Conflict):
        model.with_position_added(pos(sid(1), "0.2"))
    with pytest.raises(NotFound):
        model.with_position_updated(pos(sid(2), "0.2"))
    assert model.with_position_updated(pos(sid(1), "0")).positions == ()
    with pytest.raises(Conflict, match="does not match"):
        model.with_position_removed(pos(sid(1), "0.2"))
    assert model.with_position_removed(pos(sid(1), "0.1")).positions == ()


@pytest.mark.parametrize(
    "error",
    [
        InvalidInput("positions[0].target", "must be a multiple of 0.005"),
        Conflict("taken", {"model_id": "m"}),
        Overloaded("busy", retry_after_seconds=2),
    ],
)
def test_errors_survive_pickling_across_processes(error: ServiceError):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (copy.message, copy.details, copy.status, copy.headers) == (
        error.message,
        error.details,
        error.status,
        error.headers,
    )
