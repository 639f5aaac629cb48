"""Stored runs read back through the real driver: sorted by the server, a page at a time,
one portfolio alone, with when they were stored and the tickers they priced by."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import Decimal128, ObjectId
from pymongo import ASCENDING, DESCENDING, monitoring

from order_generation.adapters.mongo import MongoStore
from order_generation.config import Settings
from order_generation.domain.errors import InvalidInput, NotFound
from order_generation.domain.runs import PortfolioFailure, PortfolioOutcome, RebalanceRun
from tests.adapters.test_mongo import _failures, _outcome

DAY = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)


class DocumentsRead(monitoring.CommandListener):
    """Counts the documents each collection sent back to find and getMore commands."""

    def __init__(self) -> None:
        self.collections: dict[int, str] = {}
        self.documents: dict[str, int] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("find", "getMore"):
            name = event.command.get("find") or event.command.get("collection")
            self.collections[event.request_id] = str(name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        name = self.collections.pop(event.request_id, None)
        if name is not None:
            cursor = event.reply["cursor"]
            batch = cursor.get("firstBatch", cursor.get("nextBatch", []))
            self.documents[name] = self.documents.get(name, 0) + len(batch)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.collections.pop(event.request_id, None)

    def reset(self) -> None:
        self.documents.clear()


@pytest.fixture
def listener() -> DocumentsRead:
    return DocumentsRead()


@pytest.fixture
async def store(settings: Settings, listener: DocumentsRead) -> AsyncIterator[MongoStore]:
    assert settings.mongodb_url is not None
    store = MongoStore(settings.mongodb_url, settings.mongodb_database, event_listeners=[listener])
    await store.open()
    yield store
    await store.close()


def _run(
    name: str,
    outcomes: tuple[PortfolioOutcome | PortfolioFailure, ...],
    when: datetime = DAY,
) -> RebalanceRun:
    return RebalanceRun("m" * 24, name, when, outcomes)


async def test_runs_sort_by_each_field_both_ways_ties_by_id(store: MongoStore):
    specs = [  # name, portfolios, hours after DAY
        ("bravo", 3, 1),
        ("alpha", 1, 3),
        ("bravo", 2, 3),
        ("charlie", 1, 2),
    ]
    ids = []
    for name, count, hours in specs:
        run = _run(name, _failures(count), DAY + timedelta(hours=hours))
        ids.append((await store.runs.insert_rebalance(run)).rebalance_id)

    async def order(*sort: tuple[str, int]) -> list[str | None]:
        return [s.run.rebalance_id for s in await store.runs.list_rebalances(0, 10, sort)]

    # Default: newest first; the two runs at +3 h tie, the later id first.
    assert [s.run.rebalance_id for s in await store.runs.list_rebalances(0, 10)] == [
        ids[2],
        ids[1],
        ids[3],
        ids[0],
    ]
    assert await order(("rebalance_date", ASCENDING)) == [ids[0], ids[3], ids[1], ids[2]]
    assert await order(("model_name", ASCENDING)) == [ids[1], ids[0], ids[2], ids[3]]
    assert await order(("model_name", DESCENDING)) == [ids[3], ids[2], ids[0], ids[1]]
    assert await order(("number_of_portfolios", DESCENDING)) == [ids[0], ids[2], ids[3], ids[1]]
    assert await order(("number_of_portfolios", ASCENDING)) == [ids[1], ids[3], ids[2], ids[0]]
    assert await order(("rebalance_id", DESCENDING)) == ids[::-1]
    assert await order(("model_name", ASCENDING), ("rebalance_date", DESCENDING)) == [
        ids[1],
        ids[2],
        ids[0],
        ids[3],
    ]
    # The server sorts before it pages: the second page of two continues the order.
    page = await store.runs.list_rebalances(2, 2, [("model_name", ASCENDING)])
    assert [s.run.rebalance_id for s in page] == [ids[2], ids[3]]


async def test_the_sort_fields_have_indexes(store: MongoStore, database: Any):
    indexes = await database["rebalances"].index_information()
    keys = [[field for field, _ in info["key"]] for info in indexes.values()]
    for field in ("rebalance_date", "model_name", "number_of_portfolios"):
        assert ["status", field, "_id"] in keys


async def test_a_run_reads_back_when_it_was_stored(store: MongoStore, database: Any):
    before = datetime.now(UTC)
    stored = await store.runs.insert_rebalance(_run("model", _failures(1)))
    assert stored.rebalance_id is not None
    read = await store.runs.get_rebalance(stored.rebalance_id)
    assert before - timedelta(seconds=1) <= read.created_at <= datetime.now(UTC)
    assert read.created_at.tzinfo is not None

    # A run stored without created_at reads as created when it was dated.
    header = {"_id": ObjectId(stored.rebalance_id)}
    await database["rebalances"].update_one(header, {"$unset": {"created_at": ""}})
    assert (await store.runs.get_rebalance(stored.rebalance_id)).created_at == DAY
    [listed] = await store.runs.list_rebalances(0, 10)
    assert listed.created_at == DAY


def _big_run(count: int) -> tuple[RebalanceRun, list[PortfolioOutcome]]:
    """Every fifth portfolio failed; every seventh holds 60 positions (two parts)."""
    outcomes: list[PortfolioOutcome | PortfolioFailure] = []
    for n in range(count):
        if n % 5 == 4:
            outcomes.append(PortfolioFailure(f"F{n:023d}", "OPTIMIZATION_FAILED", "no"))
        else:
            outcomes.append(_outcome(n, 55, 5) if n % 7 == 0 else _outcome(n, 2, 1))
    run = _run("big", tuple(outcomes))
    return run, [o for o in outcomes if isinstance(o, PortfolioOutcome)]


async def test_a_page_of_portfolios_reads_only_that_page(
    store: MongoStore, listener: DocumentsRead
):
    run, succeeded = _big_run(120)
    stored = await store.runs.insert_rebalance(run)
    assert stored.rebalance_id is not None

    for offset, limit in ((0, 10), (13, 10), (90, 10), (95, 100)):
        listener.reset()
        page = await store.runs.run_portfolios(stored.rebalance_id, offset, limit)
        expected = succeeded[offset : offset + limit]
        assert page.run.outcomes == tuple(expected)
        assert page.number_of_portfolios == 120
        parts = sum(-(-len(o.result.drifts) // 25) for o in expected)  # 25 positions a part
        indexes = [int(o.portfolio_id[1:]) for o in expected]  # P<n>: the run's n-th
        # The failures inside the page's range of indexes come too (one small document each).
        failed = sum(n % 5 == 4 for n in range(indexes[0], indexes[-1])) if indexes else 0
        assert listener.documents.get("rebalance_portfolios", 0) == parts + failed
        assert listener.documents.get("rebalances", 0) == 1  # the header

    empty = await store.runs.run_portfolios(stored.rebalance_id, 96, 10)
    assert empty.run.outcomes == ()


async def test_a_page_of_a_run_stored_before_headers_listed_failures(
    store: MongoStore, database: Any
):
    run, succeeded = _big_run(40)
    stored = await store.runs.insert_rebalance(run)
    assert stored.rebalance_id is not None
    header = {"_id": ObjectId(stored.rebalance_id)}
    assert (await database["rebalances"].find_one(header))["failed_indexes"]
    await database["rebalances"].update_one(header, {"$unset": {"failed_indexes": ""}})
    for offset, limit in ((0, 10), (13, 10), (30, 10)):
        page = await store.runs.run_portfolios(stored.rebalance_id, offset, limit)
        assert page.run.outcomes == tuple(succeeded[offset : offset + limit])


async def test_one_portfolio_of_a_run_reads_whole_or_is_not_found(store: MongoStore):
    run, succeeded = _big_run(15)
    stored = await store.runs.insert_rebalance(run)
    assert stored.rebalance_id is not None
    large = succeeded[0]  # portfolio 0: 60 positions in two parts
    assert len(large.result.drifts) == 60

    found = await store.runs.run_portfolio(stored.rebalance_id, large.portfolio_id)
    assert found.run.outcomes == (large,)

    with pytest.raises(NotFound, match="not in rebalance"):
        await store.runs.run_portfolio(stored.rebalance_id, "X" * 24)
    with pytest.raises(NotFound, match="failed"):
        await store.runs.run_portfolio(stored.rebalance_id, f"F{4:023d}")
    with pytest.raises(NotFound, match="rebalance"):
        await store.runs.run_portfolio(str(ObjectId()), large.portfolio_id)
    with pytest.raises(NotFound):
        await store.runs.run_portfolios(str(ObjectId()), 0, 10)
    with pytest.raises(InvalidInput, match="rebalance_id"):
        await store.runs.run_portfolios("nope", 0, 10)


async def test_the_tickers_are_kept_with_the_positions(store: MongoStore, database: Any):
    outcome = _outcome(0, 3, 1)
    tickers = {d.security_id: f"T{i}" for i, d in enumerate(outcome.result.drifts[:3])}
    stored = await store.runs.insert_rebalance(_run("model", (outcome,)), tickers)
    assert stored.rebalance_id is not None

    raw = await database["rebalance_portfolios"].find_one({"index": 0})
    assert [p.get("ticker") for p in raw["positions"]] == ["T0", "T1", "T2", None]
    assert "ticker" not in raw["positions"][3]  # none known: not stored
    for read in (
        await store.runs.get_rebalance(stored.rebalance_id),
        await store.runs.run_portfolios(stored.rebalance_id, 0, 10),
        await store.runs.run_portfolio(stored.rebalance_id, outcome.portfolio_id),
        (await store.runs.list_rebalances(0, 10))[0],
    ):
        assert read.tickers == tickers
        assert read.run.outcomes == (outcome,)


class Inserts(monitoring.CommandListener):
    """The documents of each insert command, in the order they were sent."""

    def __init__(self) -> None:
        self.commands: list[list[Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "insert" and event.command["insert"] == "rebalance_portfolios":
            self.commands.append(list(event.command["documents"]))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_position_stores_only_what_the_report_cannot_derive(
    store: MongoStore, database: Any
):
    outcome = _outcome(0, 3, 1)
    stored = await store.runs.insert_rebalance(_run("model", (outcome,)))
    assert stored.rebalance_id is not None
    raw = await database["rebalance_portfolios"].find_one({"index": 0})
    drifts = outcome.result.drifts
    assert [p["security_id"] for p in raw["positions"]] == [d.security_id for d in drifts]
    stored_fields = {
        "security_id",
        "price",
        "original_quantity",
        "adjusted_quantity",
        "target",
        "low_drift",
        "high_drift",
        "actual",
        "actual_drift",
    }
    assert all(set(p) == stored_fields for p in raw["positions"])
    # Market values are price x quantity, a trade is the change of quantity.
    assert {t.quantity for t in outcome.result.trades} != {0}
    assert (await store.runs.get_rebalance(stored.rebalance_id)).run.outcomes == (outcome,)


async def test_a_run_stored_with_derived_fields_reads_back_the_same(
    store: MongoStore, database: Any
):
    """Runs stored before the layout dropped what it can derive kept market values, trade
    fields and a null ticker in every position; they read back as they were."""
    outcome = _outcome(0, 30, 2)
    stored = await store.runs.insert_rebalance(_run("model", (outcome,)))
    assert stored.rebalance_id is not None
    trades = {t.security_id: t for t in outcome.result.trades}
    trade_date = datetime(2025, 3, 4, tzinfo=UTC)
    results = database["rebalance_portfolios"]
    async for doc in results.find({"rebalance_id": ObjectId(stored.rebalance_id)}):
        drifts = {d.security_id: d for d in outcome.result.drifts}
        for position in doc["positions"]:
            drift, trade = drifts[position["security_id"]], trades.get(position["security_id"])
            position |= {
                "ticker": None,
                "original_position_market_value": Decimal128(drift.original_market_value),
                "adjusted_position_market_value": Decimal128(drift.adjusted_market_value),
                "transaction_type": trade.side if trade else None,
                "trade_quantity": trade.quantity if trade else None,
                "trade_date": trade_date if trade else None,
            }
        await results.replace_one({"_id": doc["_id"]}, doc)
    read = await store.runs.get_rebalance(stored.rebalance_id)
    assert read.run.outcomes == (outcome,)
    assert read.tickers == {}


async def test_small_results_share_an_insert_within_its_bounds(settings: Settings):
    assert settings.mongodb_url is not None
    inserts = Inserts()
    store = MongoStore(settings.mongodb_url, settings.mongodb_database, event_listeners=[inserts])
    await store.open()
    run, _ = _big_run(40)  # 2 or 3 positions each, 55 + 5 for every seventh, failures
    stored = await store.runs.insert_rebalance(run)
    assert stored.rebalance_id is not None

    # Two inserts are sent at a time, so they may start in either order; each holds
    # consecutive documents.
    commands = sorted(inserts.commands, key=lambda c: (c[0]["index"], c[0]["part"]))
    documents = [doc for command in commands for doc in command]
    assert [(d["index"], d["part"]) for d in documents] == sorted(
        (d["index"], d["part"]) for d in documents
    )
    assert len(inserts.commands) < len(documents) / 3
    for command in inserts.commands:
        assert len(command) <= 10
        assert sum(len(d.get("positions", ())) for d in command) <= 25 or len(command) == 1
    assert (await store.runs.get_rebalance(stored.rebalance_id)).run.outcomes == run.outcomes
    await store.close()


async def test_runs_of_more_portfolios_than_one_query_carries(store: MongoStore):
    """600 portfolio ids, more than the embedded engine takes in one `$in` (about 495)."""
    ids = [f"P{n:023d}" for n in range(600)]  # the ids _failures gives
    older = await store.runs.insert_rebalance(_run("all", _failures(600), DAY))
    newer = await store.runs.insert_rebalance(_run("some", _failures(3), DAY + timedelta(1)))
    await store.runs.insert_rebalance(
        _run("other", (PortfolioFailure("Q" * 24, "X", "x"),), DAY + timedelta(2))
    )

    asked = [*reversed(ids), *(f"U{n:023d}" for n in range(600))]  # with 600 unknown ids
    found = await store.runs.list_rebalances(0, 10, portfolio_ids=asked)
    assert [s.run.rebalance_id for s in found] == [newer.rebalance_id, older.rebalance_id]
    assert [len(s.outcomes) for s in found] == [3, 600]
    by_name = await store.runs.list_rebalances(
        1, 10, [("model_name", DESCENDING)], portfolio_ids=ids[500:]
    )
    assert [s.run.rebalance_id for s in by_name] == []  # only "all" holds 500-599: one run
    [only] = await store.runs.list_rebalances(0, 10, portfolio_ids=ids[500:])
    assert only.run.rebalance_id == older.rebalance_id
    assert await store.runs.list_rebalances(0, 10, portfolio_ids=[]) == []
