"""Stored runs: a small header in `rebalances` and, in `rebalance_portfolios`, each portfolio
result in parts of a bounded number of positions (`run_documents`), so no document grows with the
number of portfolios or of positions. Without transactions, the header's status makes a run
visible only once all its parts are written."""

import asyncio
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from itertools import batched

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from order_generation.adapters.mongo.documents import (
    Document,
    SortSpec,
    missing_or_stale,
    now,
    object_id,
)
from order_generation.adapters.mongo.run_documents import (
    StoredRun,
    header_doc,
    joined,
    outcome_docs,
    page_indexes,
    stored_run,
)
from order_generation.domain.errors import NotFound
from order_generation.domain.runs import RebalanceRun

_PENDING, _COMPLETE, _DELETING = "pending", "complete", "deleting"
# Consecutive parts go in one insert of at most this many positions and documents, so a
# run of small portfolios pays one round trip per command, not per document.
_POSITIONS_PER_COMMAND = 25
_DOCUMENTS_PER_COMMAND = 10
_INSERTS_IN_FLIGHT = 2
# Ids per query: the embedded engine's SQL for `$in` fails from about 495 values ("Expression
# tree is too large"), and a real MongoDB bounds a command to 16 MB; 200 fits both.
_IDS_PER_QUERY = 200
_OLD_PORTFOLIO_INDEX = "portfolio_id_1"
_CONCURRENT_LOOKUPS = 20  # portfolio ids looked up at once (one query each)
_RUN_SORT_FIELDS = {
    "rebalance_id": "_id",
    "model_name": "model_name",
    "rebalance_date": "rebalance_date",
    "number_of_portfolios": "number_of_portfolios",
}
_FIRST_PART = {"part": {"$in": [0, None]}}  # results written before the split have no `part`


