"""FastAPI dependencies: the services opened once by the lifespan."""

import hmac
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from order_generation.adapters.mongo import MongoStore
from order_generation.api.errors import Unauthorized
from order_generation.config import Settings
from order_generation.service.models import ModelService
from order_generation.service.rebalance import RebalanceService


def _store(request: Request) -> MongoStore:
    store: MongoStore = request.app.state.store
    return store


def _model_service(store: Annotated[MongoStore, Depends(_store)]) -> ModelService:
    return ModelService(store.models)


def _rebalance_service(request: Request) -> RebalanceService:
    service: RebalanceService = request.app.state.rebalance_service
    return service


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


def require_api_key(
    request: Request, api_key: Annotated[str | None, Depends(_api_key_header)]
) -> None:
    """When SECRET_KEY is set, every API call must carry it in X-API-Key."""
    settings: Settings = request.app.state.settings
    if settings.secret_key is None:
        return
    expected = settings.secret_key.get_secret_value().encode()
    if api_key is None or not hmac.compare_digest(api_key.encode(), expected):
        raise Unauthorized("a valid X-API-Key header is required")
    structlog.contextvars.bind_contextvars(principal="api-key")


StoreDep = Annotated[MongoStore, Depends(_store)]
ModelServiceDep = Annotated[ModelService, Depends(_model_service)]
RebalanceServiceDep = Annotated[RebalanceService, Depends(_rebalance_service)]
