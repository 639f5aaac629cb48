"""Optimistic locking under concurrent writers."""

import asyncio

import httpx

from tests.api.model_factory import model_body
from tests.api.test_models_api import API, create


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
