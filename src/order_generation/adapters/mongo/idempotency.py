"""Idempotency keys of rebalance requests, in `idempotency_keys`.

The first request with a key inserts it (the key is the `_id`, so one insert wins however many
workers or pods race), runs, and records the run it stored; a retry finds that run. A claim
whose owner died mid-run lapses after its lease; a key older than the window is gone (a TTL
index on MongoDB, `sweep_expired` where TTL is not enforced) and reads as never used.
"""

from dataclasses import dataclass
from datetime import timedelta

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from order_generation.adapters.mongo.documents import Document, now

_RUNNING, _DONE = "running", "done"
# A claim can vanish between a failed insert and the read that follows (its request failed
# and released it, or it expired): try again this many times before reporting a conflict.
_CLAIM_TRIES = 5


@dataclass(frozen=True)
class Claim:
    """The caller owns `key` and must `finish` or `release` it."""

    key: str
    claim_id: ObjectId


@dataclass(frozen=True)
class UsedKey:
    """A key another request holds: for `request`, still running or done with its run."""

    request: str
    done: bool
    rebalance_id: str | None


class IdempotencyStore:
    """Claims of idempotency keys; `request` says what a key was first used for."""

    def __init__(self, db: AsyncDatabase[Document], window: timedelta) -> None:
        self._keys = db["idempotency_keys"]
        self.window = window

    async def open(self) -> None:
        """The TTL index that removes a key once its window is over (idempotent)."""
        await self._keys.create_index("expires_at", expireAfterSeconds=0)

    async def claim(self, key: str, request: str, lease: timedelta) -> Claim | UsedKey:
        """Own `key` for `request` for at most `lease`, or learn who holds it."""
        for _ in range(_CLAIM_TRIES):
            claim = Claim(key, ObjectId())
            doc = self._claim_doc(claim, request, lease)
            try:
                await self._keys.insert_one(doc)
            except DuplicateKeyError:
                pass
            else:
                return claim
            held = await self._keys.find_one({"_id": key})
            if held is None:
                continue
            if not _lapsed(held):
                return UsedKey(held["request"], held["state"] == _DONE, held.get("rebalance_id"))
            # Expired, or its owner died mid-run: take it over unless another caller just did.
            taken = {"_id": key, "claim_id": held["claim_id"]}
            if await self._keys.find_one_and_replace(taken, doc) is not None:
                return claim
        return UsedKey(request, done=False, rebalance_id=None)

    async def finish(self, claim: Claim, rebalance_id: str | None) -> None:
        """The claimed request succeeded; `rebalance_id` is its run (None: none stored)."""
        await self._keys.update_one(
            {"_id": claim.key, "claim_id": claim.claim_id},
            {"$set": {"state": _DONE, "rebalance_id": rebalance_id}},
        )

    async def release(self, claim: Claim) -> None:
        """The claimed request failed and stored nothing: a retry with the key runs again."""
        await self._keys.delete_one({"_id": claim.key, "claim_id": claim.claim_id})

    async def sweep_expired(self) -> int:
        """Remove the keys past their window (the TTL index does it on MongoDB)."""
        result = await self._keys.delete_many({"expires_at": {"$lt": now()}})
        return result.deleted_count

    def _claim_doc(self, claim: Claim, request: str, lease: timedelta) -> Document:
        at = now()
        return {
            "_id": claim.key,
            "claim_id": claim.claim_id,
            "request": request,
            "state": _RUNNING,
            "created_at": at,
            "lease_until": at + lease,
            "expires_at": at + self.window,
        }


def _lapsed(held: Document) -> bool:
    at = now()
    expired: bool = held["expires_at"] <= at
    return expired or (held["state"] == _RUNNING and held["lease_until"] <= at)
