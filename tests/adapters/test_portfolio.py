import time

from tests.adapters.conftest import CASH_ONLY, NAMED, NAMELESS, UNKNOWN


async def test_a_known_portfolio_has_its_name(portfolio):
    assert await portfolio.name(CASH_ONLY) == "Cash Fund"


async def test_an_unknown_portfolio_has_no_name(portfolio):
    assert await portfolio.name(NAMELESS) is None
    assert await portfolio.name(UNKNOWN) is None


async def test_names_are_cached(portfolio, globeco):
    await portfolio.name(CASH_ONLY)
    await portfolio.name(CASH_ONLY)

    assert await globeco.call_count("portfolio") == 1


async def test_many_names_take_one_list_call(portfolio, globeco):
    names = await portfolio.names([*NAMED, UNKNOWN])

    assert names == {**{pid: f"Named {i}" for i, pid in enumerate(NAMED)}, UNKNOWN: None}
    assert (await globeco.calls())["portfolio"] == {"GET /api/v1/portfolios": 1}


async def test_an_unavailable_service_gives_no_name_quickly(portfolio, globeco):
    await globeco.set_faults("portfolio", down=True)

    started = time.monotonic()
    assert await portfolio.name(CASH_ONLY) is None
    assert time.monotonic() - started < 1
