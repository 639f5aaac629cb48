"""Stored runs: a small header in `rebalances` and, in `rebalance_portfolios`, each portfolio
result in parts of at most _POSITIONS_PER_DOCUMENT positions, so no document grows with the
number of portfolios or of positions. Without transactions, the header's status makes a run
visible only once all its parts are written."""

import asyncio
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
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
    policy_from_doc,
)
from order_generation.domain.drifts import Drift
from order_generation.domain.errors import NotFound
from order_generation.domain.rebalance import Breach, RebalanceResult, Trade
from order_generation.domain.runs import PortfolioFailure, PortfolioOutcome, RebalanceRun

_PENDING, _COMPLETE, _DELETING = "pending", "complete", "deleting"
# A portfolio result is stored as parts of at most this many positions, each written by a
# command of its own: no document nears MongoDB's 16 MB however many securities a portfolio
# holds, and the embedded server, which runs one command at a time, never spends more than
# ~20 ms on one write, so reads get in between (a real MongoDB pays more round trips).
_POSITIONS_PER_DOCUMENT = 50
# Consecutive parts go in one insert of at most this many positions and documents, so a
# run of small portfolios pays one round trip per command, not per document.
_POSITIONS_PER_COMMAND = 50
_DOCUMENTS_PER_COMMAND = 10
# Ids per query: the embedded engine's SQL for `$in` fails from about 495 values ("Expression
# tree is too large"), and a real MongoDB bounds a command to 16 MB; 200 fits both.
_IDS_PER_QUERY = 200
_CONCURRENT_LOOKUPS = 20  # portfolio ids looked up at once (one query each)
_RUN_SORT_FIELDS = {
    "rebalance_id": "_id",
    "model_name": "model_name",
    "rebalance_date": "rebalance_date",
    "number_of_portfolios": "number_of_portfolios",
}
_FIRST_PART = {"part": {"$in": [0, None]}}  # results written before the split have no `part`


@dataclass(frozen=True)
class StoredRun:
    """A stored run as read back: `run.outcomes` holds the portfolios asked for (all of them,
    a page, or one), `tickers` the ticker stored with each of their positions."""

    run: RebalanceRun
    created_at: datetime
    number_of_portfolios: int
    tickers: Mapping[str, str]

    @property
    def outcomes(self) -> tuple[PortfolioOutcome | PortfolioFailure, ...]:
        return self.run.outcomes


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
        await self._results.create_index("portfolio_id")
        await self.sweep_unfinished_rebalances(timedelta(hours=1))

    async def insert_rebalance(
        self, run: RebalanceRun, tickers: Mapping[str, str] | None = None
    ) -> RebalanceRun:
        """Store a run; `tickers` (security id -> ticker) are kept with the positions."""
        header = _header_doc(run) | {"status": _PENDING, "version": 1, "created_at": now()}
        rebalance_id = (await self._rebalances.insert_one(header)).inserted_id
        try:
            docs = (
                doc
                for index, outcome in enumerate(run.outcomes)
                for doc in _outcome_docs(rebalance_id, index, outcome, tickers or {})
            )
            for command in _commands(docs):
                await self._results.insert_many(command)
            complete = {"$set": {"status": _COMPLETE}}
            await self._rebalances.update_one({"_id": rebalance_id}, complete)
        except BaseException:
            # Best effort; a crash here leaves a pending run that the next start sweeps.
            await asyncio.shield(self._drop_rebalance(rebalance_id))
            raise
        return replace(run, rebalance_id=str(rebalance_id), version=1)

    async def get_rebalance(self, rebalance_id: str) -> StoredRun:
        header = await self._header(rebalance_id)
        results = self._results.find({"rebalance_id": header["_id"]}).sort(_RESULT_ORDER)
        return _stored_run(header, _joined(await results.to_list()))

    async def run_portfolios(self, rebalance_id: str, offset: int, limit: int) -> StoredRun:
        """A page of a run's rebalanced portfolios (failures are not in it), in run order;
        only that page's documents are read."""
        header = await self._header(rebalance_id)
        key = {"rebalance_id": header["_id"]}
        succeeded = key | _FIRST_PART | {"error": {"$exists": False}}
        firsts = self._results.find(succeeded).sort("index", ASCENDING).skip(offset).limit(limit)
        page = await firsts.to_list()
        if not page:
            return _stored_run(header, [])
        indexes = {doc["index"] for doc in page}
        span = {"$gte": page[0]["index"], "$lte": page[-1]["index"]}
        rest = self._results.find(key | {"index": span, "part": {"$gt": 0}})
        results = page + [doc async for doc in rest if doc["index"] in indexes]
        results.sort(key=lambda doc: (doc["index"], doc.get("part", 0)))
        return _stored_run(header, _joined(results))

    async def run_portfolio(self, rebalance_id: str, portfolio_id: str) -> StoredRun:
        """One rebalanced portfolio of a run; NotFound if the run did not rebalance it."""
        header = await self._header(rebalance_id)
        query = {"rebalance_id": header["_id"], "portfolio_id": portfolio_id}
        found = _joined(await self._results.find(query).sort(_RESULT_ORDER).to_list())
        if not found:
            raise NotFound(f"portfolio {portfolio_id} is not in rebalance {rebalance_id}")
        if "error" in found[0]:
            raise NotFound(
                f"portfolio {portfolio_id} failed in rebalance {rebalance_id} and has no "
                f"positions: {found[0]['error']['message']}",
                {"error": found[0]["error"]},
            )
        return _stored_run(header, found)

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
        by_run: dict[ObjectId, list[Document]] = {header["_id"]: [] for header in headers}
        for ids in _in_chunks(by_run):
            results = self._results.find({"rebalance_id": {"$in": ids}})
            for doc in _joined(await results.sort(_RUNS_RESULT_ORDER).to_list()):
                by_run[doc["rebalance_id"]].append(doc)
        return [_stored_run(header, by_run[header["_id"]]) for header in headers]

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
_RUNS_RESULT_ORDER = [("rebalance_id", ASCENDING), *_RESULT_ORDER]


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


