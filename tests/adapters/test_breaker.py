"""The circuit breaker of a real client against the simulator (threshold 5, cool-down 0.3 s)."""

import asyncio
import time

import pytest

from order_generation.adapters.accounting import AccountingClient
from order_generation.domain.errors import UpstreamUnavailable
from tests.adapters.conftest import HOLDER, fast_settings
from tests.support.simulator import SimulatorProcess


@pytest.fixture
async def client(globeco: SimulatorProcess):
    async with AccountingClient(fast_settings(globeco, external_service_retries=0)) as client:
        yield client


async def open_breaker(client: AccountingClient, globeco: SimulatorProcess) -> None:
    await globeco.set_faults("accounting", error_rate=1)
    for _ in range(5):
        with pytest.raises(UpstreamUnavailable):
            await client.holdings(HOLDER)


async def test_opens_after_5_consecutive_failures_then_fails_fast(client, globeco):
    await open_breaker(client, globeco)
    assert client.breaker.state == "open"
    assert await globeco.call_count("accounting") == 5

    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable, match="circuit breaker open") as caught:
        await client.holdings(HOLDER)

    assert time.monotonic() - started < 0.05
    assert caught.value.details["service"] == "accounting"
    assert await globeco.call_count("accounting") == 5


async def test_a_success_resets_the_count_of_consecutive_failures(client, globeco):
    await globeco.set_faults("accounting", error_rate=1)
    for _ in range(4):
        with pytest.raises(UpstreamUnavailable):
            await client.holdings(HOLDER)
    await globeco.clear_faults()
    await client.holdings(HOLDER)

    assert (client.breaker.state, client.breaker.failures) == ("closed", 0)


async def test_half_opens_after_the_cool_down_and_closes_on_success(client, globeco):
    await open_breaker(client, globeco)
    await globeco.clear_faults()
    await asyncio.sleep(0.35)

    await client.holdings(HOLDER)

    assert client.breaker.state == "closed"
    assert await globeco.call_count("accounting") == 6


async def test_a_failed_trial_opens_the_breaker_again(client, globeco):
    await open_breaker(client, globeco)
    await asyncio.sleep(0.35)

    with pytest.raises(UpstreamUnavailable, match="HTTP 503"):
        await client.holdings(HOLDER)
    with pytest.raises(UpstreamUnavailable, match="circuit breaker open"):
        await client.holdings(HOLDER)

    assert client.breaker.state == "open"
    assert await globeco.call_count("accounting") == 6


async def test_half_open_lets_exactly_one_trial_call_through(client, globeco):
    await open_breaker(client, globeco)
    await globeco.set_faults("accounting", latency_ms=100)
    await asyncio.sleep(0.35)

    results = await asyncio.gather(
        *(client.holdings(HOLDER) for _ in range(5)), return_exceptions=True
    )

    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, UpstreamUnavailable) for r in results if isinstance(r, Exception))
    assert await globeco.call_count("accounting") == 6
    assert client.breaker.state == "closed"
