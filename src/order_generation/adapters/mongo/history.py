"""The `model_history` collection: one entry per model write, written before the write.

Without transactions, an entry is inserted `pending` before its model write, and the model
names it (`history_id`) in that same write, so a model version never exists without its
entry. The next entry names it too (`previous`): an entry the model or a later entry names
is the record of a write that happened, whatever its state, and readers see it. The writer
commits its entry after the write; a pending entry nobody names lost its write (or is in
flight), is never shown, and is swept once its write can no longer happen."""

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


@dataclass(frozen=True)
class StoredEntry:
    """One entry: `changes` the changed fields; `model` the model document the write
    produced, whole when read by `model_at`, None in a page of entries and for a deletion."""

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
        previous: ObjectId | None = None,
    ) -> ObjectId:
        """Insert the pending entry of a write from `before` (whose entry is `previous`) to
        `after` (model documents)."""
        entry = {
            "model_id": model_id,
            "previous": previous,
            "version": version,
            "at": now(),
            "actor": actor,
            "action": action,
            "changes": changes(before, after),
            "model": _kept_model(before, after),
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
            self._entries.find(await self._visible(model_id, named), {"model": 0})
            .sort([("version", DESCENDING), ("_id", DESCENDING)])
            .skip(offset)
            .limit(limit)
        )
        return [_entry_from_doc(doc) async for doc in cursor]

    async def model_at(
        self, model_id: ObjectId, named: ObjectId | None, version: int
    ) -> StoredEntry | None:
        """The entry of `version`, its `model` whole again: its portfolios are replayed from
        the entries up to it (each keeps only what it added and removed)."""
        visible = await self._visible(model_id, named)
        doc = await self._entries.find_one(visible | {"version": version})
        if doc is None or doc["model"] is None:
            return None if doc is None else _entry_from_doc(doc)
        portfolios: list[str] = []
        replay = self._entries.find(
            visible | {"version": {"$lte": version}}, {"model": 1, "changes.portfolios": 1}
        ).sort("version", ASCENDING)
        async for step in replay:
            portfolios = _replayed(portfolios, step)
        doc["model"]["portfolios"] = portfolios
        return _entry_from_doc(doc)

    async def has_entries(self, model_id: ObjectId) -> bool:
        committed = {"model_id": model_id, "state": _COMMITTED}
        return await self._entries.find_one(committed, {"_id": 1}) is not None

    async def pending(self) -> list[Document]:
        cursor = self._entries.find({"state": _PENDING}, {"model_id": 1, "version": 1, "at": 1})
        return [doc async for doc in cursor]

    async def sweep(self, entry: Document, model: Document | None) -> None:
        """Commit a pending entry that is named; drop one whose write is surely lost."""
        named = model.get("history_id") if model else None
        if entry["_id"] == named or await self._is_previous(entry):
            await self.commit(entry["_id"])
        elif _lost(entry, model):
            await self.discard(entry["_id"])

    async def _is_previous(self, entry: Document) -> bool:
        later = {"model_id": entry["model_id"], "previous": entry["_id"]}
        return await self._entries.find_one(later, {"_id": 1}) is not None

    async def _visible(self, model_id: ObjectId, named: ObjectId | None) -> Document:
        """Committed entries and the pending ones named (usually none or the latest)."""
        pending = {
            doc["_id"]
            async for doc in self._entries.find(
                {"model_id": model_id, "state": _PENDING}, {"_id": 1}
            )
        }
        shown = pending & {named}
        if pending - shown:
            later = self._entries.find(
                {"model_id": model_id, "previous": {"$in": list(pending - shown)}},
                {"previous": 1},
            )
            shown |= {doc["previous"] async for doc in later}
        seen: list[Document] = [{"state": _COMMITTED}]
        if shown:
            seen.append({"_id": {"$in": list(shown)}})
        return {"model_id": model_id, "$or": seen}


def _lost(entry: Document, model: Document | None) -> bool:
    if model is None:  # deleted (its deletion was committed first), or a create in flight
        return bool(entry["version"] > 1 or now() - entry["at"] > _CREATE_IN_FLIGHT)
    return bool(model["version"] >= entry["version"])  # versions only grow: it lost


def _kept_model(before: Document | None, after: Document | None) -> Document | None:
    """The model document an entry keeps: without its portfolios, which a model may have by
    the thousand, when replaying the entry's added and removed ids gives them in order."""
    if after is None:
        return None
    kept = {k: v for k, v in after.items() if k != "portfolios"}
    step = {"changes": changes(before, after), "model": kept}
    if _replayed((before or {}).get("portfolios", []), step) != after["portfolios"]:
        kept["portfolios"] = after["portfolios"]  # e.g. a PUT that reorders them
    return kept


def _replayed(portfolios: list[str], step: Document) -> list[str]:
    if step["model"] is not None and "portfolios" in step["model"]:
        return list(step["model"]["portfolios"])
    change = step.get("changes", {}).get("portfolios", {"added": [], "removed": []})
    removed = set(change["removed"])
    return [p for p in portfolios if p not in removed] + list(change["added"])


def changes(before: Document | None, after: Document | None) -> Document:
    """The changed fields, each `{before, after}`; positions and portfolios, lists that may be
    long, as what was added and removed (and, for positions, each changed one's before and
    after)."""
    old, new = before or {}, after or {}
    changed = {
        field: {"before": old.get(field), "after": new.get(field)}
        for field in ("name", "policy")
        if old.get(field) != new.get(field)
    }
    positions = _position_changes(old.get("positions", ()), new.get("positions", ()))
    if any(positions.values()):
        changed["positions"] = positions
    added = _missing_from(new.get("portfolios", ()), old.get("portfolios", ()))
    removed = _missing_from(old.get("portfolios", ()), new.get("portfolios", ()))
    if added or removed:
        changed["portfolios"] = {"added": added, "removed": removed}
    return changed


def _position_changes(before: Sequence[Document], after: Sequence[Document]) -> Document:
    old = {p["security_id"]: p for p in before}
    new = {p["security_id"]: p for p in after}
    return {
        "added": [p for key, p in new.items() if key not in old],
        "removed": [p for key, p in old.items() if key not in new],
        "changed": [
            {"before": old[key], "after": p}
            for key, p in new.items()
            if key in old and old[key] != p
        ],
    }


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
