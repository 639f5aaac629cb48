"""Every model endpoint, success and failure, through the real driver."""

from typing import Any

import httpx
import pytest

from tests.api.model_factory import entity_id, model_body, position

API = "/api/v1"


async def create(client: httpx.AsyncClient, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await client.post(f"{API}/models", json=body or model_body())
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def assert_error(response: httpx.Response, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}
    error = body["error"]
    assert error["code"] == code
    assert set(error) == {"code", "message", "details", "timestamp", "trace_id"}
    assert body["detail"] == error["message"]  # where FastAPI clients and the portal look
    for word in words:
        assert word in error["message"]


async def test_create_returns_snake_case_with_exact_decimal_strings(client: httpx.AsyncClient):
    body = model_body(positions=1)
    body["positions"][0].update(target="0.125", low_drift="0.015", high_drift="0.02")
    created = await create(client, body)
    assert created["version"] == 1
    assert created["last_rebalance_date"] is None
    assert created["positions"][0] == {
        "security_id": body["positions"][0]["security_id"],
        "target": "0.125",
        "low_drift": "0.015",
        "high_drift": "0.02",
    }
    fetched = await client.get(f"{API}/model/{created['model_id']}")
    assert fetched.json() == created


async def test_camel_case_and_json_numbers_are_accepted(client: httpx.AsyncClient):
    sid, pid = entity_id(), entity_id("P")
    body = {
        "name": "camel",
        "positions": [{"securityId": sid, "target": 0.05, "lowDrift": 0.01, "highDrift": 0.02}],
        "portfolios": [pid],
        "policy": {"roundLot": 10, "minTradeQuantity": 2, "noSell": [sid]},
    }
    created = await create(client, body)
    assert created["positions"] == [
        {"security_id": sid, "target": "0.05", "low_drift": "0.01", "high_drift": "0.02"}
    ]
    policy = created["policy"]
    assert (policy["round_lot"], policy["min_trade_quantity"], policy["no_sell"]) == (10, 2, [sid])


async def test_zero_target_positions_are_dropped_on_save(client: httpx.AsyncClient):
    body = model_body(positions=2)
    body["positions"][1]["target"] = "0"
    created = await create(client, body)
    assert [p["security_id"] for p in created["positions"]] == [body["positions"][0]["security_id"]]


async def test_a_model_may_have_no_portfolios(client: httpx.AsyncClient):
    created = await create(client, model_body(portfolios=0))
    assert created["portfolios"] == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"target": "0.96"}, "positions[0].target"),
        ({"target": "0.101"}, "positions[0].target"),
        ({"target": "-0.005"}, "positions[0].target"),
        ({"low_drift": "1.5"}, "positions[0].low_drift"),
        ({"low_drift": "0.5", "high_drift": "0.1"}, "positions[0].low_drift"),
        ({"security_id": "short"}, "positions[0].security_id"),
        ({"security_id": "A" * 23 + "-"}, "positions[0].security_id"),
        ({"target": "abc"}, "positions[0].target"),
        ({"target": "Infinity"}, "positions[0].target"),
    ],
)
async def test_position_rules_name_the_field(
    client: httpx.AsyncClient, change: dict[str, str], field: str
):
    body = model_body(positions=1)
    body["positions"][0].update(change)
    assert_error(await client.post(f"{API}/models", json=body), 400, "VALIDATION_ERROR", field)


