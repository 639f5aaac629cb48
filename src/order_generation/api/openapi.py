"""The OpenAPI document as the service answers: FastAPI's, with its guesses put right.

FastAPI lists a 422 `HTTPValidationError` on every operation with input; the service answers
a request it cannot read with 400 and its own `ErrorBody` (api/errors.py), so the document
says that instead. The API key is in it only when the service asks for one (SECRET_KEY set):
an open service documented as locked sends every client looking for a key it does not need.
"""

from typing import Any

from fastapi import FastAPI

_ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
_FASTAPI_ONLY = ("HTTPValidationError", "ValidationError")
_INT64_LEAST, _INT64_MOST = -(2**63), 2**63 - 1


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
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
