"""Safe retries: an Idempotency-Key makes one run however often, and by however many
service instances, a request is sent."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from order_generation.config import Settings
from order_generation.service.idempotency import request_fingerprint
from tests.api.book import make_book
from tests.api.test_models_api import API, assert_error
from tests.support.app import app_client
from tests.support.simulator import SimulatorProcess

BOOK = make_book(portfolios=6)
PORTFOLIO, OTHER = BOOK.model["portfolios"][:2]


@pytest.fixture
def tuned(simulator: SimulatorProcess, settings: Settings) -> Settings:
    return simulator.settings(
        settings,
        retry_backoff_seconds=0.01,
        external_service_retries=1,
        rebalance_deadline_seconds=5,
    )


@pytest.fixture
async def service(simulator: SimulatorProcess, tuned: Settings) -> AsyncIterator[httpx.AsyncClient]:
    await simulator.clear_faults()
    await simulator.reset_calls()
    async with app_client(tuned) as http:
        assert (await http.post(f"{API}/models", json=BOOK.model)).status_code == 201
        yield http
    await simulator.clear_faults()


@pytest.fixture
async def keys(settings: Settings) -> AsyncIterator[Any]:
    """The raw `idempotency_keys` collection."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    yield client[settings.mongodb_database]["idempotency_keys"]
    await client.close()


