"""The simulator process over real HTTP: contract shapes, counts, faults, and stopping."""

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import httpx
import pytest

from order_generation.simulator import Portfolio, Scenario, Security, demo_scenario
from tests.support.simulator import SimulatorProcess, run_simulator

SEC = "a" * 24
OTHER = "b" * 24
HELD = "p" * 24
NEW = "n" * 24
SCENARIO = Scenario(
    securities=(Security(SEC, "AAA"), Security(OTHER, "BRK.B")),
    prices={"AAA": Decimal("12.34"), "BRK.B": Decimal("2999.5")},
    portfolios=(
        Portfolio(HELD, "Held Fund", Decimal("1000.50"), {SEC: 7, OTHER: -2}),
        Portfolio(NEW, None, new=True),
    ),
    models=({"name": "M", "positions": [], "portfolios": [HELD]},),
)
SUMMARY_KEYS = {"portfolioId", "cashBalance", "securityCount", "lastUpdated", "securities"}
POSITION_KEYS = {"securityId", "quantityLong", "quantityShort", "netQuantity", "lastUpdated"}
SECURITY_KEYS = {"securityId", "ticker", "description", "securityTypeId", "version", "securityType"}
PRICE_KEYS = {"id", "ticker", "date", "open", "close", "high", "low", "volume"}
PORTFOLIO_KEYS = {"portfolioId", "name", "dateCreated", "version"}


@pytest.fixture(scope="module")
def simulator_process() -> Iterator[SimulatorProcess]:
    with run_simulator(SCENARIO, seed=3) as simulator:
        yield simulator


@pytest.fixture
async def sim(simulator_process: SimulatorProcess) -> SimulatorProcess:
    await simulator_process.clear_faults()
    await simulator_process.reset_calls()
    return simulator_process


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=2) as client:
        yield client


def url(sim: SimulatorProcess, service: str, path: str) -> str:
    key = {
        "accounting": "portfolio_accounting_service_url",
        "security": "security_service_url",
        "pricing": "pricing_service_url",
        "portfolio": "portfolio_service_url",
    }[service]
    return sim.urls[key] + path


async def test_the_ready_line_names_every_settings_url_on_its_own_port(sim):
    assert set(sim.urls) == {
        "portfolio_accounting_service_url",
        "security_service_url",
        "pricing_service_url",
        "portfolio_service_url",
    }
    assert len({*sim.urls.values(), sim.control_url}) == 5
    assert all(u.startswith("http://127.0.0.1:") for u in [*sim.urls.values(), sim.control_url])
    assert sim.settings().pricing_service_url == sim.urls["pricing_service_url"]


async def test_accounting_summary_has_the_contract_shape_with_string_numbers(sim, http):
    body = (await http.get(url(sim, "accounting", f"/api/v1/portfolios/{HELD}/summary"))).json()

    assert set(body) == SUMMARY_KEYS
    assert (body["portfolioId"], body["cashBalance"], body["securityCount"]) == (HELD, "1000.50", 2)
    positions = {p["securityId"]: p for p in body["securities"]}
    assert all(set(p) == POSITION_KEYS for p in positions.values())
    assert positions[SEC]["netQuantity"] == "7"
    assert (positions[OTHER]["quantityShort"], positions[OTHER]["netQuantity"]) == ("2", "-2")


async def test_security_endpoints_have_the_contract_shape(sim, http):
    one = (await http.get(url(sim, "security", f"/api/v1/security/{SEC}"))).json()
    listed = (await http.get(url(sim, "security", "/api/v1/securities"))).json()

    assert set(one) == SECURITY_KEYS
    assert (one["securityId"], one["ticker"]) == (SEC, "AAA")
    assert [s["ticker"] for s in listed] == ["AAA", "BRK.B"]


async def test_pricing_endpoints_have_the_contract_shape_with_number_prices(sim, http):
    one = (await http.get(url(sim, "pricing", "/api/v1/price/BRK.B"))).json()
    listed = (await http.get(url(sim, "pricing", "/api/v1/prices"))).json()

    assert set(one) == PRICE_KEYS
    assert (one["ticker"], one["close"]) == ("BRK.B", 2999.5)
    assert {p["ticker"]: p["close"] for p in listed} == {"AAA": 12.34, "BRK.B": 2999.5}


