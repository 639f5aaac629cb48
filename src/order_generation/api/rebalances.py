"""Rebalance endpoints: run a rebalance, and read or delete stored runs."""

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Annotated

from fastapi import APIRouter, Body, Header, Path, Query, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from order_generation.api.dependencies import RebalanceServiceDep, StoreDep
from order_generation.api.rebalance_schemas import (
    RebalanceFailureOut,
    RebalanceOut,
    StoredPortfolio,
    StoredPosition,
    StoredRebalance,
    run_out,
    stored_positions,
)
from order_generation.api.schemas import (
    ErrorBody,
    Offset,
    PolicyBody,
    PortfolioId,
    PortfoliosBody,
    StoredId,
    Version,
)
from order_generation.domain.runs import PortfolioOutcome
from order_generation.service.sorting import parse_sort, sort_pattern

router = APIRouter(
    prefix="/api/v1",
    tags=["rebalance"],
    responses={
        400: {"model": ErrorBody, "description": "Invalid input"},
        404: {"model": ErrorBody, "description": "Not found"},
    },
)
Limit = Annotated[int, Query(ge=1, le=100)]
RUN_SORT_FIELDS = ("rebalance_id", "model_name", "rebalance_date", "number_of_portfolios")
DEFAULT_RUN_SORT = "-rebalance_date"
SortBy = Annotated[
    str | None,
    Query(
        description=f"Comma list of {', '.join(RUN_SORT_FIELDS)}; prefix + or -; "
        f"default {DEFAULT_RUN_SORT}",
        json_schema_extra={"pattern": sort_pattern(RUN_SORT_FIELDS)},
    ),
]
# A request needs a few dozen event-loop turns; a streamed answer gives this many per item, so
# a request arriving meanwhile does not wait an item's worth of work (~0.7 ms) at each turn.
_TURNS_PER_ITEM = 4
Override = Annotated[
    PolicyBody | None,
    Body(
        description="Policy fields for this run only; they replace the same fields of the "
        "model's policy, the others keep the model's. No body: the model's policy."
    ),
]

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Makes retries safe: a retry with the same key within the window "
        "(IDEMPOTENCY_WINDOW_SECONDS, 24 h) answers the first request's run, same "
        "rebalance_id, and stores nothing new; meanwhile it waits for the first request "
        "(409 past the deadline). The key of a failed request is free again. Reusing a key "
        "for another target or body is a 422.",
        examples=["3f1c9a52-6f0e-4d51-9a57-5d2b8f0c1e77"],
    ),
]
REPLAYED = "Idempotent-Replayed"
_IDEMPOTENCY_RESPONSES: dict[int | str, dict[str, object]] = {
    409: {"model": ErrorBody, "description": "The first request with the key is still running"},
    422: {
        "model": ErrorBody,
        "description": "No feasible solution, solver timeout, or the Idempotency-Key was "
        "first used for another request",
    },
    503: {
        "model": ErrorBody,
        "description": "A GlobeCo service is unavailable, the deadline passed "
        "(REBALANCE_DEADLINE_SECONDS), or the database is unavailable",
    },
}


@router.post("/portfolio/{portfolio_id}/rebalance", responses=_IDEMPOTENCY_RESPONSES)
@router.post("/rebalance/portfolio/{portfolio_id}", include_in_schema=False)
async def rebalance_portfolio(
    portfolio_id: Annotated[PortfolioId, Path()],
    service: RebalanceServiceDep,
    response: Response,
    policy: Override = None,
    idempotency_key: IdempotencyKey = None,
) -> RebalanceOut:
    changes = policy.changes() if policy else None
    done = await service.rebalance_portfolio(portfolio_id, changes, idempotency_key)
    if done.replayed:
        response.headers[REPLAYED] = "true"
    outcome = done.run.outcomes[0]
    assert isinstance(outcome, PortfolioOutcome)
    return RebalanceOut.of(done.run, outcome, done.tickers)


