"""The MongoDB adapter: what reaches the server, through the real driver."""

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from bson import ObjectId
from bson.decimal128 import Decimal128
from bson.errors import InvalidDocument
from pymongo import AsyncMongoClient

from order_generation.adapters.mongo import MongoStore
from order_generation.config import Settings
from order_generation.domain.explanations import Breach
from order_generation.domain.models import InvestmentModel, Position
from order_generation.domain.policy import DEFAULT_POLICY, Policy
from order_generation.domain.rebalance import RebalanceProblem, solve
from order_generation.domain.runs import PortfolioFailure, PortfolioOutcome, RebalanceRun


async def test_decimals_are_stored_as_decimal128_and_come_back_exact(settings: Settings):
    assert settings.mongodb_url is not None
    store = MongoStore(settings.mongodb_url, settings.mongodb_database)
    await store.open()
    position = Position("S" * 24, Decimal("0.125"), Decimal("0.0001"), Decimal("0.3333333333"))
    created = await store.models.insert_model(
        InvestmentModel("exact", positions=(position,)), "tester"
    )

    raw_client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_url)
    raw = await raw_client[settings.mongodb_database]["models"].find_one({"name": "exact"})
    await raw_client.close()
    assert raw is not None
    stored = raw["positions"][0]  # type: ignore[index]
    assert stored["target"] == Decimal128("0.125")
    assert isinstance(stored["high_drift"], Decimal128)

    assert created.model_id is not None
    assert (await store.models.get_model(created.model_id)).positions == (position,)
    await store.close()


async def test_indexes_exist_after_open(settings: Settings):
    assert settings.mongodb_url is not None
    store = MongoStore(settings.mongodb_url, settings.mongodb_database)
    await store.open()
    await store.open()
    raw_client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_url)
    indexes = await raw_client[settings.mongodb_database]["models"].index_information()
    results = raw_client[settings.mongodb_database]["rebalance_portfolios"]
    result_indexes = await results.index_information()
    await raw_client.close()
    await store.close()
    keys = {info["key"][0][0]: info.get("unique", False) for info in indexes.values()}
    assert keys["name"] is True
    assert "portfolios" in keys
    result_keys = [[field for field, _ in info["key"]] for info in result_indexes.values()]
    assert ["rebalance_id", "index", "part"] in result_keys
    assert [
        "portfolio_id",
        "rebalance_id",
    ] in result_keys  # the runs of a portfolio, from the index


def _failures(count: int) -> tuple[PortfolioFailure, ...]:
    return tuple(PortfolioFailure(f"P{n:023d}", "OPTIMIZATION_FAILED", "x") for n in range(count))


async def test_a_run_that_fails_half_way_leaves_nothing_visible(settings: Settings):
    assert settings.mongodb_url is not None
    store = MongoStore(settings.mongodb_url, settings.mongodb_database)
    await store.open()
    unencodable = PortfolioFailure("P" * 24, "X", object())  # type: ignore[arg-type]
    outcomes = (*_failures(150), unencodable)
    run = RebalanceRun("m" * 24, "model", datetime.now(UTC), outcomes)

    with pytest.raises(InvalidDocument):
        await store.runs.insert_rebalance(run)

    assert await store.runs.list_rebalances(0, 10) == []
    raw_client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_url)
    database = raw_client[settings.mongodb_database]
    assert await database["rebalances"].count_documents({}) == 0
    assert await database["rebalance_portfolios"].count_documents({}) == 0
    await raw_client.close()
    await store.close()


