"""One deadline per rebalance request over all its GlobeCo calls: past it a 503, nothing stored."""

from collections.abc import AsyncIterator

import httpx
import pytest

from order_generation.config import Settings
from tests.api.book import make_book
from tests.api.test_models_api import API, assert_error
from tests.support.app import app_client
from tests.support.simulator import SimulatorProcess

BOOK = make_book(portfolios=6)


@pytest.fixture
async def service(
    simulator: SimulatorProcess, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """GlobeCo calls may take 30 s each, 4 attempts; the request's deadline is 0.5 s."""
    await simulator.clear_faults()
    tuned = simulator.settings(
        settings,
        external_service_timeout=30,
        external_service_retries=3,
        rebalance_deadline_seconds=0.5,
    )
    async with app_client(tuned) as http:
        created = await http.post(f"{API}/models", json=BOOK.model)
        assert created.status_code == 201, created.text
        yield http
    await simulator.clear_faults()


async def test_a_hung_accounting_service_is_a_503_at_the_deadline_and_nothing_is_stored(
    service: httpx.AsyncClient, simulator: SimulatorProcess
):
    await simulator.set_faults("accounting", hang=True)
    portfolio = BOOK.model["portfolios"][0]
    response = await service.post(f"{API}/portfolio/{portfolio}/rebalance")
    assert_error(response, 503, "DEADLINE_EXCEEDED", "deadline")
    assert (await service.get(f"{API}/rebalances")).json() == []


async def test_a_model_rebalance_past_its_deadline_stores_no_run_and_keeps_its_date(
    service: httpx.AsyncClient, simulator: SimulatorProcess
):
    [model] = (await service.get(f"{API}/models")).json()
    model_id = model["model_id"]
    await simulator.set_faults("accounting", hang=True)
    response = await service.post(f"{API}/model/{model_id}/rebalance")
    assert_error(response, 503, "DEADLINE_EXCEEDED", "deadline")
    assert (await service.get(f"{API}/rebalances")).json() == []
    after = (await service.get(f"{API}/model/{model_id}")).json()
    assert after["last_rebalance_date"] is None


async def test_within_the_deadline_a_slow_service_still_answers(
    service: httpx.AsyncClient, simulator: SimulatorProcess
):
    await simulator.set_faults("accounting", latency_ms=100)
    portfolio = BOOK.model["portfolios"][0]
    response = await service.post(f"{API}/portfolio/{portfolio}/rebalance")
    assert response.status_code == 200, response.text
    assert len((await service.get(f"{API}/rebalances")).json()) == 1
