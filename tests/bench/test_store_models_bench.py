"""The model-writes benchmark, on its quick plan: real processes, every figure produced."""

from rich.console import Console

from bench.store_models import OPERATIONS, QUICK, report, run


def test_the_quick_plan_measures_every_write_and_loses_no_portfolio_race():
    results = run(QUICK)

    assert set(results.ms) == set(QUICK.sizes)
    assert all(set(ms) == set(OPERATIONS) for ms in results.ms.values())
    assert set(results.statuses) == {200, 201}
    assert results.add_statuses == {200: QUICK.concurrent_adds}
    assert results.shared_portfolios == 0
    console = Console(record=True, width=160)
    report(console, results, QUICK)
    assert "0 ended with the portfolio in two models" in console.export_text()