async def test_portfolio_endpoints_have_the_contract_shape(sim, http):
    one = (await http.get(url(sim, "portfolio", f"/api/v1/portfolio/{HELD}"))).json()
    listed = (await http.get(url(sim, "portfolio", "/api/v1/portfolios"))).json()

    assert set(one) == PORTFOLIO_KEYS
    assert one["name"] == "Held Fund"
    assert [p["portfolioId"] for p in listed] == [HELD]


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("accounting", f"/api/v1/portfolios/{NEW}/summary"),
        ("security", "/api/v1/security/" + "z" * 24),
        ("pricing", "/api/v1/price/ZZZ"),
        ("portfolio", f"/api/v1/portfolio/{NEW}"),
    ],
)
async def test_unknown_things_are_404(sim, http, service, path):
    assert (await http.get(url(sim, service, path))).status_code == 404


async def test_calls_are_counted_per_service_and_path_and_reset(sim, http):
    for _ in range(3):
        await http.get(url(sim, "pricing", "/api/v1/prices?x=1"))
    await http.get(url(sim, "security", "/nowhere"))

    calls = await sim.calls()
    assert calls == {
        "accounting": {},
        "security": {"GET /nowhere": 1},
        "pricing": {"GET /api/v1/prices": 3},
        "portfolio": {},
    }
    await sim.reset_calls()
    assert await sim.call_count("pricing") == 0


async def test_latency_delays_answers(sim, http):
    await sim.set_faults("pricing", latency_ms=150)

    started = time.monotonic()
    assert (await http.get(url(sim, "pricing", "/api/v1/prices"))).status_code == 200
    assert time.monotonic() - started >= 0.15


async def test_error_rate_and_fail_next_answer_503(sim, http):
    await sim.set_faults("security", fail_next=2)
    statuses = [(await http.get(url(sim, "security", "/api/v1/securities"))).status_code]
    statuses += [(await http.get(url(sim, "security", "/api/v1/securities"))).status_code]
    statuses += [(await http.get(url(sim, "security", "/api/v1/securities"))).status_code]
    assert statuses == [503, 503, 200]

    await sim.set_faults("security", error_rate=0.5, seed=11)
    first = [(await http.get(url(sim, "security", "/api/v1/securities"))).status_code]
    first += [(await http.get(url(sim, "security", "/api/v1/securities"))).status_code]
    await sim.set_faults("security", error_rate=0.5, seed=11)
    again = [(await http.get(url(sim, "security", "/api/v1/securities"))).status_code]
    again += [(await http.get(url(sim, "security", "/api/v1/securities"))).status_code]
    assert first == again  # seeded


async def test_a_hung_service_never_answers(sim, http):
    await sim.set_faults("portfolio", hang=True)

    with pytest.raises(httpx.ReadTimeout):
        await http.get(url(sim, "portfolio", f"/api/v1/portfolio/{HELD}"), timeout=0.2)
    assert await sim.call_count("portfolio") == 1


async def test_a_down_service_refuses_connections_then_comes_back(sim, http):
    target = url(sim, "accounting", f"/api/v1/portfolios/{HELD}/summary")
    assert (await http.get(target)).status_code == 200  # leaves a pooled connection open
    await sim.set_faults("accounting", down=True)

    with pytest.raises(httpx.TransportError):
        await http.get(target)
    assert (await http.get(url(sim, "pricing", "/api/v1/prices"))).status_code == 200

    await sim.clear_faults()
    assert (await http.get(target)).status_code == 200


async def test_bad_fault_requests_are_refused(sim, http):
    assert (
        await http.put(f"{sim.control_url}/faults/pricing", json={"error_rate": 2})
    ).status_code == 400
    assert (
        await http.put(f"{sim.control_url}/faults/pricing", json={"nope": 1})
    ).status_code == 400
    assert (await http.put(f"{sim.control_url}/faults/nowhere", json={})).status_code == 404


async def test_the_control_api_serves_the_scenario_with_its_models(sim):
    assert await sim.scenario() == SCENARIO.to_dict()
    assert Scenario.from_dict(await sim.scenario()) == SCENARIO


def test_the_process_stops_cleanly_on_sigterm():
    with run_simulator(SCENARIO) as simulator:
        pid = simulator.pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_print_scenario_writes_the_demo_book_as_a_scenario_file():
    output = subprocess.run(
        [
            sys.executable,
            "-m",
            "order_generation.simulator",
            "--demo",
            "--seed",
            "5",
            "--print-scenario",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=20,
    ).stdout

    assert Scenario.from_dict(json.loads(output)) == demo_scenario(5)
