"""The `models` collection: investment models, versioned for optimistic locking, each write
recorded in `model_history` (see history.py for the order of the writes).

A portfolio follows at most one model: a unique index on `portfolios` (multikey, so unique
across models) enforces it in the database, for every worker and pod."""

from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import batched

import structlog
from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from order_generation.adapters.mongo.documents import (
    Document,
    SortSpec,
    missing_or_stale,
    object_id,
    policy_from_doc,
)
from order_generation.adapters.mongo.history import HistoryStore, StoredEntry
from order_generation.domain.errors import Conflict, NotFound
from order_generation.domain.models import InvestmentModel, Position

log = structlog.get_logger(__name__)
_SORT_FIELDS = {"model_id": "_id", "name": "name", "last_rebalance_date": "last_rebalance_date"}
# Models with no portfolios stay out of the unique index (MongoDB indexes `[]` as one key).
_FOLLOWED = {"portfolios": {"$type": "string"}}
_PORTFOLIO_INDEX = "portfolio_follows_one_model"
_LEGACY_PORTFOLIO_INDEX = "portfolios_1"
# A model whose deletion is recorded but not yet done (a crash came in between).
_LIVE = {"deleted": {"$exists": False}}
# Ids per `$in`: the embedded server's SQLite translation refuses 495 and more (measured).
_IDS_PER_QUERY = 400


