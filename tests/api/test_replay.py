"""Replaying stored runs over HTTP: runs made by real rebalances against the GlobeCo simulator
(its own process), stored through the real driver in the embedded MongoDB, then tampered with
in the database directly."""

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pydantic import SecretStr
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from order_generation.adapters.mongo.documents import CODEC_OPTIONS
from order_generation.config import Settings
from order_generation.domain.models import Position
from order_generation.domain.policy import Policy
from order_generation.domain.rebalance import RebalanceProblem, solve
from tests.api.book import make_book
from tests.api.test_models_api import API, assert_error
from tests.support.app import app_client
from tests.support.simulator import SimulatorProcess

BOOK = make_book(portfolios=12, seed=5)
PORTFOLIOS = BOOK.model["portfolios"]
TOO_SMALL = PORTFOLIOS[-1]  # infeasible: fails in a model rebalance
FIRST = BOOK.model["positions"][0]["security_id"]
Document = dict[str, Any]
POLICIES = [
    None,
    {"withdraw": "20000.00", "min_cash": "1500"},
    {"mode": "bands"},
    {"round_lot": 10, "min_trade_value": "2500", "bands": "best_effort"},
    {"mode": "buy_only", "round_lots": {FIRST: 25}},
]


@pytest.fixture
async def service(
    simulator: SimulatorProcess, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(simulator.settings(settings)) as http:
        yield http


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[AsyncDatabase[Document]]:
    """The service's database, through the real driver, for tampering with stored runs."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(settings.mongodb_url)
    yield client.get_database(settings.mongodb_database, codec_options=CODEC_OPTIONS)
    await client.close()


async def create_model(service: httpx.AsyncClient) -> str:
    response = await service.post(f"{API}/models", json=BOOK.model)
    assert response.status_code == 201, response.text
    model_id: str = response.json()["model_id"]
    return model_id


async def model_run(
    service: httpx.AsyncClient, model_id: str, policy: dict[str, Any] | None = None
) -> Document:
    """Rebalance the model; the stored run as `GET /rebalance/{id}` answers it."""
    response = await service.post(f"{API}/model/{model_id}/rebalance", json=policy)
    assert response.status_code == 200, response.text
    rebalance_id = response.json()[0]["rebalance_id"]
    stored: Document = (await service.get(f"{API}/rebalance/{rebalance_id}")).json()
    return stored


async def replay(service: httpx.AsyncClient, rebalance_id: str) -> httpx.Response:
    return await service.post(f"{API}/rebalance/{rebalance_id}/replay")


def stored_orders(portfolio: Document) -> dict[str, tuple[str, int]]:
    return {
        p["security_id"]: (p["transaction_type"], p["trade_quantity"])
        for p in portfolio["positions"]
        if p["transaction_type"]
    }


@pytest.mark.parametrize("policy", POLICIES)
async def test_a_model_run_replays_to_the_same_orders_without_calling_globeco(
    service: httpx.AsyncClient, simulator: SimulatorProcess, policy: dict[str, Any] | None
):
    model_id = await create_model(service)
    run = await model_run(service, model_id, policy)
    assert run["model_version"] == 1
    failed = [f["portfolio_id"] for f in run["failures"]]
    await simulator.reset_calls()

    response = await replay(service, run["rebalance_id"])

    assert response.status_code == 200, response.text
    answer = response.json()
    assert await simulator.call_count("accounting") == 0
    assert sum([await simulator.call_count(s) for s in ("security", "pricing", "portfolio")]) == 0
    assert answer["same"] is True
    assert (answer["rebalance_id"], answer["model_id"], answer["model_version"]) == (
        run["rebalance_id"],
        model_id,
        1,
    )
    replayed = {p["portfolio_id"]: p for p in answer["portfolios"]}
    assert list(replayed) == [p["portfolio_id"] for p in run["portfolios"]]
    for portfolio in run["portfolios"]:
        entry = replayed[portfolio["portfolio_id"]]
        assert entry == {
            "portfolio_id": portfolio["portfolio_id"],
            "same": True,
            "orders": len(stored_orders(portfolio)),
            "differences": [],
            "error": None,
        }
    assert [f["portfolio_id"] for f in answer["not_replayed"]] == failed
    assert sum(p["orders"] for p in answer["portfolios"]) > 0


async def test_the_replay_uses_the_stored_policy_not_the_models(service: httpx.AsyncClient):
    """A replay that fell back on the model's (default) policy would answer other orders."""
    model_id = await create_model(service)
    plain = await model_run(service, model_id)
    assert [f["portfolio_id"] for f in plain["failures"]] == [TOO_SMALL]
    withdrawn = await model_run(service, model_id, {"withdraw": "50000", "round_lot": 5})
    assert [stored_orders(p) for p in plain["portfolios"]] != [
        stored_orders(p) for p in withdrawn["portfolios"]
    ]
    for run in (plain, withdrawn):
        answer = (await replay(service, run["rebalance_id"])).json()
        assert answer["same"] is True
        assert len(answer["portfolios"]) == len(run["portfolios"])
        assert answer["not_replayed"] == run["failures"]


async def test_a_run_replays_the_same_after_its_model_changed_and_went(service: httpx.AsyncClient):
    model_id = await create_model(service)
    portfolio_run = (await service.post(f"{API}/portfolio/{PORTFOLIOS[0]}/rebalance")).json()
    model = (await service.get(f"{API}/model/{model_id}")).json()
    model["positions"] = [p | {"target": "0.02"} for p in model["positions"]]
    changed = await service.put(f"{API}/model/{model_id}", json=model)
    assert changed.status_code == 200, changed.text
    later = await model_run(service, model_id)

    first = (await replay(service, portfolio_run["rebalance_id"])).json()
    assert first["same"] is True
    assert first["model_version"] == 1
    assert first["portfolios"][0]["orders"] == len(portfolio_run["transactions"])
    assert later["model_version"] == 2
    assert (await replay(service, later["rebalance_id"])).json()["model_version"] == 2
    deleted = await service.delete(f"{API}/model/{model_id}", params={"version": 2})
    assert deleted.status_code == 204, deleted.text
    gone = (await replay(service, portfolio_run["rebalance_id"])).json()
    assert gone["same"] is True


async def test_a_tampered_price_is_replayed_and_the_differences_named(
    service: httpx.AsyncClient, database: AsyncDatabase[Document]
):
    model_id = await create_model(service)
    run = await model_run(service, model_id)
    portfolio = run["portfolios"][0]
    traded = next(iter(stored_orders(portfolio)))
    tampered = BOOK.price(traded) * 7
    results = database["rebalance_portfolios"]
    key = {"rebalance_id": ObjectId(run["rebalance_id"]), "portfolio_id": portfolio["portfolio_id"]}
    doc = await results.find_one(key)
    assert doc is not None
    for position in doc["positions"]:
        if position["security_id"] == traded:
            position["price"] = tampered
    await results.update_one(key, {"$set": {"positions": doc["positions"]}})

    answer = (await replay(service, run["rebalance_id"])).json()

    assert answer["same"] is False
    entry = answer["portfolios"][0]
    assert entry["same"] is False
    expected = solved_orders(portfolio["portfolio_id"], {traded: tampered})
    stored = stored_orders(portfolio)
    differing = sorted(s for s in {*stored, *expected} if stored.get(s) != expected.get(s))
    assert differing, "a price seven times higher changes some order"
    assert sorted(d["security_id"] for d in entry["differences"]) == differing
    for difference in entry["differences"]:
        sid = difference["security_id"]
        assert (difference["stored_side"], difference["stored_quantity"]) == stored.get(
            sid, (None, None)
        )
        assert (difference["replayed_side"], difference["replayed_quantity"]) == expected.get(
            sid, (None, None)
        )
    assert all(p["same"] for p in answer["portfolios"][1:])


async def test_a_stored_input_the_engine_refuses_is_reported_for_its_portfolio(
    service: httpx.AsyncClient, database: AsyncDatabase[Document]
):
    model_id = await create_model(service)
    run = await model_run(service, model_id)
    portfolio_id = run["portfolios"][1]["portfolio_id"]
    key = {"rebalance_id": ObjectId(run["rebalance_id"]), "portfolio_id": portfolio_id}
    await database["rebalance_portfolios"].update_one(key, {"$set": {"positions.0.price": 0}})

    answer = (await replay(service, run["rebalance_id"])).json()

    assert answer["same"] is False
    entry = next(p for p in answer["portfolios"] if p["portfolio_id"] == portfolio_id)
    assert entry["same"] is False
    assert entry["error"]["code"] == "VALIDATION_ERROR"
    assert "must be a decimal greater than 0" in entry["error"]["message"]
    assert sum(p["same"] for p in answer["portfolios"]) == len(answer["portfolios"]) - 1


async def test_a_run_stored_before_model_versions_were_kept_cannot_be_replayed(
    service: httpx.AsyncClient, database: AsyncDatabase[Document]
):
    model_id = await create_model(service)
    run = await model_run(service, model_id)
    header = {"_id": ObjectId(run["rebalance_id"])}
    await database["rebalances"].update_one(header, {"$unset": {"model_version": ""}})

    response = await replay(service, run["rebalance_id"])

    assert_error(response, 409, "NOT_REPLAYABLE", "cannot be replayed", "model version")
    assert response.json()["error"]["details"]["rebalance_id"] == run["rebalance_id"]
    old = (await service.get(f"{API}/rebalance/{run['rebalance_id']}")).json()
    assert old["model_version"] is None


async def test_unknown_and_malformed_runs(service: httpx.AsyncClient):
    assert_error(await replay(service, str(ObjectId())), 404, "NOT_FOUND", "not found")
    assert_error(await replay(service, "nope"), 400, "VALIDATION_ERROR", "rebalance_id")


async def test_replay_needs_the_api_key_when_one_is_set(
    simulator: SimulatorProcess, settings: Settings
):
    locked = simulator.settings(settings, secret_key=SecretStr("s3cret"))
    async with app_client(locked) as http:
        response = await http.post(f"{API}/rebalance/{ObjectId()}/replay")
        assert_error(response, 401, "UNAUTHORIZED", "X-API-Key")
        keyed = await http.post(
            f"{API}/rebalance/{ObjectId()}/replay", headers={"X-API-Key": "s3cret"}
        )
        assert keyed.status_code == 404


def solved_orders(
    portfolio_id: str, price_changes: dict[str, Decimal]
) -> dict[str, tuple[str, int]]:
    """The orders the engine gives for the book's own portfolio at the changed prices."""
    held = BOOK.portfolio(portfolio_id)
    positions = tuple(
        Position(
            p["security_id"],
            Decimal(p["target"]),
            Decimal(p["low_drift"]),
            Decimal(p["high_drift"]),
        )
        for p in BOOK.model["positions"]
    )
    securities = {p.security_id for p in positions} | set(held.holdings)
    prices = {s: price_changes.get(s, BOOK.price(s)) for s in securities}
    problem = RebalanceProblem(positions, dict(held.holdings), held.cash, prices, Policy())
    return {t.security_id: (t.side, t.quantity) for t in solve(problem).trades}