async def test_the_sweep_removes_runs_a_crash_left_pending(settings: Settings):
    assert settings.mongodb_url is not None
    store = MongoStore(settings.mongodb_url, settings.mongodb_database)
    await store.open()
    stored = await store.runs.insert_rebalance(
        RebalanceRun("m" * 24, "model", datetime.now(UTC), _failures(3))
    )
    raw_client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_url)
    database = raw_client[settings.mongodb_database]
    crashed = {"status": "pending", "created_at": datetime.now(UTC) - timedelta(hours=2)}
    header = {"_id": ObjectId(stored.rebalance_id)}
    await database["rebalances"].update_one(header, {"$set": crashed})

    assert await store.runs.list_rebalances(0, 10) == []
    assert await store.runs.sweep_unfinished_rebalances(timedelta(hours=1)) == 1
    assert await database["rebalance_portfolios"].count_documents({}) == 0
    await raw_client.close()
    await store.close()


def _outcome(portfolio: int, in_model: int, held_outside: int) -> PortfolioOutcome:
    """A solved portfolio with `in_model + held_outside` positions (so as many drift rows)."""
    model = [f"M{portfolio:03d}{i:020d}" for i in range(in_model)]
    outside = [f"H{portfolio:03d}{i:020d}" for i in range(held_outside)]
    positions = tuple(
        Position(security_id, Decimal("0.005"), Decimal("0.001"), Decimal("0.0025"))
        for security_id in model
    )
    holdings = {security_id: i % 5 for i, security_id in enumerate(model)}
    holdings |= {security_id: 3 + i for i, security_id in enumerate(outside)}
    prices = {s: Decimal("7.25") + Decimal(i) * Decimal("0.37") for i, s in enumerate(holdings)}
    result = solve(RebalanceProblem(positions, holdings, Decimal("98765.4321"), prices))
    assert len(result.drifts) == in_model + held_outside
    return PortfolioOutcome(f"P{portfolio:023d}", f"Fund {portfolio}", result, date(2025, 3, 4))


def _exactly(outcome: PortfolioOutcome | PortfolioFailure) -> str:
    """Equal strings only if every Decimal has the same digits and exponent, not just value."""
    if isinstance(outcome, PortfolioFailure):
        return repr(outcome)
    return repr(replace(outcome, result=replace(outcome.result, quantities={})))


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[MongoStore]:
    assert settings.mongodb_url is not None
    store = MongoStore(settings.mongodb_url, settings.mongodb_database)
    await store.open()
    yield store
    await store.close()


async def _parts(database: Any, rebalance_id: str | None) -> list[tuple[int, int, int]]:
    """(index, part, positions) of each stored result document of a run, in order."""
    cursor = database["rebalance_portfolios"].find({"rebalance_id": ObjectId(rebalance_id)})
    docs = await cursor.sort([("index", 1), ("part", 1)]).to_list()
    return [(doc["index"], doc["part"], len(doc.get("positions", []))) for doc in docs]


async def test_a_large_portfolio_is_stored_in_parts_and_reads_back_exactly(
    store: MongoStore, database: Any
):
    large = _outcome(0, in_model=70, held_outside=50)
    failure = PortfolioFailure("F" * 24, "OPTIMIZATION_FAILED", "no solution")
    run = RebalanceRun("m" * 24, "model", datetime.now(UTC), (large, failure, _outcome(2, 3, 1)))

    stored = await store.runs.insert_rebalance(run)

    assert await _parts(database, stored.rebalance_id) == [
        (0, 0, 25),
        (0, 1, 25),
        (0, 2, 25),
        (0, 3, 25),
        (0, 4, 20),
        (1, 0, 0),
        (2, 0, 4),
    ]
    docs = await database["rebalance_portfolios"].find({"index": 0}).sort("part", 1).to_list()
    assert {doc["portfolio_id"] for doc in docs} == {large.portfolio_id}
    assert docs[0]["market_value"] == Decimal128(str(large.result.market_value))
    assert all("market_value" not in doc and "portfolio_name" not in doc for doc in docs[1:])
    assert stored.rebalance_id is not None
    read = await store.runs.get_rebalance(stored.rebalance_id)
    assert read.outcomes == run.outcomes
    assert [_exactly(o) for o in read.outcomes] == [_exactly(o) for o in run.outcomes]
    [found] = await store.runs.list_rebalances(0, 10, portfolio_ids=[large.portfolio_id])
    assert found.outcomes == run.outcomes


