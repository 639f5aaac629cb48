"""What-if rebalance: a model and a portfolio given in the body; no GlobeCo call, no storage."""

from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import ConfigDict, Field

from order_generation.api.dependencies import ModelServiceDep, RebalanceServiceDep
from order_generation.api.rebalance_schemas import RebalanceOut
from order_generation.api.schemas import (
    Body,
    Cash,
    ErrorBody,
    Integer,
    Name,
    PolicyBody,
    PositionBody,
    Price,
    policy_of,
)
from order_generation.domain.errors import InvalidInput
from order_generation.domain.models import InvestmentModel
from order_generation.service.models import ModelService

router = APIRouter(
    prefix="/api/v1",
    tags=["rebalance"],
    responses={
        400: {"model": ErrorBody, "description": "Invalid input"},
        404: {"model": ErrorBody, "description": "Unknown model_id"},
        422: {"model": ErrorBody, "description": "No feasible solution, or solver timeout"},
    },
)


class InlineModelBody(Body):
    """A model given in full; it must pass the rules of a stored one. Portfolios are ignored."""

    name: Name = "preview"
    positions: list[PositionBody] = Field(default_factory=list)
    policy: PolicyBody | None = None
    portfolios: Annotated[list[str], Field(description="Ignored")] = Field(default_factory=list)


class PreviewBody(Body):
    """Exactly one of `model` and `model_id`; holdings and prices keyed by security_id.

    `policy` fields replace the same fields of the model's policy, as a rebalance's body does.
    """

    model_config = ConfigDict(json_schema_extra=lambda schema: _one_model(schema))

    model: InlineModelBody | None = None
    model_id: str | None = None
    policy: PolicyBody | None = None
    portfolio_id: str | None = None
    portfolio_name: str | None = None
    holdings: dict[str, Integer] = Field(default_factory=dict)
    cash: Cash = Decimal(0)
    prices: dict[str, Price]


def _one_model(schema: dict[str, Any]) -> None:
    """The document says "exactly one of model and model_id", each given as a value."""
    properties = schema["properties"]
    properties["model"] = {"$ref": "#/components/schemas/InlineModelBody"}
    properties["model_id"] = {"type": "string", "pattern": "^[0-9a-fA-F]{24}$"}
    schema["oneOf"] = [{"required": ["model"]}, {"required": ["model_id"]}]


@router.post("/rebalance/preview")
async def preview_rebalance(
    body: PreviewBody, models: ModelServiceDep, service: RebalanceServiceDep
) -> RebalanceOut:
    """The RebalanceDTO a rebalance of these holdings would answer (rebalance_id null)."""
    model = await _model(body, models)
    policy = body.policy.changes() if body.policy else None
    result = await service.preview(model, body.holdings, body.cash, body.prices, policy)
    return RebalanceOut.of_result(
        result,
        date.today(),
        rebalance_id=None,
        model_id=body.model_id,
        portfolio_id=body.portfolio_id,
        portfolio_name=body.portfolio_name,
    )


async def _model(body: PreviewBody, models: ModelService) -> InvestmentModel:
    for name in ("model", "model_id"):
        if name in body.model_fields_set and getattr(body, name) is None:
            raise InvalidInput(name, "must not be null; leave it out instead")
    if body.model is not None and body.model_id is not None:
        raise InvalidInput("model_id", "give either an inline model or a model_id, not both")
    if body.model_id is not None:
        return await models.get(body.model_id)
    if body.model is None:
        raise InvalidInput("model", "an inline model or a model_id is required")
    return _inline(body.model)


def _inline(model: InlineModelBody) -> InvestmentModel:
    """The domain's rules, with the field named as it sits in this body."""
    try:
        positions = tuple(p.to_domain() for p in model.positions)
        return InvestmentModel(model.name, positions, policy=policy_of(model.policy))
    except InvalidInput as error:
        raise InvalidInput(f"model.{error.field}", error.rule) from None
