"""The MongoDB adapter: what reaches the server, through the real driver."""

from decimal import Decimal

from bson.decimal128 import Decimal128
from pymongo import AsyncMongoClient

from order_generation.adapters.mongo import MongoStore
from order_generation.config import Settings
from order_generation.domain.models import InvestmentModel, Position


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