class ModelStore:
    """Models by id, unique by name, found by the portfolios that follow them."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._models = db["models"]
        self.history = HistoryStore(db)

    async def open(self) -> None:
        """Create the indexes and repair what a crash left between a model and its entry."""
        await self._models.create_index("name", unique=True)
        await self._ensure_one_model_per_portfolio()
        await self.history.open()
        await self._repair()

    async def list_models(self, offset: int, limit: int, sort: SortSpec) -> list[InvestmentModel]:
        order = [(_SORT_FIELDS[field], direction) for field, direction in sort] or [
            ("_id", ASCENDING)
        ]
        cursor = self._models.find(_LIVE).sort(order).skip(offset).limit(limit)
        return [_model_from_doc(doc) async for doc in cursor]

    async def get_model(self, model_id: str) -> InvestmentModel:
        return _model_from_doc(await self._current(model_id))

    async def models_following(self, portfolio_ids: Sequence[str]) -> list[InvestmentModel]:
        found: dict[str, InvestmentModel] = {}
        for chunk in batched(dict.fromkeys(portfolio_ids), _IDS_PER_QUERY, strict=False):
            # The `$type` term lets MongoDB use the partial unique index.
            query = {"portfolios": {"$in": list(chunk)} | _FOLLOWED["portfolios"]} | _LIVE
            async for doc in self._models.find(query):
                found.setdefault(str(doc["_id"]), _model_from_doc(doc))
        return list(found.values())

    async def insert_model(self, model: InvestmentModel, actor: str) -> InvestmentModel:
        key = ObjectId()
        doc = _model_doc(model) | {"_id": key, "version": 1}
        entry = await self.history.begin(key, 1, actor, "created", None, doc)
        try:
            await self._models.insert_one(doc | {"history_id": entry})
        except DuplicateKeyError as error:
            await self.history.discard(entry)
            raise await self._taken(error, model) from error
        await self.history.commit(entry)
        return _model_from_doc(doc)

    async def replace_model(
        self, model: InvestmentModel, actor: str, action: str, *, keep_policy: bool = False
    ) -> InvestmentModel:
        """Store `model` if the stored version is still `model.version`; bump the version.

        With `keep_policy` the stored policy stays as it is.
        """
        assert model.model_id is not None
        stored = await self._at_version(model.model_id, model.version)
        return await self._write(stored, model, actor, action, keep_policy=keep_policy)

    async def change_model(
        self,
        model_id: str,
        change: Callable[[InvestmentModel], InvestmentModel],
        actor: str,
        action: str,
    ) -> InvestmentModel:
        """Store `change` of the stored model, if no other write came in between."""
        stored = await self._current(model_id)
        return await self._write(stored, change(_model_from_doc(stored)), actor, action)

    async def _write(
        self,
        stored: Document,
        model: InvestmentModel,
        actor: str,
        action: str,
        *,
        keep_policy: bool = False,
    ) -> InvestmentModel:
        changes = _model_doc(model)
        del changes["last_rebalance_date"]  # only rebalances set it
        if keep_policy:
            del changes["policy"]
        after = stored | changes | {"version": stored["version"] + 1}
        entry = await self._begin(stored, actor, action, _snapshot(after))
        try:
            doc = await self._models.find_one_and_update(
                {"_id": stored["_id"], "version": stored["version"]} | _LIVE,
                {"$set": changes | {"history_id": entry}, "$inc": {"version": 1}},
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError as error:
            await self.history.discard(entry)
            raise await self._taken(error, model) from error
        if doc is None:
            await self.history.discard(entry)
            raise await self._missing_or_stale(str(stored["_id"]), stored["version"])
        await self.history.commit(entry)
        return _model_from_doc(doc)

    async def delete_model(self, model_id: str, version: int, actor: str) -> None:
        """Record the deletion (the model marked deleted, at a version of its own), then
        delete: a crash in between leaves a marked model, which the repair deletes."""
        stored = await self._at_version(model_id, version)
        entry = await self._begin(stored, actor, "deleted", None)
        marked = await self._models.update_one(
            {"_id": stored["_id"], "version": version} | _LIVE,
            {"$set": {"deleted": True, "history_id": entry}, "$inc": {"version": 1}},
        )
        if marked.modified_count == 0:
            await self.history.discard(entry)
            raise await self._missing_or_stale(model_id, version)
        await self._finish_delete(stored["_id"], entry)

    async def set_last_rebalance_date(self, model_id: str, when: datetime) -> None:
        """Record a rebalance; not a user edit, so the version stays."""
        key = {"_id": object_id(model_id, "model_id")}
        await self._models.update_one(key, {"$set": {"last_rebalance_date": when}})

    async def model_history(self, model_id: str, offset: int, limit: int) -> list[StoredEntry]:
        """A page of a model's entries, newest first; a deleted model's stay readable."""
        key, named = await self._history_of(model_id)
        return await self.history.entries(key, named, offset, limit)

    async def model_at(self, model_id: str, version: int) -> InvestmentModel:
        key, named = await self._history_of(model_id)
        entry = await self.history.model_at(key, named, version)
        if entry is None:
            raise NotFound(f"model {model_id} has no recorded version {version}")
        if entry.model is None:
            raise NotFound(f"model {model_id} was deleted at version {version}")
        return _model_from_doc(entry.model)

    async def _history_of(self, model_id: str) -> tuple[ObjectId, ObjectId | None]:
        """The model's key and the entry it names; NotFound if it never had either."""
        key = object_id(model_id, "model_id")
        doc = await self._models.find_one({"_id": key}, {"history_id": 1})
        if doc is None and not await self.history.has_entries(key):
            raise NotFound(f"model {model_id} not found")
        return key, None if doc is None else doc.get("history_id")

    async def _begin(
        self, stored: Document, actor: str, action: str, after: Document | None
    ) -> ObjectId:
        """Insert this write's entry, naming the entry of the version it replaces."""
        return await self.history.begin(
            stored["_id"],
            stored["version"] + 1,
            actor,
            action,
            _snapshot(stored),
            after,
            previous=stored.get("history_id"),
        )

    async def _finish_delete(self, key: ObjectId, entry: ObjectId | None) -> None:
        await self.history.commit(entry)  # first: once the model is gone, nothing names it
        await self._models.delete_one({"_id": key, "deleted": True})

    async def _current(self, model_id: str) -> Document:
        doc = await self._models.find_one({"_id": object_id(model_id, "model_id")} | _LIVE)
        if doc is None:
            raise NotFound(f"model {model_id} not found")
        return doc

    async def _at_version(self, model_id: str, version: int) -> Document:
        stored = await self._current(model_id)
        if stored["version"] != version:
            raise missing_or_stale(stored, "model", model_id, version)
        return stored

    async def _missing_or_stale(self, model_id: str, version: int) -> Exception:
        key = {"_id": object_id(model_id, "model_id")} | _LIVE
        stored = await self._models.find_one(key, {"version": 1})
        return missing_or_stale(stored, "model", model_id, version)

    async def _taken(self, error: DuplicateKeyError, model: InvestmentModel) -> Conflict:
        """The name, or a portfolio, is another model's: say whose."""
        details = error.details or {}
        if "name" in details.get("keyPattern", {"name": 1}):
            return Conflict(f"a model named {model.name!r} already exists", {"field": "name"})
        # The key, or (the embedded server, on some paths) the whole array.
        key = details.get("keyValue", {}).get("portfolios")
        suspects = [key] if isinstance(key, str) else key or model.portfolios
        for other in await self.models_following(suspects):
            if other.model_id != model.model_id:
                taken = sorted(set(other.portfolios) & set(model.portfolios))[0]
                return Conflict(
                    f"portfolio {taken} already follows model {other.name!r}",
                    {"portfolio_id": taken, "model_id": other.model_id},
                )
        return Conflict("a portfolio of this model was just added to another model; retry")

    async def _ensure_one_model_per_portfolio(self) -> None:
        """The unique index; if stored models already share a portfolio it cannot be built:
        say which, and keep a plain index for the queries until the data is fixed."""
        indexes = await self._models.index_information()
        if _PORTFOLIO_INDEX in indexes:
            return
        if _LEGACY_PORTFOLIO_INDEX in indexes:  # same key: MongoDB refuses both side by side
            await self._models.drop_index(_LEGACY_PORTFOLIO_INDEX)
        try:
            await self._models.create_index(
                "portfolios", name=_PORTFOLIO_INDEX, unique=True, partialFilterExpression=_FOLLOWED
            )
        except OperationFailure as error:
            if error.code != 11000:
                raise
            await self._models.create_index("portfolios", name=_LEGACY_PORTFOLIO_INDEX)
            await self._report_shared_portfolios()

    async def _report_shared_portfolios(self) -> None:
        holders: dict[str, list[str]] = {}
        async for doc in self._models.find(_FOLLOWED, {"portfolios": 1, "name": 1}):
            for portfolio in doc["portfolios"]:
                holders.setdefault(portfolio, []).append(f"{doc['_id']} ({doc['name']})")
        shared = {p: models for p, models in holders.items() if len(models) > 1}
        log.error(
            "portfolios_in_several_models",
            note="a portfolio must follow one model: remove it from all but one; until then "
            "the database cannot enforce the rule",
            portfolios=shared,
        )

    async def _repair(self) -> None:
        """Finish deletions a crash interrupted; commit or drop entries left pending."""
        async for doc in self._models.find({"deleted": True}, {"history_id": 1}):
            await self._finish_delete(doc["_id"], doc.get("history_id"))
        for entry in await self.history.pending():
            model = await self._models.find_one(
                {"_id": entry["model_id"]}, {"version": 1, "history_id": 1}
            )
            await self.history.sweep(entry, model)


def _snapshot(doc: Document) -> Document:
    """A model document as history keeps it."""
    return {k: v for k, v in doc.items() if k not in ("history_id", "deleted")}


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