def _joined(results: Iterable[Document]) -> list[Document]:
    """Result documents in (run, index, part) order, each portfolio's parts made one."""
    joined: list[Document] = []
    for doc in results:
        # Part 0 (or a document written before results were split, without `part`)
        # starts a portfolio; the later parts only carry more of its positions.
        if doc.get("part", 0) > 0:
            joined[-1]["positions"].extend(doc["positions"])
        else:
            joined.append(doc)
    return joined


def _stored_run(header: Document, results: list[Document]) -> StoredRun:
    run = _run_from_doc(header, tuple(_outcome_from_doc(doc) for doc in results))
    tickers = {
        p["security_id"]: p["ticker"]
        for doc in results
        for p in doc.get("positions", ())
        if p.get("ticker")
    }
    return StoredRun(
        run=run,
        # Runs stored before created_at was kept in the header read as created when dated.
        created_at=header.get("created_at") or header["rebalance_date"],
        number_of_portfolios=header["number_of_portfolios"],
        tickers=tickers,
    )


def _header_doc(run: RebalanceRun) -> Document:
    return {
        "model_id": run.model_id,
        "model_name": run.model_name,
        "rebalance_date": run.rebalance_date,
        "number_of_portfolios": len(run.outcomes),
        "model_version": run.model_version,
    }


def _run_from_doc(
    header: Document, outcomes: tuple[PortfolioOutcome | PortfolioFailure, ...]
) -> RebalanceRun:
    return RebalanceRun(
        model_id=header["model_id"],
        model_name=header["model_name"],
        rebalance_date=header["rebalance_date"],
        outcomes=outcomes,
        rebalance_id=str(header["_id"]),
        version=header["version"],
        model_version=header.get("model_version"),  # absent in runs stored before it was kept
    )


