"""What every collection shares: Decimal128 codecs, ids, clocks and version errors."""

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bson import ObjectId
from bson.codec_options import CodecOptions, TypeCodec, TypeRegistry
from bson.decimal128 import Decimal128

from order_generation.adapters.decimal128 import from_decimal128, to_decimal128
from order_generation.domain.errors import InvalidInput, NotFound, ServiceError, VersionConflict
from order_generation.domain.policy import DEFAULT_POLICY, Policy

Document = dict[str, Any]
SortSpec = Sequence[tuple[str, int]]


class _DecimalCodec(TypeCodec):
    """Decimal <-> Decimal128, so no float ever reaches storage."""

    python_type = Decimal
    bson_type = Decimal128

    def transform_python(self, value: Decimal) -> Decimal128:
        return to_decimal128(value)

    def transform_bson(self, value: Decimal128) -> Decimal:
        return from_decimal128(value)


CODEC_OPTIONS: CodecOptions[Document] = CodecOptions(
    tz_aware=True, type_registry=TypeRegistry([_DecimalCodec()])
)


def object_id(value: str, field: str) -> ObjectId:
    if not ObjectId.is_valid(value):
        raise InvalidInput(field, "must be a 24-character hexadecimal id")
    return ObjectId(value)


def now() -> datetime:
    return datetime.now(UTC)


def missing_or_stale(
    stored: Document | None, kind: str, entity_id: str, version: int
) -> ServiceError:
    if stored is None:
        return NotFound(f"{kind} {entity_id} not found")
    return VersionConflict(
        f"{kind} {entity_id} is at version {stored['version']}, not {version}; "
        "read it again and retry",
        {"current_version": stored["version"], "given_version": version},
    )


def policy_from_doc(doc: Document | None) -> Policy:
    """Models and results stored before policies existed read as the default policy."""
    return DEFAULT_POLICY if doc is None else Policy(**doc)
