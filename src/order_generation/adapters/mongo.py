"""MongoDB storage through the official async driver, documents converted next to queries."""

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from bson import ObjectId
from bson.codec_options import CodecOptions, TypeCodec, TypeRegistry
from bson.decimal128 import Decimal128
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError

from order_generation.domain.errors import Conflict, InvalidInput, NotFound, VersionConflict
from order_generation.domain.models import InvestmentModel, Position

Document = dict[str, Any]
SortSpec = Sequence[tuple[str, int]]
_SORT_FIELDS = {"model_id": "_id", "name": "name", "last_rebalance_date": "last_rebalance_date"}


class _DecimalCodec(TypeCodec):
    """Decimal <-> Decimal128, so no float ever reaches storage."""

    python_type = Decimal
    bson_type = Decimal128

    def transform_python(self, value: Decimal) -> Decimal128:
        return Decimal128(value)

    def transform_bson(self, value: Decimal128) -> Decimal:
        return value.to_decimal()


_CODEC_OPTIONS: CodecOptions[Document] = CodecOptions(
    tz_aware=True, type_registry=TypeRegistry([_DecimalCodec()])
)


def object_id(value: str, field: str) -> ObjectId:
    if not ObjectId.is_valid(value):
        raise InvalidInput(field, "must be a 24-character hexadecimal id")
    return ObjectId(value)


class MongoStore:
    """The `models` collection (and, later, `rebalances`) of one database."""

    def __init__(self, url: str, database: str) -> None:
        self._client: AsyncMongoClient[Document] = AsyncMongoClient(
            url, tz_aware=True, serverSelectionTimeoutMS=5000
        )
        db = self._client.get_database(database, codec_options=_CODEC_OPTIONS)
        self._models = db["models"]

    async def open(self) -> None:
        """Create the indexes the queries rely on (idempotent)."""
        await self._models.create_index("name", unique=True)
        await self._models.create_index("portfolios")

    async def close(self) -> None:
        await self._client.close()

    async def ping(self) -> None:
        await self._client.admin.command("ping")

    async def count_models(self) -> int:
        return await self._models.count_documents({})

    async def list_models(self, offset: int, limit: int, sort: SortSpec) -> list[InvestmentModel]:
        order = [(_SORT_FIELDS[field], direction) for field, direction in sort] or [
            ("_id", ASCENDING)
        ]
        cursor = self._models.find().sort(order).skip(offset).limit(limit)
        return [_model_from_doc(doc) async for doc in cursor]

    async def get_model(self, model_id: str) -> InvestmentModel:
        doc = await self._models.find_one({"_id": object_id(model_id, "model_id")})
        if doc is None:
            raise NotFound(f"model {model_id} not found")
        return _model_from_doc(doc)

    async def models_following(self, portfolio_ids: Sequence[str]) -> list[InvestmentModel]:
        cursor = self._models.find({"portfolios": {"$in": list(portfolio_ids)}})
        return [_model_from_doc(doc) async for doc in cursor]

    async def insert_model(self, model: InvestmentModel) -> InvestmentModel:
        doc = _model_doc(model) | {"version": 1}
        try:
            result = await self._models.insert_one(doc)
        except DuplicateKeyError as error:
            raise _duplicate_name(model.name) from error
        return _model_from_doc(doc | {"_id": result.inserted_id})

    async def replace_model(self, model: InvestmentModel) -> InvestmentModel:
        """Store `model` if the stored version is still `model.version`; bump the version."""
        assert model.model_id is not None
        key = {"_id": object_id(model.model_id, "model_id")}
        update = {"$set": _model_doc(model), "$inc": {"version": 1}}
        try:
            doc = await self._models.find_one_and_update(
                key | {"version": model.version}, update, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError as error:
            raise _duplicate_name(model.name) from error
        if doc is None:
            raise await self._missing_or_stale(key, model.model_id, model.version)
        return _model_from_doc(doc)

    async def delete_model(self, model_id: str, version: int) -> None:
        key = {"_id": object_id(model_id, "model_id")}
        result = await self._models.delete_one(key | {"version": version})
        if result.deleted_count == 0:
            raise await self._missing_or_stale(key, model_id, version)

    async def _missing_or_stale(self, key: Document, model_id: str, version: int) -> Exception:
        stored = await self._models.find_one(key, {"version": 1})
        if stored is None:
            return NotFound(f"model {model_id} not found")
        return VersionConflict(
            f"model {model_id} is at version {stored['version']}, not {version}; "
            "read it again and retry",
            {"current_version": stored["version"], "given_version": version},
        )


def _duplicate_name(name: str) -> Conflict:
    return Conflict(f"a model named {name!r} already exists", {"field": "name"})


def _model_doc(model: InvestmentModel) -> Document:
    return {
        "name": model.name,
        "positions": [
            {
                "security_id": p.security_id,
                "target": p.target,
                "low_drift": p.low_drift,
                "high_drift": p.high_drift,
            }
            for p in model.positions
        ],
        "portfolios": list(model.portfolios),
        "last_rebalance_date": model.last_rebalance_date,
    }


def _model_from_doc(doc: Document) -> InvestmentModel:
    return InvestmentModel(
        model_id=str(doc["_id"]),
        name=doc["name"],
        positions=tuple(Position(**p) for p in doc["positions"]),
        portfolios=tuple(doc["portfolios"]),
        last_rebalance_date=doc.get("last_rebalance_date"),
        version=doc["version"],
    )
