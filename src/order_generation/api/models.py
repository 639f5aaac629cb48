"""Investment model endpoints."""

from typing import Annotated

from fastapi import APIRouter, Query, status

from order_generation.api.dependencies import ActorDep, ModelServiceDep
from order_generation.api.schemas import (
    ErrorBody,
    ModelBody,
    ModelOut,
    ModelUpdateBody,
    NewPortfoliosBody,
    Offset,
    PortfoliosBody,
    PositionBody,
    StoredId,
    Version,
)
from order_generation.domain.models import InvestmentModel
from order_generation.service.models import SORTABLE_FIELDS
from order_generation.service.sorting import sort_pattern

router = APIRouter(
    prefix="/api/v1",
    tags=["models"],
    responses={
        400: {"model": ErrorBody, "description": "Invalid input"},
        404: {"model": ErrorBody, "description": "Model not found"},
        409: {"model": ErrorBody, "description": "Stale version or duplicate"},
    },
)


def _out(model: InvestmentModel) -> ModelOut:
    return ModelOut.model_validate(model)


@router.get("/models")
async def list_models(
    service: ModelServiceDep,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    sort_by: Annotated[
        str | None,
        Query(
            description="Comma list of model_id, name, last_rebalance_date; prefix + or -",
            json_schema_extra={"pattern": sort_pattern(SORTABLE_FIELDS)},
        ),
    ] = None,
) -> list[ModelOut]:
    return [_out(m) for m in await service.list(offset, limit, sort_by)]


@router.get("/model/{model_id}")
@router.get("/models/{model_id}", include_in_schema=False)
async def get_model(model_id: StoredId, service: ModelServiceDep) -> ModelOut:
    return _out(await service.get(model_id))


@router.post("/models", status_code=status.HTTP_201_CREATED)
async def create_model(body: ModelBody, service: ModelServiceDep, actor: ActorDep) -> ModelOut:
    return _out(await service.create(body.to_domain(), actor))


@router.put("/model/{model_id}")
@router.put("/models/{model_id}", include_in_schema=False)
async def update_model(
    model_id: StoredId, body: ModelUpdateBody, service: ModelServiceDep, actor: ActorDep
) -> ModelOut:
    model = body.to_domain(model_id, body.version)
    return _out(await service.update(model, actor, keep_policy=body.keeps_policy))


@router.delete("/model/{model_id}", status_code=status.HTTP_204_NO_CONTENT)
@router.delete("/models/{model_id}", status_code=204, include_in_schema=False)
async def delete_model(
    model_id: StoredId, version: Version, service: ModelServiceDep, actor: ActorDep
) -> None:
    await service.delete(model_id, version, actor)


@router.post("/model/{model_id}/position")
async def add_position(
    model_id: StoredId, body: PositionBody, service: ModelServiceDep, actor: ActorDep
) -> ModelOut:
    return _out(await service.add_position(model_id, body.to_domain(), actor))


@router.put("/model/{model_id}/position")
async def update_position(
    model_id: StoredId, body: PositionBody, service: ModelServiceDep, actor: ActorDep
) -> ModelOut:
    return _out(await service.update_position(model_id, body.to_domain(), actor))


@router.delete("/model/{model_id}/position")
async def remove_position(
    model_id: StoredId, body: PositionBody, service: ModelServiceDep, actor: ActorDep
) -> ModelOut:
    return _out(await service.remove_position(model_id, body.to_domain(), actor))


@router.post("/model/{model_id}/portfolio")
async def add_portfolios(
    model_id: StoredId, body: NewPortfoliosBody, service: ModelServiceDep, actor: ActorDep
) -> ModelOut:
    return _out(await service.add_portfolios(model_id, body.portfolios, actor))


@router.delete("/model/{model_id}/portfolio")
async def remove_portfolios(
    model_id: StoredId, body: PortfoliosBody, service: ModelServiceDep, actor: ActorDep
) -> ModelOut:
    return _out(await service.remove_portfolios(model_id, body.portfolios, actor))
