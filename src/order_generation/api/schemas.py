"""Request and response shapes: snake_case out, snake_case or camelCase in.

Shape only (types, required fields, precision); business rules are the domain's.
"""

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import Query
from pydantic import AliasGenerator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from order_generation.domain.models import InvestmentModel, Position

# MongoDB's skip is a 32-bit count on some servers; nobody pages further.
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]

# Decimal128 holds 34 significant digits; weights need far fewer.
Weight = Annotated[Decimal, Field(max_digits=20, decimal_places=10, allow_inf_nan=False)]
# Prices and cash: up to 10^18 with 10 decimal places, so every product stays exact and small.
Money = Annotated[Decimal, Field(max_digits=28, decimal_places=10, allow_inf_nan=False)]


class Schema(BaseModel):
    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=to_camel),
        validate_by_name=True,
        validate_by_alias=True,
        from_attributes=True,
    )


class PositionBody(Schema):
    security_id: str
    target: Weight
    low_drift: Weight
    high_drift: Weight

    def to_domain(self) -> Position:
        return Position(self.security_id, self.target, self.low_drift, self.high_drift)


class ModelBody(Schema):
    name: str
    positions: list[PositionBody] = []
    portfolios: list[str] = []

    def to_domain(self, model_id: str | None = None, version: int = 1) -> InvestmentModel:
        return InvestmentModel(
            name=self.name,
            positions=tuple(p.to_domain() for p in self.positions),
            portfolios=tuple(self.portfolios),
            model_id=model_id,
            version=version,
        )


class ModelUpdateBody(ModelBody):
    version: Annotated[int, Field(ge=1)]


class PortfoliosBody(Schema):
    portfolios: list[str]


class ModelOut(Schema):
    model_id: str
    name: str
    positions: list[PositionBody]
    portfolios: list[str]
    last_rebalance_date: datetime | None
    version: int


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, object] = {}
    timestamp: datetime
    trace_id: str


class ErrorBody(BaseModel):
    """The one error shape of every endpoint."""

    error: ErrorDetail
