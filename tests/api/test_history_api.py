"""Model history through the API: every write recorded, attributed, and readable as it was."""

from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from order_generation.api.app import create_app
from order_generation.config import Settings
from tests.api.model_factory import entity_id, model_body, position
from tests.api.test_models_api import API, assert_error, create
from tests.support.app import app_client


async def history(client: httpx.AsyncClient, model_id: str, **params: int) -> list[dict[str, Any]]:
    response = await client.get(f"{API}/model/{model_id}/history", params=params)
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()
    return entries


async def test_every_kind_of_write_records_an_entry_newest_first(client: httpx.AsyncClient):
    created = await create(client, model_body(positions=1, portfolios=1))
    model_id, url = created["model_id"], f"{API}/model/{created['model_id']}"
    added, portfolio = position("0.2"), entity_id("P")
    renamed = model_body(name="renamed", positions=0) | {
        "positions": created["positions"],
        "portfolios": created["portfolios"],
        "version": 1,
    }
    assert (await client.put(url, json=renamed)).status_code == 200
    assert (await client.post(f"{url}/position", json=added)).status_code == 200
    changed = added | {"target": "0.25"}
    assert (await client.put(f"{url}/position", json=changed)).status_code == 200
    assert (await client.request("DELETE", f"{url}/position", json=changed)).status_code == 200
    body = {"portfolios": [portfolio]}
    assert (await client.post(f"{url}/portfolio", json=body)).status_code == 200
    assert (await client.request("DELETE", f"{url}/portfolio", json=body)).status_code == 200
    assert (await client.delete(url, params={"version": 7})).status_code == 204

    entries = await history(client, model_id, limit=100)

    assert [(e["version"], e["action"]) for e in entries] == [
        (8, "deleted"),
        (7, "portfolios_removed"),
        (6, "portfolios_added"),
        (5, "position_removed"),
        (4, "position_updated"),
        (3, "position_added"),
        (2, "updated"),
        (1, "created"),
    ]
    assert {e["model_id"] for e in entries} == {model_id}
    assert {e["actor"] for e in entries} == {"127.0.0.1"}  # no keys: the client's address
    by_version = {e["version"]: e["changes"] for e in entries}
    assert by_version[2] == {"name": {"before": created["name"], "after": "renamed"}}
    assert by_version[3] == {"positions": {"added": [added], "removed": [], "changed": []}}
    assert by_version[4]["positions"]["changed"] == [{"before": added, "after": changed}]
    assert by_version[6] == {"portfolios": {"added": [portfolio], "removed": []}}
    assert by_version[7] == {"portfolios": {"added": [], "removed": [portfolio]}}
    assert by_version[8]["name"] == {"before": "renamed", "after": None}


async def test_a_version_reads_as_the_model_was(client: httpx.AsyncClient):
    created = await create(client)
    url = f"{API}/model/{created['model_id']}"
    later = (await client.post(f"{url}/position", json=position("0.05"))).json()

    first = await client.get(f"{url}/history/1")
    second = await client.get(f"{url}/history/2")

    assert first.status_code == second.status_code == 200
    assert first.json() == created
    assert second.json() == later
    reordered = created | {"portfolios": created["portfolios"][::-1], "version": 2}
    del reordered["model_id"], reordered["last_rebalance_date"]
    third = (await client.put(url, json=reordered)).json()
    more = {"portfolios": [entity_id("P"), entity_id("P")]}
    removed = {"portfolios": [third["portfolios"][0]]}
    assert (await client.post(f"{url}/portfolio", json=more)).status_code == 200
    fifth = (await client.request("DELETE", f"{url}/portfolio", json=removed)).json()

    for version, model in ((1, created), (2, later), (3, third), (5, fifth)):
        assert (await client.get(f"{url}/history/{version}")).json() == model
    assert_error(await client.get(f"{url}/history/6"), 404, "NOT_FOUND", "version 6")


async def test_a_deleted_models_history_stays_readable(client: httpx.AsyncClient):
    created = await create(client)
    url = f"{API}/model/{created['model_id']}"
    assert (await client.delete(url, params={"version": 1})).status_code == 204

    assert_error(await client.get(url), 404, "NOT_FOUND")
    assert [e["action"] for e in await history(client, created["model_id"])] == [
        "deleted",
        "created",
    ]
    assert (await client.get(f"{url}/history/1")).json() == created
    assert_error(await client.get(f"{url}/history/2"), 404, "NOT_FOUND", "deleted")


