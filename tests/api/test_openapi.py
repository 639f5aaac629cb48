"""The OpenAPI document says what the service answers."""

import json
import re
from typing import Any

from order_generation.api.app import create_app
from order_generation.config import Settings
from order_generation.domain.models import MAX_NAME_LENGTH


def document(**settings: Any) -> dict[str, Any]:
    built: dict[str, Any] = create_app(Settings(_env_file=None, **settings)).openapi()
    return built


def operations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [op for item in doc["paths"].values() for op in item.values()]


def test_invalid_input_is_documented_as_the_400_error_body_not_fastapis_422():
    doc = document()
    assert "HTTPValidationError" not in json.dumps(doc)
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert "ValidationError" not in doc["components"]["schemas"]
    with_input = [op for op in operations(doc) if op.get("parameters") or op.get("requestBody")]
    assert with_input
    for op in with_input:
        assert op["responses"]["400"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
    # The service's own 422 (no feasible solution) stays.
    preview = doc["paths"]["/api/v1/rebalance/preview"]["post"]["responses"]["422"]
    assert preview["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }


def test_the_api_key_is_documented_only_when_one_is_configured():
    open_doc = document()
    assert "securitySchemes" not in open_doc["components"]
    assert all("security" not in op for op in operations(open_doc))

    locked = document(secret_key="s3cret")
    assert locked["components"]["securitySchemes"] == {
        "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    }
    protected = [op for op in operations(locked) if "security" in op]
    assert len(protected) >= 15
    assert all("401" in op["responses"] for op in protected)
    health = locked["paths"]["/health/live"]["get"]
    assert "security" not in health


def test_request_schemas_name_fields_in_snake_case_as_the_api_emits_them():
    schemas = document()["components"]["schemas"]
    assert list(schemas["PositionBody-Input"]["properties"]) == [
        "security_id",
        "target",
        "low_drift",
        "high_drift",
    ]
    assert "round_lot" in schemas["PolicyBody-Input"]["properties"]
    assert "min_cash_fraction" in schemas["PolicyBody-Input"]["properties"]
    assert "last_rebalance_date" in schemas["ModelBody"]["properties"]
    assert "portfolio_id" in schemas["PreviewBody"]["properties"]
    camel = [
        name
        for schema in schemas.values()
        for name in schema.get("properties", {})
        if name != name.lower()
    ]
    assert camel == []


ID = {"type": "string", "pattern": "^[A-Za-z0-9]{24}$"}


def test_id_patterns_and_target_rules_are_in_the_document():
    doc = document()
    schemas = doc["components"]["schemas"]
    position = schemas["PositionBody-Input"]["properties"]
    assert position["security_id"]["pattern"] == ID["pattern"]
    number, text = position["target"]["anyOf"]
    assert (number["minimum"], number["maximum"], number["multipleOf"]) == (0, 0.95, 0.005)
    assert text["type"] == "string"
    assert "pattern" in text
    low, high = position["low_drift"]["anyOf"][0], position["high_drift"]["anyOf"][0]
    assert (low["minimum"], high["maximum"]) == (0, 1)
    policy = schemas["PolicyBody-Input"]["properties"]
    for name in ("no_buy", "no_sell", "hold"):
        assert ID.items() <= policy[name]["items"].items(), name
    assert policy["round_lots"]["propertyNames"] == {"pattern": ID["pattern"]}
    assert ID.items() <= schemas["ModelBody"]["properties"]["portfolios"]["items"].items()
    update = schemas["ModelUpdateBody"]["properties"]["portfolios"]["items"]
    assert ID.items() <= update.items()
    rebalance = doc["paths"]["/api/v1/portfolio/{portfolio_id}/rebalance"]["post"]
    [parameter] = [p for p in rebalance["parameters"] if p["in"] == "path"]
    assert parameter["schema"]["pattern"] == ID["pattern"]


def test_stored_ids_in_paths_are_documented_as_object_ids():
    doc = document()
    for path in ("/api/v1/model/{model_id}", "/api/v1/rebalance/{rebalance_id}"):
        [parameter] = doc["paths"][path]["get"]["parameters"]
        assert parameter["schema"]["pattern"] == "^[0-9a-fA-F]{24}$"


def test_integer_bounds_are_exact_8_byte_integers():
    doc = document()
    policy = doc["components"]["schemas"]["PolicyBody-Input"]["properties"]
    assert policy["round_lot"]["maximum"] == 2**63 - 1
    assert isinstance(policy["round_lot"]["maximum"], int)
    assert (policy["round_lot"]["minimum"], policy["min_trade_quantity"]["minimum"]) == (1, 0)
    [_, version] = doc["paths"]["/api/v1/model/{model_id}"]["delete"]["parameters"]
    assert version["schema"]["maximum"] == 2**63 - 1


def test_a_preview_takes_exactly_one_of_model_and_model_id():
    preview = document()["components"]["schemas"]["PreviewBody"]
    assert preview["oneOf"] == [{"required": ["model"]}, {"required": ["model_id"]}]
    assert preview["properties"]["model_id"]["pattern"] == "^[0-9a-fA-F]{24}$"


def test_a_model_name_must_hold_more_than_spaces():
    name = document()["components"]["schemas"]["ModelBody"]["properties"]["name"]
    assert re.search(name["pattern"], "  a ")
    assert not re.search(name["pattern"], "   ")
    assert name["maxLength"] == MAX_NAME_LENGTH