async def test_twenty_five_positions_fill_one_document_and_twenty_six_need_two(
    store: MongoStore, database: Any
):
    run = RebalanceRun(
        "m" * 24, "model", datetime.now(UTC), (_outcome(0, 25, 0), _outcome(1, 20, 6))
    )

    stored = await store.runs.insert_rebalance(run)

    assert await _parts(database, stored.rebalance_id) == [(0, 0, 25), (1, 0, 25), (1, 1, 1)]
    assert stored.rebalance_id is not None
    assert (await store.runs.get_rebalance(stored.rebalance_id)).outcomes == run.outcomes


async def test_a_result_stored_as_one_document_without_parts_still_reads(
    store: MongoStore, database: Any
):
    """Runs written before results were split keep one document per portfolio, no `part`."""
    run = RebalanceRun("m" * 24, "model", datetime.now(UTC), (_outcome(0, 70, 50),))
    stored = await store.runs.insert_rebalance(run)
    results = database["rebalance_portfolios"]
    head, *rest = await results.find({"index": 0}).sort("part", 1).to_list()
    for doc in rest:
        head["positions"] += doc["positions"]
    del head["part"], head["_id"]
    await results.delete_many({})
    await results.insert_one(head)

    assert stored.rebalance_id is not None
    read = await store.runs.get_rebalance(stored.rebalance_id)
    assert [_exactly(o) for o in read.outcomes] == [_exactly(o) for o in run.outcomes]
    [found] = await store.runs.list_rebalances(0, 10, portfolio_ids=[run.outcomes[0].portfolio_id])
    assert found.outcomes == run.outcomes


async def test_a_failure_between_the_parts_of_a_portfolio_leaves_nothing(
    store: MongoStore, database: Any
):
    broken = _outcome(1, 70, 50)
    drifts = list(broken.result.drifts)
    # position 110 is in part 4 (positions 100-119), and an object() id cannot be encoded
    drifts[110] = drifts[110]._replace(security_id=object())  # type: ignore[arg-type]
    broken = replace(broken, result=replace(broken.result, drifts=tuple(drifts)))
    run = RebalanceRun("m" * 24, "model", datetime.now(UTC), (_outcome(0, 70, 50), broken))
    written: list[tuple[int, int]] = []
    insert_many = store.runs._results.insert_many

    async def counted(docs: Any, *args: Any, **kwargs: Any) -> Any:
        outcome = await insert_many(docs, *args, **kwargs)
        written.extend((doc["index"], doc["part"]) for doc in docs)
        return outcome

    store.runs._results.insert_many = counted  # type: ignore[method-assign, assignment]

    with pytest.raises(InvalidDocument):
        await store.runs.insert_rebalance(run)

    # Written two inserts at a time, so in either order of the two.
    assert sorted(written) == [*((0, part) for part in range(5)), *((1, part) for part in range(4))]
    assert await store.runs.list_rebalances(0, 10) == []
    assert await database["rebalances"].count_documents({}) == 0
    assert await database["rebalance_portfolios"].count_documents({}) == 0


POLICY = Policy(
    mode="bands",
    min_cash=Decimal("1000.00"),
    min_cash_fraction=Decimal("0.02"),
    withdraw=Decimal("5000"),
    no_buy=frozenset({"B" * 24}),
    hold=frozenset({"H" * 24}),
    min_trade_value=Decimal("500"),
    min_trade_quantity=10,
    round_lot=100,
    round_lots={"B" * 24: 10},
    bands="best_effort",
)


