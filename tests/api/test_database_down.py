"""MongoDB gone while the service runs: every request that needs it is a prompt 503 to retry."""

from collections.abc import AsyncIterator, Callable
from functools import cache

import httpx
import pytest
from asgi_lifespan import LifespanManager

from order_generation.adapters.embedded_mongo import EmbeddedMongo
from order_generation.api.app import create_app
from order_generation.config import Settings
from tests.api.model_factory import model_body
from tests.api.test_models_api import API, assert_error


@pytest.fixture
async def stoppable(tmp_path) -> AsyncIterator[tuple[Callable[[], None], httpx.AsyncClient]]:
    """The service on a MongoDB server of its own, and what stops that server (once)."""
    server = EmbeddedMongo(tmp_path / "stoppable.sqlite")
    stop = cache(server.stop)
    settings = Settings(mongodb_url=server.start(), mongodb_timeout_seconds=0.5, _env_file=None)
    app = create_app(settings)
    try:
        async with (
            LifespanManager(app) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(manager.app, raise_app_exceptions=False),
                base_url="http://service",
                timeout=60,
            ) as http,
        ):
            yield stop, http
    finally:
        stop()


async def test_requests_needing_the_stopped_database_answer_503_with_retry_after(
    stoppable: tuple[Callable[[], None], httpx.AsyncClient],
):
    stop_database, http = stoppable
    created = await http.post(f"{API}/models", json=model_body(positions=2))
    assert created.status_code == 201, created.text
    stop_database()

    for response in (
        await http.get(f"{API}/models"),
        await http.get(f"{API}/model/{created.json()['model_id']}"),
        await http.post(f"{API}/models", json=model_body(positions=2)),
        await http.post(f"{API}/portfolio/{'a' * 24}/rebalance"),
    ):
        assert_error(response, 503, "DATABASE_UNAVAILABLE", "database")
        assert response.headers["Retry-After"] == "5"
    ready = await http.get("/health/ready")
    assert (ready.status_code, ready.json()) == (503, {"status": "unavailable"})
    assert (await http.get("/health/live")).status_code == 200
