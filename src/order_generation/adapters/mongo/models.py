"""The `models` collection: investment models, versioned for optimistic locking."""

from collections.abc import Sequence
from datetime import datetime

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from order_generation.adapters.mongo.documents import (
    Document,
    SortSpec,
    missing_or_stale,
    object_id,
    policy_from_doc,
)
from order_generation.domain.errors import Conflict, NotFound
from order_generation.domain.models import InvestmentModel, Position

_SORT_FIELDS = {"model_id": "_id", "name": "name", "last_rebalance_date": "last_rebalance_date"}


class ModelStore:
    """Models by id, unique by name, found by the portfolios that follow them."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._models = db["models"]

    async def open(self) -> None:
        await self._models.create_index("name", unique=True)
        await self._models.create_index("portfolios")

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
        if not portfolio_ids:  # the embedded server cannot run an empty `$in`
            return []
        cursor = self._models.find({"portfolios": {"$in": list(portfolio_ids)}})
        return [_model_from_doc(doc) async for doc in cursor]

    async def insert_model(self, model: InvestmentModel) -> InvestmentModel:
        doc = _model_doc(model) | {"version": 1}
        try:
            result = await self._models.insert_one(doc)
        except DuplicateKeyError as error:
            raise _duplicate_name(model.name) from error
        return _model_from_doc(doc | {"_id": result.inserted_id})

    async def replace_model(
        self, model: InvestmentModel, *, keep_policy: bool = False
    ) -> InvestmentModel:
        """Store `model` if the stored version is still `model.version`; bump the version.

        With `keep_policy` the stored policy stays as it is.
        """
        assert model.model_id is not None
        key = {"_id": object_id(model.model_id, "model_id")}
        changes = _model_doc(model)
        del changes["last_rebalance_date"]  # only rebalances set it
        if keep_policy:
            del changes["policy"]
        update = {"$set": changes, "$inc": {"version": 1}}
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

    async def set_last_rebalance_date(self, model_id: str, when: datetime) -> None:
        """Record a rebalance; not a user edit, so the version stays."""
        key = {"_id": object_id(model_id, "model_id")}
        await self._models.update_one(key, {"$set": {"last_rebalance_date": when}})

    async def _missing_or_stale(self, key: Document, model_id: str, version: int) -> Exception:
        stored = await self._models.find_one(key, {"version": 1})
        return missing_or_stale(stored, "model", model_id, version)


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
        "policy": model.policy.as_dict(),
    }


def _model_from_doc(doc: Document) -> InvestmentModel:
    return InvestmentModel(
        model_id=str(doc["_id"]),
        name=doc["name"],
        positions=tuple(Position(**p) for p in doc["positions"]),
        portfolios=tuple(doc["portfolios"]),
        last_rebalance_date=doc.get("last_rebalance_date"),
        version=doc["version"],
        policy=policy_from_doc(doc.get("policy")),
    )
