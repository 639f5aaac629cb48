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

    def __init__(
        self, url: str, database: str, *, timeout_seconds: float = 5.0, **client_options: Any
    ) -> None:
        """`client_options` go to the driver's client (e.g. `event_listeners`).

        No one operation waits longer than `timeout_seconds` (pymongo's timeoutMS: finding
        the server, connecting, the reply and its one retry; each batch of a cursor gets its
        own), so an unreachable or frozen database is a prompt ConnectionFailure, not a
        request held for the driver's 20 s or more.
        """
        wait_ms = int(timeout_seconds * 1000)
        self._client: AsyncMongoClient[Document] = AsyncMongoClient(
            url,
            tz_aware=True,
            serverSelectionTimeoutMS=wait_ms,
            connectTimeoutMS=wait_ms,
            timeoutMS=wait_ms,
            **client_options,
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
