"""Rebalancing over real HTTP: the GlobeCo simulator as its own process, embedded MongoDB."""

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from order_generation.config import Settings
from order_generation.domain.rebalance import solve
from order_generation.service import rebalance as rebalance_service
from tests.api.book import EXPENSIVE, check_orders, make_book, pid, sid
from tests.api.test_models_api import API, DEFAULT_POLICY_OUT, assert_error
from tests.support.app import app_client
from tests.support.simulator import SimulatorProcess

BOOK = make_book(portfolios=100)
REGULAR = [p.portfolio_id for p in BOOK.scenario.portfolios[:96]]
NEW, CASH_ONLY, OUTSIDE_MODEL, TOO_SMALL = (p.portfolio_id for p in BOOK.scenario.portfolios[96:])


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


async def test_each_drift_row_says_its_price_and_ticker(service: httpx.AsyncClient):
    tickers = {s.security_id: s.ticker for s in BOOK.scenario.securities}
    answer = (await rebalance(service, OUTSIDE_MODEL)).json()
    model_entries = (
        await service.post(f"{API}/model/{await model_id_of(service)}/rebalance")
    ).json()
    entry = next(e for e in model_entries if e["portfolio_id"] == OUTSIDE_MODEL)
    for drifts in (answer["drifts"], entry["drifts"]):
        assert {d["security_id"] for d in drifts} >= {sid(22)}  # held outside the model
        for drift in drifts:
            assert drift["ticker"] == tickers[drift["security_id"]]
            assert isinstance(drift["price"], str)
            assert Decimal(drift["price"]) == BOOK.price(drift["security_id"])
    stored = (await service.get(f"{API}/rebalance/{answer['rebalance_id']}")).json()
    for position in stored["portfolios"][0]["positions"]:
        assert position["ticker"] == tickers[position["security_id"]]


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
    failed = {r.text[:200] for r in responses if r.status_code != 200}
    assert [r.status_code for r in responses] == [200] * 50, failed
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


STORED_AMOUNTS = ("min_cash", "min_cash_fraction", "withdraw", "min_trade_value")


def as_stored(policy: dict[str, Any]) -> dict[str, Any]:
    """A policy as a stored run shows it: its amounts as JSON numbers."""
    return policy | {name: float(policy[name]) for name in STORED_AMOUNTS}


def market_value(portfolio_id: str) -> Decimal:
    portfolio = BOOK.portfolio(portfolio_id)
    if portfolio.new:
        return Decimal(0)
    return portfolio.cash + sum(q * BOOK.price(s) for s, q in portfolio.holdings.items())


async def set_policy(service: httpx.AsyncClient, policy: dict[str, Any]) -> dict[str, Any]:
    """Give the book's model a policy, as a portfolio manager would: PUT with the version."""
    model = (await service.get(f"{API}/models")).json()[0]
    body = {k: v for k, v in model.items() if k != "model_id"} | {"policy": policy}
    response = await service.put(f"{API}/model/{model['model_id']}", json=body)
    assert response.status_code == 200, response.text
    updated: dict[str, Any] = response.json()
    return updated


async def test_a_plain_rebalance_shows_the_default_policy(service: httpx.AsyncClient):
    answer = (await rebalance(service, REGULAR[0])).json()
    assert answer["policy"] == DEFAULT_POLICY_OUT
    assert (answer["mode"], answer["status"], answer["breaches"]) == ("full", "optimal", [])
    assert all(d["breached"] is False for d in answer["drifts"])
    stored = (await service.get(f"{API}/rebalance/{answer['rebalance_id']}")).json()
    [portfolio] = stored["portfolios"]
    assert portfolio["policy"] == as_stored(DEFAULT_POLICY_OUT)
    assert (portfolio["mode"], portfolio["status"], portfolio["breaches"]) == (
        "full",
        "optimal",
        [],
    )


async def test_no_body_or_an_empty_one_applies_the_model_policy(service: httpx.AsyncClient):
    model = await set_policy(service, {"min_cash": "250.5", "bands": "best_effort"})
    empty = {"content": b"", "headers": {"content-type": "application/json"}}
    requests: list[dict[str, Any]] = [{}, {"json": {}}, {"json": None}, empty]
    for request in requests:
        response = await service.post(f"{API}/portfolio/{REGULAR[0]}/rebalance", **request)
        assert response.status_code == 200, (request, response.text)
        assert response.json()["policy"] == model["policy"]
        assert Decimal(response.json()["cash_after_rebalance"]) >= Decimal("250.5")


