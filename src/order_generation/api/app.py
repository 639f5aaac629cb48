"""The application factory and its lifespan: open clients once, close them at the end."""

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from order_generation.adapters.embedded_mongo import EmbeddedMongo
from order_generation.adapters.mongo import MongoStore
from order_generation.api import health, models
from order_generation.api.errors import install_error_handlers
from order_generation.config import Settings

log = structlog.get_logger(__name__)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    embedded = None
    url = settings.mongodb_url
    if url is None:
        embedded = EmbeddedMongo(settings.data_dir / "order-generation.sqlite")
        url = embedded.start()
        log.warning(
            "embedded_mongodb_started",
            uri=url,
            sqlite_file=str(embedded.path),
            hint="set MONGODB_URL to use a real MongoDB server",
        )
    store = MongoStore(url, settings.mongodb_database)
    try:
        await store.open()
        app.state.store = store
        app.state.embedded_mongo = embedded is not None
        app.state.started_at = time.monotonic()
        log.info("service_started", database=settings.mongodb_database)
        yield
    finally:
        await store.close()
        if embedded is not None:
            embedded.stop()
        log.info("service_stopped")


def create_app(settings: Settings) -> FastAPI:
    """Build the service; nothing is opened until the lifespan starts."""
    app = FastAPI(
        title="GlobeCo Order Generation Service",
        version="1.0.0",
        description="Investment models and exact, whole-share portfolio rebalancing.",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(models.router)
    return app
