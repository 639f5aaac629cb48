"""`sort_by` query parameters: a comma list of field names, each optionally prefixed + or -."""

from collections.abc import Sequence

from order_generation.adapters.mongo import SortSpec
from order_generation.domain.errors import InvalidInput


def parse_sort(sort_by: str | None, fields: Sequence[str], default: str = "") -> SortSpec:
    """`"-name,+model_id"` -> `[("name", -1), ("model_id", 1)]`; errors name `sort_by`.

    A field named again is ignored: its first mention already decides the order."""
    text = sort_by or default
    if not text:
        return []
    spec: list[tuple[str, int]] = []
    for item in (part.strip() for part in text.split(",")):
        field = item[1:] if item[:1] in ("+", "-") else item
        if field not in fields:
            raise InvalidInput("sort_by", f"{item!r} is not one of {', '.join(fields)}")
        if all(field != taken for taken, _ in spec):  # a field given again adds nothing
            spec.append((field, -1 if item.startswith("-") else 1))
    return spec


def sort_pattern(fields: Sequence[str]) -> str:
    """What `parse_sort` accepts over `fields`, as a JSON Schema pattern for the OpenAPI
    document (parse_sort stays the check)."""
    item = f"[ ]*[+-]?(?:{'|'.join(fields)})[ ]*"
    return f"^(?:{item}(?:,{item})*)?$"
