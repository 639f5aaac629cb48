"""Comparisons the embedded server's indexes can serve.

mongoeco builds an index on (type, value) expressions of each field, but translates a
comparison with a plain string or number into `json_type(field) = 'text' AND
json_extract(field) = ?`, which no index holds: a lookup by portfolio id read every stored
result (80 ms at ~4,400 of them), and the later parts of a page every part of the run.
Each comparison gets, in front, the same comparison on the index's expressions. For a
plain value that term is true wherever mongoeco's is (no type tag, the raw value), and it
is NULL where mongoeco's is (a missing field), so the answers do not change; SQLite can now
find the rows by the index.
"""

from typing import Any

import mongoeco.engines.sqlite
import mongoeco.engines.sqlite_query as translation

_ORIGINAL_EQUALS = translation._translate_scalar_equals
_ORIGINAL_COMPARISON = translation._translate_same_type_comparison
_PLAIN = (str, int, float)  # exact types: a bool is stored as JSON true or false
_OPERATORS = {">": ">", ">=": ">=", "<": "<", "<=": "<="}
Fragment = tuple[str, list[Any]]


def _with_index_term(field: str, operator: str, value: object, fragment: Fragment) -> Fragment:
    sql, params = fragment
    on_index = (
        f"{translation.type_expression_sql(field)} = '' "
        f"AND {translation.value_expression_sql(field)} {operator} ?"
    )
    return f"({on_index} AND {sql})", [value, *params]


def _translate_scalar_equals(field: str, value: object, **options: Any) -> Fragment:
    fragment = _ORIGINAL_EQUALS(field, value, **options)
    if type(value) not in _PLAIN:
        return fragment
    return _with_index_term(field, "=", value, fragment)


def _translate_same_type_comparison(operator: str, field: str, value: object) -> Fragment:
    fragment = _ORIGINAL_COMPARISON(operator, field, value)
    if type(value) not in _PLAIN:
        return fragment
    return _with_index_term(field, _OPERATORS[operator], value, fragment)


def install() -> None:
    """Translate comparisons with the index term, for this whole process."""
    for module in (translation, mongoeco.engines.sqlite):
        module._translate_scalar_equals = _translate_scalar_equals  # type: ignore[attr-defined]
        module._translate_same_type_comparison = _translate_same_type_comparison  # type: ignore[attr-defined]
