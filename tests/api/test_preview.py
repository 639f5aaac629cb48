"""What-if rebalances agree with the engine and a real rebalance; they call and store nothing."""

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from order_generation.api.schemas import PositionBody
from order_generation.config import Settings
from order_generation.domain.rebalance import RebalanceProblem, solve
from tests.api.book import Book, check_orders, make_book
from tests.api.model_factory import entity_id, model_body, position
from tests.api.test_models_api import API, DEFAULT_POLICY_OUT, assert_error, create
from tests.support.app import app_client
from tests.support.simulator import SimulatorProcess

PREVIEW = f"{API}/rebalance/preview"
BOOK = make_book(portfolios=6)
REGULAR, _, NEW, CASH_ONLY, OUTSIDE_MODEL, TOO_SMALL = (
    p.portfolio_id for p in BOOK.scenario.portfolios
)


def preview_body(book: Book, which: str, **fields: Any) -> dict[str, Any]:
    """The book's data for one portfolio, as a preview request carries it."""
    portfolio = book.portfolio(which)
    securities = [s.security_id for s in book.scenario.securities]
    return {
        "holdings": {} if portfolio.new else portfolio.holdings,
        "cash": "0" if portfolio.new else str(portfolio.cash),
        "prices": {s: str(book.price(s)) for s in securities},
        **fields,
    }


def inline(book: Book) -> dict[str, Any]:
    return {"name": book.model["name"], "positions": book.model["positions"]}


