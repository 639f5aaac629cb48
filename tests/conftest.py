"""Shared fixtures: a MongoDB (embedded wire server unless MONGODB_URL is set) and the app."""

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from pymongo import AsyncMongoClient

from order_generation.adapters.embedded_mongo import EmbeddedMongo
from order_generation.config import Settings
from tests.support.app import app_client
from tests.support.simulator import SimulatorProcess, run_simulator


@pytest.fixture(scope="session")
def mongodb_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MongoDB when MONGODB_URL is set, otherwise the embedded wire server on SQLite."""
    if url := os.environ.get("MONGODB_URL"):
        yield url
        return
    server = EmbeddedMongo(tmp_path_factory.mktemp("mongo") / "tests.sqlite")
    yield server.start()
    server.stop()


@pytest.fixture
async def settings(mongodb_url: str) -> AsyncIterator[Settings]:
    """Settings with a database of its own, dropped after the test."""
    database = f"test-{uuid.uuid4().hex[:12]}"
    yield Settings(mongodb_url=mongodb_url, mongodb_database=database, _env_file=None)
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_url)
    await client.drop_database(database)
    await client.close()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process, lifespan included."""
    async with app_client(settings) as http:
        yield http


@pytest.fixture(scope="module")
def simulator(request: pytest.FixtureRequest) -> Iterator[SimulatorProcess]:
    """The GlobeCo simulator serving the test module's `BOOK`, one process per module."""
    with run_simulator(request.module.BOOK.scenario) as process:
        yield process