async def test_a_body_replaces_the_fields_it_names_and_keeps_the_others(
    service: httpx.AsyncClient,
):
    model = await set_policy(
        service, {"min_cash": "1000.50", "no_buy": [sid(3)], "bands": "best_effort"}
    )
    body = {"minTradeQuantity": 5, "no_buy": [sid(4)], "min_cash": 2000}
    response = await service.post(f"{API}/portfolio/{REGULAR[0]}/rebalance", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    applied = model["policy"] | {"min_trade_quantity": 5, "no_buy": [sid(4)], "min_cash": "2000"}
    assert answer["policy"] == applied
    stored = (await service.get(f"{API}/rebalance/{answer['rebalance_id']}")).json()
    [portfolio] = stored["portfolios"]
    assert portfolio["policy"] == as_stored(applied)
    assert (portfolio["mode"], portfolio["status"]) == (answer["mode"], answer["status"])

    assert Decimal(answer["cash_after_rebalance"]) >= 2000
    held = BOOK.portfolio(REGULAR[0]).holdings
    for trade in answer["transactions"]:
        closes = (
            trade["transaction_type"] == "SELL" and trade["quantity"] == held[trade["security_id"]]
        )
        assert trade["quantity"] >= 5 or closes, trade
        assert (trade["security_id"], trade["transaction_type"]) != (sid(4), "BUY")


async def test_hold_keeps_a_quantity_and_buy_only_sells_nothing(service: httpx.AsyncClient):
    url = f"{API}/portfolio/{REGULAR[0]}/rebalance"
    full = (await service.post(url)).json()
    sold = [t["security_id"] for t in full["transactions"] if t["transaction_type"] == "SELL"]
    assert sold, "a full rebalance of this portfolio sells"

    held = (await service.post(url, json={"hold": sold[:1], "bands": "best_effort"})).json()
    drift = next(d for d in held["drifts"] if d["security_id"] == sold[0])
    assert drift["adjusted_quantity"] == drift["original_quantity"]
    assert sold[0] not in {t["security_id"] for t in held["transactions"]}

    buying = (await service.post(url, json={"mode": "buy_only", "bands": "best_effort"})).json()
    assert buying["policy"]["mode"] == "buy_only"
    assert {t["transaction_type"] for t in buying["transactions"]} <= {"BUY"}


async def test_best_effort_bands_answer_the_breaches_and_store_them(service: httpx.AsyncClient):
    response = await service.post(
        f"{API}/portfolio/{TOO_SMALL}/rebalance", json={"bands": "best_effort"}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    breaches = {b["security_id"]: b for b in answer["breaches"]}
    assert EXPENSIVE in breaches, "no whole number of $3,000 shares fits its band"
    for drift in answer["drifts"]:
        assert drift["breached"] is (drift["security_id"] in breaches)
    for security_id, breach in breaches.items():
        amount = Decimal(breach["amount"])
        floor, ceiling = Decimal(breach["floor"]), Decimal(breach["ceiling"])
        assert not floor <= amount <= ceiling
        assert Decimal(breach["outside"]) == max(floor - amount, amount - ceiling)
        assert amount == BOOK.price(security_id) * int(
            next(d for d in answer["drifts"] if d["security_id"] == security_id)[
                "adjusted_quantity"
            ]
        )
        assert breach["reason"]

    stored = (await service.get(f"{API}/rebalance/{answer['rebalance_id']}")).json()
    [portfolio] = stored["portfolios"]
    assert portfolio["breaches"] == [
        b | {k: float(b[k]) for k in ("floor", "ceiling", "amount", "outside")}
        for b in answer["breaches"]
    ]


async def test_a_withdrawal_above_a_market_value_fails_that_portfolio_alone(
    service: httpx.AsyncClient,
):
    values = sorted(market_value(p) for p in BOOK.model["portfolios"])
    withdraw = values[len(values) // 2]
    model = (await service.get(f"{API}/models")).json()[0]
    response = await service.post(
        f"{API}/model/{model['model_id']}/rebalance", json={"withdraw": str(withdraw)}
    )
    assert response.status_code == 200, response.text
    entries = response.json()
    succeeded = [e for e in entries if "error" not in e]
    assert succeeded
    for entry in entries:
        if market_value(entry["portfolio_id"]) < withdraw:
            assert entry["error"]["code"] == "OPTIMIZATION_FAILED", entry
    for entry in succeeded:
        assert entry["policy"]["withdraw"] == str(withdraw)
        assert Decimal(entry["cash_after_rebalance"]) >= withdraw
    stored = (await service.get(f"{API}/rebalance/{entries[0]['rebalance_id']}")).json()
    assert len(stored["portfolios"]) == len(succeeded)
    assert len(stored["failures"]) == len(entries) - len(succeeded)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"round_lot": 0}, "policy.round_lot"),
        ({"withdraw": -5}, "policy.withdraw"),
        ({"hold": ["short"]}, "policy.hold"),
        ({"maxCash": 1}, "maxCash"),
        ({"mode": "all"}, "mode"),
        ({"min_cash": "0.00000000001"}, "min_cash"),
        ([1], "body"),
    ],
)
async def test_a_bad_body_is_400_naming_the_field_and_stores_nothing(
    service: httpx.AsyncClient, body: Any, field: str
):
    model = (await service.get(f"{API}/models")).json()[0]
    for url in (
        f"{API}/portfolio/{REGULAR[0]}/rebalance",
        f"{API}/model/{model['model_id']}/rebalance",
    ):
        assert_error(await service.post(url, json=body), 400, "VALIDATION_ERROR", field)
    assert (await service.get(f"{API}/rebalances")).json() == []


