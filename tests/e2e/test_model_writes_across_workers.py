"""Model writes racing across two worker processes of one service, over real HTTP."""

import asyncio
from pathlib import Path

import httpx

from order_generation.config import Settings
from tests.api.model_factory import entity_id, model_body, position
from tests.support.service import running_service

API = "/api/v1"


def _env(tmp_path: Path, settings: Settings) -> dict[str, str]:
    """Two workers on the test's MongoDB (each worker a client of its own)."""
    assert settings.mongodb_url is not None
    return {
        "DATA_DIR": str(tmp_path),
        "WORKERS": "2",
        "LOG_LEVEL": "WARNING",
        "MONGODB_URL": settings.mongodb_url,
        "MONGODB_DATABASE": settings.mongodb_database,
    }


async def _race(base_url: str) -> tuple[list[int], int, list[int]]:
    """30 trials of two creates sharing a portfolio; then 30 concurrent position adds."""
    limits = httpx.Limits(max_keepalive_connections=0)  # a new connection, any worker, each
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        contested, statuses = [entity_id("P") for _ in range(30)], []
        for portfolio in contested:
            bodies = [model_body(positions=0) | {"portfolios": [portfolio]} for _ in range(2)]
            answers = await asyncio.gather(*(http.post(f"{API}/models", json=b) for b in bodies))
            statuses += sorted(a.status_code for a in answers)
        models = (await http.get(f"{API}/models")).json()
        shared = sum(sum(p in m["portfolios"] for m in models) != 1 for p in contested)
        created = (await http.post(f"{API}/models", json=model_body(positions=0))).json()
        url = f"{API}/model/{created['model_id']}/position"
        adds = [http.post(url, json=position("0.01")) for _ in range(30)]
        return statuses, shared, [a.status_code for a in await asyncio.gather(*adds)]


def test_two_workers_never_share_a_portfolio_and_never_refuse_a_versionless_edit(
    tmp_path: Path, settings: Settings
):
    with running_service(_env(tmp_path, settings)) as service:
        statuses, shared, adds = asyncio.run(_race(service.url))

    assert statuses == [201, 409] * 30
    assert shared == 0
    assert adds == [200] * 30
