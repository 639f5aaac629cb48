"""Exact bounded knapsack over integer item groups: the search behind a binding rebalance.

Each `Ladder` offers `units` items of value = weight (a share up to the floor of its target)
and, optionally, one item of value `top` < weight (the share that crosses the target).
`fill` maximises total value within a capacity by a depth-first branch and bound over the
groups sorted by value per unit of weight, with the fractional (LP) relaxation as its bound,
floored because values are integers. It expands a core around the break group of the greedy
solution (after Pisinger's expknap), so a search that would have to reach far from the break
is cut off early. A tie keeps the first optimum found, so the result depends only on the
input order.
"""

from dataclasses import dataclass
from time import perf_counter

_CHECK_EVERY = 1024
_MAX_DEPTH = 400


@dataclass(frozen=True, slots=True)
class Ladder:
    """The shares one security may add above its lower bound, as knapsack items."""

    weight: int
    units: int
    top: int = 0


@dataclass(frozen=True, slots=True)
class Fill:
    """Shares added per ladder, the value they reach, and whether it is proven optimal."""

    shares: tuple[int, ...]
    value: int
    proven: bool
    nodes: int


@dataclass(frozen=True, slots=True)
class _Group:
    ladder: int
    count: int
    weight: int
    value: int


class _Stop(Exception):
    """Unwinds the search when its deadline, node budget or recursion depth is spent."""


class _Proven(Exception):
    """Unwinds the search when the incumbent reaches the root bound."""


def fill(ladders: tuple[Ladder, ...], capacity: int, *, deadline: float, node_limit: int) -> Fill:
    """Choose shares per ladder maximising total value with total weight <= capacity.

    The search stops unproven (`Fill.proven` false, best incumbent kept) at the deadline, at
    node_limit nodes or when it would recurse too deep.
    """
    if capacity < 0:
        raise ValueError("capacity must not be negative")
    groups = _groups(ladders)
    search = _Core(groups, capacity, deadline, node_limit)
    proven = search.run()
    shares = [0] * len(ladders)
    for group, count in zip(groups, search.best_taken, strict=True):
        shares[group.ladder] += count
    return Fill(tuple(shares), search.best_value, proven, search.nodes)


def _groups(ladders: tuple[Ladder, ...]) -> list[_Group]:
    """Whole-value shares first (ratio 1, largest first), then crossing shares by ratio."""
    units = [_Group(i, ld.units, ld.weight, ld.weight) for i, ld in enumerate(ladders) if ld.units]
    units.sort(key=lambda g: (-g.weight, g.ladder))
    tops = [_Group(i, 1, ld.weight, ld.top) for i, ld in enumerate(ladders) if ld.top]
    # Distinct ratios v/w differ by at least 1/(w1*w2), so floor(v*M/w) with M = max(w)^2
    # orders them exactly.
    scale = max((g.weight for g in tops), default=1) ** 2
    tops.sort(key=lambda g: (-(g.value * scale // g.weight), g.ladder))
    return units + tops


class _Core:
    """Expanding-core branch and bound (after Pisinger's expknap), for bounded item groups.

    It starts from the greedy solution, which fills groups in ratio order up to the break
    group b, and searches outward from b: while the load fits it may add shares of groups
    t >= b (ratios falling), while it overflows it must remove shares of groups s <= b
    (ratios rising). The bounds price the free capacity at ratio(t), or the overflow at
    ratio(s), so a search that needs to reach far from b is cut off early.
    """

    def __init__(
        self, groups: list[_Group], capacity: int, deadline: float, node_limit: int
    ) -> None:
        self.counts = [g.count for g in groups]
        self.weights = [g.weight for g in groups]
        self.values = [g.value for g in groups]
        self.capacity = capacity
        self.deadline = deadline
        self.node_limit = node_limit
        self.nodes = 0
        self.greedy = [0] * len(groups)
        self.added = [0] * len(groups)
        self.removed = [0] * len(groups)
        self.best_value = -1
        self.best_taken = list(self.greedy)
        self.root: int | None = None

    def run(self) -> bool:
        """Search until proven optimal (True) or the node budget is spent (False)."""
        value, weight, brk = self._greedy()
        self._record(value)
        if brk == len(self.counts):
            return True
        self.root = value + (self.capacity - weight) * self.values[brk] // self.weights[brk]
        if value >= self.root:
            return True
        first_removal = brk if self.greedy[brk] else brk - 1
        try:
            self._branch(first_removal, brk, value, weight, 0)
        except _Proven:
            return True
        except _Stop:
            return False
        return True

    def _greedy(self) -> tuple[int, int, int]:
        """Fill in ratio order; returns value, weight and the first group left unfilled."""
        value = weight = 0
        for k, (count, w, v) in enumerate(zip(self.counts, self.weights, self.values, strict=True)):
            take = min(count, (self.capacity - weight) // w)
            self.greedy[k] = take
            value, weight = value + take * v, weight + take * w
            if take < count:
                return value, weight, k
        return value, weight, len(self.counts)

    def _branch(self, s: int, t: int, value: int, weight: int, depth: int) -> None:
        self._count_node(depth)
        if weight <= self.capacity:
            if value > self.best_value:
                self._record(value)
            self._add(s, t, value, weight, depth)
        else:
            self._remove(s, t, value, weight, depth)

    def _add(self, s: int, first: int, value: int, weight: int, depth: int) -> None:
        """Under capacity: try adding shares of group `first`, then of the groups after it."""
        for t in range(first, len(self.counts)):
            v, w = self.values[t], self.weights[t]
            if value + (self.capacity - weight) * v // w <= self.best_value:
                return
            for k in range(1, self.counts[t] - self.greedy[t] + 1):
                load = weight + k * w
                if load > self.capacity and not self._may_remove(s, value + k * v, load):
                    break
                self.added[t] = k
                self._branch(s, t + 1, value + k * v, load, depth + 1)
            self.added[t] = 0

    def _remove(self, first: int, t: int, value: int, weight: int, depth: int) -> None:
        """Over capacity: try removing shares of group `first`, then of the groups before it."""
        for s in range(first, -1, -1):
            if not self._may_remove(s, value, weight):
                return
            v, w = self.values[s], self.weights[s]
            for k in range(1, self.greedy[s] + 1):
                load = weight - k * w
                if load <= self.capacity and not self._may_add(t, value - k * v, load):
                    break
                self.removed[s] = k
                self._branch(s - 1, t, value - k * v, load, depth + 1)
            self.removed[s] = 0

    def _may_remove(self, s: int, value: int, weight: int) -> bool:
        """Whether shedding the overflow at group s's ratio or worse can still win."""
        if s < 0:
            return False
        loss = -(-(weight - self.capacity) * self.values[s] // self.weights[s])
        return value - loss > self.best_value

    def _may_add(self, t: int, value: int, weight: int) -> bool:
        if t >= len(self.counts):
            return value > self.best_value
        gain = (self.capacity - weight) * self.values[t] // self.weights[t]
        return value + gain > self.best_value

    def _record(self, value: int) -> None:
        self.best_value = value
        self.best_taken = [
            g + a - r for g, a, r in zip(self.greedy, self.added, self.removed, strict=True)
        ]
        if self.root is not None and value >= self.root:
            raise _Proven

    def _count_node(self, depth: int) -> None:
        self.nodes += 1
        if depth > _MAX_DEPTH:
            raise _Stop
        if self.nodes % _CHECK_EVERY == 1 and (
            self.nodes >= self.node_limit or perf_counter() > self.deadline
        ):
            raise _Stop