async def test_the_aliases_take_a_body_too(service: httpx.AsyncClient):
    response = await service.post(
        f"{API}/rebalance/portfolio/{CASH_ONLY}", json={"min_cash": "100"}
    )
    assert response.json()["policy"]["min_cash"] == "100"
    model = (await service.get(f"{API}/models")).json()[0]
    alias = await service.post(f"{API}/rebalance/model/{model['model_id']}", json={"round_lot": 0})
    assert_error(alias, 400, "VALIDATION_ERROR", "policy.round_lot")


async def test_a_run_stored_before_policies_reads_with_the_default(
    service: httpx.AsyncClient, settings: Settings
):
    answer = (await rebalance(service, REGULAR[0])).json()
    assert settings.mongodb_url is not None
    raw: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    unset = {"$unset": {"policy": "", "mode": "", "breaches": ""}}
    await raw[settings.mongodb_database]["rebalance_portfolios"].update_many({}, unset)
    await raw.close()
    stored = (await service.get(f"{API}/rebalance/{answer['rebalance_id']}")).json()
    [portfolio] = stored["portfolios"]
    assert portfolio["policy"] == as_stored(DEFAULT_POLICY_OUT)
    assert (portfolio["mode"], portfolio["breaches"]) == ("full", [])


async def test_the_rebalance_bodies_are_in_the_openapi_document(service: httpx.AsyncClient):
    document = (await service.get("/openapi.json")).json()
    for path in (
        "/api/v1/portfolio/{portfolio_id}/rebalance",
        "/api/v1/model/{model_id}/rebalance",
    ):
        body = document["paths"][path]["post"]["requestBody"]
        assert body.get("required", False) is False
        schema = body["content"]["application/json"]["schema"]
        assert {"$ref": "#/components/schemas/PolicyBody-Input"} in schema["anyOf"]
    policy = document["components"]["schemas"]["PolicyBody-Input"]
    assert policy["additionalProperties"] is False
    assert "round_lot" in policy["properties"]


async def model_id_of(service: httpx.AsyncClient) -> str:
    model_id: str = (await service.get(f"{API}/models")).json()[0]["model_id"]
    return model_id


async def test_stored_runs_sort_by_the_portal_columns(service: httpx.AsyncClient):
    singles = [(await rebalance(service, p)).json()["rebalance_id"] for p in REGULAR[:2]]
    moved = {"portfolios": [CASH_ONLY]}  # to a model of its own
    book_id = await model_id_of(service)
    await service.request("DELETE", f"{API}/model/{book_id}/portfolio", json=moved)
    other = {"name": "other", "positions": BOOK.model["positions"]} | moved
    other_id = (await service.post(f"{API}/models", json=other)).json()["model_id"]
    [entry] = (await service.post(f"{API}/model/{other_id}/rebalance")).json()
    ids = [*singles, entry["rebalance_id"]]  # oldest first

    async def order(sort_by: str | None = None, url: str = "rebalances") -> list[str]:
        params = {"sort_by": sort_by} if sort_by else {}
        if url == "rebalances":
            response = await service.get(f"{API}/rebalances", params=params)
        else:
            body = {"portfolios": [REGULAR[0], REGULAR[1], CASH_ONLY]}
            response = await service.post(f"{API}/rebalances/portfolios", json=body, params=params)
        assert response.status_code == 200, response.text
        return [r["rebalance_id"] for r in response.json()]

    for url in ("rebalances", "portfolios"):
        assert await order(url=url) == ids[::-1]
        assert await order("-rebalance_date", url) == ids[::-1]
        assert await order("+rebalance_date", url) == ids
        assert await order("rebalance_id", url) == ids
        assert await order("-rebalance_id", url) == ids[::-1]
        # "book 7" < "other"; the two book runs tie on the name and fall back to the id.
        assert await order("model_name", url) == ids
        assert await order("-model_name,-rebalance_date", url) == [ids[2], ids[1], ids[0]]
        assert await order("number_of_portfolios,rebalance_date", url) == ids


