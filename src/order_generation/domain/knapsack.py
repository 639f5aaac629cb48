"""Exact knapsack over ladders of item groups: the search behind a binding rebalance.

Each `Ladder` is one security: the steps it may climb above its lowest allowed quantity, as
`Rung`s of `count` equal items (`weight` cash, `value` objective gained each). Along a ladder
the value per unit of weight never rises (the objective is convex in the quantity), and a rung
may be climbed only once the rung below it is complete. `fill` maximises total value within a
capacity by a depth-first branch and bound over the rungs of every ladder sorted by value per
unit of weight, with the fractional (LP) relaxation as its bound, floored because values are
integers. The relaxation may ignore the climbing order (it never needs it: the ratios fall
along a ladder), the search keeps to it. It expands a core around the break rung of the
greedy solution (after Pisinger's expknap), so a search that would have to reach far from the
break is cut off early. Weights and values are first divided by their common divisors, so
the bound counts only the capacity the weights can fill. A tie keeps the first optimum found,
so the result depends only on the input order.

Plateaus. When many rungs share the break rung's ratio r (every step outside a best-effort
band is worth the penalty M + 1 per unit, every step below target 1 per unit), the bound
V_greedy + free·r is reached only by a fill of exactly the capacity, and the search, which
would have to find that subset sum by trying, rarely proves anything. So before searching,
`_plateau_fill` looks for it directly: every rung of a higher ratio full (as in the greedy
fill), rungs of a lower ratio empty, and the plateau's ladders climbed to counts whose
weights sum to exactly the capacity left. Such a fill is worth V_H + r·(capacity - W_H),
which is the LP bound itself, so it is optimal and the search is skipped; if none is found
the search runs as before. The counts come from a bounded subset sum (`subset_sum.exact_sum`): the
reachable sums are the bits of one integer, each of ~log(count) pieces per ladder one
shift-and-or, cut to the target's width. The capacity is large in units (10^7 and more), so
a base is filled greedily up to capacity - room, keeping back up to `room` units of every
ladder, and only the rest is summed exactly; the room grows fourfold until the base is empty
(then no exact fill exists) or the sum would be wider than _WIDEST bits. With many small
plateau weights the sums are dense: a room of 2^18 to 2^20 units finds the fill in ~10 ms.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from math import gcd, sumprod
from time import perf_counter

from order_generation.domain.subset_sum import exact_climbs

_CHECK_EVERY = 1024
_MAX_DEPTH = 400


@dataclass(frozen=True, slots=True)
class Rung:
    """`count` equal steps of one security, each costing `weight` and gaining `value`."""

    weight: int
    count: int
    value: int


Ladder = tuple[Rung, ...]


@dataclass(frozen=True, slots=True)
class Fill:
    """Steps climbed per ladder, the value they reach, and whether it is proven optimal."""

    steps: tuple[tuple[int, ...], ...]
    value: int
    proven: bool
    nodes: int


@dataclass(frozen=True, slots=True)
class _Group:
    ladder: int
    rung: int
    count: int
    weight: int
    value: int


class _Stop(Exception):
    """Unwinds the search when its deadline, node budget or recursion depth is spent."""


class _Proven(Exception):
    """Unwinds the search when the incumbent reaches the root bound."""


def fill(ladders: tuple[Ladder, ...], capacity: int, *, deadline: float, node_limit: int) -> Fill:
    """Choose steps per rung maximising total value with total weight <= capacity.

    The search stops unproven (`Fill.proven` false, best incumbent kept) at the deadline, at
    node_limit nodes or when it would recurse too deep.
    """
    if capacity < 0:
        raise ValueError("capacity must not be negative")
    groups, weight_unit, value_unit = _reduced(_groups(ladders))
    search = _Core(groups, capacity // weight_unit, deadline, node_limit)
    proven = search.run()
    steps = [[0] * len(ladder) for ladder in ladders]
    for group, count in zip(groups, search.best_taken, strict=True):
        steps[group.ladder][group.rung] = count
    value = search.best_value * value_unit
    return Fill(tuple(map(tuple, steps)), value, proven, search.nodes)


def _reduced(groups: list[_Group]) -> tuple[list[_Group], int, int]:
    """The groups with weights and values divided by their greatest common divisors, and
    those divisors. Only multiples of the weights' divisor can be filled, so the bounds, in
    whole units of it, are as tight as integers allow (cents against micro-dollars, say)."""
    weight_unit = gcd(*(g.weight for g in groups)) or 1
    value_unit = gcd(*(g.value for g in groups)) or 1
    reduced = [
        _Group(g.ladder, g.rung, g.count, g.weight // weight_unit, g.value // value_unit)
        for g in groups
    ]
    return reduced, weight_unit, value_unit


def _groups(ladders: tuple[Ladder, ...]) -> list[_Group]:
    """Every rung, by value per unit of weight, falling; equal ratios by the ladder's first
    weight (largest first), then ladder and rung, so each ladder's rungs keep their order."""
    groups = [
        _Group(i, r, rung.count, rung.weight, rung.value)
        for i, ladder in enumerate(ladders)
        for r, rung in enumerate(ladder)
        if rung.count
    ]
    first = {g.ladder: g.weight for g in reversed(groups)}
    # Distinct ratios v/w differ by at least 1/(w1·w2), so ⌊v·M/w⌋ with M = max(w)² orders
    # them exactly, and equal ratios stay equal.
    scale = max((g.weight for g in groups), default=1) ** 2
    groups.sort(key=lambda g: (-(g.value * scale // g.weight), -first[g.ladder], g.ladder, g.rung))
    return groups


class _Core:
    """Expanding-core branch and bound (after Pisinger's expknap), for bounded item groups.

    It starts from the greedy solution, which fills groups in ratio order up to the break
    group b, and searches outward from b: while the load fits it may add shares of groups
    t >= b (ratios falling), while it overflows it must remove shares of groups s <= b
    (ratios rising). The bounds price the free capacity at ratio(t), or the overflow at
    ratio(s), so a search that needs to reach far from b is cut off early. A ladder is
    climbed in order: a group gains shares only while the rung below it is complete, and
    loses them only while the rung above it is empty.
    """

    def __init__(
        self, groups: list[_Group], capacity: int, deadline: float, node_limit: int
    ) -> None:
        self.groups = groups
        self.counts = [g.count for g in groups]
        self.below = _neighbours(groups, range(len(groups)))
        self.above = _neighbours(groups, reversed(range(len(groups))))
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
        if value >= self.root or self._fill_plateau(brk):
            return True
        first_removal = brk if self.greedy[brk] else brk - 1
        try:
            self._branch(first_removal, brk, value, weight, 0)
        except _Proven:
            return True
        except _Stop:
            return False
        return True

    def _fill_plateau(self, brk: int) -> bool:
        """Whether the plateau around the break fills the capacity exactly; if so that fill,
        which reaches the root bound, becomes the best."""
        taken = _plateau_fill(self.groups, self.greedy, brk, self.capacity)
        if taken is None or sumprod(taken, self.values) != self.root:
            return False
        self.best_taken, self.best_value = taken, self.root
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
            if not self._complete(self.below[t]):
                continue
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
            if self._taken(self.above[s]):
                continue
            v, w = self.values[s], self.weights[s]
            for k in range(1, self.greedy[s] + 1):
                load = weight - k * w
                if load <= self.capacity and not self._may_add(t, value - k * v, load):
                    break
                self.removed[s] = k
                self._branch(s - 1, t, value - k * v, load, depth + 1)
            self.removed[s] = 0

    def _taken(self, k: int | None) -> int:
        if k is None:
            return 0
        return self.greedy[k] + self.added[k] - self.removed[k]

    def _complete(self, k: int | None) -> bool:
        return k is None or self._taken(k) == self.counts[k]

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


def _neighbours(groups: list[_Group], order: Iterable[int]) -> list[int | None]:
    """Per group, the group of the same ladder met just before it in `order` (the rung below
    it for increasing indices, the rung above for decreasing ones), or None."""
    found: list[int | None] = [None] * len(groups)
    last: dict[int, int] = {}
    for k in order:
        ladder = groups[k].ladder
        found[k] = last.get(ladder)
        last[ladder] = k
    return found


def _plateau_fill(
    groups: list[_Group], greedy: list[int], brk: int, capacity: int
) -> list[int] | None:
    """Steps per group that fill the capacity exactly: every group before the plateau (the
    groups of the break's ratio) full, the plateau's ladders climbed to an exact sum, the rest
    empty; or None if no such fill was found. A ladder whose plateau rungs differ in weight
    keeps its greedy steps. The fill reaches the LP bound, so it is optimal."""
    start, end = _plateau(groups, brk)
    if end - start < 2:
        return None
    taken = greedy[:start] + [0] * (len(groups) - start)
    blocks: dict[int, list[int]] = {}
    for k in range(start, end):
        blocks.setdefault(groups[k].ladder, []).append(k)
    climbs = []
    for block in blocks.values():
        if len({groups[k].weight for k in block}) == 1:
            climbs.append(block)
        else:
            for k in block:
                taken[k] = greedy[k]
    if not climbs:
        return None
    free = capacity - sum(t * g.weight for t, g in zip(taken, groups, strict=True))
    steps = exact_climbs(
        [(groups[b[0]].weight, sum(groups[k].count for k in b)) for b in climbs], free
    )
    if steps is None:
        return None
    for block, count in zip(climbs, steps, strict=True):
        for k in block:
            taken[k] = min(count, groups[k].count)
            count -= taken[k]
    return taken


def _plateau(groups: list[_Group], brk: int) -> tuple[int, int]:
    """The range of groups whose ratio equals the break group's (they are adjacent)."""
    weight, value = groups[brk].weight, groups[brk].value

    def level(k: int) -> bool:
        return groups[k].value * weight == value * groups[k].weight

    start, end = brk, brk + 1
    while start > 0 and level(start - 1):
        start -= 1
    while end < len(groups) and level(end):
        end += 1
    return start, end
