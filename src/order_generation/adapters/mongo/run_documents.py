"""The documents of a stored run and back: the header, and each portfolio result split into
parts of at most _POSITIONS_PER_DOCUMENT positions (part 0 carries the portfolio's own fields).
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from itertools import islice

from bson import ObjectId

from order_generation.adapters.mongo.documents import Document, policy_from_doc
from order_generation.domain.drifts import Drift
from order_generation.domain.explanations import Breach
from order_generation.domain.rebalance import RebalanceResult, trade
from order_generation.domain.runs import PortfolioFailure, PortfolioOutcome, RebalanceRun

# A portfolio result is stored as parts of at most this many positions, each written by a
# command of its own: no document nears MongoDB's 16 MB however many securities a portfolio
# holds, and the embedded server, which runs one command at a time, never spends more than
# ~5-10 ms on one write, so reads get in between (a real MongoDB pays more round trips).
_POSITIONS_PER_DOCUMENT = 25


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


def joined(results: Iterable[Document]) -> list[Document]:
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


def stored_run(header: Document, results: list[Document]) -> StoredRun:
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


def header_doc(run: RebalanceRun) -> Document:
    return {
        "model_id": run.model_id,
        "model_name": run.model_name,
        "rebalance_date": run.rebalance_date,
        "number_of_portfolios": len(run.outcomes),
        "model_version": run.model_version,
        # So that a page of the rebalanced portfolios is a range of indexes (few fail).
        "failed_indexes": [
            index
            for index, outcome in enumerate(run.outcomes)
            if isinstance(outcome, PortfolioFailure)
        ],
    }


def page_indexes(header: Document, offset: int, limit: int) -> list[int] | None:
    """The indexes of the rebalanced portfolios `offset` to `offset + limit`, or None for a
    run stored before its header listed its failures."""
    failed = header.get("failed_indexes")
    if failed is None:
        return None
    skipped = set(failed)
    rebalanced = (i for i in range(header["number_of_portfolios"]) if i not in skipped)
    return list(islice(rebalanced, offset, offset + limit))


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


def outcome_docs(
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
    trade_date = datetime.combine(outcome.trade_date, time(), UTC)
    positions = [_position_doc(d, tickers.get(d.security_id)) for d in result.drifts]
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


def _position_doc(drift: Drift, ticker: str | None) -> Document:
    """What the report cannot derive: market values are price x quantity, and the trade, if
    any, is the change of quantity (on the portfolio's trade date)."""
    doc: Document = {"security_id": drift.security_id}
    if ticker:
        doc["ticker"] = ticker
    return doc | {
        "price": drift.price,
        "original_quantity": drift.original_quantity,
        "adjusted_quantity": drift.adjusted_quantity,
        "target": drift.target,
        "high_drift": drift.high_drift,
        "low_drift": drift.low_drift,
        "actual": drift.actual,
        "actual_drift": drift.actual_drift,
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
        trade(d.security_id, d.original_quantity, d.adjusted_quantity)
        for d in drifts
        if d.adjusted_quantity != d.original_quantity
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
