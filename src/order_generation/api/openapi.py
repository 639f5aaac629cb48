"""The OpenAPI document as the service answers: FastAPI's, with its guesses put right.

FastAPI lists a 422 `HTTPValidationError` on every operation with input; the service answers
a request it cannot read with 400 and its own `ErrorBody` (api/errors.py), so the document
says that instead. The API key is in it only when the service asks for one (SECRET_KEY set):
an open service documented as locked sends every client looking for a key it does not need.

Some rules hold across fields or over JSON numbers' decimal places, which no schema keyword
states; the document lists them (`x-rules-not-in-schema`, each a phrase of the 400 or 422
answer that applies it) and its description names them.
"""

from typing import Any

from fastapi import FastAPI

_ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
_FASTAPI_ONLY = ("HTTPValidationError", "ValidationError")
_INT64_LEAST, _INT64_MOST = -(2**63), 2**63 - 1
# Each: the rule, and a phrase of the error message that applies it.
RULES_NOT_IN_SCHEMA = (
    (
        "a JSON number has at most 10 decimal places (write exact decimals as strings)",
        "Decimal input should have no more than",
    ),
    ("a position's low_drift does not exceed its high_drift", "must not exceed high_drift"),
    ("security and portfolio ids are unique within a model", "must be unique within a model"),
    ("a model's targets sum to at most 0.95", "sum of targets must not exceed"),
    ("a model has at most 100 positions with a target above 0", "positions with target > 0"),
    ("a security appears once in a preview's model", "appears twice"),
    (
        "a preview gives a price for every security it holds or targets",
        "a price is required for every security",
    ),
    ("a portfolio with a negative market value has no solution (422)", "no feasible solution"),
    ("strings hold no NUL or lone surrogate characters", "must not contain NUL or lone surrogate"),
    (
        "an Idempotency-Key stands for one request: reused for another it is 422",
        "was first used for another request",
    ),
)
_TEXT_RULE = "Strings never hold NUL characters or lone surrogates (400 naming the field)."


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR_BODY}}}


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        operation
        for item in document.get("paths", {}).values()
        for operation in item.values()
        if isinstance(operation, dict) and "responses" in operation
    ]


def _answer_400_not_422(document: dict[str, Any]) -> None:
    for operation in _operations(document):
        responses = operation["responses"]
        if "HTTPValidationError" in str(responses.get("422")):
            del responses["422"]  # a 422 of the service's own (no feasible solution) stays
            responses.setdefault("400", _error("Invalid input"))
    schemas = document.get("components", {}).get("schemas", {})
    for name in _FASTAPI_ONLY:
        schemas.pop(name, None)


def _api_key(document: dict[str, Any], *, required: bool) -> None:
    for operation in _operations(document):
        if "security" not in operation:
            continue
        if required:
            operation["responses"].setdefault("401", _error("No valid X-API-Key header"))
        else:
            del operation["security"]
    if not required:
        document.get("components", {}).pop("securitySchemes", None)


def _exact_integer_bounds(node: Any) -> None:
    """FastAPI's document models hold bounds as floats, and 2^63 - 1 as a float is 2^63, one
    past the largest integer the service takes: integer bounds go back to exact integers."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for key in ("minimum", "maximum"):
                if isinstance(node.get(key), float):
                    node[key] = max(_INT64_LEAST, min(_INT64_MOST, int(node[key])))
        for value in node.values():
            _exact_integer_bounds(value)
    elif isinstance(node, list):
        for item in node:
            _exact_integer_bounds(item)


def _rules_not_in_schema(document: dict[str, Any]) -> None:
    info = document["info"]
    rules = "; ".join(rule for rule, _ in RULES_NOT_IN_SCHEMA)
    info["description"] = (
        f"{info.get('description', '')} {_TEXT_RULE} Rules no schema keyword states "
        f"(answered 400 unless said): {rules}."
    ).strip()
    info["x-rules-not-in-schema"] = [
        {"rule": rule, "message": phrase} for rule, phrase in RULES_NOT_IN_SCHEMA
    ]


def install_openapi(app: FastAPI, *, api_key: bool) -> None:
    """Serve the corrected document at the app's openapi_url, built once per app; `api_key`:
    whether the protected routes ask for X-API-Key."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()  # FastAPI's, cached on the app; corrected in place
            _answer_400_not_422(document)
            _api_key(document, required=api_key)
            _exact_integer_bounds(document)
            _rules_not_in_schema(document)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
