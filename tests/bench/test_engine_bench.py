"""The engine benchmark's floor: the rows `solve` writes, with nothing solved."""

from bench.engine import read_and_write
from bench.engine_problems import realistic
from order_generation.domain.rebalance import solve


def test_the_floor_reads_and_writes_what_solve_does_but_keeps_the_holdings():
    problem = realistic(7, 10, 4)[3]  # holds securities the model lacks
    extra = set(problem.holdings) - {p.security_id for p in problem.positions}

    rows = read_and_write(problem)
    drifts = solve(problem).drifts

    def inputs(row: tuple[object, ...]) -> tuple[object, ...]:
        return row[:3] + row[4:7]  # id, price, original quantity, target and drifts

    assert extra
    assert [inputs(r) for r in rows] == [inputs(d) for d in drifts]
    assert [r.adjusted_quantity for r in rows] == [r.original_quantity for r in rows]