def with_key(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


async def stored_runs(service: httpx.AsyncClient) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = (await service.get(f"{API}/rebalances?limit=100")).json()
    return runs


async def model_of(service: httpx.AsyncClient) -> dict[str, Any]:
    [model] = (await service.get(f"{API}/models")).json()
    return model  # type: ignore[no-any-return]


async def test_a_retry_answers_the_first_run_and_stores_nothing_new(
    service: httpx.AsyncClient, simulator: SimulatorProcess
):
    url = f"{API}/portfolio/{PORTFOLIO}/rebalance"
    first = await service.post(url, headers=with_key("retry-1"))
    again = await service.post(url, headers=with_key("retry-1"))
    assert first.status_code == again.status_code == 200, again.text
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert [run["rebalance_id"] for run in await stored_runs(service)] == [
        first.json()["rebalance_id"]
    ]
    path = f"/api/v1/portfolios/{PORTFOLIO}/summary"
    assert await simulator.call_count("accounting", path) == 1  # the retry read nothing


async def test_without_a_key_each_request_is_a_run_of_its_own(service: httpx.AsyncClient):
    url = f"{API}/portfolio/{PORTFOLIO}/rebalance"
    ids = {(await service.post(url)).json()["rebalance_id"] for _ in range(2)}
    assert len(ids) == 2 == len(await stored_runs(service))


async def test_a_model_retry_keeps_the_run_and_the_last_rebalance_date(
    service: httpx.AsyncClient,
):
    model_id = (await model_of(service))["model_id"]
    url = f"{API}/model/{model_id}/rebalance"
    first = await service.post(url, headers=with_key("model-retry"))
    dated = (await model_of(service))["last_rebalance_date"]
    again = await service.post(url, headers=with_key("model-retry"))
    assert first.status_code == again.status_code == 200, again.text
    assert again.json() == first.json()
    assert len(first.json()) == len(BOOK.model["portfolios"])
    assert len(await stored_runs(service)) == 1
    assert dated is not None
    assert (await model_of(service))["last_rebalance_date"] == dated


async def test_concurrent_requests_with_one_key_on_two_instances_make_one_run(
    service: httpx.AsyncClient, simulator: SimulatorProcess, tuned: Settings
):
    await simulator.set_faults("accounting", latency_ms=300)
    url = f"{API}/portfolio/{PORTFOLIO}/rebalance"
    async with app_client(tuned) as second_instance:
        answers = await asyncio.gather(
            *(
                instance.post(url, headers=with_key("racing"))
                for instance in (service, second_instance) * 4
            )
        )
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    assert len({a.json()["rebalance_id"] for a in answers}) == 1
    assert sum("Idempotent-Replayed" in a.headers for a in answers) == 7
    assert len(await stored_runs(service)) == 1


@pytest.mark.parametrize(
    ("url", "body"),
    [
        (f"{API}/portfolio/{OTHER}/rebalance", None),
        (f"{API}/portfolio/{PORTFOLIO}/rebalance", {"mode": "buy_only"}),
    ],
    ids=["other portfolio", "other body"],
)
async def test_a_key_reused_for_another_request_is_a_422(
    service: httpx.AsyncClient, url: str, body: dict[str, Any] | None
):
    first = await service.post(f"{API}/portfolio/{PORTFOLIO}/rebalance", headers=with_key("k"))
    assert first.status_code == 200
    reused = await service.post(url, json=body, headers=with_key("k"))
    assert_error(reused, 422, "IDEMPOTENCY_KEY_REUSED", "'k'", "new key")
    assert len(await stored_runs(service)) == 1


async def test_a_key_used_for_a_portfolio_is_refused_for_a_model(service: httpx.AsyncClient):
    model_id = (await model_of(service))["model_id"]
    await service.post(f"{API}/portfolio/{PORTFOLIO}/rebalance", headers=with_key("both"))
    reused = await service.post(f"{API}/model/{model_id}/rebalance", headers=with_key("both"))
    assert_error(reused, 422, "IDEMPOTENCY_KEY_REUSED")


async def test_a_failed_request_frees_its_key_for_the_retry(
    service: httpx.AsyncClient, simulator: SimulatorProcess
):
    url = f"{API}/portfolio/{PORTFOLIO}/rebalance"
    await simulator.set_faults("accounting", down=True)
    assert_error(await service.post(url, headers=with_key("after-503")), 503, "SERVICE_UNAVAILABLE")
    await simulator.clear_faults()
    retried = await service.post(url, headers=with_key("after-503"))
    assert retried.status_code == 200, retried.text
    assert "Idempotent-Replayed" not in retried.headers
    assert len(await stored_runs(service)) == 1


def _claim(request: str, *, lease: timedelta, expires: timedelta) -> dict[str, Any]:
    at = datetime.now(UTC)
    return {
        "claim_id": ObjectId(),
        "request": request,
        "state": "running",
        "created_at": at,
        "lease_until": at + lease,
        "expires_at": at + expires,
    }


async def test_a_key_held_by_a_running_request_past_the_wait_is_a_409(
    simulator: SimulatorProcess, settings: Settings, keys: Any
):
    request = request_fingerprint("portfolio", PORTFOLIO, None)
    held = _claim(request, lease=timedelta(minutes=5), expires=timedelta(hours=1))
    await keys.insert_one({"_id": "held"} | held)
    short_wait = simulator.settings(settings, rebalance_deadline_seconds=0.3)
    async with app_client(short_wait) as http:
        assert (await http.post(f"{API}/models", json=BOOK.model)).status_code == 201
        answer = await http.post(f"{API}/portfolio/{PORTFOLIO}/rebalance", headers=with_key("held"))
        assert_error(answer, 409, "IDEMPOTENCY_KEY_IN_PROGRESS", "still running")
        assert answer.headers["Retry-After"] == "1"
        assert await stored_runs(http) == []


@pytest.mark.parametrize(
    ("lease", "expires"),
    [(timedelta(seconds=-1), timedelta(hours=1)), (timedelta(hours=1), timedelta(seconds=-1))],
    ids=["owner died mid-run", "window over"],
)
async def test_a_lapsed_claim_is_taken_over_and_the_request_runs(
    service: httpx.AsyncClient, keys: Any, lease: timedelta, expires: timedelta
):
    request = request_fingerprint("portfolio", PORTFOLIO, None)
    await keys.insert_one({"_id": "lapsed"} | _claim(request, lease=lease, expires=expires))
    url = f"{API}/portfolio/{PORTFOLIO}/rebalance"
    answer = await service.post(url, headers=with_key("lapsed"))
    assert answer.status_code == 200, answer.text
    stored = await keys.find_one({"_id": "lapsed"})
    assert (stored["state"], stored["rebalance_id"]) == ("done", answer.json()["rebalance_id"])


@pytest.mark.parametrize("key", [b"", b"x" * 256, b"has space", "é".encode()], ids=repr)
async def test_a_malformed_key_is_a_400_naming_the_header(service: httpx.AsyncClient, key: bytes):
    answer = await service.post(
        f"{API}/portfolio/{PORTFOLIO}/rebalance", headers={b"Idempotency-Key": key}
    )
    assert_error(answer, 400, "VALIDATION_ERROR", "Idempotency-Key")
    assert await stored_runs(service) == []


async def test_the_openapi_document_gives_the_header_on_both_rebalance_posts(
    client: httpx.AsyncClient,
):
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in (
        "/api/v1/portfolio/{portfolio_id}/rebalance",
        "/api/v1/model/{model_id}/rebalance",
    ):
        post = paths[path]["post"]
        [header] = [p for p in post["parameters"] if p["in"] == "header"]
        assert (header["name"], header["required"]) == ("Idempotency-Key", False)
        assert header["schema"]["anyOf"][0]["maxLength"] == 255
        assert {"409", "422", "503"} <= set(post["responses"])
