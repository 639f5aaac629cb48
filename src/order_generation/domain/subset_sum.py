"""Bounded subset sum: counts of weighted items that add up to exactly a target.

The knapsack's plateau fill (`knapsack._plateau_fill`) needs counts c_i <= count_i with
Σ c_i·weight_i equal to the capacity left, where the capacity is 10^7 units and more. The
reachable sums are the bits of one Python integer; a greedy base takes all but a `room` of the
target, so only the room is summed bit by bit.
"""

from math import gcd

_FIRST_ROOM = 1 << 12
"""The capacity, in units of the weights' divisor, first left to the exact sum (x4 per try)."""
_WIDEST = 1 << 21
"""The widest exact sum tried, in bits: about 60 shifts of 256 kB take some 10 ms."""
_KEPT_BITS = 1 << 27
"""At most this many bits (16 MB) of reachable sums are kept to walk the pieces back."""


def exact_climbs(items: list[tuple[int, int]], target: int) -> list[int] | None:
    """Counts c_i <= count_i of (weight, count) items with sum c_i·weight_i == target, if
    found. A base is taken greedily up to target - room, and the rest of the sum is solved
    exactly by `exact_sum`; the room grows fourfold until the base is empty (then no exact
    sum exists) or the exact part grows wider than _WIDEST."""
    if target % gcd(*(weight for weight, _ in items)):
        return None
    room = _FIRST_ROOM
    while True:
        base, load = _base(items, target - room, room)
        if target - load >= _WIDEST:
            return None
        rest = [(w, c - b) for (w, c), b in zip(items, base, strict=True)]
        if len(_pieces(rest, target - load)) * (target - load) > _KEPT_BITS:
            return None
        found = exact_sum(rest, target - load)
        if found is not None:
            return [b + f for b, f in zip(base, found, strict=True)]
        if load == 0:
            return None
        room *= 4


def _base(items: list[tuple[int, int]], load_to: int, room: int) -> tuple[list[int], int]:
    """Counts filled greedily up to load_to, first keeping back room's worth of each item
    (so every item can still move the exact sum), then, if short, taking those too."""
    counts = [count for _, count in items]
    kept = [count - min(count, room // weight) for weight, count in items]
    base, load = [0] * len(items), 0
    for limits in (kept, counts):
        for i, (weight, _) in enumerate(items):
            more = min(limits[i] - base[i], max(0, load_to - load) // weight)
            base[i] += more
            load += more * weight
    return base, load


def exact_sum(items: list[tuple[int, int]], target: int) -> list[int] | None:
    """Counts c_i <= count_i with sum c_i·weight_i == target, or None if there are none.

    The sums reachable so far are the set bits of one integer (bit s: sum s is reachable),
    cut to target + 1 bits; an item of count c is added as pieces of 1, 2, 4, ... copies
    (any count up to c is a sum of distinct pieces), each piece one shift and or. Walking
    the pieces back, a piece was used when the sum left was not reachable without it."""
    mask = (1 << (target + 1)) - 1
    reach, before = 1, []
    for i, size in _pieces(items, target):
        before.append(reach)
        reach = (reach | reach << (size * items[i][0])) & mask
    if not reach >> target & 1:
        return None
    counts, left = [0] * len(items), target
    for (i, size), reached in zip(reversed(_pieces(items, target)), reversed(before), strict=True):
        if not reached >> left & 1:
            counts[i] += size
            left -= size * items[i][0]
    return counts


def _pieces(items: list[tuple[int, int]], target: int) -> list[tuple[int, int]]:
    """(item, copies) of each piece: 1, 2, 4, ... and the remainder of every count, leaving
    out pieces heavier than target (no sum up to target can use them)."""
    pieces = []
    for i, (weight, count) in enumerate(items):
        size = min(1, count)
        while size and size * weight <= target:
            pieces.append((i, size))
            count -= size
            size = min(2 * size, count)
    return pieces
