"""FastAPI dependencies: the services opened once by the lifespan."""

from typing import Annotated

from fastapi import Depends, Request

from order_generation.adapters.mongo import MongoStore
from order_generation.service.models import ModelService
from order_generation.service.rebalance import RebalanceService


def _store(request: Request) -> MongoStore:
    store: MongoStore = request.app.state.store
    return store


def _model_service(store: Annotated[MongoStore, Depends(_store)]) -> ModelService:
    return ModelService(store)


def _rebalance_service(request: Request) -> RebalanceService:
    service: RebalanceService = request.app.state.rebalance_service
    return service


StoreDep = Annotated[MongoStore, Depends(_store)]
ModelServiceDep = Annotated[ModelService, Depends(_model_service)]
RebalanceServiceDep = Annotated[RebalanceService, Depends(_rebalance_service)]
