"""The embedded server: its own process keeps its garbage collections short, and the fixes
to its engine keep the engine's answers."""

import gc
import time
from pathlib import Path
from typing import Any

import pytest
from bson import Decimal128, Int64, ObjectId
from pymongo import AsyncMongoClient
from pymongo.errors import BulkWriteError, DuplicateKeyError

from order_generation.adapters.embedded_mongo import EmbeddedMongo


def test_freezing_survivors_leaves_collections_only_the_new_objects():
    mongo = EmbeddedMongo(None)
    mongo.start()
    try:
        gc.unfreeze()
        survivors = [[i] for i in range(10_000)]  # tracked, alive: frozen on the next tick
        mongo.freeze_survivors(every=0.05)
        deadline = time.monotonic() + 5
        while gc.get_freeze_count() < len(survivors) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gc.get_freeze_count() >= len(survivors)
        assert gc.get_count()[0] < len(survivors)
    finally:
        mongo.stop()
        gc.unfreeze()


async def test_the_tuned_engine_still_refuses_a_duplicate_id(tmp_path: Path):
    """Equal numbers stored differently (1 and 1.0) as well as equal ObjectIds."""
    mongo = EmbeddedMongo(tmp_path / "dup.sqlite")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo.start())
    try:
        collection = client["db"]["things"]
        first = ObjectId()
        await collection.insert_one({"_id": first, "n": Decimal128("1.5")})
        await collection.insert_one({"_id": 1})
        for duplicate in (first, 1.0, Int64(1)):
            with pytest.raises(DuplicateKeyError):
                await collection.insert_one({"_id": duplicate})
        with pytest.raises(BulkWriteError, match="duplicate key"):
            await collection.insert_many([{"_id": 2}, {"_id": 2.0}])
        stored = await collection.find({}, {"_id": 1}).sort("_id", 1).to_list()
        assert [doc["_id"] for doc in stored] == [1, 2, first]
        assert (await collection.find_one({"_id": first}))["n"] == Decimal128("1.5")  # type: ignore[index]
    finally:
        await client.close()
        mongo.stop()


async def test_a_unique_index_on_an_array_still_refuses_a_value_another_document_holds(
    tmp_path: Path,
):
    """The new document's keys are computed once per check (not once per stored document):
    a conflict with the first, a middle and the last stored document is still found, and a
    document changed after a refused write is checked by its new keys."""
    mongo = EmbeddedMongo(tmp_path / "unique.sqlite")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo.start())
    try:
        models = client["db"]["models"]
        followed = {"portfolios": {"$type": "string"}}
        await models.create_index("portfolios", unique=True, partialFilterExpression=followed)
        for n in range(20):
            await models.insert_one({"name": n, "portfolios": [f"p{n}a", f"p{n}b"]})
        for taken in ("p0a", "p9b", "p19b"):
            with pytest.raises(DuplicateKeyError, match=taken):
                await models.insert_one({"name": "new", "portfolios": ["free", taken]})
        await models.insert_one({"name": "new", "portfolios": ["free", "also free"]})
        with pytest.raises(DuplicateKeyError, match="p5a"):
            await models.update_one({"name": "new"}, {"$push": {"portfolios": "p5a"}})
        await models.update_one({"name": "new"}, {"$push": {"portfolios": "p20a"}})
        stored = await models.find_one({"name": "new"})
        assert stored is not None
        assert stored["portfolios"] == ["free", "also free", "p20a"]
    finally:
        await client.close()
        mongo.stop()