async def test_model_rules(client: httpx.AsyncClient):
    too_much = model_body(positions=0)
    too_much["positions"] = [position("0.5"), position("0.455")]
    response = await client.post(f"{API}/models", json=too_much)
    assert_error(response, 400, "VALIDATION_ERROR", "positions", "0.95")

    too_many = model_body(positions=0)
    too_many["positions"] = [position("0.005") for _ in range(101)]
    response = await client.post(f"{API}/models", json=too_many)
    assert_error(response, 400, "VALIDATION_ERROR", "100")

    duplicate = model_body(positions=1)
    duplicate["positions"].append(dict(duplicate["positions"][0]))
    response = await client.post(f"{API}/models", json=duplicate)
    assert_error(response, 400, "VALIDATION_ERROR", "unique")

    twice = model_body(portfolios=1)
    twice["portfolios"].append(twice["portfolios"][0])
    response = await client.post(f"{API}/models", json=twice)
    assert_error(response, 400, "VALIDATION_ERROR", "portfolios")

    blank = model_body()
    blank["name"] = "   "
    assert_error(await client.post(f"{API}/models", json=blank), 400, "VALIDATION_ERROR", "name")

    missing = model_body()
    del missing["name"]
    assert_error(await client.post(f"{API}/models", json=missing), 400, "VALIDATION_ERROR", "name")


async def test_targets_summing_to_exactly_095_are_accepted(client: httpx.AsyncClient):
    body = model_body(positions=0)
    body["positions"] = [position("0.095") for _ in range(10)]
    created = await create(client, body)
    assert len(created["positions"]) == 10


async def test_duplicate_name_is_a_conflict(client: httpx.AsyncClient):
    first = await create(client)
    again = model_body(name=first["name"])
    assert_error(await client.post(f"{API}/models", json=again), 409, "CONFLICT", first["name"])


async def test_a_portfolio_follows_at_most_one_model(client: httpx.AsyncClient):
    first = await create(client)
    second = model_body()
    second["portfolios"].append(first["portfolios"][0])
    response = await client.post(f"{API}/models", json=second)
    assert_error(response, 409, "CONFLICT", first["portfolios"][0], first["name"])

    other = await create(client)
    response = await client.post(
        f"{API}/model/{other['model_id']}/portfolio", json={"portfolios": first["portfolios"][:1]}
    )
    assert_error(response, 409, "CONFLICT", first["name"])


async def test_unknown_and_malformed_ids(client: httpx.AsyncClient):
    unknown = "0123456789abcdef01234567"
    assert_error(await client.get(f"{API}/model/{unknown}"), 404, "NOT_FOUND", unknown)
    assert_error(await client.get(f"{API}/model/not-an-id"), 400, "VALIDATION_ERROR", "model_id")
    response = await client.put(f"{API}/model/{unknown}", json=model_body() | {"version": 1})
    assert_error(response, 404, "NOT_FOUND")
    assert_error(await client.delete(f"{API}/model/{unknown}?version=1"), 404, "NOT_FOUND")
    response = await client.post(f"{API}/model/{unknown}/position", json=position())
    assert_error(response, 404, "NOT_FOUND")
    assert_error(await client.get(f"{API}/no-such-route"), 404, "NOT_FOUND")


async def test_update_with_current_version_bumps_it(client: httpx.AsyncClient):
    created = await create(client)
    body = model_body(name="renamed", positions=1) | {"version": 1}
    response = await client.put(f"{API}/model/{created['model_id']}", json=body)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["version"] == 2
    assert updated["name"] == "renamed"
    assert updated["positions"][0]["security_id"] == body["positions"][0]["security_id"]


async def test_update_with_stale_version_changes_nothing(client: httpx.AsyncClient):
    created = await create(client)
    url = f"{API}/model/{created['model_id']}"
    assert (await client.put(url, json=model_body() | {"version": 1})).status_code == 200
    response = await client.put(url, json=model_body(name="late") | {"version": 1})
    assert_error(response, 409, "VERSION_CONFLICT", "version 2")
    assert (await client.get(url)).json()["name"] != "late"


async def test_update_without_version_is_rejected(client: httpx.AsyncClient):
    created = await create(client)
    response = await client.put(f"{API}/model/{created['model_id']}", json=model_body())
    assert_error(response, 400, "VALIDATION_ERROR", "version")


async def test_update_to_a_taken_name_is_a_conflict(client: httpx.AsyncClient):
    first, second = await create(client), await create(client)
    body = model_body(name=first["name"]) | {"version": 1}
    response = await client.put(f"{API}/model/{second['model_id']}", json=body)
    assert_error(response, 409, "CONFLICT", first["name"])


