"""Rebalance use cases: read from GlobeCo (service/globeco.py), solve off the event loop,
store the run."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from typing import Any

import structlog

from order_generation.adapters.deadline import DeadlineExceeded, deadline, time_left
from order_generation.adapters.mongo import MongoStore
from order_generation.domain.errors import NotFound, Overloaded, ServiceError, UpstreamUnavailable
from order_generation.domain.ids import check_id
from order_generation.domain.models import InvestmentModel
from order_generation.domain.rebalance import RebalanceProblem, RebalanceResult, solve
from order_generation.domain.runs import PortfolioFailure, PortfolioOutcome, RebalanceRun
from order_generation.metrics import (
    MODEL_REBALANCE_PORTFOLIOS,
    REBALANCE_DURATION,
    REBALANCES,
    REBALANCES_IN_FLIGHT,
    SOLVER_DURATION,
)
from order_generation.service.globeco import Globeco, PortfolioReads
from order_generation.service.idempotency import request_fingerprint, run_once

log = structlog.get_logger(__name__)
# A model rebalance reads holdings for up to this many portfolios per solver slot, so the
# solvers never wait on a GlobeCo round trip.
READ_AHEAD = 2

PolicyChanges = Mapping[str, Any]
"""Policy fields given with a request; they replace the same fields of the model's policy."""


@dataclass(frozen=True)
class Rebalanced:
    """A run as stored, and the ticker of every security it priced (security id -> ticker);
    `replayed` when it answers a retry with the Idempotency-Key of an earlier request."""

    run: RebalanceRun
    tickers: Mapping[str, str]
    replayed: bool = False


