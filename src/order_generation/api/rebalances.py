"""Rebalance endpoints: run a rebalance, and read or delete stored runs."""

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Annotated

from fastapi import APIRouter, Body, Query, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from order_generation.api.dependencies import RebalanceServiceDep, StoreDep
from order_generation.api.rebalance_schemas import (
    RebalanceFailureOut,
    RebalanceOut,
    StoredRebalance,
    run_out,
)
from order_generation.api.schemas import ErrorBody, Offset, PolicyBody, PortfoliosBody
from order_generation.domain.runs import PortfolioOutcome

router = APIRouter(
    prefix="/api/v1",
    tags=["rebalance"],
    responses={
        400: {"model": ErrorBody, "description": "Invalid input"},
        404: {"model": ErrorBody, "description": "Not found"},
    },
)
Limit = Annotated[int, Query(ge=1, le=100)]
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


@router.post(
    "/portfolio/{portfolio_id}/rebalance",
    responses={
        422: {"model": ErrorBody, "description": "No feasible solution, or solver timeout"},
        503: {"model": ErrorBody, "description": "A GlobeCo service is unavailable"},
    },
)
@router.post("/rebalance/portfolio/{portfolio_id}", include_in_schema=False)
async def rebalance_portfolio(
    portfolio_id: str, service: RebalanceServiceDep, policy: Override = None
) -> RebalanceOut:
    run = await service.rebalance_portfolio(portfolio_id, policy.changes() if policy else None)
    outcome = run.outcomes[0]
    assert isinstance(outcome, PortfolioOutcome)
    return RebalanceOut.of(run, outcome)


@router.post(
    "/model/{model_id}/rebalance",
    response_model=list[RebalanceOut | RebalanceFailureOut],
    responses={503: {"model": ErrorBody, "description": "A GlobeCo service is unavailable"}},
)
@router.post("/rebalance/model/{model_id}", include_in_schema=False)
async def rebalance_model(
    model_id: str, service: RebalanceServiceDep, policy: Override = None
) -> StreamingResponse:
    """One entry per portfolio of the model; a failed portfolio carries its error."""
    run = await service.rebalance_model(model_id, policy.changes() if policy else None)
    return StreamingResponse(_json_array(run_out(run)), media_type="application/json")


@router.get("/rebalances")
async def list_rebalances(
    store: StoreDep, offset: Offset = 0, limit: Limit = 10
) -> list[StoredRebalance]:
    return [StoredRebalance.of(run) for run in await store.list_rebalances(offset, limit)]


@router.get("/rebalance/{rebalance_id}")
async def get_rebalance(rebalance_id: str, store: StoreDep) -> StoredRebalance:
    return StoredRebalance.of(await store.get_rebalance(rebalance_id))


@router.post("/rebalances/portfolios")
async def rebalances_of_portfolios(
    body: PortfoliosBody, store: StoreDep, offset: Offset = 0, limit: Limit = 10
) -> list[StoredRebalance]:
    """Stored runs that include any of the given portfolios, newest first."""
    runs = await store.list_rebalances(offset, limit, portfolio_ids=body.portfolios)
    return [StoredRebalance.of(run) for run in runs]


@router.delete(
    "/rebalance/{rebalance_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={409: {"model": ErrorBody, "description": "Stale version"}},
)
async def delete_rebalance(
    rebalance_id: str, version: Annotated[int, Query(ge=1)], store: StoreDep
) -> None:
    await store.delete_rebalance(rebalance_id, version)


async def _json_array(items: Iterable[BaseModel]) -> AsyncIterator[bytes]:
    """A JSON array written one item at a time, letting other requests run in between: a
    1,000-portfolio answer is 30 MB and about a second of work."""
    yield b"["
    for i, item in enumerate(items):
        for _ in range(_TURNS_PER_ITEM):
            await asyncio.sleep(0)
        yield (b"," if i else b"") + item.__pydantic_serializer__.to_json(item)
    yield b"]"