def _outcome_docs(
    rebalance_id: ObjectId,
    index: int,
    outcome: PortfolioOutcome | PortfolioFailure,
    tickers: Mapping[str, str],
) -> Iterator[Document]:
    """Part 0 holds the portfolio's own fields; every part holds the key and its positions."""

    def key(part: int) -> Document:
        return {
            "rebalance_id": rebalance_id,
            "index": index,
            "part": part,
            "portfolio_id": outcome.portfolio_id,
        }

    if isinstance(outcome, PortfolioFailure):
        yield key(0) | {"error": {"code": outcome.code, "message": outcome.message}}
        return
    result = outcome.result
    trades = {t.security_id: t for t in result.trades}
    trade_date = datetime.combine(outcome.trade_date, time(), UTC)
    positions = [
        _position_doc(d, trades.get(d.security_id), trade_date, tickers.get(d.security_id))
        for d in result.drifts
    ]
    yield key(0) | {
        "portfolio_name": outcome.portfolio_name,
        "trade_date": trade_date,
        "market_value": result.market_value,
        "cash_before_rebalance": result.cash_before,
        "cash_after_rebalance": result.cash_after,
        "objective": result.objective,
        "solver_status": result.status,
        "solver_method": result.method,
        "solve_seconds": result.solve_seconds,
        "policy": result.policy.as_dict(),
        "mode": result.mode,
        "breaches": [b._asdict() for b in result.breaches],
        "positions": positions[:_POSITIONS_PER_DOCUMENT],
    }
    for part, start in enumerate(
        range(_POSITIONS_PER_DOCUMENT, len(positions), _POSITIONS_PER_DOCUMENT), start=1
    ):
        yield key(part) | {"positions": positions[start : start + _POSITIONS_PER_DOCUMENT]}


def _position_doc(
    drift: Drift, trade: Trade | None, trade_date: datetime, ticker: str | None
) -> Document:
    return {
        "security_id": drift.security_id,
        "ticker": ticker,
        "price": drift.price,
        "original_quantity": drift.original_quantity,
        "adjusted_quantity": drift.adjusted_quantity,
        "original_position_market_value": drift.original_market_value,
        "adjusted_position_market_value": drift.adjusted_market_value,
        "target": drift.target,
        "high_drift": drift.high_drift,
        "low_drift": drift.low_drift,
        "actual": drift.actual,
        "actual_drift": drift.actual_drift,
        "transaction_type": trade.side if trade else None,
        "trade_quantity": trade.quantity if trade else None,
        "trade_date": trade_date if trade else None,
    }


def _outcome_from_doc(doc: Document) -> PortfolioOutcome | PortfolioFailure:
    if "error" in doc:
        return PortfolioFailure(doc["portfolio_id"], doc["error"]["code"], doc["error"]["message"])
    positions = doc["positions"]
    breaches = tuple(Breach(**b) for b in doc.get("breaches", ()))
    breached = {b.security_id for b in breaches}
    drifts = tuple(
        Drift(
            security_id=p["security_id"],
            price=p["price"],
            original_quantity=p["original_quantity"],
            adjusted_quantity=p["adjusted_quantity"],
            target=p["target"],
            low_drift=p["low_drift"],
            high_drift=p["high_drift"],
            actual=p["actual"],
            actual_drift=p["actual_drift"],
            breached=p["security_id"] in breached,
        )
        for p in positions
    )
    trades = tuple(
        Trade(p["security_id"], p["transaction_type"], p["trade_quantity"])
        for p in positions
        if p["transaction_type"]
    )
    result = RebalanceResult(
        quantities={d.security_id: d.adjusted_quantity for d in drifts},
        trades=trades,
        drifts=drifts,
        market_value=doc["market_value"],
        cash_before=doc["cash_before_rebalance"],
        cash_after=doc["cash_after_rebalance"],
        objective=doc["objective"],
        status=doc["solver_status"],
        method=doc["solver_method"],
        solve_seconds=doc["solve_seconds"],
        policy=policy_from_doc(doc.get("policy")),
        mode=doc.get("mode", "full"),
        breaches=breaches,
    )
    trade_date: date = doc["trade_date"].date()
    return PortfolioOutcome(doc["portfolio_id"], doc["portfolio_name"], result, trade_date)
