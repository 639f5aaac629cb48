"""An unexpected error is still a proper answer on a connection that stays usable (13.5).

The app is served by a real uvicorn server; one keep-alive client sends every request.
"""

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI, Request

from order_generation.api.app import create_app
from order_generation.config import Settings
from tests.support.server import serving

ORIGIN = "http://portal.example"


class Broken(Exception):
    pass


def _app(settings: Settings) -> FastAPI:
    app = create_app(settings.model_copy(update={"cors_origins": [ORIGIN]}))

    async def fails() -> None:
        raise Broken("the code cannot read this")

    async def peer(request: Request) -> dict[str, int]:
        assert request.client is not None
        return {"port": request.client.port}

    app.add_api_route("/api/v1/broken", fails)
    app.add_api_route("/api/v1/peer", peer)
    return app


@pytest.fixture
def http(settings: Settings) -> Iterator[httpx.Client]:
    with serving(_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def test_a_500_carries_the_headers_and_the_error_shape(http: httpx.Client):
    response = http.get("/api/v1/broken", headers={"X-Correlation-ID": "cid-500", "Origin": ORIGIN})
    assert response.status_code == 500
    assert response.headers["X-Correlation-ID"] == "cid-500"
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "X-Correlation-ID" in response.headers["access-control-expose-headers"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"]["code"] == "INTERNAL_ERROR"
    assert body["error"]["trace_id"] == "cid-500"
    assert body["detail"] == body["error"]["message"]
    assert "cannot read" not in response.text, "no internals leak into the answer"


def test_the_keep_alive_connection_serves_the_next_request(http: httpx.Client):
    before = http.get("/api/v1/peer").json()["port"]
    assert http.get("/api/v1/broken").status_code == 500
    after = http.get("/api/v1/peer")
    assert after.status_code == 200
    assert after.json()["port"] == before, "the same connection answered after the 500"
    assert "close" not in http.get("/api/v1/broken").headers.get("connection", "")


async def test_the_error_is_logged_with_its_correlation_id(
    settings: Settings, capsys: pytest.CaptureFixture[str]
):
    with serving(_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            await client.get("/api/v1/broken", headers={"X-Correlation-ID": "cid-logged"})
        await asyncio.sleep(0)
    logged = capsys.readouterr()
    line = next(
        line for line in (logged.out + logged.err).splitlines() if "unexpected_error" in line
    )
    assert "cid-logged" in line
    assert "Broken" in logged.out + logged.err