@pytest.fixture
async def service(
    simulator: SimulatorProcess, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    tuned = simulator.settings(settings)
    async with app_client(tuned) as http:
        yield http


async def test_preview_answers_what_a_real_rebalance_answers(
    service: httpx.AsyncClient, simulator: SimulatorProcess
):
    model = await create(service, BOOK.model)
    for portfolio_id in (REGULAR, NEW, CASH_ONLY, OUTSIDE_MODEL):
        real = await service.post(f"{API}/portfolio/{portfolio_id}/rebalance")
        assert real.status_code == 200, real.text
        name = BOOK.portfolio(portfolio_id).name
        body = preview_body(
            BOOK, portfolio_id, model_id=model["model_id"], portfolio_id=portfolio_id
        )
        await simulator.reset_calls()
        preview = await service.post(PREVIEW, json=body | {"portfolio_name": name})

        assert preview.status_code == 200, preview.text
        answer = real.json()
        tickers = {s.security_id: s.ticker for s in BOOK.scenario.securities}
        assert [d["ticker"] for d in answer["drifts"]] == [
            tickers[d["security_id"]] for d in answer["drifts"]
        ]
        # The price each used, as given: the same number, maybe not the same digits.
        untickered = [d | {"ticker": None, "price": Decimal(d["price"])} for d in answer["drifts"]]
        previewed = preview.json()
        previewed["drifts"] = [d | {"price": Decimal(d["price"])} for d in previewed["drifts"]]
        assert previewed == answer | {"rebalance_id": None, "drifts": untickered}
        check_orders(BOOK, preview.json())
        calls = await simulator.calls()
        assert sum(sum(paths.values()) for paths in calls.values()) == 0, calls

    stored = (await service.get(f"{API}/rebalances")).json()
    assert len(stored) == 4, "only the real rebalances were stored"


async def test_preview_agrees_with_the_engine_and_stores_nothing(client: httpx.AsyncClient):
    body = preview_body(BOOK, REGULAR, model=inline(BOOK))
    response = await client.post(PREVIEW, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()

    result = solve(
        RebalanceProblem(
            positions=tuple(
                PositionBody.model_validate(p).to_domain() for p in BOOK.model["positions"]
            ),
            holdings=BOOK.portfolio(REGULAR).holdings,
            cash=BOOK.portfolio(REGULAR).cash,
            prices={s: Decimal(p) for s, p in body["prices"].items()},
        )
    )
    assert [
        (t["transaction_type"], t["security_id"], t["quantity"]) for t in answer["transactions"]
    ] == [(t.side, t.security_id, t.quantity) for t in result.trades]
    assert {d["security_id"]: int(d["adjusted_quantity"]) for d in answer["drifts"]} == dict(
        result.quantities
    )
    assert Decimal(answer["cash_after_rebalance"]) == result.cash_after
    assert (answer["rebalance_id"], answer["model_id"], answer["portfolio_id"]) == (None,) * 3
    assert (await client.get(f"{API}/rebalances")).json() == []


async def test_camel_case_and_json_numbers_are_accepted(client: httpx.AsyncClient):
    security = entity_id("S")
    body = {
        "model": {
            "positions": [
                {"securityId": security, "target": 0.5, "lowDrift": 0.1, "highDrift": 0.1}
            ]
        },
        "portfolioId": "PORTFOLIO000000000000001",
        "portfolioName": "what if",
        "cash": 1000,
        "prices": {security: 10.5},
    }
    response = await client.post(PREVIEW, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["portfolio_id"] == "PORTFOLIO000000000000001"
    assert answer["portfolio_name"] == "what if"
    [trade] = answer["transactions"]
    assert (trade["transaction_type"], trade["security_id"], trade["quantity"]) == (
        "BUY",
        security,
        48,
    )
    assert answer["cash_after_rebalance"] == "496.0"


async def test_an_infeasible_preview_is_422(client: httpx.AsyncClient):
    response = await client.post(PREVIEW, json=preview_body(BOOK, TOO_SMALL, model=inline(BOOK)))
    assert_error(response, 422, "OPTIMIZATION_FAILED", "no feasible solution")
    assert "solver_status" in response.json()["error"]["details"]


async def test_a_missing_price_is_400_naming_it(client: httpx.AsyncClient):
    body = preview_body(BOOK, OUTSIDE_MODEL, model=inline(BOOK))
    held = next(iter(BOOK.portfolio(OUTSIDE_MODEL).holdings))
    del body["prices"][held]
    response = await client.post(PREVIEW, json=body)
    assert_error(response, 400, "VALIDATION_ERROR", f"prices.{held}")
    assert response.json()["error"]["details"]["field"] == f"prices.{held}"


async def test_every_price_given_is_checked_not_only_the_needed_ones(
    client: httpx.AsyncClient,
):
    body = preview_body(BOOK, REGULAR, model=inline(BOOK))
    body["prices"]["unused"] = 0
    assert_error(await client.post(PREVIEW, json=body), 400, "VALIDATION_ERROR", "prices.unused")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"model_id": "0" * 24}, "model_id"),
        ({"model": None}, "model"),
        ({"model_id": None}, "model_id"),
        ({"model": {"positions": [position(target="0.123")]}}, "model.positions[0].target"),
        ({"model": {"name": "", "positions": []}}, "model.name"),
        ({"cash": "1.00000000001"}, "cash"),
        ({"holdings": {"X": 1.5}}, "holdings.X"),
        ({"holdings": {"X": True}}, "holdings.X"),
        ({"prices": None}, "prices"),
    ],
)
async def test_bad_input_is_400_naming_the_field(
    client: httpx.AsyncClient, change: dict[str, Any], field: str
):
    body = preview_body(BOOK, REGULAR, model=inline(BOOK)) | change
    assert_error(await client.post(PREVIEW, json=body), 400, "VALIDATION_ERROR", field)


@pytest.mark.parametrize(
    ("rename", "field"),
    [
        (("holdings", "holding"), "holding"),
        (("prices", "price"), "price"),
        (("cash", "cashBalance"), "cashBalance"),
    ],
)
async def test_a_misspelt_field_is_400_naming_it_not_a_misleading_answer(
    client: httpx.AsyncClient, rename: tuple[str, str], field: str
):
    """Without the check, "holding" would preview an empty portfolio and answer 200."""
    body = preview_body(BOOK, REGULAR, model=inline(BOOK))
    right, wrong = rename
    body[wrong] = body.pop(right)
    response = await client.post(PREVIEW, json=body)
    assert_error(response, 400, "VALIDATION_ERROR", field)
    fields = [e["field"] for e in response.json()["error"]["details"]["errors"]]
    assert field in fields