async def test_delete_needs_the_current_version(client: httpx.AsyncClient):
    created = await create(client)
    url = f"{API}/model/{created['model_id']}"
    assert_error(await client.delete(f"{url}?version=2"), 409, "VERSION_CONFLICT")
    assert_error(await client.delete(url), 400, "VALIDATION_ERROR", "version")
    assert (await client.delete(f"{url}?version=1")).status_code == 204
    assert (await client.get(url)).status_code == 404


async def test_aliases_answer_like_the_documented_paths(client: httpx.AsyncClient):
    created = await create(client)
    alias = f"{API}/models/{created['model_id']}"
    assert (await client.get(alias)).json() == created
    updated = await client.put(alias, json=model_body() | {"version": 1})
    assert updated.json()["version"] == 2
    assert (await client.delete(f"{alias}?version=2")).status_code == 204
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/api/v1/model/{model_id}" in paths
    assert "/api/v1/models/{model_id}" not in paths


async def test_position_add_update_delete(client: httpx.AsyncClient):
    created = await create(client, model_body(positions=1))
    url = f"{API}/model/{created['model_id']}/position"
    new = position("0.2")
    added = (await client.post(url, json=new)).json()
    assert added["version"] == 2
    assert added["positions"][-1]["security_id"] == new["security_id"]
    assert_error(await client.post(url, json=new), 409, "CONFLICT", "already")

    changed = new | {"target": "0.3"}
    updated = (await client.put(url, json=changed)).json()
    assert updated["positions"][-1]["target"] == "0.3"
    assert_error(await client.put(url, json=position()), 404, "NOT_FOUND")

    response = await client.request("DELETE", url, json=new)
    assert_error(response, 409, "CONFLICT", "does not match")
    removed = (await client.request("DELETE", url, json=changed)).json()
    assert [p["security_id"] for p in removed["positions"]] == [
        created["positions"][0]["security_id"]
    ]
    assert removed["version"] == 4


async def test_position_add_keeps_the_model_rules(client: httpx.AsyncClient):
    body = model_body(positions=0)
    body["positions"] = [position("0.9")]
    created = await create(client, body)
    url = f"{API}/model/{created['model_id']}/position"
    assert_error(await client.post(url, json=position("0.1")), 400, "VALIDATION_ERROR", "0.95")
    assert_error(await client.post(url, json=position("0.0025")), 400, "VALIDATION_ERROR", "0.005")


async def test_portfolios_add_and_remove_ignore_duplicates_and_missing(client: httpx.AsyncClient):
    created = await create(client, model_body(portfolios=1))
    url = f"{API}/model/{created['model_id']}/portfolio"
    new = entity_id("P")
    added = (
        await client.post(url, json={"portfolios": [new, new, created["portfolios"][0]]})
    ).json()
    assert added["portfolios"] == [created["portfolios"][0], new]
    removed = (
        await client.request("DELETE", url, json={"portfolios": [new, entity_id("P")]})
    ).json()
    assert removed["portfolios"] == created["portfolios"]
    response = await client.post(url, json={"portfolios": [new, "bad"]})
    assert_error(response, 400, "VALIDATION_ERROR", "portfolios[1]")  # as the request has it


async def test_list_pages_and_sorts(client: httpx.AsyncClient):
    names = ["delta", "alpha", "charlie", "bravo"]
    ids = [(await create(client, model_body(name=name)))["model_id"] for name in names]
    listed = (await client.get(f"{API}/models")).json()
    assert [m["model_id"] for m in listed] == ids
    by_name = (await client.get(f"{API}/models", params={"sort_by": "-name"})).json()
    assert [m["name"] for m in by_name] == sorted(names, reverse=True)
    page = (
        await client.get(f"{API}/models", params={"sort_by": "+name", "offset": 1, "limit": 2})
    ).json()
    assert [m["name"] for m in page] == ["bravo", "charlie"]
    both = await client.get(f"{API}/models", params={"sort_by": "last_rebalance_date,-model_id"})
    assert [m["model_id"] for m in both.json()] == ids[::-1]