async def test_a_model_policy_is_stored_with_decimal128_and_reads_back(
    store: MongoStore, database: Any
):
    created = await store.models.insert_model(
        InvestmentModel("with policy", policy=POLICY), "tester"
    )
    raw = await database["models"].find_one({"name": "with policy"})
    assert raw["policy"]["min_cash"] == Decimal128("1000.00")
    assert raw["policy"]["round_lots"] == {"B" * 24: 10}
    assert created.model_id is not None
    assert (await store.models.get_model(created.model_id)).policy == POLICY


async def test_a_replace_keeps_the_stored_policy_only_when_told(store: MongoStore):
    created = await store.models.insert_model(InvestmentModel("kept", policy=POLICY), "tester")
    edited = replace(created, name="kept, renamed", policy=DEFAULT_POLICY)
    kept = await store.models.replace_model(edited, "tester", "updated", keep_policy=True)
    assert (kept.name, kept.version, kept.policy) == ("kept, renamed", 2, POLICY)
    reset = await store.models.replace_model(
        replace(kept, policy=DEFAULT_POLICY), "tester", "updated"
    )
    assert (reset.version, reset.policy) == (3, DEFAULT_POLICY)


async def test_a_model_stored_before_policies_reads_as_the_default_policy(
    store: MongoStore, database: Any
):
    created = await store.models.insert_model(InvestmentModel("old", policy=POLICY), "tester")
    await database["models"].update_one({"name": "old"}, {"$unset": {"policy": ""}})
    assert created.model_id is not None
    assert (await store.models.get_model(created.model_id)).policy == DEFAULT_POLICY


def _with_breach(outcome: PortfolioOutcome) -> PortfolioOutcome:
    """The outcome as best-effort bands would leave it: the first security outside its band."""
    result = outcome.result
    first = result.drifts[0]
    breach = Breach(
        first.security_id,
        Decimal("100.5"),
        Decimal("200.25"),
        first.adjusted_market_value,
        Decimal("100.5") - first.adjusted_market_value,
        "no allowed quantity is inside the band",
    )
    drifts = (first._replace(breached=True), *result.drifts[1:])
    applied = replace(result, policy=POLICY, mode="full", breaches=(breach,), drifts=drifts)
    return replace(outcome, result=applied)


async def test_a_run_keeps_the_policy_mode_status_and_breaches(store: MongoStore, database: Any):
    outcome = _with_breach(_outcome(0, 3, 1))
    run = RebalanceRun("m" * 24, "model", datetime.now(UTC), (outcome, _outcome(1, 2, 0)))
    stored = await store.runs.insert_rebalance(run)

    raw = await database["rebalance_portfolios"].find_one({"index": 0})
    assert raw["policy"]["withdraw"] == Decimal128("5000")
    assert raw["mode"] == "full"
    assert raw["breaches"][0]["floor"] == Decimal128("100.5")
    assert stored.rebalance_id is not None
    read = await store.runs.get_rebalance(stored.rebalance_id)
    assert read.outcomes == run.outcomes
    [first, second] = read.run.succeeded
    assert (first.result.policy, first.result.breaches) == (POLICY, outcome.result.breaches)
    assert first.result.drifts[0].breached
    assert not any(d.breached for d in second.result.drifts)


async def test_a_run_stored_before_policies_reads_with_the_default_policy(
    store: MongoStore, database: Any
):
    run = RebalanceRun("m" * 24, "model", datetime.now(UTC), (_outcome(0, 3, 1),))
    stored = await store.runs.insert_rebalance(run)
    unset = {"$unset": {"policy": "", "mode": "", "breaches": ""}}
    await database["rebalance_portfolios"].update_many({}, unset)

    assert stored.rebalance_id is not None
    [outcome] = (await store.runs.get_rebalance(stored.rebalance_id)).run.succeeded
    assert (outcome.result.policy, outcome.result.mode) == (DEFAULT_POLICY, "full")
    assert outcome.result.breaches == ()
    assert (await store.runs.get_rebalance(stored.rebalance_id)).outcomes == run.outcomes
