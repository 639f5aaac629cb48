"""FastAPI dependencies: the services opened once by the lifespan."""

from typing import Annotated

from fastapi import Depends, Request

from order_generation.adapters.mongo import MongoStore
from order_generation.service.models import ModelService


def _store(request: Request) -> MongoStore:
    store: MongoStore = request.app.state.store
    return store


def _model_service(store: Annotated[MongoStore, Depends(_store)]) -> ModelService:
    return ModelService(store)


StoreDep = Annotated[MongoStore, Depends(_store)]
ModelServiceDep = Annotated[ModelService, Depends(_model_service)]
