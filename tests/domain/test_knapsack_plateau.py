"""The plateau fill of `knapsack.fill`: its exact subset sum against enumeration, and `fill` on
ladders sharing one ratio against the dynamic programme of the property tests."""

import itertools

from hypothesis import event, given, settings
from hypothesis import strategies as st

from order_generation.domain.knapsack import Ladder, Rung, fill
from order_generation.domain.subset_sum import exact_sum
from tests.domain.test_rebalance_properties import knapsack_optimum

Items = list[tuple[int, int]]


@st.composite
def sums(draw: st.DrawFn) -> tuple[Items, int]:
    items = draw(st.lists(st.tuples(st.integers(1, 20), st.integers(0, 5)), max_size=4))
    return items, draw(st.integers(0, sum(w * c for w, c in items) + 5))


@settings(max_examples=400, deadline=None)
@given(sums())
def test_exact_sum_finds_a_sum_exactly_when_one_exists(case: tuple[Items, int]) -> None:
    items, target = case
    every = itertools.product(*(range(count + 1) for _, count in items))
    exists = any(
        sum(c * w for c, (w, _) in zip(counts, items, strict=True)) == target for counts in every
    )
    found = exact_sum(items, target)
    event("exists" if exists else "none")
    assert (found is not None) == exists
    if found is not None:
        assert all(0 <= c <= count for c, (_, count) in zip(found, items, strict=True))
        assert sum(c * w for c, (w, _) in zip(found, items, strict=True)) == target


@st.composite
def plateaus(draw: st.DrawFn) -> tuple[tuple[Ladder, ...], int]:
    """Ladders whose middle rungs all have ratio 2: some rungs of ratio 3 below them, some of
    ratio 1 above, and now and then a plateau rung of another weight (a run's first step)."""
    ladders = []
    for _ in range(draw(st.integers(2, 5))):
        weight = draw(st.integers(1, 12))
        rungs = [Rung(weight, draw(st.integers(0, 2)), 3 * weight)] if draw(st.booleans()) else []
        rungs.append(Rung(weight, draw(st.integers(0, 4)), 2 * weight))
        if draw(st.integers(0, 3)) == 0:
            other = draw(st.integers(1, 12))
            rungs.append(Rung(other, 1, 2 * other))
        rungs.append(Rung(weight, draw(st.integers(0, 3)), 2 * weight))
        if draw(st.booleans()):
            rungs.append(Rung(weight, draw(st.integers(0, 3)), weight))
        ladders.append(tuple(rungs))
    total = sum(r.weight * r.count for ladder in ladders for r in ladder)
    return tuple(ladders), draw(st.integers(0, total))


@settings(max_examples=400, deadline=None)
@given(plateaus())
def test_fill_on_plateaus_matches_a_dynamic_programme(case: tuple[tuple[Ladder, ...], int]) -> None:
    ladders, capacity = case
    found = fill(ladders, capacity, deadline=float("inf"), node_limit=10**9)
    event("no search" if found.nodes == 0 else "searched")
    assert found.proven
    assert found.value == knapsack_optimum(ladders, capacity)
    weight = 0
    for steps, ladder in zip(found.steps, ladders, strict=True):
        complete = True
        for taken, rung in zip(steps, ladder, strict=True):
            assert 0 <= taken <= rung.count
            assert complete or taken == 0, "a rung was climbed before the one below it"
            complete = taken == rung.count
            weight += taken * rung.weight
    assert weight <= capacity


def test_an_exact_fill_of_a_wide_plateau_is_proven_without_search() -> None:
    """Prices in cents of the slow best-effort portfolios: 10^7 units of capacity, one ratio.
    Every fill is worth 7 per unit, so a fill of exactly the capacity is optimal."""
    prices = [3360650, 188475, 278393, 244620, 131075, 27686, 15707, 7375, 114128]
    counts = [25, 95, 64, 73, 137, 207, 2434, 663, 157]
    ladders = tuple((Rung(p, n, 7 * p),) for p, n in zip(prices, counts, strict=True))
    capacity = 40_991_943
    found = fill(ladders, capacity, deadline=float("inf"), node_limit=10**9)
    assert found.proven
    assert found.nodes == 0
    assert found.value == 7 * capacity
    assert sum(s[0] * p for s, p in zip(found.steps, prices, strict=True)) == capacity
