"""Request and response shapes: snake_case out, snake_case or camelCase in.

Shape only (types, required fields, precision); business rules are the domain's.
"""

import re
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import (
    AliasChoices,
    AliasGenerator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from order_generation.domain.ids import ID_PATTERN
from order_generation.domain.models import (
    MAX_NAME_LENGTH,
    MAX_TOTAL_TARGET,
    TARGET_STEP,
    InvestmentModel,
    Position,
)
from order_generation.domain.policy import DEFAULT_POLICY, Bands, Mode, Policy

# MongoDB's skip is a 32-bit count on some servers; nobody pages further.
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]

# Decimal128 holds 34 significant digits; weights need far fewer.
Weight = Annotated[Decimal, Field(max_digits=20, decimal_places=10, allow_inf_nan=False)]


# What the domain checks, said in the OpenAPI document too. Documentation only (pydantic does
# not check it): the domain stays the one place of each rule, and its 400 names the field.
def _documented(**schema: Any) -> Any:
    return Field(json_schema_extra=schema)


def _decimal(pattern: str, **number: Any) -> Any:
    """A decimal's document: a JSON number within `number`'s bounds, or a decimal string
    matching `pattern` (bounds and decimal places written out, as no keyword can)."""
    string = {"type": "string", "pattern": pattern}
    return WithJsonSchema({"anyOf": [{"type": "number", **number}, string]}, mode="validation")


SecurityId = Annotated[str, _documented(pattern=f"^{ID_PATTERN}$")]
PortfolioId = SecurityId
# 0 to 0.95 in steps of 0.005, at most 10 decimal places.
_TARGET = r"^(0(\.0{1,10})?|0?\.([0-8](\d([05]0{0,7})?)?|9([0-4]([05]0{0,7})?|50{0,8})?))$"
_FRACTION = r"^(0(\.\d{1,10})?|0?\.\d{1,10}|1(\.0{1,10})?)$"  # 0 to 1
_AMOUNT = r"^\d{1,18}(\.\d{1,10})?$"  # 0 up to 10^18
Target = Annotated[
    Weight,
    _decimal(_TARGET, minimum=0, maximum=float(MAX_TOTAL_TARGET), multipleOf=float(TARGET_STEP)),
]
Drift = Annotated[Weight, _decimal(_FRACTION, minimum=0, maximum=1)]
Fraction = Drift
# BSON holds 8-byte integers at most: a larger one stored or queried was a 500.
MAX_VERSION = 2**63 - 1
Version = Annotated[int, Query(ge=1, le=MAX_VERSION)]


def _json_integer(value: object) -> object:
    """A JSON integer (2 or 2.0) as the document's `integer` means it; pydantic would also
    read true as 1 and "2" as 2."""
    if isinstance(value, bool | str):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


# Last in an Annotated: before a Field's bounds, it hides them from the document.
JSON_INTEGER = BeforeValidator(_json_integer)
Integer = Annotated[int, JSON_INTEGER]


def _int64(least: int) -> Any:
    """An 8-byte integer (pydantic's check); `least` is the domain's, documented here."""
    return Field(ge=-(2**63), le=MAX_VERSION, json_schema_extra={"minimum": least})


Count = Annotated[int, _int64(0), JSON_INTEGER]
Lot = Annotated[int, _int64(1), JSON_INTEGER]
# A stored model's or run's id: a MongoDB ObjectId (the store's check, `object_id`).
StoredId = Annotated[str, Path(json_schema_extra={"pattern": "^[0-9a-fA-F]{24}$"})]

# Prices and cash: up to 10^18 with 10 decimal places, so every product stays exact and small.
Money = Annotated[Decimal, Field(max_digits=28, decimal_places=10, allow_inf_nan=False)]
# The domain's amounts are at least 0.
Amount = Annotated[Money, _decimal(_AMOUNT, minimum=0, exclusiveMaximum=10**18)]
Price = Annotated[
    Money,
    _decimal(
        r"^([1-9]\d{0,17}(\.\d{1,10})?|0?\.\d{0,9}[1-9])$",
        exclusiveMinimum=0,
        exclusiveMaximum=10**18,
    ),
]
Cash = Annotated[
    Money,
    _decimal(r"^-?\d{1,18}(\.\d{1,10})?$", exclusiveMinimum=-(10**18), exclusiveMaximum=10**18),
]
# A model's name: the domain trims it, then wants 1 to MAX_NAME_LENGTH characters.
Name = Annotated[str, _documented(pattern=r"\S", maxLength=MAX_NAME_LENGTH)]


_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


def plain_text(value: str) -> str:
    """The one rule for every string the API reads: no NUL character (C drivers and logs cut
    at it) and no lone surrogate (UTF-8, so BSON and JSON, cannot encode one)."""
    if _NOT_TEXT.search(value):
        raise PydanticCustomError("plain_text", "must not contain NUL or lone surrogate characters")
    return value


def _check_strings(value: Any) -> None:
    """`plain_text` over a field's strings, list items and mapping keys included; nested
    bodies check their own fields."""
    if isinstance(value, str):
        plain_text(value)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _check_strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)