async def test_history_pages_and_validates_like_the_other_lists(client: httpx.AsyncClient):
    created = await create(client, model_body(positions=0))
    url = f"{API}/model/{created['model_id']}"
    for _ in range(4):
        assert (await client.post(f"{url}/position", json=position("0.01"))).status_code == 200

    assert [e["version"] for e in await history(client, created["model_id"])] == [5, 4, 3, 2, 1]
    page = await history(client, created["model_id"], offset=1, limit=2)
    assert [e["version"] for e in page] == [4, 3]
    assert await history(client, created["model_id"], offset=5) == []
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "x"}):
        response = await client.get(f"{url}/history", params=params)
        assert_error(response, 400, "VALIDATION_ERROR")
    assert_error(await client.get(f"{url}/history/0"), 400, "VALIDATION_ERROR", "version")


async def test_history_of_an_unknown_or_malformed_model(client: httpx.AsyncClient):
    unknown = "0123456789abcdef01234567"
    assert_error(await client.get(f"{API}/model/{unknown}/history"), 404, "NOT_FOUND", unknown)
    assert_error(await client.get(f"{API}/model/{unknown}/history/1"), 404, "NOT_FOUND")
    response = await client.get(f"{API}/model/not-an-id/history")
    assert_error(response, 400, "VALIDATION_ERROR", "model_id")


async def test_a_refused_write_records_nothing(client: httpx.AsyncClient):
    first, second = await create(client), await create(client)
    url = f"{API}/model/{second['model_id']}"
    taken = {"portfolios": first["portfolios"][:1]}
    assert (await client.post(f"{url}/portfolio", json=taken)).status_code == 409
    stale = model_body() | {"version": 5}
    assert (await client.put(url, json=stale)).status_code == 409
    duplicate = model_body(name=first["name"])
    assert (await client.post(f"{API}/models", json=duplicate)).status_code == 409

    assert [e["version"] for e in await history(client, second["model_id"])] == [1]


@pytest.fixture
async def keyed(settings: Settings) -> Any:
    keys = SecretStr("alice:alice-key-1, bob:bob-key-2")
    with_keys = settings.model_copy(update={"api_keys": keys, "secret_key": SecretStr("s3cret")})
    async with app_client(with_keys) as http:
        yield http


async def _stored_text(settings: Settings) -> str:
    assert settings.mongodb_url is not None
    raw: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    database = raw[settings.mongodb_database]
    docs = [doc for name in ("models", "model_history") async for doc in database[name].find()]
    await raw.close()
    return repr(docs)


async def test_named_api_keys_name_the_actor_and_are_never_logged_or_stored(
    keyed: httpx.AsyncClient, settings: Settings, capfd: pytest.CaptureFixture[str]
):
    alice, bob = {"X-API-Key": "alice-key-1"}, {"X-API-Key": "bob-key-2"}
    response = await keyed.post(f"{API}/models", json=model_body(), headers=alice)
    assert response.status_code == 201
    model_id = response.json()["model_id"]
    url = f"{API}/model/{model_id}/position"
    assert (await keyed.post(url, json=position("0.05"), headers=bob)).status_code == 200
    shared = {"X-API-Key": "s3cret"}  # SECRET_KEY still works, as `api-key`
    assert (await keyed.post(url, json=position("0.05"), headers=shared)).status_code == 200

    entries = (await keyed.get(f"{API}/model/{model_id}/history", headers=bob)).json()
    assert [e["actor"] for e in entries] == ["api-key", "bob", "alice"]
    for wrong in ({}, {"X-API-Key": "alice"}, {"X-API-Key": "alice:alice-key-1"}):
        response = await keyed.get(f"{API}/model/{model_id}/history", headers=wrong)
        assert_error(response, 401, "UNAUTHORIZED")
    logged, stored = "".join(capfd.readouterr()), await _stored_text(settings)
    assert "actor" in logged
    assert "alice" in stored
    for key in ("alice-key-1", "bob-key-2", "s3cret"):
        assert key not in logged
        assert key not in stored


@pytest.mark.parametrize(
    "value", ["s3cr3t", "alice:s3cr3t,", ":s3cr3t", "a:s3cr3t,a:k2", "a:s3cr3t,,b:k2"]
)
def test_malformed_api_keys_are_refused_without_quoting_them(value: str):
    settings = Settings(api_keys=SecretStr(value), _env_file=None)
    with pytest.raises(ValueError, match="API_KEYS") as error:
        create_app(settings)
    assert "s3cr3t" not in str(error.value)