class RebalanceService:
    """Rebalance one portfolio or every portfolio of a model, and keep every run."""

    def __init__(
        self,
        store: MongoStore,
        globeco: Globeco,
        *,
        time_limit: float,
        concurrency: int,
        max_in_flight: int = 64,
        deadline_seconds: float = 25.0,
        executor: Executor | None = None,
    ) -> None:
        self._store = store
        self._globeco = globeco
        self._time_limit = time_limit
        self._concurrency = concurrency
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._deadline_seconds = deadline_seconds
        self._executor = executor

    @property
    def globeco(self) -> Globeco:
        """The GlobeCo clients, for the health report."""
        return self._globeco

    async def rebalance_portfolio(
        self,
        portfolio_id: str,
        policy: PolicyChanges | None = None,
        idempotency_key: str | None = None,
    ) -> Rebalanced:
        """Rebalance one portfolio to the model it follows; failures raise."""
        check_id(portfolio_id, "portfolio_id")
        work = partial(self._rebalance_portfolio, portfolio_id, policy)
        if idempotency_key is None:
            return await work()
        request = request_fingerprint("portfolio", portfolio_id, policy)
        return await self._once(idempotency_key, request, work, self._replay_run)

    async def _rebalance_portfolio(
        self, portfolio_id: str, policy: PolicyChanges | None
    ) -> Rebalanced:
        async with self._admitted("portfolio", portfolio_id=portfolio_id) as audit:
            tickers: dict[str, str] = {}
            async with self._within_deadline():
                model, outcome = await self._solve_portfolio(portfolio_id, policy, tickers)
            run = await self._store.runs.insert_rebalance(_run(model, (outcome,)), tickers)
            audit.update(
                model_id=model.model_id,
                rebalance_id=run.rebalance_id,
                trades=len(outcome.result.trades),
            )
            return Rebalanced(run, tickers)

    async def _solve_portfolio(
        self, portfolio_id: str, policy: PolicyChanges | None, tickers: dict[str, str]
    ) -> tuple[InvestmentModel, PortfolioOutcome]:
        # The holdings and the name do not depend on the model: read them while it loads.
        reads = PortfolioReads.start(self._globeco, portfolio_id)
        try:
            following = await self._store.models.models_following([portfolio_id])
            if not following:
                raise NotFound(f"portfolio {portfolio_id} does not follow any model")
            model = with_policy(following[0], policy)
        except BaseException:
            reads.discard()
            raise
        return model, await self._rebalance(model, reads, tickers)

    async def rebalance_model(
        self,
        model_id: str,
        policy: PolicyChanges | None = None,
        idempotency_key: str | None = None,
    ) -> Rebalanced:
        """Rebalance every portfolio of a model in parallel; failures stay per portfolio.

        A GlobeCo service that stays unavailable stops the whole run (it is down for all).
        A model without portfolios has nothing to rebalance: no run is stored.
        """
        work = partial(self._rebalance_model, model_id, policy)
        if idempotency_key is None:
            return await work()

        async def replay(rebalance_id: str | None) -> Rebalanced:
            if rebalance_id is not None:
                return await self._replay_run(rebalance_id)
            model = await self._store.models.get_model(model_id)  # it had no portfolios
            return Rebalanced(_run(model, ()), {}, replayed=True)

        request = request_fingerprint("model", model_id, policy)
        return await self._once(idempotency_key, request, work, replay)

    async def _rebalance_model(self, model_id: str, policy: PolicyChanges | None) -> Rebalanced:
        async with self._admitted("model", model_id=model_id) as audit:
            model = with_policy(await self._store.models.get_model(model_id), policy)
            if not model.portfolios:
                audit.update(portfolios=0)
                return Rebalanced(_run(model, ()), {})
            tickers: dict[str, str] = {}
            async with self._within_deadline():
                outcomes = await self._rebalance_all(model, tickers)
            run = await self._store.runs.insert_rebalance(_run(model, outcomes), tickers)
            model_id = str(model.model_id)
            await self._store.models.set_last_rebalance_date(model_id, run.rebalance_date)
            MODEL_REBALANCE_PORTFOLIOS.observe(len(run.outcomes))
            audit.update(
                rebalance_id=run.rebalance_id,
                portfolios=len(run.outcomes),
                failed=len(run.outcomes) - len(run.succeeded),
            )
            return Rebalanced(run, tickers)

    async def _once(
        self,
        key: str,
        request: str,
        work: Callable[[], Awaitable[Rebalanced]],
        replay: Callable[[str | None], Awaitable[Rebalanced]],
    ) -> Rebalanced:
        """Run `work` once per idempotency key; a retry with the key waits for the first
        request, at most a deadline, and answers its run."""
        done = await run_once(
            self._store.idempotency,
            key,
            request,
            self._deadline_seconds,
            work,
            lambda answer: answer.run.rebalance_id,
            replay,
        )
        if done.replayed:
            log.info(
                "audit",
                action="rebalance_replayed",
                request=request,
                rebalance_id=done.run.rebalance_id,
            )
        return done

    async def _replay_run(self, rebalance_id: str | None) -> Rebalanced:
        assert rebalance_id is not None
        stored = await self._store.runs.get_rebalance(rebalance_id)
        return Rebalanced(stored.run, stored.tickers, replayed=True)

    async def _rebalance_all(
        self, model: InvestmentModel, tickers: dict[str, str]
    ) -> tuple[PortfolioOutcome | PortfolioFailure, ...]:
        await self._globeco.warm_caches(model, tickers)
        window = asyncio.Semaphore(self._concurrency * READ_AHEAD)
        solving = asyncio.Semaphore(self._concurrency)

        async def one(portfolio_id: str) -> PortfolioOutcome | PortfolioFailure:
            async with window:
                return await self._rebalance_isolated(model, portfolio_id, tickers, solving)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(p)) for p in model.portfolios]
        except* UpstreamUnavailable as unavailable:
            raise unavailable.exceptions[0] from None
        return tuple(t.result() for t in tasks)

    @contextlib.asynccontextmanager
    async def _within_deadline(self) -> AsyncIterator[None]:
        """GlobeCo reads and solves end by the deadline, a 503 past it; storing is not cut
        short, so a run is stored whole or, past the deadline, not at all."""
        seconds = self._deadline_seconds
        try:
            with deadline(seconds):
                async with asyncio.timeout(seconds):
                    yield
        except TimeoutError as error:
            raise DeadlineExceeded(
                f"the rebalance did not finish within its deadline of {seconds:g} s",
                {"deadline_seconds": seconds},
            ) from error

    @contextlib.asynccontextmanager
    async def _admitted(self, kind: str, **subject: object) -> AsyncIterator[dict[str, object]]:
        """Bound the rebalances in flight, and measure and audit each one."""
        if self._in_flight >= self._max_in_flight:
            REBALANCES.labels(kind, "rejected").inc()
            raise Overloaded(
                f"{self._in_flight} rebalances are already in progress; retry shortly",
                retry_after_seconds=1,
            )
        self._in_flight += 1
        REBALANCES_IN_FLIGHT.inc()
        started, outcome = time.perf_counter(), "error"
        audit: dict[str, object] = {}
        try:
            yield audit
            outcome = "success"
        except ServiceError as error:
            outcome = error.code.lower()
            raise
        finally:
            self._in_flight -= 1
            REBALANCES_IN_FLIGHT.dec()
            elapsed = time.perf_counter() - started
            REBALANCES.labels(kind, outcome).inc()
            REBALANCE_DURATION.labels(kind).observe(elapsed)
            log.info(
                "audit",
                action=f"rebalance_{kind}",
                outcome=outcome,
                duration_ms=round(elapsed * 1000, 1),
                **subject,
                **audit,
            )

    async def preview(
        self,
        model: InvestmentModel,
        holdings: dict[str, int],
        cash: Decimal,
        prices: dict[str, Decimal],
        policy: PolicyChanges | None = None,
    ) -> RebalanceResult:
        """Solve given data exactly as a real rebalance would; no GlobeCo call, nothing stored."""
        problem = _problem(with_policy(model, policy), holdings, cash, prices)
        async with self._admitted("preview"):
            return await self._solve(problem)

    async def _rebalance_isolated(
        self,
        model: InvestmentModel,
        portfolio_id: str,
        tickers: dict[str, str],
        solving: asyncio.Semaphore,
    ) -> PortfolioOutcome | PortfolioFailure:
        try:
            reads = PortfolioReads.start(self._globeco, portfolio_id)
            return await self._rebalance(model, reads, tickers, solving)
        except UpstreamUnavailable:
            raise
        except ServiceError as error:
            log.info("portfolio_rebalance_failed", portfolio_id=portfolio_id, code=error.code)
            return PortfolioFailure(portfolio_id, error.code, error.message)

    async def _rebalance(
        self,
        model: InvestmentModel,
        reads: PortfolioReads,
        tickers: dict[str, str],
        solving: asyncio.Semaphore | None = None,
    ) -> PortfolioOutcome:
        """Rebalance one portfolio; the tickers it priced by are added to `tickers`."""
        try:
            holdings = await reads.holdings
            securities = [p.security_id for p in model.positions]
            in_model = set(securities)
            securities += [s for s in holdings.quantities if s not in in_model]
            prices = await self._globeco.prices(securities, tickers)
            problem = _problem(model, holdings.quantities, holdings.cash, prices)
            async with solving or contextlib.nullcontext():
                result = await self._solve(problem)
        except BaseException:
            reads.discard()
            raise
        name = await reads.name_or_none()
        return PortfolioOutcome(reads.portfolio_id, name, result, date.today())

    async def _solve(self, problem: RebalanceProblem) -> RebalanceResult:
        loop = asyncio.get_running_loop()
        left = time_left()
        limit = self._time_limit if left is None else max(min(self._time_limit, left), 0.01)
        job = partial(solve, problem, time_limit=limit)
        result = await loop.run_in_executor(self._executor, job)
        SOLVER_DURATION.labels(result.method).observe(result.solve_seconds)
        return result


def with_policy(model: InvestmentModel, changes: PolicyChanges | None) -> InvestmentModel:
    """The model with `changes` over its policy; the domain checks the policy that results."""
    return replace(model, policy=replace(model.policy, **changes)) if changes else model


def _problem(
    model: InvestmentModel,
    holdings: Mapping[str, int],
    cash: Decimal,
    prices: Mapping[str, Decimal],
) -> RebalanceProblem:
    return RebalanceProblem(model.positions, holdings, cash, prices, model.policy)


def _run(
    model: InvestmentModel, outcomes: tuple[PortfolioOutcome | PortfolioFailure, ...]
) -> RebalanceRun:
    assert model.model_id is not None
    return RebalanceRun(
        model.model_id, model.name, datetime.now(UTC), outcomes, model_version=model.version
    )
