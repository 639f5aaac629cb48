"""Comparisons and feature probes the embedded server's indexes can serve.

mongoeco builds an index on (type, value) expressions of each field, but translates a
comparison with a plain string or number into `json_type(field) = 'text' AND
json_extract(field) = ?`, which no index holds: a lookup by portfolio id read every stored
result (80 ms at ~4,400 of them), and the later parts of a page every part of the run.
Each comparison gets, in front, the same comparison on the index's expressions. For a
plain value that term is true wherever mongoeco's is (no type tag, the raw value), and it
is NULL where mongoeco's is (a missing field), so the answers do not change; SQLite can now
find the rows by the index.

Before it turns a query into SQL, the engine probes the collection for what would make the
SQL wrong (an array, a Decimal128 or a binary under a queried field, ...), and forgets the
answers at every write: the first read after a write of a stored run scanned the whole
collection some fifteen times (1.8 s at 6,000 documents). Each field of an index gets a
probe index on the two expressions those probes ask about, the JSON type of the field and
the type tag of a tagged value, so each probe is one index lookup.
"""

import hashlib
from typing import Any

import mongoeco.engines.sqlite
import mongoeco.engines.sqlite_query as translation
from mongoeco.core.codec import DocumentCodec

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


def json_type_sql(field: str) -> str:
    """The field's JSON type, written as the engine's probes write it."""
    return f"json_type(document, {translation._path_literal(field)})"


def tag_sql(field: str) -> str:
    """The type tag of a tagged value (a Decimal128, a binary, ...) under the field."""
    path = translation.json_path_for_field(field)
    tagged = f'{path}."{DocumentCodec._MARKER}".{DocumentCodec._TYPE}'
    return f"json_extract(document, {translation._quote_sql_string(tagged)})"


def probe_index_sql(field: str) -> str:
    """The probe index of a field: on every collection (a partial index per collection was
    used by SQLite 3.40 for other collections' queries too, and answered them wrongly)."""
    name = "probe_" + hashlib.sha256(field.encode()).hexdigest()[:16]
    expressions = f"db_name, coll_name, {json_type_sql(field)}, {tag_sql(field)}"
    return f'CREATE INDEX IF NOT EXISTS "{name}" ON documents ({expressions})'


def tagged_probe_sql(field: str) -> str:
    """Whether a document holds a value of a given tag under the field. The engine's own
    probe binds the path as a parameter, which no expression index can match; a tagged
    value is a JSON object, so the type term changes no answer."""
    return (
        "SELECT 1 FROM documents WHERE db_name = ? AND coll_name = ? "
        f"AND {json_type_sql(field)} = 'object' AND {tag_sql(field)} = ? LIMIT 1"
    )


# The JSON types a value of the expected kind may not have (json_type answers one of eight,
# and NULL for a missing field, which is no mismatch): listed, so the index finds them.
_JSON_TYPES = ("null", "true", "false", "integer", "real", "text", "array", "object")
_KIND_TYPES = {"number": ("integer", "real"), "string": ("text",), "bool": ("true", "false")}


def mismatch_probe_sql(field: str, expected: str) -> str | None:
    """Whether a document holds a value of another kind than `expected` under the field;
    None for a kind the engine always treats as mixed."""
    kind = _KIND_TYPES.get(expected)
    if kind is None:
        return None
    others = ", ".join(f"'{json_type}'" for json_type in _JSON_TYPES if json_type not in kind)
    return (
        "SELECT 1 FROM documents WHERE db_name = ? AND coll_name = ? "
        f"AND {json_type_sql(field)} IN ({others}) LIMIT 1"
    )
