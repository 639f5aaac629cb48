"""The application factory and its lifespan: open clients once, close them at the end."""

import gc
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

import structlog
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse

from order_generation.adapters.accounting import AccountingClient
from order_generation.adapters.mongo import MongoStore
from order_generation.adapters.portfolio import PortfolioClient
from order_generation.adapters.pricing import PricingClient
from order_generation.adapters.security import SecurityClient
from order_generation.api import health, history, models, preview, rebalances, replay
from order_generation.api.dependencies import literal_paths_first, require_api_key
from order_generation.api.docs import install_docs
from order_generation.api.errors import install_error_handlers
from order_generation.api.middleware import BodySizeLimit, RequestContext, UnexpectedErrors
from order_generation.api.openapi import install_openapi
from order_generation.config import Settings
from order_generation.service.globeco import Globeco
from order_generation.service.models import ModelService
from order_generation.service.rebalance import RebalanceService
from order_generation.service.sweeper import sweeping

log = structlog.get_logger(__name__)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    async with AsyncExitStack() as stack:
        if settings.mongodb_url is None:
            raise RuntimeError("MONGODB_URL is not set; `order-generation serve` provides one")
        store = MongoStore(
            settings.mongodb_url,
            settings.mongodb_database,
            timeout_seconds=settings.mongodb_timeout_seconds,
            idempotency_window=timedelta(seconds=settings.idempotency_window_seconds),
        )
        stack.push_async_callback(store.close)
        await store.open()
        await stack.enter_async_context(sweeping(store, settings.sweep_interval_seconds))
        globeco = Globeco(
            AccountingClient(settings),
            SecurityClient(settings),
            PricingClient(settings),
            PortfolioClient(settings),
        )
        stack.push_async_callback(globeco.aclose)
        app.state.store = store
        app.state.model_service = ModelService(store.models)
        app.state.rebalance_service = RebalanceService(
            store,
            globeco,
            time_limit=settings.max_optimization_time,
            concurrency=settings.rebalance_concurrency,
            max_in_flight=settings.max_inflight_rebalances,
            deadline_seconds=settings.rebalance_deadline_seconds,
        )
        app.state.started_at = time.monotonic()
        log.info("service_started", database=settings.mongodb_database)
        # What start-up built lives as long as the process; keep the collector off it.
        gc.freeze()
        yield
    log.info("service_stopped")


def create_app(settings: Settings) -> FastAPI:
    """Build the service; nothing is opened until the lifespan starts."""
    app = FastAPI(
        title="GlobeCo Order Generation Service",
        version="1.0.0",
        description="Investment models and exact, whole-share portfolio rebalancing.",
        lifespan=_lifespan,
        docs_url=None,  # served with local assets by install_docs
        redoc_url=None,
    )
    app.state.settings = settings
    settings.named_api_keys  # noqa: B018  a malformed API_KEYS fails here, not per request
    app.add_middleware(UnexpectedErrors)  # innermost: its 500 passes every other middleware
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["X-Correlation-ID", "Retry-After", "Idempotent-Replayed"],
    )
    app.add_middleware(RequestContext)
    install_error_handlers(app)
    install_docs(app)
    install_openapi(app, api_key=settings.api_key_required)
    # A browser pointed at the service lands on its API docs.
    app.add_api_route("/", lambda: RedirectResponse("/docs"), include_in_schema=False)
    app.include_router(health.router)
    app.include_router(health.metrics_router)
    protected = [Depends(literal_paths_first), Depends(require_api_key)]
    app.include_router(models.router, dependencies=protected)
    app.include_router(rebalances.router, dependencies=protected)
    app.include_router(preview.router, dependencies=protected)
    app.include_router(replay.router, dependencies=protected)
    app.include_router(history.router, dependencies=protected)
    return app
