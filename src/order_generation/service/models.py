"""Model management use cases: the rules live in the domain, the versions in the store."""

import asyncio
import random
import time
import weakref
from collections.abc import Callable, Sequence

import structlog

from order_generation.adapters.mongo import ModelStore
from order_generation.adapters.mongo.history import StoredEntry
from order_generation.domain.errors import Overloaded, VersionConflict
from order_generation.domain.models import InvestmentModel, Position
from order_generation.service.sorting import parse_sort

log = structlog.get_logger(__name__)
SORTABLE_FIELDS = ("model_id", "name", "last_rebalance_date")
# A change without a version retries on the latest model for at most this long once its turn
# comes: in one process changes of a model queue, writers in others can beat it to a version.
CHANGE_DEADLINE_SECONDS = 10.0
_RETRY_PAUSE_SECONDS = 0.02
SYSTEM_ACTOR = "system"


class ModelService:
    """Create, read, change and delete investment models, each write recorded with its actor."""

    def __init__(self, models: ModelStore) -> None:
        self._models = models
        self._changing: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def list(self, offset: int, limit: int, sort_by: str | None) -> list[InvestmentModel]:
        """A page of models; an offset at or past the end is an empty page (the portal's "Load
        More" asks for one whenever the last page was full)."""
        return await self._models.list_models(offset, limit, parse_sort(sort_by, SORTABLE_FIELDS))

    async def get(self, model_id: str) -> InvestmentModel:
        return await self._models.get_model(model_id)

    async def history(self, model_id: str, offset: int, limit: int) -> Sequence[StoredEntry]:
        return await self._models.model_history(model_id, offset, limit)

    async def at_version(self, model_id: str, version: int) -> InvestmentModel:
        return await self._models.model_at(model_id, version)

    async def create(self, model: InvestmentModel, actor: str = SYSTEM_ACTOR) -> InvestmentModel:
        return _audited("model_created", actor, await self._models.insert_model(model, actor))

    async def update(
        self, model: InvestmentModel, actor: str = SYSTEM_ACTOR, *, keep_policy: bool = False
    ) -> InvestmentModel:
        """Replace a model; with `keep_policy` its stored policy stays (not `model.policy`)."""
        stored = await self._models.replace_model(model, actor, "updated", keep_policy=keep_policy)
        return _audited("model_updated", actor, stored)

    async def delete(self, model_id: str, version: int, actor: str = SYSTEM_ACTOR) -> None:
        await self._models.delete_model(model_id, version, actor)
        log.info("audit", action="model_deleted", actor=actor, model_id=model_id, version=version)

    async def add_position(
        self, model_id: str, position: Position, actor: str = SYSTEM_ACTOR
    ) -> InvestmentModel:
        changed = await self._change(
            model_id, actor, "position_added", lambda m: m.with_position_added(position)
        )
        return _audited("position_added", actor, changed, security_id=position.security_id)

    async def update_position(
        self, model_id: str, position: Position, actor: str = SYSTEM_ACTOR
    ) -> InvestmentModel:
        changed = await self._change(
            model_id, actor, "position_updated", lambda m: m.with_position_updated(position)
        )
        return _audited("position_updated", actor, changed, security_id=position.security_id)

    async def remove_position(
        self, model_id: str, position: Position, actor: str = SYSTEM_ACTOR
    ) -> InvestmentModel:
        changed = await self._change(
            model_id, actor, "position_removed", lambda m: m.with_position_removed(position)
        )
        return _audited("position_removed", actor, changed, security_id=position.security_id)

    async def add_portfolios(
        self, model_id: str, portfolios: Sequence[str], actor: str = SYSTEM_ACTOR
    ) -> InvestmentModel:
        changed = await self._change(
            model_id, actor, "portfolios_added", lambda m: m.with_portfolios_added(portfolios)
        )
        return _audited("portfolios_added", actor, changed, requested=len(portfolios))

    async def remove_portfolios(
        self, model_id: str, portfolios: Sequence[str], actor: str = SYSTEM_ACTOR
    ) -> InvestmentModel:
        changed = await self._change(
            model_id, actor, "portfolios_removed", lambda m: m.with_portfolios_removed(portfolios)
        )
        return _audited("portfolios_removed", actor, changed, requested=len(portfolios))

    async def _change(
        self,
        model_id: str,
        actor: str,
        action: str,
        change: Callable[[InvestmentModel], InvestmentModel],
    ) -> InvestmentModel:
        """Apply `change` to the latest version, however many writers race it: these requests
        carry no version of their own, so a version someone else took is retried, not a 409.
        Changes of one model queue in this process; the domain's rules judge each in turn."""
        async with self._changing.setdefault(model_id, asyncio.Lock()):
            deadline = time.monotonic() + CHANGE_DEADLINE_SECONDS
            while True:
                try:
                    return await self._models.change_model(model_id, change, actor, action)
                except VersionConflict:
                    if time.monotonic() > deadline:
                        raise _busy(model_id) from None
                await asyncio.sleep(random.uniform(0, _RETRY_PAUSE_SECONDS))


def _busy(model_id: str) -> Overloaded:
    return Overloaded(
        f"model {model_id} is being changed by too many writers at once; retry shortly",
        retry_after_seconds=1,
    )


def _audited(action: str, actor: str, model: InvestmentModel, **facts: object) -> InvestmentModel:
    log.info(
        "audit",
        action=action,
        actor=actor,
        model_id=model.model_id,
        name=model.name,
        version=model.version,
        positions=len(model.positions),
        portfolios=len(model.portfolios),
        **facts,
    )
    return model
