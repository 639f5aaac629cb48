"""MongoDB storage through the official async driver: one module per group of collections,
documents converted next to their queries."""

from datetime import timedelta
from typing import Any

from pymongo import AsyncMongoClient

from order_generation.adapters.mongo.documents import (
    CODEC_OPTIONS,
    Document,
    SortSpec,
    object_id,
)
from order_generation.adapters.mongo.idempotency import IdempotencyStore
from order_generation.adapters.mongo.models import ModelStore
from order_generation.adapters.mongo.run_documents import StoredRun
from order_generation.adapters.mongo.runs import RunStore

__all__ = [
    "IdempotencyStore",
    "ModelStore",
    "MongoStore",
    "RunStore",
    "SortSpec",
    "StoredRun",
    "object_id",
]


class MongoStore:
    """One database: its models (`models`), its stored runs (`runs`) and the idempotency
    keys of rebalance requests (`idempotency`)."""

    def __init__(
        self,
        url: str,
        database: str,
        *,
        timeout_seconds: float = 5.0,
        idempotency_window: timedelta = timedelta(hours=24),
        **client_options: Any,
    ) -> None:
        """`client_options` go to the driver's client (e.g. `event_listeners`).

        An unreachable database (stopped, or a closed port) fails an operation within
        `timeout_seconds` (finding a server, connecting); a frozen one, whose connections
        stay open, is noticed by a heartbeat every `timeout_seconds` (measured: ~3 times
        the setting). Replies have no bound of their own: a busy database is slow, not
        down (a 5 s bound per operation failed 1 in 50 concurrent rebalances on a busy
        embedded server).
        """
        wait_ms = int(timeout_seconds * 1000)
        self._client: AsyncMongoClient[Document] = AsyncMongoClient(
            url,
            tz_aware=True,
            serverSelectionTimeoutMS=wait_ms,
            connectTimeoutMS=wait_ms,
            heartbeatFrequencyMS=max(wait_ms, 500),  # the driver's least
            **client_options,
        )
        db = self._client.get_database(database, codec_options=CODEC_OPTIONS)
        self.models = ModelStore(db)
        self.runs = RunStore(db)
        self.idempotency = IdempotencyStore(db, idempotency_window)

    async def open(self) -> None:
        """Create the indexes the queries rely on (idempotent) and sweep unfinished writes."""
        await self.models.open()
        await self.runs.open()
        await self.idempotency.open()

    async def close(self) -> None:
        await self._client.close()

    async def ping(self) -> None:
        await self._client.admin.command("ping")