@router.post(
    "/model/{model_id}/rebalance",
    response_model=list[RebalanceOut | RebalanceFailureOut],
    responses=_IDEMPOTENCY_RESPONSES,
)
@router.post("/rebalance/model/{model_id}", include_in_schema=False)
async def rebalance_model(
    model_id: StoredId,
    service: RebalanceServiceDep,
    policy: Override = None,
    idempotency_key: IdempotencyKey = None,
) -> StreamingResponse:
    """One entry per portfolio of the model; a failed portfolio carries its error.

    A model without portfolios answers `[]` and stores no run."""
    changes = policy.changes() if policy else None
    done = await service.rebalance_model(model_id, changes, idempotency_key)
    entries = run_out(done.run, done.tickers)
    headers = {REPLAYED: "true"} if done.replayed else None
    return StreamingResponse(_json_array(entries), media_type="application/json", headers=headers)


@router.get("/rebalances")
async def list_rebalances(
    store: StoreDep, offset: Offset = 0, limit: Limit = 10, sort_by: SortBy = None
) -> list[StoredRebalance]:
    """Stored runs, newest first unless `sort_by` says otherwise."""
    sort = parse_sort(sort_by, RUN_SORT_FIELDS, DEFAULT_RUN_SORT)
    runs = await store.runs.list_rebalances(offset, limit, sort)
    return [StoredRebalance.of(run) for run in runs]


@router.get("/rebalance/{rebalance_id}")
async def get_rebalance(rebalance_id: StoredId, store: StoreDep) -> StoredRebalance:
    return StoredRebalance.of(await store.runs.get_rebalance(rebalance_id))


@router.get("/rebalance/{rebalance_id}/portfolios")
async def get_rebalance_portfolios(
    rebalance_id: StoredId, store: StoreDep, offset: Offset = 0, limit: Limit = 10
) -> list[StoredPortfolio]:
    """A page of the run's rebalanced portfolios, in run order (failures: GET the run)."""
    stored = await store.runs.run_portfolios(rebalance_id, offset, limit)
    return [StoredPortfolio.of(o, stored.tickers) for o in stored.run.succeeded]


@router.get("/rebalance/{rebalance_id}/portfolio/{portfolio_id}/positions")
async def get_rebalance_positions(
    rebalance_id: StoredId, portfolio_id: str, store: StoreDep
) -> list[StoredPosition]:
    """One rebalanced portfolio's positions in the run."""
    stored = await store.runs.run_portfolio(rebalance_id, portfolio_id)
    [outcome] = stored.run.succeeded
    return stored_positions(outcome, stored.tickers)


@router.post("/rebalances/portfolios")
async def rebalances_of_portfolios(
    body: PortfoliosBody,
    store: StoreDep,
    offset: Offset = 0,
    limit: Limit = 10,
    sort_by: SortBy = None,
) -> list[StoredRebalance]:
    """Stored runs that include any of the given portfolios, newest first unless `sort_by`
    says otherwise."""
    sort = parse_sort(sort_by, RUN_SORT_FIELDS, DEFAULT_RUN_SORT)
    runs = await store.runs.list_rebalances(offset, limit, sort, portfolio_ids=body.portfolios)
    return [StoredRebalance.of(run) for run in runs]


@router.delete(
    "/rebalance/{rebalance_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={409: {"model": ErrorBody, "description": "Stale version"}},
)
async def delete_rebalance(rebalance_id: StoredId, version: Version, store: StoreDep) -> None:
    await store.runs.delete_rebalance(rebalance_id, version)


async def _json_array(items: Iterable[BaseModel]) -> AsyncIterator[bytes]:
    """A JSON array written one item at a time, letting other requests run in between: a
    1,000-portfolio answer is 30 MB and about a second of work."""
    yield b"["
    for i, item in enumerate(items):
        for _ in range(_TURNS_PER_ITEM):
            await asyncio.sleep(0)
        yield (b"," if i else b"") + item.__pydantic_serializer__.to_json(item)
    yield b"]"