async def test_an_offset_at_or_past_the_end_is_an_empty_page(client: httpx.AsyncClient):
    """The portal's "Load More" asks for offset=10 when a full page of 10 came back."""
    for n in range(10):
        await create(client, model_body(name=f"model {n}"))
    first = await client.get(f"{API}/models", params={"limit": 10, "offset": 0})
    assert len(first.json()) == 10
    for offset in (10, 11, 10_000):
        response = await client.get(f"{API}/models", params={"limit": 10, "offset": offset})
        assert (response.status_code, response.json()) == (200, [])
    last = await client.get(f"{API}/models", params={"limit": 10, "offset": 9})
    assert len(last.json()) == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort_by": "size"}, "sort_by"),
        ({"offset": -1}, "offset"),
        ({"limit": 0}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -10, "limit": -1}, "offset"),
    ],
)
async def test_list_rejects_bad_parameters(
    client: httpx.AsyncClient, params: dict[str, Any], field: str
):
    await create(client)
    response = await client.get(f"{API}/models", params=params)
    assert_error(response, 400, "VALIDATION_ERROR", field)


async def test_health_endpoints(client: httpx.AsyncClient):
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    assert (await client.get("/health/ready")).status_code == 200
    health = (await client.get("/health/health")).json()
    assert health["checks"]["mongodb"]["status"] == "ok"
    assert (await client.get("/docs")).status_code == 200


DEFAULT_POLICY_OUT = {
    "mode": "full",
    "min_cash": "0",
    "min_cash_fraction": "0",
    "withdraw": "0",
    "no_buy": [],
    "no_sell": [],
    "hold": [],
    "min_trade_value": "0",
    "min_trade_quantity": 0,
    "round_lot": 1,
    "round_lots": {},
    "bands": "strict",
}


def with_policy(**policy: Any) -> dict[str, Any]:
    """A model body whose policy names two of its own securities."""
    body = model_body(positions=3)
    first, second, _ = (p["security_id"] for p in body["positions"])
    return body | {
        "policy": {
            "mode": "bands",
            "minCash": "1000.00",
            "min_cash_fraction": 0.02,
            "withdraw": 5000,
            "no_buy": [second],
            "hold": [first],
            "minTradeValue": "500",
            "min_trade_quantity": 10,
            "round_lot": 100,
            "roundLots": {second: 10},
            "bands": "best_effort",
            **policy,
        }
    }


async def test_a_model_policy_round_trips_exactly(client: httpx.AsyncClient):
    body = with_policy()
    first, second, _ = (p["security_id"] for p in body["positions"])
    created = await create(client, body)
    expected = DEFAULT_POLICY_OUT | {
        "mode": "bands",
        "min_cash": "1000.00",
        "min_cash_fraction": "0.02",
        "withdraw": "5000",
        "no_buy": [second],
        "hold": [first],
        "min_trade_value": "500",
        "min_trade_quantity": 10,
        "round_lot": 100,
        "round_lots": {second: 10},
        "bands": "best_effort",
    }
    assert created["policy"] == expected
    assert (await client.get(f"{API}/model/{created['model_id']}")).json() == created
    [listed] = (await client.get(f"{API}/models")).json()
    assert listed["policy"] == expected


async def test_a_model_without_a_policy_has_the_default_and_fields_left_out_default(
    client: httpx.AsyncClient,
):
    assert (await create(client))["policy"] == DEFAULT_POLICY_OUT
    partial = await create(client, model_body() | {"policy": {"mode": "buy_only"}})
    assert partial["policy"] == DEFAULT_POLICY_OUT | {"mode": "buy_only"}


