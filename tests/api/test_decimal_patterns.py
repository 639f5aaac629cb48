"""The decimal-string patterns of the OpenAPI document say exactly what the service takes:
every string a pattern matches passes the body's and the domain's checks."""

import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from order_generation.api.app import create_app
from order_generation.api.schemas import PolicyBody, PositionBody
from order_generation.config import Settings
from order_generation.domain.errors import InvalidInput
from order_generation.domain.models import InvestmentModel
from order_generation.domain.policy import check_policy

SID = "S" * 24
SCHEMAS = create_app(Settings(_env_file=None)).openapi()["components"]["schemas"]


def _pattern(schema: str, field: str) -> str:
    string = SCHEMAS[schema]["properties"][field]["anyOf"][1]
    pattern: str = string["pattern"]
    return pattern


def _strings(schema: str, field: str) -> Any:
    return st.from_regex(_pattern(schema, field), fullmatch=True)


def _model_with(target: str, drift: str) -> InvestmentModel:
    body = PositionBody.model_validate(
        {"security_id": SID, "target": target, "low_drift": drift, "high_drift": drift}
    )
    return InvestmentModel("m", (body.to_domain(),))


@settings(max_examples=300, deadline=None)
@given(
    target=_strings("PositionBody-Input", "target"),
    drift=_strings("PositionBody-Input", "low_drift"),
)
def test_every_documented_target_and_drift_is_taken(target: str, drift: str):
    kept = [p.target for p in _model_with(target, drift).positions]
    assert kept == ([] if Decimal(target) == 0 else [Decimal(target)])  # zero targets dropped


@settings(max_examples=300, deadline=None)
@given(
    amount=_strings("PolicyBody-Input", "min_cash"),
    fraction=_strings("PolicyBody-Input", "min_cash_fraction"),
)
def test_every_documented_amount_and_fraction_is_taken(amount: str, fraction: str):
    body = PolicyBody.model_validate(
        {
            "min_cash": amount,
            "withdraw": amount,
            "min_trade_value": amount,
            "min_cash_fraction": fraction,
        }
    )
    check_policy(body.to_domain())


@pytest.mark.parametrize(
    ("field", "text"),
    [
        *(("target", t) for t in ("0.96", "0.955", "0.101", "1", "-0.1", "", ".", "1e-11")),
        *(("low_drift", t) for t in ("1.1", "1.01", "-0.1", "", "0.12345678901")),
    ],
)
def test_the_patterns_refuse_what_the_service_refuses(field: str, text: str):
    assert not re.fullmatch(_pattern("PositionBody-Input", field), text)
    target, drift = (text, "0") if field == "target" else ("0.1", text)
    with pytest.raises((InvalidInput, ValidationError)):
        _model_with(target, drift)
