"""Why a rebalance has no answer, and which bands a best-effort answer leaves and why: the
explanations `rebalance.solve` gives, in the input's own `Decimal` amounts."""

from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, NamedTuple

from order_generation.domain.errors import Infeasible
from order_generation.domain.terms import EXACT, ZERO, Book, Term

if TYPE_CHECKING:
    from order_generation.domain.rebalance import RebalanceProblem


class Breach(NamedTuple):
    """A band the answer leaves under best-effort bands: its floor and ceiling amounts, the
    amount held after, by how much it lies outside, and why (no allowed quantity lies inside
    the band, or the cash row kept them out)."""

    security_id: str
    floor: Decimal
    ceiling: Decimal
    amount: Decimal
    outside: Decimal
    reason: str


def check_value(problem: "RebalanceProblem", book: Book) -> None:
    policy = problem.policy
    if book.market_value < 0:
        raise Infeasible(
            f"no feasible solution exists: the market value {book.market_value} is negative "
            "(short positions outweigh cash and long holdings)",
            {"solver_status": "infeasible", "market_value": str(book.market_value)},
        )
    if book.budget < 0:
        raise Infeasible(
            f"no feasible solution exists: the withdrawal {policy.withdraw} and the cash "
            f"reserve {book.reserve} need more than the market value {book.market_value}",
            {"solver_status": "infeasible", "market_value": str(book.market_value)},
        )


def infeasible(security_id: str, reason: str) -> Infeasible:
    return Infeasible(
        f"no feasible solution exists: security {security_id} {reason}",
        {"solver_status": "infeasible", "security_id": security_id, "reason": reason},
    )


def overspent(problem: "RebalanceProblem", book: Book, lowest: list[int]) -> Infeasible:
    with localcontext(EXACT):
        cost = sum([u * problem.prices[sid] for sid, u in zip(book.ids, lowest, strict=True)], ZERO)
    room = Decimal(book.budget).scaleb(book.exponent)
    if book.reserve or problem.policy.withdraw:
        where = f"the {room} left after the withdrawal and the cash reserve"
    else:
        where = f"the market value {book.market_value}"
    return Infeasible(
        f"no feasible solution exists: the lower bounds alone cost {cost}, more than {where}",
        {"solver_status": "infeasible", "market_value": str(book.market_value)},
    )


def why_outside(problem: "RebalanceProblem", book: Book, security_id: str, term: Term) -> str:
    """Why security i has no allowed quantity inside its band, or, when it has one, that the
    cash row kept it out."""
    price = problem.prices[security_id]
    floor, ceiling = band(problem, book, security_id)
    lowest, highest = -(-term.floor // term.price), term.ceiling // term.price
    if lowest > highest:
        return f"cannot be held within its band [{floor}, {ceiling}] at price {price}"
    if term.fixed and not term.floor <= term.held * term.price <= term.ceiling:
        return f"is held by the policy at {term.held} shares, outside its band [{floor}, {ceiling}]"
    if term.held < lowest and not term.may_buy:
        return f"must be bought to reach its band [{floor}, {ceiling}], which the policy forbids"
    if term.held > highest and not term.may_sell:
        return f"must be sold to reach its band [{floor}, {ceiling}], which the policy forbids"
    if not term.runs(book.budget, strict=True):
        return (
            f"has no order size the round lot {term.lot} and the minimum trade allow that "
            f"lands in its band [{floor}, {ceiling}]"
        )
    return "is kept out of its band by the cash row (the cash reserve, the withdrawal or cash)"


def band(problem: "RebalanceProblem", book: Book, security_id: str) -> tuple[Decimal, Decimal]:
    """Security i's floor and ceiling amounts as `Decimal` arithmetic on the input gives them."""
    position = next((p for p in problem.positions if p.security_id == security_id), None)
    if position is None:
        return ZERO, ZERO
    w, low, high = position.target, position.low_drift, position.high_drift
    with localcontext(EXACT):
        value = book.market_value - problem.policy.withdraw
        return (value * (w - low) if w > low else ZERO), value * (w + high)


def bands_left(
    problem: "RebalanceProblem", book: Book, quantities: list[int]
) -> tuple[Breach, ...]:
    """Under best-effort bands, every band the answer leaves, by how much and why."""
    found = []
    for sid, term, u in zip(book.ids, book.terms, quantities, strict=True):
        outside = term.outside(u * term.price)
        if outside:
            floor, ceiling = band(problem, book, sid)
            found.append(
                Breach(
                    security_id=sid,
                    floor=floor,
                    ceiling=ceiling,
                    amount=u * problem.prices[sid],
                    outside=Decimal(outside).scaleb(book.exponent),
                    reason=why_outside(problem, book, sid, term),
                )
            )
    return tuple(found)