async def test_put_without_a_policy_keeps_it_and_null_resets_it(client: httpx.AsyncClient):
    created = await create(client, with_policy())
    url = f"{API}/model/{created['model_id']}"
    # The portal's PUT: what it read back, without the policy it knows nothing of.
    portal = {k: v for k, v in created.items() if k not in ("policy", "model_id")}
    kept = (await client.put(url, json=portal | {"name": "renamed"})).json()
    assert (kept["name"], kept["version"]) == ("renamed", 2)
    assert kept["policy"] == created["policy"]

    changed = await client.put(url, json=portal | {"version": 2, "policy": {"mode": "sell_only"}})
    assert changed.json()["policy"] == DEFAULT_POLICY_OUT | {"mode": "sell_only"}
    assert changed.json()["version"] == 3

    reset = (await client.put(url, json=portal | {"version": 3, "policy": None})).json()
    assert (reset["policy"], reset["version"]) == (DEFAULT_POLICY_OUT, 4)
    assert (await client.get(url)).json() == reset


async def test_position_and_portfolio_changes_keep_the_policy(client: httpx.AsyncClient):
    created = await create(client, with_policy())
    url = f"{API}/model/{created['model_id']}"
    added = (await client.post(f"{url}/position", json=position("0.05"))).json()
    assert added["policy"] == created["policy"]
    more = (await client.post(f"{url}/portfolio", json={"portfolios": [entity_id("P")]})).json()
    assert more["policy"] == created["policy"]


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"max_cash": "1"}, "policy.max_cash"),
        ({"mode": "sideways"}, "policy.mode"),
        ({"bands": "loose"}, "policy.bands"),
        ({"round_lot": 0}, "policy.round_lot"),
        ({"round_lots": {"short": 10}}, "policy.round_lots"),
        ({"min_cash": "-1"}, "policy.min_cash"),
        ({"withdraw": "1.00000000001"}, "policy.withdraw"),
        ({"min_cash_fraction": "1.5"}, "policy.min_cash_fraction"),
        ({"min_trade_quantity": -1}, "policy.min_trade_quantity"),
        ({"no_sell": ["bad id"]}, "policy.no_sell"),
        ({"min_trade_quantity": 1.5}, "policy.min_trade_quantity"),
    ],
)
async def test_a_bad_policy_is_400_naming_the_field(
    client: httpx.AsyncClient, policy: dict[str, Any], field: str
):
    response = await client.post(f"{API}/models", json=model_body() | {"policy": policy})
    assert_error(response, 400, "VALIDATION_ERROR", field)
    created = await create(client)
    body = created | {"policy": policy}
    response = await client.put(f"{API}/model/{created['model_id']}", json=body)
    assert_error(response, 400, "VALIDATION_ERROR", field)


@pytest.mark.parametrize("missing", ["positions", "portfolios"])
async def test_a_put_without_positions_or_portfolios_is_400_and_changes_nothing(
    client: httpx.AsyncClient, missing: str
):
    """A partial PUT must not empty the model: every list it replaces must be given."""
    created = await create(client)
    url = f"{API}/model/{created['model_id']}"
    body = {k: v for k, v in created.items() if k != missing} | {"name": "renamed"}
    assert_error(await client.put(url, json=body), 400, "VALIDATION_ERROR", missing)
    only_name = {"name": "renamed", "version": created["version"]}
    assert_error(await client.put(url, json=only_name), 400, "VALIDATION_ERROR", missing)
    assert (await client.get(url)).json() == created


