"""Model history endpoints: every write of a model, newest first, and the model as it was."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path

from order_generation.adapters.mongo.history import StoredEntry
from order_generation.api.dependencies import ModelServiceDep
from order_generation.api.rebalances import Limit
from order_generation.api.schemas import (
    MAX_VERSION,
    ErrorBody,
    ModelOut,
    Offset,
    Schema,
    StoredId,
)

Version = Annotated[int, Path(ge=1, le=MAX_VERSION)]

router = APIRouter(
    prefix="/api/v1",
    tags=["models"],
    responses={
        400: {"model": ErrorBody, "description": "Invalid input"},
        404: {"model": ErrorBody, "description": "Model or version not found"},
    },
)


class HistoryEntryOut(Schema):
    """One write: the version it produced (a deletion has a version of its own), who made
    it, and each changed field before and after (portfolios as added and removed ids)."""

    model_id: str
    version: int
    at: datetime
    actor: str
    action: str
    changes: dict[str, Any]


def _entry_out(entry: StoredEntry) -> HistoryEntryOut:
    return HistoryEntryOut.model_validate(entry)


@router.get("/model/{model_id}/history")
async def model_history(
    model_id: StoredId, service: ModelServiceDep, offset: Offset = 0, limit: Limit = 10
) -> list[HistoryEntryOut]:
    """Newest first; a deleted model's history stays readable."""
    return [_entry_out(e) for e in await service.history(model_id, offset, limit)]


@router.get("/model/{model_id}/history/{version}")
async def model_at_version(
    model_id: StoredId, version: Version, service: ModelServiceDep
) -> ModelOut:
    return ModelOut.model_validate(await service.at_version(model_id, version))
