"""What crashed requests leave behind, swept while the service runs and not only at start-up:
runs whose writing stopped half-way (a pending header and its parts) and expired idempotency
keys. Every worker sweeps; sweeping what another worker just swept finds nothing."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import structlog

from order_generation.adapters.mongo import MongoStore

log = structlog.get_logger(__name__)
# A run still being written is far younger: its request has a deadline of seconds and
# writing a 1,000-portfolio run takes seconds more.
UNFINISHED_AFTER = timedelta(minutes=10)


async def sweep(store: MongoStore) -> None:
    """One sweep; a database error is logged, the next sweep tries again."""
    try:
        runs = await store.runs.sweep_unfinished_rebalances(UNFINISHED_AFTER)
        keys = await store.idempotency.sweep_expired()
    except Exception as error:
        log.warning("sweep_failed", reason=type(error).__name__)
        return
    if runs or keys:
        log.info("swept", unfinished_runs=runs, expired_idempotency_keys=keys)


@contextlib.asynccontextmanager
async def sweeping(store: MongoStore, every_seconds: float) -> AsyncIterator[None]:
    """Sweep every `every_seconds` while the block runs (start-up has just swept)."""

    async def forever() -> None:
        while True:
            await asyncio.sleep(every_seconds)
            await sweep(store)

    task = asyncio.create_task(forever())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