class RunStore:
    """Runs stored whole or not at all, read back whole, a page or one portfolio at a time."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._rebalances = db["rebalances"]
        self._results = db["rebalance_portfolios"]

    async def open(self) -> None:
        """Create the indexes (idempotent) and sweep what a crash left half-written."""
        # One per sortable field, ties broken by _id: a page in any single-field order is
        # read off an index, in either direction, instead of sorting every run.
        for field in ("rebalance_date", "model_name", "number_of_portfolios"):
            await self._rebalances.create_index(
                [("status", ASCENDING), (field, ASCENDING), ("_id", ASCENDING)]
            )
        await self._results.create_index(
            [("rebalance_id", ASCENDING), ("index", ASCENDING), ("part", ASCENDING)]
        )
        # The runs of a portfolio, read from the index alone (the embedded engine keeps a
        # single-field index as array entries, which its lookups by string do not use).
        await self._results.create_index([("portfolio_id", ASCENDING), ("rebalance_id", ASCENDING)])
        if _OLD_PORTFOLIO_INDEX in await self._results.index_information():
            await self._results.drop_index(_OLD_PORTFOLIO_INDEX)
        await self.sweep_unfinished_rebalances(timedelta(hours=1))

    async def insert_rebalance(
        self, run: RebalanceRun, tickers: Mapping[str, str] | None = None
    ) -> RebalanceRun:
        """Store a run; `tickers` (security id -> ticker) are kept with the positions."""
        header = header_doc(run) | {"status": _PENDING, "version": 1, "created_at": now()}
        rebalance_id = (await self._rebalances.insert_one(header)).inserted_id
        try:
            docs = (
                doc
                for index, outcome in enumerate(run.outcomes)
                for doc in outcome_docs(rebalance_id, index, outcome, tickers or {})
            )
            await self._insert_in_turn(_commands(docs))
            complete = {"$set": {"status": _COMPLETE}}
            await self._rebalances.update_one({"_id": rebalance_id}, complete)
        except BaseException:
            # Best effort; a crash here leaves a pending run that the next start sweeps.
            await asyncio.shield(self._drop_rebalance(rebalance_id))
            raise
        return replace(run, rebalance_id=str(rebalance_id), version=1)

    async def _insert_in_turn(self, commands: Iterable[list[Document]]) -> None:
        """The inserts in order, the next one sent while the one before is written, so the
        server does not wait for the client in between; on a failure the insert still being
        written finishes before the failure is raised (and the run dropped)."""
        writing: deque[asyncio.Task[object]] = deque()
        try:
            for command in commands:
                if len(writing) == _INSERTS_IN_FLIGHT:
                    await writing.popleft()
                writing.append(asyncio.create_task(self._results.insert_many(command)))
            while writing:
                await writing.popleft()
        finally:
            await asyncio.gather(*writing, return_exceptions=True)

    async def get_rebalance(self, rebalance_id: str) -> StoredRun:
        header = await self._header(rebalance_id)
        return stored_run(header, await self._results_of(header["_id"]))

    async def _results_of(self, rebalance_id: ObjectId) -> list[Document]:
        results = self._results.find({"rebalance_id": rebalance_id}).sort(_RESULT_ORDER)
        return joined(await results.to_list())

    async def run_portfolios(self, rebalance_id: str, offset: int, limit: int) -> StoredRun:
        """A page of a run's rebalanced portfolios (failures are not in it), in run order;
        only that page's documents are read."""
        header = await self._header(rebalance_id)
        indexes = page_indexes(header, offset, limit)
        if indexes is None:
            return stored_run(header, await self._page_of_older_run(header, offset, limit))
        if not indexes:
            return stored_run(header, [])
        span = {"$gte": indexes[0], "$lte": indexes[-1]}
        query = {"rebalance_id": header["_id"], "index": span}
        found = await self._results.find(query).sort(_RESULT_ORDER).to_list()
        # The range also holds the failures among them (small documents): left out here,
        # since a filter on `error`, which no index holds, costs the embedded server scans.
        return stored_run(header, joined(doc for doc in found if "error" not in doc))

    async def _page_of_older_run(self, header: Document, offset: int, limit: int) -> list[Document]:
        """A page of a run whose header does not list its failures: the first parts of the
        rebalanced portfolios by skip and limit, then the later parts of just those."""
        key = {"rebalance_id": header["_id"]}
        succeeded = key | _FIRST_PART | {"error": {"$exists": False}}
        firsts = self._results.find(succeeded).sort("index", ASCENDING).skip(offset).limit(limit)
        page = await firsts.to_list()
        if not page:
            return []
        indexes = {doc["index"] for doc in page}
        span = {"$gte": page[0]["index"], "$lte": page[-1]["index"]}
        rest = self._results.find(key | {"index": span, "part": {"$gt": 0}})
        results = page + [doc async for doc in rest if doc["index"] in indexes]
        results.sort(key=lambda doc: (doc["index"], doc.get("part", 0)))
        return joined(results)

    async def run_portfolio(self, rebalance_id: str, portfolio_id: str) -> StoredRun:
        """One rebalanced portfolio of a run; NotFound if the run did not rebalance it."""
        header = await self._header(rebalance_id)
        query = {"rebalance_id": header["_id"], "portfolio_id": portfolio_id}
        found = joined(await self._results.find(query).sort(_RESULT_ORDER).to_list())
        if not found:
            raise NotFound(f"portfolio {portfolio_id} is not in rebalance {rebalance_id}")
        if "error" in found[0]:
            raise NotFound(
                f"portfolio {portfolio_id} failed in rebalance {rebalance_id} and has no "
                f"positions: {found[0]['error']['message']}",
                {"error": found[0]["error"]},
            )
        return stored_run(header, found)

    async def list_rebalances(
        self,
        offset: int,
        limit: int,
        sort: SortSpec = (("rebalance_date", DESCENDING),),
        portfolio_ids: Sequence[str] | None = None,
    ) -> list[StoredRun]:
        """Complete runs in `sort` order, ties by id; only those including one of
        `portfolio_ids` when given."""
        order = [(_RUN_SORT_FIELDS[field], direction) for field, direction in sort]
        if not any(field == "_id" for field, _ in order):
            order.append(("_id", order[-1][1] if order else DESCENDING))
        if portfolio_ids is None:
            cursor = self._rebalances.find({"status": _COMPLETE}).sort(order)
            headers = await cursor.skip(offset).limit(limit).to_list()
        else:
            headers = await self._headers_including(portfolio_ids, order)
            headers = headers[offset : offset + limit]
        # One equality per run, as for _runs_of: with an `$in` the embedded engine read every
        # stored result (1,000 ids over 2,000 results and one 1,000 x 100 run took 160 s).
        results = await asyncio.gather(*(self._results_of(header["_id"]) for header in headers))
        return [stored_run(h, found) for h, found in zip(headers, results, strict=True)]

    async def _runs_of(self, portfolio_id: str) -> set[ObjectId]:
        # One equality per id: the embedded engine answers it from the portfolio_id index,
        # where an `$in` made it test every stored result against every id of the list.
        found = self._results.find({"portfolio_id": portfolio_id}, {"rebalance_id": 1})
        return {doc["rebalance_id"] async for doc in found}

    async def _header(self, rebalance_id: str) -> Document:
        key = {"_id": object_id(rebalance_id, "rebalance_id"), "status": _COMPLETE}
        header = await self._rebalances.find_one(key)
        if header is None:
            raise NotFound(f"rebalance {rebalance_id} not found")
        return header

    async def _headers_including(
        self, portfolio_ids: Sequence[str], order: SortSpec
    ) -> list[Document]:
        """The complete runs including any of `portfolio_ids`, sorted here in `order`: asked
        for a few ids at a time, their number has no bound a query could carry."""
        runs: set[ObjectId] = set()
        unique = list(dict.fromkeys(portfolio_ids))
        for ids in batched(unique, _CONCURRENT_LOOKUPS, strict=False):
            runs.update(*await asyncio.gather(*(self._runs_of(i) for i in ids)))
        headers: list[Document] = []
        for chunk in _in_chunks(runs):
            complete = {"_id": {"$in": chunk}, "status": _COMPLETE}
            headers.extend(await self._rebalances.find(complete).to_list())
        for field, direction in reversed(order):  # stable sorts, least significant key first
            headers.sort(key=lambda header: header[field], reverse=direction == DESCENDING)
        return headers

    async def delete_rebalance(self, rebalance_id: str, version: int) -> None:
        key = {"_id": object_id(rebalance_id, "rebalance_id")}
        hidden = await self._rebalances.find_one_and_update(
            key | {"version": version, "status": _COMPLETE}, {"$set": {"status": _DELETING}}
        )
        if hidden is None:
            stored = await self._rebalances.find_one(key | {"status": _COMPLETE})
            raise missing_or_stale(stored, "rebalance", rebalance_id, version)
        await self._drop_rebalance(key["_id"])

    async def sweep_unfinished_rebalances(self, older_than: timedelta) -> int:
        """Remove runs whose writing or deleting stopped half-way (a crash)."""
        query = {"status": {"$ne": _COMPLETE}, "created_at": {"$lt": now() - older_than}}
        stale = [doc["_id"] async for doc in self._rebalances.find(query, {"_id": 1})]
        for rebalance_id in stale:
            await self._drop_rebalance(rebalance_id)
        return len(stale)

    async def _drop_rebalance(self, rebalance_id: ObjectId) -> None:
        await self._results.delete_many({"rebalance_id": rebalance_id})
        await self._rebalances.delete_one({"_id": rebalance_id})


_RESULT_ORDER = [("index", ASCENDING), ("part", ASCENDING)]


def _in_chunks[T](values: Iterable[T]) -> Iterator[list[T]]:
    return (list(chunk) for chunk in batched(values, _IDS_PER_QUERY, strict=False))


def _commands(docs: Iterable[Document]) -> Iterator[list[Document]]:
    """Documents in order, grouped into inserts within the per-command bounds."""
    command: list[Document] = []
    positions = 0
    for doc in docs:
        size = len(doc.get("positions", ()))
        full = len(command) == _DOCUMENTS_PER_COMMAND
        if command and (full or positions + size > _POSITIONS_PER_COMMAND):
            yield command
            command, positions = [], 0
        command.append(doc)
        positions += size
    if command:
        yield command