@pytest.mark.parametrize("sort_by", ["size", "-portfolios", "model_name;rebalance_date", ""])
async def test_a_bad_sort_by_is_400_naming_it(service: httpx.AsyncClient, sort_by: str):
    if not sort_by:  # an empty value is the default order, not an error
        assert (await service.get(f"{API}/rebalances?sort_by=")).status_code == 200
        return
    response = await service.get(f"{API}/rebalances", params={"sort_by": sort_by})
    assert_error(response, 400, "VALIDATION_ERROR", "sort_by")
    body = {"portfolios": [REGULAR[0]]}
    response = await service.post(
        f"{API}/rebalances/portfolios", json=body, params={"sort_by": sort_by}
    )
    assert_error(response, 400, "VALIDATION_ERROR", "sort_by")


async def test_stored_runs_carry_created_at(service: httpx.AsyncClient):
    before = datetime.now(UTC)
    rebalance_id = (await rebalance(service, REGULAR[0])).json()["rebalance_id"]
    [listed] = (await service.get(f"{API}/rebalances")).json()
    one = (await service.get(f"{API}/rebalance/{rebalance_id}")).json()
    for run in (listed, one):
        created = datetime.fromisoformat(run["created_at"])
        assert before - timedelta(seconds=1) <= created <= datetime.now(UTC)
        assert datetime.fromisoformat(run["rebalance_date"]) <= created


async def test_a_run_is_read_a_page_of_portfolios_or_one_portfolio_at_a_time(
    service: httpx.AsyncClient,
):
    entries = (await service.post(f"{API}/model/{await model_id_of(service)}/rebalance")).json()
    rebalance_id = entries[0]["rebalance_id"]
    whole = (await service.get(f"{API}/rebalance/{rebalance_id}")).json()
    assert len(whole["portfolios"]) == 99

    url = f"{API}/rebalance/{rebalance_id}/portfolios"
    pages = []
    for offset in range(0, 100, 25):
        response = await service.get(url, params={"offset": offset, "limit": 25})
        assert response.status_code == 200, response.text
        pages += response.json()
    assert pages == whole["portfolios"]
    assert len((await service.get(url)).json()) == 10  # the default limit
    assert (await service.get(url, params={"offset": 99})).json() == []

    for portfolio in whole["portfolios"][:3]:
        positions = await service.get(
            f"{API}/rebalance/{rebalance_id}/portfolio/{portfolio['portfolio_id']}/positions"
        )
        assert positions.status_code == 200, positions.text
        assert positions.json() == portfolio["positions"]
        assert all(isinstance(p["price"], float | int) for p in positions.json())

    missing = f"{API}/rebalance/{rebalance_id}/portfolio/{pid(999)}/positions"
    assert_error(await service.get(missing), 404, "NOT_FOUND", pid(999))
    failed = f"{API}/rebalance/{rebalance_id}/portfolio/{TOO_SMALL}/positions"
    assert_error(await service.get(failed), 404, "NOT_FOUND", "failed")
    unknown = "6650a1f0c2a4b3d2e1f00001"
    assert_error(await service.get(f"{API}/rebalance/{unknown}/portfolios"), 404, "NOT_FOUND")
    positions_of_unknown = f"{API}/rebalance/{unknown}/portfolio/{REGULAR[0]}/positions"
    assert_error(await service.get(positions_of_unknown), 404, "NOT_FOUND")
    assert_error(await service.get(f"{API}/rebalance/bad/portfolios"), 400, "VALIDATION_ERROR")
    too_many = await service.get(url, params={"limit": 101})
    assert_error(too_many, 400, "VALIDATION_ERROR", "limit")


async def test_a_model_without_portfolios_answers_no_entries_and_stores_no_run(
    service: httpx.AsyncClient,
):
    body = {"name": "empty", "positions": BOOK.model["positions"], "portfolios": []}
    created = (await service.post(f"{API}/models", json=body)).json()
    response = await service.post(f"{API}/model/{created['model_id']}/rebalance")
    assert (response.status_code, response.json()) == (200, [])
    assert (await service.get(f"{API}/rebalances")).json() == []
    after = (await service.get(f"{API}/model/{created['model_id']}")).json()
    assert after["last_rebalance_date"] is None
    assert after["version"] == created["version"]