async def test_an_unknown_field_of_the_inline_model_is_400(client: httpx.AsyncClient):
    body = preview_body(BOOK, REGULAR, model=inline(BOOK) | {"positionz": []})
    assert_error(await client.post(PREVIEW, json=body), 400, "VALIDATION_ERROR", "model.positionz")
    ignored = preview_body(BOOK, REGULAR, model=inline(BOOK) | {"portfolios": [REGULAR]})
    assert (await client.post(PREVIEW, json=ignored)).status_code == 200


async def test_a_stored_model_by_id(client: httpx.AsyncClient):
    model = await create(client, model_body(positions=0, portfolios=0))
    body = {"model_id": model["model_id"], "holdings": {}, "cash": "10", "prices": {}}
    response = await client.post(PREVIEW, json=body)
    assert response.status_code == 200, response.text
    assert response.json()["model_id"] == model["model_id"]

    unknown = body | {"model_id": "5f0000000000000000000000"}
    assert_error(await client.post(PREVIEW, json=unknown), 404, "NOT_FOUND")
    assert_error(
        await client.post(PREVIEW, json=body | {"model_id": "nope"}),
        400,
        "VALIDATION_ERROR",
        "model_id",
    )


async def test_a_preview_policy_goes_over_the_stored_model_policy(client: httpx.AsyncClient):
    body = model_body(positions=0, portfolios=0) | {"policy": {"min_cash": "100", "round_lot": 10}}
    model = await create(client, body)
    preview = {"model_id": model["model_id"], "holdings": {}, "cash": "1000", "prices": {}}
    stored_only = (await client.post(PREVIEW, json=preview)).json()
    assert stored_only["policy"] == model["policy"]
    response = await client.post(PREVIEW, json=preview | {"policy": {"minCash": 50}})
    assert response.status_code == 200, response.text
    assert response.json()["policy"] == model["policy"] | {"min_cash": "50"}


async def test_a_preview_policy_goes_over_the_inline_model_policy(client: httpx.AsyncClient):
    own = {"mode": "buy_only", "bands": "best_effort"}
    body = preview_body(BOOK, REGULAR, model=inline(BOOK) | {"policy": own})
    inline_only = (await client.post(PREVIEW, json=body)).json()
    assert inline_only["policy"] == DEFAULT_POLICY_OUT | own
    assert {t["transaction_type"] for t in inline_only["transactions"]} <= {"BUY"}
    both = await client.post(PREVIEW, json=body | {"policy": {"min_cash": "10"}})
    assert both.status_code == 200, both.text
    assert both.json()["policy"] == DEFAULT_POLICY_OUT | own | {"min_cash": "10"}

    plain = preview_body(BOOK, CASH_ONLY, model=inline(BOOK), policy={"round_lot": 5})
    answer = (await client.post(PREVIEW, json=plain)).json()
    assert answer["policy"] == DEFAULT_POLICY_OUT | {"round_lot": 5}
    assert all(t["quantity"] % 5 == 0 for t in answer["transactions"])


async def test_a_withdrawal_above_the_market_value_is_422(client: httpx.AsyncClient):
    body = preview_body(BOOK, CASH_ONLY, model=inline(BOOK), policy={"withdraw": "2500000.01"})
    response = await client.post(PREVIEW, json=body)
    assert_error(response, 422, "OPTIMIZATION_FAILED", "no feasible solution")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"policy": {"round_lot": 0}}, "policy.round_lot"),
        ({"policy": {"lot": 1}}, "policy.lot"),
        ({"policy": {"no_buy": ["short"]}}, "policy.no_buy"),
        ({"model": {"positions": [], "policy": {"round_lot": 0}}}, "model.policy.round_lot"),
        ({"model": {"positions": [], "policy": {"lot": 1}}}, "model.policy.lot"),
    ],
)
async def test_a_bad_policy_is_400_naming_the_field(
    client: httpx.AsyncClient, change: dict[str, Any], field: str
):
    body = preview_body(BOOK, REGULAR, model=inline(BOOK)) | change
    assert_error(await client.post(PREVIEW, json=body), 400, "VALIDATION_ERROR", field)
