"""The idempotency-key store on the real driver: one claim per key, TTL and sweep of old keys."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from order_generation.adapters.mongo import MongoStore
from order_generation.adapters.mongo.idempotency import Claim, UsedKey
from order_generation.config import Settings

LEASE = timedelta(minutes=1)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[MongoStore]:
    assert settings.mongodb_url is not None
    store = MongoStore(settings.mongodb_url, settings.mongodb_database)
    await store.open()
    yield store
    await store.close()


async def test_of_many_concurrent_claims_of_one_key_exactly_one_wins(store: MongoStore):
    claims = await asyncio.gather(
        *(store.idempotency.claim("one", "portfolio p", LEASE) for _ in range(20))
    )
    assert sum(isinstance(c, Claim) for c in claims) == 1
    assert all(
        c == UsedKey("portfolio p", done=False, rebalance_id=None)
        for c in claims
        if not isinstance(c, Claim)
    )


async def test_a_finished_claim_tells_its_run_and_a_released_one_is_free_again(store: MongoStore):
    keys = store.idempotency
    first = await keys.claim("k", "model m", LEASE)
    assert isinstance(first, Claim)
    await keys.finish(first, "0123456789abcdef01234567")
    assert await keys.claim("k", "model m", LEASE) == UsedKey(
        "model m", done=True, rebalance_id="0123456789abcdef01234567"
    )
    failed = await keys.claim("free", "model m", LEASE)
    assert isinstance(failed, Claim)
    await keys.release(failed)
    assert isinstance(await keys.claim("free", "model m", LEASE), Claim)


async def test_keys_expire_by_a_ttl_index_and_the_sweep(store: MongoStore, database: Any):
    indexes = await database["idempotency_keys"].index_information()
    assert [
        ix.get("expireAfterSeconds") for ix in indexes.values() if ix["key"] == [("expires_at", 1)]
    ] == [0]
    at = datetime.now(UTC)
    await database["idempotency_keys"].insert_many(
        [
            {"_id": "old", "expires_at": at - timedelta(seconds=1)},
            {"_id": "young", "expires_at": at + timedelta(hours=1)},
        ]
    )
    await store.idempotency.sweep_expired()
    assert [doc["_id"] async for doc in database["idempotency_keys"].find()] == ["young"]
