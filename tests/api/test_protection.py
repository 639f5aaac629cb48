"""Protection at the edge: correlation ids, security headers, body limit, API key, CORS,
and back-pressure on rebalance work."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from order_generation.config import Settings
from tests.api.book import make_book
from tests.api.model_factory import model_body
from tests.api.test_models_api import API, assert_error
from tests.support.app import app_client
from tests.support.simulator import SimulatorProcess, run_simulator

BOOK = make_book(portfolios=24, seed=11)
PORTFOLIOS = BOOK.model["portfolios"][:20]


async def test_the_callers_correlation_id_is_answered_and_names_errors(client: httpx.AsyncClient):
    response = await client.get(f"{API}/model/nope", headers={"X-Correlation-ID": "req-42"})
    assert response.headers["X-Correlation-ID"] == "req-42"
    assert response.json()["error"]["trace_id"] == "req-42"


async def test_a_traceparent_gives_its_trace_id(client: httpx.AsyncClient):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = await client.get(
        "/health/live", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    )
    assert response.headers["X-Correlation-ID"] == trace_id


async def test_without_one_a_correlation_id_is_made(client: httpx.AsyncClient):
    ids = {(await client.get("/health/live")).headers["X-Correlation-ID"] for _ in range(2)}
    assert len(ids) == 2
    assert all(len(i) == 32 for i in ids)


async def test_an_unusable_correlation_id_is_replaced(client: httpx.AsyncClient):
    response = await client.get("/health/live", headers={"X-Correlation-ID": "bad id\twith space"})
    assert response.headers["X-Correlation-ID"] != "bad id\twith space"


async def test_security_headers(client: httpx.AsyncClient):
    api = await client.get(f"{API}/models")
    assert api.headers["X-Content-Type-Options"] == "nosniff"
    assert api.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'none'" in api.headers["Content-Security-Policy"]
    docs = await client.get("/docs")
    assert docs.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in docs.headers, "Swagger UI loads its own assets"


async def test_cors_is_open_to_all_origins(client: httpx.AsyncClient):
    response = await client.options(
        f"{API}/models",
        headers={"Origin": "https://portal.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"


@pytest.fixture
async def small_limit(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(settings.model_copy(update={"max_request_bytes": 2048})) as http:
        yield http


async def test_a_declared_body_over_the_limit_is_413(small_limit: httpx.AsyncClient):
    body = model_body(positions=40)
    response = await small_limit.post(f"{API}/models", json=body)
    assert_error(response, 413, "PAYLOAD_TOO_LARGE", "2048")
    assert (await small_limit.get(f"{API}/models")).json() == []


async def test_a_streamed_body_over_the_limit_is_413(small_limit: httpx.AsyncClient):
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "streamed", "positions": ['
        for _ in range(100):
            yield b'{"security_id": "S00000000000000000000001", "target": "0.005",'
            yield b' "low_drift": "0", "high_drift": "0"},'
        yield b"]}"

    response = await small_limit.post(
        f"{API}/models", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


async def test_a_body_under_the_limit_passes(small_limit: httpx.AsyncClient):
    assert (await small_limit.post(f"{API}/models", json=model_body())).status_code == 201


async def test_the_api_key_is_required_only_when_configured(settings: Settings):
    keyed = settings.model_copy(update={"secret_key": SecretStr("s3cret-key")})
    async with app_client(keyed) as http:
        assert_error(await http.get(f"{API}/models"), 401, "UNAUTHORIZED", "X-API-Key")
        wrong = await http.get(f"{API}/models", headers={"X-API-Key": "guess"})
        assert_error(wrong, 401, "UNAUTHORIZED")
        assert (await http.get(f"{API}/models", headers={"X-API-Key": "s3cret-key"})).json() == []
        assert (await http.get("/health/ready")).status_code == 200
        assert (await http.get("/metrics")).status_code == 200


@pytest.fixture(scope="module")
def slow_simulator() -> Iterator[SimulatorProcess]:
    with run_simulator(BOOK.scenario) as process:
        yield process


async def test_more_rebalances_than_the_bound_get_503_with_retry_after(
    slow_simulator: SimulatorProcess, settings: Settings
):
    bounded = slow_simulator.settings(
        settings,
        max_inflight_rebalances=3,
    )
    await slow_simulator.set_faults("accounting", latency_ms=300)
    try:
        async with app_client(bounded) as http:
            assert (await http.post(f"{API}/models", json=BOOK.model)).status_code == 201
            responses = await asyncio.gather(
                *(http.post(f"{API}/portfolio/{p}/rebalance") for p in PORTFOLIOS)
            )
            await _check_back_pressure(http, responses)
    finally:
        await slow_simulator.clear_faults()


async def _check_back_pressure(http: httpx.AsyncClient, responses: list[httpx.Response]) -> None:
    accepted = [r.json() for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert len(accepted) == 3
    assert len(refused) == len(PORTFOLIOS) - 3
    for response in refused:
        assert_error(response, 503, "OVERLOADED")
        assert response.headers["Retry-After"] == "1"
    stored: list[dict[str, Any]] = (await http.get(f"{API}/rebalances?limit=100")).json()
    assert sorted(r["rebalance_id"] for r in stored) == sorted(a["rebalance_id"] for a in accepted)
    again = await http.post(f"{API}/portfolio/{PORTFOLIOS[-1]}/rebalance")
    assert again.status_code == 200, "the bound frees up once work finishes"


async def test_the_request_log_line_names_the_caller(
    settings: Settings, capsys: pytest.CaptureFixture[str]
):
    keyed = settings.model_copy(update={"api_keys": SecretStr("portal:k1,batch:k2")})
    async with app_client(keyed) as http:
        capsys.readouterr()
        assert (await http.get(f"{API}/models", headers={"X-API-Key": "k1"})).status_code == 200
    logged = capsys.readouterr()  # console lines in tests: key=value
    [line] = [line for line in logged.out.splitlines() if "route=/api/v1/models" in line]
    assert "principal=portal" in line  # bound by the API key check, logged by the middleware
