"""The MongoDB adapter: what reaches the server, through the real driver."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from bson import ObjectId
from bson.decimal128 import Decimal128
from bson.errors import InvalidDocument
from pymongo import AsyncMongoClient

from order_generation.adapters.mongo import MongoStore
from order_generation.config import Settings
from order_generation.domain.models import InvestmentModel, Position
from order_generation.domain.runs import PortfolioFailure, RebalanceRun


async def test_decimals_are_stored_as_decimal128_and_come_back_exact(settings: Settings):
    assert settings.mongodb_url is not None
    store = MongoStore(settings.mongodb_url, settings.mongodb_database)
    await store.open()
    position = Position("S" * 24, Decimal("0.125"), Decimal("0.0001"), Decimal("0.3333333333"))
    created = await store.insert_model(InvestmentModel("exact", positions=(position,)))

    raw_client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_url)
    raw = await raw_client[settings.mongodb_database]["models"].find_one({"name": "exact"})
    await raw_client.close()
    assert raw is not None
    stored = raw["positions"][0]  # type: ignore[index]
    assert stored["target"] == Decimal128("0.125")
    assert isinstance(stored["high_drift"], Decimal128)

    assert created.model_id is not None
    assert (await store.get_model(created.model_id)).positions == (position,)
    await store.close()


async def test_indexes_exist_after_open(settings: Settings):
    assert settings.mongodb_url is not None
    store = MongoStore(settings.mongodb_url, settings.mongodb_database)
    await store.open()
    await store.open()
    raw_client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_url)
    indexes = await raw_client[settings.mongodb_database]["models"].index_information()
    await raw_client.close()
    await store.close()
    keys = {info["key"][0][0]: info.get("unique", False) for info in indexes.values()}
    assert keys["name"] is True
    assert "portfolios" in keys


def _failures(count: int) -> tuple[PortfolioFailure, ...]:
    return tuple(PortfolioFailure(f"P{n:023d}", "OPTIMIZATION_FAILED", "x") for n in range(count))


async def test_a_run_that_fails_half_way_leaves_nothing_visible(settings: Settings):
    assert settings.mongodb_url is not None
    store = MongoStore(settings.mongodb_url, settings.mongodb_database)
    await store.open()
    unencodable = PortfolioFailure("P" * 24, "X", object())  # type: ignore[arg-type]
    outcomes = (*_failures(150), unencodable)
    run = RebalanceRun("m" * 24, "model", datetime.now(UTC), outcomes)

    with pytest.raises(InvalidDocument):
        await store.insert_rebalance(run)

    assert await store.list_rebalances(0, 10) == []
    raw_client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_url)
    database = raw_client[settings.mongodb_database]
    assert await database["rebalances"].count_documents({}) == 0
    assert await database["rebalance_portfolios"].count_documents({}) == 0
    await raw_client.close()
    await store.close()


async def test_the_sweep_removes_runs_a_crash_left_pending(settings: Settings):
    assert settings.mongodb_url is not None
    store = MongoStore(settings.mongodb_url, settings.mongodb_database)
    await store.open()
    stored = await store.insert_rebalance(
        RebalanceRun("m" * 24, "model", datetime.now(UTC), _failures(3))
    )
    raw_client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_url)
    database = raw_client[settings.mongodb_database]
    crashed = {"status": "pending", "created_at": datetime.now(UTC) - timedelta(hours=2)}
    header = {"_id": ObjectId(stored.rebalance_id)}
    await database["rebalances"].update_one(header, {"$set": crashed})

    assert await store.list_rebalances(0, 10) == []
    assert await store.sweep_unfinished_rebalances(timedelta(hours=1)) == 1
    assert await database["rebalance_portfolios"].count_documents({}) == 0
    await raw_client.close()
    await store.close()
