"""The `model_history` collection: one entry per model write, written before the write.

Without transactions, an entry is inserted `pending` before its model write, and the model
names it (`history_id`) in that same write. Readers see committed entries and the one the
model names, so a model version is never without its entry; the writer commits its entry
afterwards, and the next writer commits the previous one before writing, in case a crash came
in between. A pending entry no model names lost its write (or is still in flight)."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from order_generation.adapters.mongo.documents import Document, now

_PENDING, _COMMITTED = "pending", "committed"
# A create's entry waits this long for its model before a sweep counts its write as lost.
_CREATE_IN_FLIGHT = timedelta(hours=1)
_FIELDS = ("name", "positions", "policy")


@dataclass(frozen=True)
class StoredEntry:
    """One entry as stored: `model` is the model document the write produced (None for a
    deletion), `changes` the changed fields."""

    model_id: str
    version: int
    at: datetime
    actor: str
    action: str
    changes: Document
    model: Document | None


class HistoryStore:
    """Entries by model, newest first; see the module's note for what is visible."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._entries = db["model_history"]

    async def open(self) -> None:
        await self._entries.create_index([("model_id", ASCENDING), ("version", DESCENDING)])
        await self._entries.create_index("state")

    async def begin(
        self,
        model_id: ObjectId,
        version: int,
        actor: str,
        action: str,
        before: Document | None,
        after: Document | None,
    ) -> ObjectId:
        """Insert the pending entry of a write from `before` to `after` (model documents)."""
        entry = {
            "model_id": model_id,
            "version": version,
            "at": now(),
            "actor": actor,
            "action": action,
            "changes": changes(before, after),
            "model": after,
            "state": _PENDING,
        }
        result = await self._entries.insert_one(entry)
        inserted: ObjectId = result.inserted_id
        return inserted

    async def commit(self, entry_id: ObjectId | None) -> None:
        if entry_id is not None:
            await self._entries.update_one(
                {"_id": entry_id, "state": _PENDING}, {"$set": {"state": _COMMITTED}}
            )

    async def discard(self, entry_id: ObjectId) -> None:
        """Forget the entry of a write that did not happen."""
        await self._entries.delete_one({"_id": entry_id, "state": _PENDING})

    async def entries(
        self, model_id: ObjectId, named: ObjectId | None, offset: int, limit: int
    ) -> list[StoredEntry]:
        """A page of the visible entries, newest first, without their model documents."""
        cursor = (
            self._entries.find(_visible(model_id, named), {"model": 0})
            .sort([("version", DESCENDING), ("_id", DESCENDING)])
            .skip(offset)
            .limit(limit)
        )
        return [_entry_from_doc(doc) async for doc in cursor]

    async def entry(
        self, model_id: ObjectId, named: ObjectId | None, version: int
    ) -> StoredEntry | None:
        doc = await self._entries.find_one(_visible(model_id, named) | {"version": version})
        return None if doc is None else _entry_from_doc(doc)

    async def has_entries(self, model_id: ObjectId) -> bool:
        return await self._entries.find_one({"model_id": model_id}, {"_id": 1}) is not None

    async def pending(self) -> list[Document]:
        cursor = self._entries.find({"state": _PENDING}, {"model_id": 1, "version": 1, "at": 1})
        return [doc async for doc in cursor]

    async def sweep(self, entry: Document, model: Document | None) -> None:
        """Commit a pending entry its model names; drop one whose write is surely lost."""
        if model is not None and model.get("history_id") == entry["_id"]:
            await self.commit(entry["_id"])
        elif _lost(entry, model):
            await self.discard(entry["_id"])


def _visible(model_id: ObjectId, named: ObjectId | None) -> Document:
    seen: list[Document] = [{"state": _COMMITTED}]
    if named is not None:
        seen.append({"_id": named})
    return {"model_id": model_id, "$or": seen}


def _lost(entry: Document, model: Document | None) -> bool:
    if model is None:  # deleted (its deletion was committed first), or a create in flight
        return bool(entry["version"] > 1 or now() - entry["at"] > _CREATE_IN_FLIGHT)
    return bool(model["version"] >= entry["version"])  # versions only grow: it lost


def changes(before: Document | None, after: Document | None) -> Document:
    """The changed fields, each `{before, after}`; portfolios as `{added, removed}`, since
    a model may have thousands."""
    old, new = before or {}, after or {}
    changed = {
        field: {"before": old.get(field), "after": new.get(field)}
        for field in _FIELDS
        if old.get(field) != new.get(field)
    }
    added = _missing_from(new.get("portfolios", ()), old.get("portfolios", ()))
    removed = _missing_from(old.get("portfolios", ()), new.get("portfolios", ()))
    if added or removed:
        changed["portfolios"] = {"added": added, "removed": removed}
    return changed


def _missing_from(items: Sequence[str], other: Sequence[str]) -> list[str]:
    present = set(other)
    return [item for item in items if item not in present]


def _entry_from_doc(doc: Document) -> StoredEntry:
    return StoredEntry(
        model_id=str(doc["model_id"]),
        version=doc["version"],
        at=doc["at"],
        actor=doc["actor"],
        action=doc["action"],
        changes=doc["changes"],
        model=doc.get("model"),
    )
