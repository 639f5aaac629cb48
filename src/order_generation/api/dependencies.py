"""FastAPI dependencies: the services opened once by the lifespan, and who is calling.

They are coroutines, though none awaits: FastAPI runs a plain function in a worker thread,
which cost each request a thread hop per dependency, and the principal the key check binds
for the log would have stayed in that thread's context."""

import hmac
from typing import Annotated

import structlog
from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader

from order_generation.adapters.mongo import MongoStore
from order_generation.api.errors import Unauthorized, api_routes
from order_generation.config import Settings
from order_generation.service.models import ModelService
from order_generation.service.rebalance import RebalanceService

# The actor named by the single SECRET_KEY (API_KEYS name theirs).
SECRET_KEY_ACTOR = "api-key"


async def _store(request: Request) -> MongoStore:
    store: MongoStore = request.app.state.store
    return store


async def _model_service(request: Request) -> ModelService:
    service: ModelService = request.app.state.model_service
    return service


async def _rebalance_service(request: Request) -> RebalanceService:
    service: RebalanceService = request.app.state.rebalance_service
    return service


async def literal_paths_first(request: Request) -> None:
    """A path a route serves as written (/rebalance/preview) is never an id of a templated
    route (/rebalance/{rebalance_id}): its other methods are 405, as they are where no
    template matches."""
    route = request.scope["route"]
    if "{" in route.path and request.url.path in _literal_paths(request):
        raise HTTPException(405)


def _literal_paths(request: Request) -> set[str]:
    paths: set[str] | None = getattr(request.app.state, "literal_paths", None)
    if paths is None:
        routes = api_routes(request.app.router.routes)
        paths = {route.path for route in routes if "{" not in route.path}
        request.app.state.literal_paths = paths
    return paths


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


async def require_api_key(
    request: Request, api_key: Annotated[str | None, Depends(_api_key_header)]
) -> str:
    """When SECRET_KEY or API_KEYS is set, every API call must carry one of the keys in
    X-API-Key. Answers the actor: the key's name, or the client's address without keys."""
    settings: Settings = request.app.state.settings
    if not settings.api_key_required:
        actor = request.client.host if request.client else "unknown"
    else:
        actor = _key_name(settings, api_key)
    structlog.contextvars.bind_contextvars(principal=actor)
    return actor


def _key_name(settings: Settings, api_key: str | None) -> str:
    keys = dict(settings.named_api_keys)
    if settings.secret_key is not None:
        keys.setdefault(SECRET_KEY_ACTOR, settings.secret_key)
    given = (api_key or "").encode()
    matches = [
        name
        for name, key in keys.items()
        if hmac.compare_digest(given, key.get_secret_value().encode())
    ]
    if api_key is None or not matches:
        raise Unauthorized("a valid X-API-Key header is required")
    return matches[0]


StoreDep = Annotated[MongoStore, Depends(_store)]
ModelServiceDep = Annotated[ModelService, Depends(_model_service)]
RebalanceServiceDep = Annotated[RebalanceService, Depends(_rebalance_service)]
ActorDep = Annotated[str, Depends(require_api_key)]
