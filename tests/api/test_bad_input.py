"""Input no store or answer can carry is a 400 naming the field, never a 500 (issue 13.4).

Bodies are sent as raw JSON so that lone surrogates reach the service as JSON escapes.
"""

import json
from typing import Any

import httpx
import pytest

from tests.api.model_factory import entity_id, model_body, position
from tests.api.test_models_api import assert_error, create

API = "/api/v1"
TOO_BIG = 2**63
SID = entity_id("S")
INLINE = {"name": "inline", "positions": [{**position(), "security_id": SID}]}


async def send(client: httpx.AsyncClient, method: str, path: str, body: Any) -> httpx.Response:
    # json.dumps escapes a lone surrogate as \udXXX, as a JavaScript client would send it.
    content = json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    return await client.request(method, path, content=content, headers=headers)


@pytest.mark.parametrize("bad", ["a\x00b", "\ud800", "x\udfff"])
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/models", lambda bad: model_body(name=f"model {bad}"), "name"),
        ("/models", lambda bad: {**model_body(), "portfolios": [bad]}, "portfolios"),
        ("/rebalances/portfolios", lambda bad: {"portfolios": [bad]}, "portfolios"),
        ("/rebalance/preview", lambda bad: {"model_id": bad, "prices": {}}, "model_id"),
        (
            "/rebalance/preview",
            lambda bad: {"model": INLINE, "prices": {SID: "1"}, "portfolio_name": bad},
            "portfolio_name",
        ),
        (
            "/rebalance/preview",
            lambda bad: {"model": INLINE, "prices": {SID: "1", bad: "2"}},
            "prices",
        ),
        (
            "/rebalance/preview",
            lambda bad: {"model": {**INLINE, "name": bad}, "prices": {SID: "1"}},
            "model.name",
        ),
    ],
)
async def test_nul_and_lone_surrogates_in_body_strings_are_400_naming_the_field(
    client: httpx.AsyncClient, bad: str, path: str, body: Any, field: str
):
    response = await send(client, "POST", f"{API}{path}", body(bad))
    assert_error(response, 400, "VALIDATION_ERROR", field, "NUL or lone surrogate")
    [problem] = response.json()["error"]["details"]["errors"]
    assert problem["field"] == field


async def test_a_refused_name_stores_nothing(client: httpx.AsyncClient):
    await send(client, "POST", f"{API}/models", model_body(name="nul \x00 name"))
    assert (await client.get(f"{API}/models")).json() == []


async def test_a_policy_override_is_held_to_the_same_rule(client: httpx.AsyncClient):
    model = await create(client)
    response = await send(
        client, "POST", f"{API}/model/{model['model_id']}/rebalance", {"no_buy": ["\ud800"]}
    )
    assert_error(response, 400, "VALIDATION_ERROR", "no_buy")


@pytest.mark.parametrize(
    "query",
    [
        f"/models?offset={TOO_BIG}",
        f"/models?limit={TOO_BIG}",
        f"/rebalances?offset={TOO_BIG}",
        f"/rebalances?limit={TOO_BIG}",
        f"/rebalances?offset={-TOO_BIG - 1}",
    ],
)
async def test_paging_integers_beyond_8_bytes_are_400_naming_them(
    client: httpx.AsyncClient, query: str
):
    response = await client.get(f"{API}{query}")
    field = query.split("?")[1].split("=")[0]
    assert_error(response, 400, "VALIDATION_ERROR", field)


async def test_versions_beyond_8_bytes_are_400_naming_them(client: httpx.AsyncClient):
    model = await create(client)
    url = f"{API}/model/{model['model_id']}"
    deleted = await client.delete(url, params={"version": TOO_BIG})
    assert_error(deleted, 400, "VALIDATION_ERROR", "version")
    updated = await send(client, "PUT", url, {**model_body(), "version": TOO_BIG})
    assert_error(updated, 400, "VALIDATION_ERROR", "version")
    policy = await send(client, "POST", f"{url}/rebalance", {"round_lot": TOO_BIG})
    assert_error(policy, 400, "VALIDATION_ERROR", "round_lot")
    assert (await client.get(url)).json() == model


async def test_a_boolean_version_is_400_not_read_as_a_number(client: httpx.AsyncClient):
    created = await send(client, "POST", f"{API}/models", {**model_body(), "version": False})
    assert_error(created, 400, "VALIDATION_ERROR", "version")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/model/{id}", "DELETE, GET, PUT"),
        ("GET", "/model/{id}/portfolio", "DELETE, POST"),
        ("GET", "/model/{id}/position", "DELETE, POST, PUT"),
    ],
)
async def test_a_405_lists_every_method_the_path_serves(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
):
    model = await create(client)
    response = await client.request(method, API + path.format(id=model["model_id"]))
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["Allow"] == allowed


@pytest.mark.parametrize("method", ["OPTIONS", "GET", "DELETE"])
async def test_a_fixed_path_is_405_for_methods_it_does_not_serve_not_read_as_an_id(
    client: httpx.AsyncClient, method: str
):
    # GET and DELETE /rebalance/{rebalance_id} would otherwise take "preview" for an id.
    response = await client.request(method, f"{API}/rebalance/preview")
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["Allow"] == "POST"


@pytest.mark.parametrize(
    ("field", "value"),
    [("min_trade_quantity", False), ("round_lot", True), ("round_lot", "2")],
)
async def test_a_policy_integer_is_a_json_integer_not_a_boolean_or_string(
    client: httpx.AsyncClient, field: str, value: Any
):
    body = {**model_body(), "policy": {field: value}}
    created = await send(client, "POST", f"{API}/models", body)
    assert_error(created, 400, "VALIDATION_ERROR", field)


async def test_an_integral_number_is_an_integer(client: httpx.AsyncClient):
    body = {**model_body(), "policy": {"round_lot": 2.0}}
    created = await send(client, "POST", f"{API}/models", body)
    assert created.status_code == 201, created.text
    assert created.json()["policy"]["round_lot"] == 2


async def test_a_position_with_target_0_is_checked_before_it_is_dropped(
    client: httpx.AsyncClient,
):
    model = await create(client)
    url = f"{API}/model/{model['model_id']}/position"
    bad = {**position(), "security_id": SID, "target": "0", "high_drift": -1.0}
    assert_error(await send(client, "POST", url, bad), 400, "VALIDATION_ERROR", "high_drift")
    assert (await client.get(f"{API}/model/{model['model_id']}")).json() == model


async def test_a_number_is_not_read_as_a_last_rebalance_date(client: httpx.AsyncClient):
    body = {**model_body(), "last_rebalance_date": 0}
    created = await send(client, "POST", f"{API}/models", body)
    assert_error(created, 400, "VALIDATION_ERROR", "last_rebalance_date")
