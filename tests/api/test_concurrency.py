"""Optimistic locking under concurrent writers."""

import asyncio

import httpx

from order_generation.config import Settings
from tests.api.model_factory import entity_id, model_body, position
from tests.api.test_models_api import API, create
from tests.support.app import app_client


async def test_twenty_concurrent_updates_of_one_version_yield_one_winner(
    client: httpx.AsyncClient,
):
    created = await create(client)
    url = f"{API}/model/{created['model_id']}"
    bodies = [
        model_body(name=f"writer {i}", positions=i % 4 + 1) | {"version": 1} for i in range(20)
    ]

    responses = await asyncio.gather(*(client.put(url, json=body) for body in bodies))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * 19
    winner = next(r.json() for r in responses if r.status_code == 200)
    assert winner["version"] == 2
    assert (await client.get(url)).json() == winner
    for response in responses:
        if response.status_code == 409:
            assert response.json()["error"]["code"] == "VERSION_CONFLICT"


async def test_concurrent_position_adds_all_land(client: httpx.AsyncClient):
    """Position changes carry no version: each applies to the latest model, none is lost."""
    created = await create(client, model_body(positions=0))
    url = f"{API}/model/{created['model_id']}/position"
    new = [model_body(positions=1)["positions"][0] | {"target": "0.05"} for _ in range(3)]

    responses = await asyncio.gather(*(client.post(url, json=p) for p in new))

    assert [r.status_code for r in responses] == [200] * 3
    stored = (await client.get(f"{API}/model/{created['model_id']}")).json()
    assert {p["security_id"] for p in stored["positions"]} == {p["security_id"] for p in new}
    assert stored["version"] == 4


async def test_a_portfolio_added_by_two_writers_at_once_follows_one_model(
    client: httpx.AsyncClient,
):
    """100 trials, half two creates, half two additions to existing models: one writer wins
    each, the other's 409 names the winner's model, and no portfolio ends in two models."""
    pair = [await create(client, model_body(positions=0)) for _ in range(2)]
    refusals: dict[str, dict[str, object]] = {}
    for trial in range(100):
        portfolio = entity_id("P")
        if trial % 2:
            writes = [
                client.post(
                    f"{API}/model/{m['model_id']}/portfolio", json={"portfolios": [portfolio]}
                )
                for m in pair
            ]
        else:
            body = model_body(positions=0) | {"portfolios": [portfolio]}
            writes = [
                client.post(f"{API}/models", json=body | {"name": f"{body['name']} {i}"})
                for i in range(2)
            ]
        responses = await asyncio.gather(*writes)

        assert sorted(r.status_code for r in responses) in ([200, 409], [201, 409])
        refusals[portfolio] = next(r.json()["error"] for r in responses if r.status_code == 409)

    holders: dict[str, list[str]] = {}
    for model in (await client.get(f"{API}/models")).json():
        for portfolio in model["portfolios"]:
            holders.setdefault(portfolio, []).append(model["model_id"])
    assert sum(len(holders[p]) != 1 for p in refusals) == 0
    for portfolio, refused in refusals.items():
        assert refused["details"] == {"portfolio_id": portfolio, "model_id": holders[portfolio][0]}


async def test_fifty_concurrent_position_adds_all_succeed_that_the_rules_allow(
    client: httpx.AsyncClient,
):
    """Versionless edits queue behind each other; none answers 409 for a version it never
    named, and the domain's rules still judge each: at 0.02 each, 47 fit under 0.95."""
    created = await create(client, model_body(positions=0))
    url = f"{API}/model/{created['model_id']}/position"
    new = [position(target="0.02") for _ in range(50)]

    responses = await asyncio.gather(*(client.post(url, json=p) for p in new))

    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 47
    assert statuses.count(400) == 3
    for refused in (r for r in responses if r.status_code == 400):
        assert "sum of targets" in refused.json()["error"]["message"]
    stored = (await client.get(f"{API}/model/{created['model_id']}")).json()
    assert len(stored["positions"]) == 47
    assert stored["version"] == 48


async def test_versionless_edits_from_two_service_instances_all_land(settings: Settings):
    """Two app instances (each its own client and queue) share the database: their writers
    race for each version there, and the losers retry on the latest model."""
    async with app_client(settings) as first, app_client(settings) as second:
        created = await create(first, model_body(positions=0))
        url = f"{API}/model/{created['model_id']}/position"
        adds = [
            (first if i % 2 else second).post(url, json=position(target="0.005")) for i in range(20)
        ]
        portfolio_adds = [
            (first if i % 2 else second).post(
                f"{API}/model/{created['model_id']}/portfolio",
                json={"portfolios": [entity_id("P")]},
            )
            for i in range(10)
        ]

        responses = await asyncio.gather(*adds, *portfolio_adds)

        assert [r.status_code for r in responses] == [200] * 30
        stored = (await second.get(f"{API}/model/{created['model_id']}")).json()
        assert (len(stored["positions"]), len(stored["portfolios"])) == (20, 12)
        assert stored["version"] == 31
