"""Leftovers of a crash mid-run are swept while the service runs, not only at its next start."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from order_generation.config import Settings
from tests.support.app import app_client


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    yield client[settings.mongodb_database]
    await client.close()


def _pending_run(age: timedelta) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A run header left pending (its writer was killed) and two of its result parts."""
    rebalance_id = ObjectId()
    header = {
        "_id": rebalance_id,
        "model_id": "m",
        "model_name": "killed",
        "rebalance_date": datetime.now(UTC) - age,
        "number_of_portfolios": 2,
        "status": "pending",
        "version": 1,
        "created_at": datetime.now(UTC) - age,
    }
    parts = [{"rebalance_id": rebalance_id, "index": i, "part": 0} for i in range(2)]
    return header, parts


async def _until_gone(collection: Any, query: dict[str, Any]) -> None:
    for _ in range(200):
        if await collection.count_documents(query) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still there: {query}")


async def test_a_periodic_sweep_removes_old_pending_runs_and_expired_keys(
    settings: Settings, database: Any
):
    old_header, old_parts = _pending_run(timedelta(minutes=30))
    young_header, young_parts = _pending_run(timedelta(seconds=1))  # still being written
    frequent = settings.model_copy(update={"sweep_interval_seconds": 0.1})
    async with app_client(frequent):
        # Written after start-up, as a worker killed now would leave them.
        await database["rebalances"].insert_many([old_header, young_header])
        await database["rebalance_portfolios"].insert_many(old_parts + young_parts)
        expired = {"_id": "expired", "expires_at": datetime.now(UTC) - timedelta(seconds=1)}
        await database["idempotency_keys"].insert_one(expired)

        await _until_gone(database["rebalances"], {"_id": old_header["_id"]})
        await _until_gone(database["rebalance_portfolios"], {"rebalance_id": old_header["_id"]})
        await _until_gone(database["idempotency_keys"], {"_id": "expired"})
    assert await database["rebalances"].count_documents({"_id": young_header["_id"]}) == 1
    young = {"rebalance_id": young_header["_id"]}
    assert await database["rebalance_portfolios"].count_documents(young) == 2