async def test_model_bodies_take_what_the_portal_echoes_and_ignore_what_the_server_owns(
    client: httpx.AsyncClient,
):
    stale = {"model_id": "6650a1f0c2a4b3d2e1f00001", "version": 7}
    stale |= {"last_rebalance_date": "2024-01-02T03:04:05Z"}
    created = await create(client, model_body() | stale)
    assert created["model_id"] != stale["model_id"]
    assert (created["version"], created["last_rebalance_date"]) == (1, None)

    url = f"{API}/model/{created['model_id']}"
    echoed = created | {"name": "renamed", "lastRebalanceDate": "2024-01-02T03:04:05Z"}
    del echoed["last_rebalance_date"]
    response = await client.put(url, json=echoed | {"model_id": stale["model_id"]})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["model_id"], updated["name"]) == (created["model_id"], "renamed")
    assert (updated["version"], updated["last_rebalance_date"]) == (2, None)


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/models", model_body() | {"position": []}, "position"),
        ("POST", "/models", model_body() | {"versionn": 1}, "versionn"),
        ("PUT", "", {"name": "x", "positions": [], "portfolios": [], "version": 1, "x": 0}, "x"),
        ("POST", "/position", position() | {"weight": "0.1"}, "weight"),
        ("PUT", "/position", position() | {"highDriftt": "0.1"}, "highDriftt"),
        ("DELETE", "/position", position() | {"note": ""}, "note"),
        ("POST", "/portfolio", {"portfolios": [], "portfolio": "P" * 24}, "portfolio"),
        ("DELETE", "/portfolio", {"portfolios": [], "all": True}, "all"),
    ],
)
async def test_an_unknown_field_in_a_body_is_400_naming_it_and_changes_nothing(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any], field: str
):
    created = await create(client)
    url = f"{API}/model/{created['model_id']}{path}" if path != "/models" else f"{API}/models"
    response = await client.request(method, url, json=body)
    assert_error(response, 400, "VALIDATION_ERROR", field)
    assert response.json()["error"]["details"]["errors"][0]["field"] == field
    assert (await client.get(f"{API}/model/{created['model_id']}")).json() == created
    assert len((await client.get(f"{API}/models")).json()) == 1


async def test_positions_inside_a_model_refuse_unknown_fields(client: httpx.AsyncClient):
    body = model_body(positions=1)
    body["positions"][0]["weight"] = "0.1"
    response = await client.post(f"{API}/models", json=body)
    assert_error(response, 400, "VALIDATION_ERROR", "positions[0].weight")


async def test_a_version_beyond_an_8_byte_integer_is_400_not_500(client: httpx.AsyncClient):
    created = await create(client)
    url = f"{API}/model/{created['model_id']}"
    assert_error(await client.delete(f"{url}?version={2**63}"), 400, "VALIDATION_ERROR", "version")
    too_big = model_body() | {"version": 2**63}
    assert_error(await client.put(url, json=too_big), 400, "VALIDATION_ERROR", "version")


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"round_lot": 2**63}, "policy.round_lot"),
        ({"min_trade_quantity": -(2**63) - 1}, "policy.min_trade_quantity"),
        ({"round_lots": {"A" * 24: 2**70}}, "policy.round_lots"),
    ],
)
async def test_a_policy_integer_beyond_8_bytes_is_400_not_500(
    client: httpx.AsyncClient, policy: dict[str, Any], field: str
):
    response = await client.post(f"{API}/models", json=model_body() | {"policy": policy})
    assert_error(response, 400, "VALIDATION_ERROR", field)


async def test_thousands_of_portfolios_are_added_and_refused_by_their_model(
    client: httpx.AsyncClient,
):
    """Beyond the embedded server's ~495-term `$in` limit, and beyond what failed at ~600."""
    created = await create(client, model_body(portfolios=1_200))
    many = {"portfolios": [entity_id("P") for _ in range(3_000)]}

    added = await client.post(f"{API}/model/{created['model_id']}/portfolio", json=many)

    assert added.status_code == 200, added.text
    assert len(added.json()["portfolios"]) == 4_200
    other = model_body() | {"portfolios": [*many["portfolios"][-3:], entity_id("P")]}
    response = await client.post(f"{API}/models", json=other)
    assert_error(response, 409, "CONFLICT", many["portfolios"][-3], created["name"])
    removed = await client.request(
        "DELETE", f"{API}/model/{created['model_id']}/portfolio", json=many
    )
    assert removed.json()["portfolios"] == created["portfolios"]
