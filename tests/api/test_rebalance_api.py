"""Rebalancing over real HTTP: the GlobeCo simulator as its own process, embedded MongoDB."""

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from order_generation.config import Settings
from order_generation.domain.rebalance import solve
from order_generation.service import rebalance as rebalance_service
from tests.api.book import EXPENSIVE, check_orders, make_book, pid
from tests.api.test_models_api import API, assert_error
from tests.support.app import app_client
from tests.support.simulator import SimulatorProcess, run_simulator

BOOK = make_book(portfolios=100)
REGULAR = [p.portfolio_id for p in BOOK.scenario.portfolios[:96]]
NEW, CASH_ONLY, OUTSIDE_MODEL, TOO_SMALL = (p.portfolio_id for p in BOOK.scenario.portfolios[96:])


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorProcess]:
    with run_simulator(BOOK.scenario) as process:
        yield process


@pytest.fixture
async def service(
    simulator: SimulatorProcess, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh service (cold caches, closed breakers) on the simulator, the model created."""
    await simulator.clear_faults()
    tuned = simulator.settings(
        settings,
        retry_backoff_seconds=0.01,
        external_service_timeout=2,
    )
    async with app_client(tuned) as http:
        response = await http.post(f"{API}/models", json=BOOK.model)
        assert response.status_code == 201, response.text
        yield http
    await simulator.clear_faults()


async def rebalance(service: httpx.AsyncClient, portfolio_id: str) -> httpx.Response:
    return await service.post(f"{API}/portfolio/{portfolio_id}/rebalance")


async def test_a_portfolio_rebalance_is_optimal_and_stored(service: httpx.AsyncClient):
    response = await rebalance(service, REGULAR[0])
    assert response.status_code == 200, response.text
    answer = response.json()
    check_orders(BOOK, answer)
    assert answer["portfolio_name"] == "portfolio 0"
    assert answer["transactions"], "a far-from-target portfolio trades"
    assert isinstance(answer["drifts"][0]["target"], str)

    stored = (await service.get(f"{API}/rebalance/{answer['rebalance_id']}")).json()
    assert stored["number_of_portfolios"] == 1
    portfolio = stored["portfolios"][0]
    assert portfolio["portfolio_id"] == REGULAR[0]
    assert portfolio["cash_after_rebalance"] == float(answer["cash_after_rebalance"])
    position = next(p for p in portfolio["positions"] if p["security_id"] == EXPENSIVE)
    assert position["price"] == 3000
    assert position["adjusted_position_market_value"] == 3000 * position["adjusted_quantity"]


@pytest.mark.parametrize("portfolio_id", [NEW, CASH_ONLY, OUTSIDE_MODEL])
async def test_edge_portfolios(service: httpx.AsyncClient, portfolio_id: str):
    response = await rebalance(service, portfolio_id)
    assert response.status_code == 200, response.text
    answer = response.json()
    check_orders(BOOK, answer)
    if portfolio_id == NEW:
        assert answer["transactions"] == []
        assert answer["market_value"] == "0"
    if portfolio_id == OUTSIDE_MODEL:
        assert answer["portfolio_name"] is None
        sells = {t["security_id"]: t["quantity"] for t in answer["transactions"]}
        assert sells[next(iter(BOOK.portfolio(OUTSIDE_MODEL).holdings))] == 500


async def test_infeasible_portfolio_is_422_with_the_reason(service: httpx.AsyncClient):
    response = await rebalance(service, TOO_SMALL)
    assert_error(response, 422, "OPTIMIZATION_FAILED", "no feasible solution", "band")
    assert "solver_status" in response.json()["error"]["details"]


async def test_unknown_or_malformed_portfolio(service: httpx.AsyncClient):
    assert_error(await rebalance(service, pid(999)), 404, "NOT_FOUND", "does not follow")
    assert_error(await rebalance(service, "nope"), 400, "VALIDATION_ERROR", "portfolio_id")


async def test_a_portfolio_outside_every_model_is_404_even_with_accounting_down(
    service: httpx.AsyncClient, simulator: SimulatorProcess
):
    """Its holdings are read while the model is looked up, and dropped with their error."""
    await simulator.set_faults("accounting", down=True)
    assert_error(await rebalance(service, pid(999)), 404, "NOT_FOUND", "does not follow")


async def test_a_model_rebalance_solves_at_most_its_concurrency_at_once(
    simulator: SimulatorProcess, settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    lock, running, peak = threading.Lock(), [0], [0]

    def counted(*args: Any, **kwargs: Any) -> Any:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            time.sleep(0.002)  # long enough for overlapping solves to show
            return solve(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(rebalance_service, "solve", counted)
    await simulator.clear_faults()
    async with app_client(simulator.settings(settings, rebalance_concurrency=2)) as http:
        model_id = (await http.post(f"{API}/models", json=BOOK.model)).json()["model_id"]
        response = await http.post(f"{API}/model/{model_id}/rebalance")
    assert response.status_code == 200, response.text
    assert len(response.json()) == 100
    assert peak[0] == 2


async def test_fifty_concurrent_portfolio_rebalances_all_succeed(service: httpx.AsyncClient):
    responses = await asyncio.gather(*(rebalance(service, p) for p in REGULAR[:50]))
    assert [r.status_code for r in responses] == [200] * 50
    for response in responses:
        check_orders(BOOK, response.json())


async def test_half_the_answers_failing_still_succeeds(
    service: httpx.AsyncClient, simulator: SimulatorProcess
):
    for name in ("accounting", "security", "pricing"):
        await simulator.set_faults(name, error_rate=0.5, seed=3)
    await simulator.reset_calls()
    for portfolio_id in REGULAR[:5]:
        response = await rebalance(service, portfolio_id)
        assert response.status_code == 200, response.text
        check_orders(BOOK, response.json())
    assert await simulator.call_count("accounting") > 5, "some answers were retried"


async def test_pricing_down_is_503_and_fast_once_the_breaker_is_open(
    service: httpx.AsyncClient, simulator: SimulatorProcess
):
    await simulator.set_faults("pricing", down=True)
    for _ in range(3):
        assert_error(await rebalance(service, REGULAR[0]), 503, "SERVICE_UNAVAILABLE", "Pricing")
    started = time.monotonic()
    response = await rebalance(service, REGULAR[1])
    assert_error(response, 503, "SERVICE_UNAVAILABLE", "Pricing")
    assert time.monotonic() - started < 1.0


async def test_model_rebalance_isolates_the_infeasible_portfolio(service: httpx.AsyncClient):
    model = (await service.get(f"{API}/models")).json()[0]
    response = await service.post(f"{API}/model/{model['model_id']}/rebalance")
    assert response.status_code == 200, response.text
    entries = response.json()
    assert [e["portfolio_id"] for e in entries] == BOOK.model["portfolios"]
    failed = [e for e in entries if "error" in e]
    assert [e["portfolio_id"] for e in failed] == [TOO_SMALL]
    assert failed[0]["error"]["code"] == "OPTIMIZATION_FAILED"
    assert "no feasible solution" in failed[0]["error"]["message"]
    for entry in entries:
        if "error" not in entry:
            check_orders(BOOK, entry)
    assert len({e["rebalance_id"] for e in entries}) == 1

    stored = (await service.get(f"{API}/rebalance/{entries[0]['rebalance_id']}")).json()
    assert stored["number_of_portfolios"] == 100
    assert len(stored["portfolios"]) == 99
    assert stored["failures"][0]["portfolio_id"] == TOO_SMALL
    after = (await service.get(f"{API}/model/{model['model_id']}")).json()
    assert after["last_rebalance_date"] is not None
    assert after["version"] == model["version"]


async def test_model_rebalance_stops_when_accounting_is_down(
    service: httpx.AsyncClient, simulator: SimulatorProcess
):
    model = (await service.get(f"{API}/models")).json()[0]
    await simulator.set_faults("accounting", down=True)
    response = await service.post(f"{API}/model/{model['model_id']}/rebalance")
    assert_error(response, 503, "SERVICE_UNAVAILABLE", "Accounting")
    assert (await service.get(f"{API}/rebalances")).json() == []


async def test_stored_runs_can_be_listed_found_by_portfolio_and_deleted(
    service: httpx.AsyncClient,
):
    ids = [(await rebalance(service, p)).json()["rebalance_id"] for p in REGULAR[:3]]
    listed = (await service.get(f"{API}/rebalances", params={"limit": 2})).json()
    assert [r["rebalance_id"] for r in listed] == ids[::-1][:2]
    found = await service.post(f"{API}/rebalances/portfolios", json={"portfolios": REGULAR[1:2]})
    assert [r["rebalance_id"] for r in found.json()] == [ids[1]]

    url = f"{API}/rebalance/{ids[1]}"
    assert_error(await service.delete(f"{url}?version=2"), 409, "VERSION_CONFLICT")
    assert (await service.delete(f"{url}?version=1")).status_code == 204
    assert_error(await service.get(url), 404, "NOT_FOUND")
    assert_error(await service.get(f"{API}/rebalance/bad"), 400, "VALIDATION_ERROR")
    assert_error(await service.get(f"{API}/rebalances?limit=101"), 400, "VALIDATION_ERROR")


async def test_the_seed_readme_aliases(service: httpx.AsyncClient, simulator: SimulatorProcess):
    response = await service.post(f"{API}/rebalance/portfolio/{CASH_ONLY}")
    assert response.status_code == 200
    model = (await service.get(f"{API}/models")).json()[0]
    await simulator.set_faults("accounting", down=True)
    alias = await service.post(f"{API}/rebalance/model/{model['model_id']}")
    assert alias.status_code == 503
