"""MongoDB storage through the official async driver: one module per group of collections,
documents converted next to their queries."""

from typing import Any

from pymongo import AsyncMongoClient

from order_generation.adapters.mongo.documents import (
    CODEC_OPTIONS,
    Document,
    SortSpec,
    object_id,
)
from order_generation.adapters.mongo.models import ModelStore
from order_generation.adapters.mongo.runs import RunStore, StoredRun

__all__ = ["ModelStore", "MongoStore", "RunStore", "SortSpec", "StoredRun", "object_id"]


class MongoStore:
    """One database: its models (`models`) and its stored runs (`runs`)."""

    def __init__(self, url: str, database: str, **client_options: Any) -> None:
        """`client_options` go to the driver's client (e.g. `event_listeners`)."""
        self._client: AsyncMongoClient[Document] = AsyncMongoClient(
            url, tz_aware=True, serverSelectionTimeoutMS=5000, **client_options
        )
        db = self._client.get_database(database, codec_options=CODEC_OPTIONS)
        self.models = ModelStore(db)
        self.runs = RunStore(db)

    async def open(self) -> None:
        """Create the indexes the queries rely on (idempotent) and sweep unfinished writes."""
        await self.models.open()
        await self.runs.open()

    async def close(self) -> None:
        await self._client.close()

    async def ping(self) -> None:
        await self._client.admin.command("ping")