def _snake_or_camel(name: str) -> AliasChoices:
    """A field is read by its name or its camelCase alias; the OpenAPI document lists the
    first, so it names fields as the API emits them."""
    return AliasChoices(name, to_camel(name))


class Schema(BaseModel):
    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=_snake_or_camel),
        validate_by_name=True,
        validate_by_alias=True,
        from_attributes=True,
    )


class Body(Schema):
    """A request body of the service's own: a field it does not know is 400 naming it, so a
    misspelt field is never silently dropped; no string in it may hold text the database or
    a JSON answer cannot carry (`plain_text`)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _plain_strings(cls, value: Any) -> Any:
        _check_strings(value)
        return value


class PositionBody(Body):
    security_id: SecurityId
    target: Target
    low_drift: Drift
    high_drift: Drift

    def to_domain(self) -> Position:
        return Position(self.security_id, self.target, self.low_drift, self.high_drift)


class PolicyBody(Body):
    """A rebalance policy: which orders a rebalance may make and what cash must remain.

    A field left out keeps the value it is given over: the default in a model, the model's
    own in a rebalance's body or a preview's `policy`.
    """

    mode: Mode = DEFAULT_POLICY.mode
    min_cash: Amount = DEFAULT_POLICY.min_cash
    min_cash_fraction: Fraction = DEFAULT_POLICY.min_cash_fraction
    withdraw: Amount = DEFAULT_POLICY.withdraw
    no_buy: list[SecurityId] = Field(default_factory=list)
    no_sell: list[SecurityId] = Field(default_factory=list)
    hold: list[SecurityId] = Field(default_factory=list)
    min_trade_value: Amount = DEFAULT_POLICY.min_trade_value
    min_trade_quantity: Count = DEFAULT_POLICY.min_trade_quantity
    round_lot: Lot = DEFAULT_POLICY.round_lot
    round_lots: Annotated[
        dict[str, Lot], _documented(propertyNames={"pattern": f"^{ID_PATTERN}$"})
    ] = Field(default_factory=dict)
    bands: Bands = DEFAULT_POLICY.bands

    @model_validator(mode="before")
    @classmethod
    def _settings(cls, value: Any) -> Any:
        """A domain `Policy` reads as its plain settings, id lists sorted."""
        return value.as_dict() if isinstance(value, Policy) else value

    def changes(self) -> dict[str, Any]:
        """The fields given, to replace the same fields of another policy."""
        return {name: getattr(self, name) for name in self.model_fields_set}

    def to_domain(self, over: Policy = DEFAULT_POLICY) -> Policy:
        """The fields given over `over`'s; the domain checks the result (errors name
        `policy.<field>`)."""
        return replace(over, **self.changes())


def policy_of(body: PolicyBody | None) -> Policy:
    """A policy given with a model: the fields left out (or all, without one) are the defaults."""
    return body.to_domain() if body else DEFAULT_POLICY


_SERVER_OWNED = "Accepted and ignored: the server owns it (the portal echoes it back)"


class ModelBody(Body):
    name: Name
    positions: list[PositionBody] = []
    portfolios: list[PortfolioId] = []
    policy: PolicyBody | None = None
    model_id: Annotated[str | None, Field(description=_SERVER_OWNED)] = None
    last_rebalance_date: Annotated[datetime | None, Field(description=_SERVER_OWNED)] = None
    version: Annotated[int | None, Field(description=_SERVER_OWNED), JSON_INTEGER] = None

    @field_validator("last_rebalance_date", mode="before")
    @classmethod
    def _date_as_text(cls, value: object) -> object:
        """An ISO 8601 string, as the portal echoes it; a number is not read as a Unix time."""
        if isinstance(value, int | float):
            raise ValueError("must be an ISO 8601 date-time string")
        return value

    def to_domain(self, model_id: str | None = None, version: int = 1) -> InvestmentModel:
        return InvestmentModel(
            name=self.name,
            positions=tuple(p.to_domain() for p in self.positions),
            portfolios=tuple(self.portfolios),
            model_id=model_id,
            version=version,
            policy=policy_of(self.policy),
        )


class ModelUpdateBody(ModelBody):
    """A whole model: `positions` and `portfolios` must be given (a list left out is not
    emptied); `policy` left out keeps the stored policy, `"policy": null` resets it."""

    positions: list[PositionBody]
    portfolios: list[PortfolioId]
    version: Annotated[
        int,
        Field(ge=1, le=MAX_VERSION, description="The version read; a stale one is 409"),
        JSON_INTEGER,
    ]

    @property
    def keeps_policy(self) -> bool:
        return "policy" not in self.model_fields_set


class PortfoliosBody(Body):
    portfolios: list[str]


class NewPortfoliosBody(PortfoliosBody):
    """Portfolios to add to a model: ids, as a model holds them."""

    portfolios: list[PortfolioId]


class ModelOut(Schema):
    model_id: str
    name: str
    positions: list[PositionBody]
    portfolios: list[str]
    last_rebalance_date: datetime | None
    version: int
    policy: PolicyBody


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, object] = {}
    timestamp: datetime
    trace_id: str


class ErrorBody(BaseModel):
    """The one error shape of every endpoint; `detail` repeats the message where FastAPI
    clients (the GlobeCo portal among them) look for it."""

    error: ErrorDetail
    detail: str
