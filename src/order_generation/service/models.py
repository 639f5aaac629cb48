"""Model management use cases: the rules live in the domain, the versions in the store."""

from collections.abc import Callable, Sequence

import structlog

from order_generation.adapters.mongo import ModelStore
from order_generation.domain.errors import Conflict, VersionConflict
from order_generation.domain.models import InvestmentModel, Position
from order_generation.service.sorting import parse_sort

log = structlog.get_logger(__name__)
_CHANGE_ATTEMPTS = 3
SORTABLE_FIELDS = ("model_id", "name", "last_rebalance_date")


class ModelService:
    """Create, read, change and delete investment models."""

    def __init__(self, models: ModelStore) -> None:
        self._models = models

    async def list(self, offset: int, limit: int, sort_by: str | None) -> list[InvestmentModel]:
        """A page of models; an offset at or past the end is an empty page (the portal's "Load
        More" asks for one whenever the last page was full)."""
        return await self._models.list_models(offset, limit, parse_sort(sort_by, SORTABLE_FIELDS))

    async def get(self, model_id: str) -> InvestmentModel:
        return await self._models.get_model(model_id)

    async def create(self, model: InvestmentModel) -> InvestmentModel:
        await self._check_portfolios_free(model)
        return _audited("model_created", await self._models.insert_model(model))

    async def update(self, model: InvestmentModel, *, keep_policy: bool = False) -> InvestmentModel:
        """Replace a model; with `keep_policy` its stored policy stays (not `model.policy`)."""
        await self._check_portfolios_free(model)
        stored = await self._models.replace_model(model, keep_policy=keep_policy)
        return _audited("model_updated", stored)

    async def delete(self, model_id: str, version: int) -> None:
        await self._models.delete_model(model_id, version)
        log.info("audit", action="model_deleted", model_id=model_id, version=version)

    async def add_position(self, model_id: str, position: Position) -> InvestmentModel:
        changed = await self._change(model_id, lambda m: m.with_position_added(position))
        return _audited("position_added", changed, security_id=position.security_id)

    async def update_position(self, model_id: str, position: Position) -> InvestmentModel:
        changed = await self._change(model_id, lambda m: m.with_position_updated(position))
        return _audited("position_updated", changed, security_id=position.security_id)

    async def remove_position(self, model_id: str, position: Position) -> InvestmentModel:
        changed = await self._change(model_id, lambda m: m.with_position_removed(position))
        return _audited("position_removed", changed, security_id=position.security_id)

    async def add_portfolios(self, model_id: str, portfolios: Sequence[str]) -> InvestmentModel:
        changed = await self._change(model_id, lambda m: m.with_portfolios_added(portfolios))
        return _audited("portfolios_added", changed, requested=len(portfolios))

    async def remove_portfolios(self, model_id: str, portfolios: Sequence[str]) -> InvestmentModel:
        changed = await self._change(model_id, lambda m: m.with_portfolios_removed(portfolios))
        return _audited("portfolios_removed", changed, requested=len(portfolios))

    async def _change(
        self, model_id: str, change: Callable[[InvestmentModel], InvestmentModel]
    ) -> InvestmentModel:
        """Apply `change` to the latest version; these requests carry no version of their own."""
        for attempt in range(1, _CHANGE_ATTEMPTS + 1):
            changed = change(await self._models.get_model(model_id))
            await self._check_portfolios_free(changed)
            try:
                return await self._models.replace_model(changed)
            except VersionConflict:
                if attempt == _CHANGE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    async def _check_portfolios_free(self, model: InvestmentModel) -> None:
        """A portfolio follows at most one model."""
        for other in await self._models.models_following(model.portfolios):
            if other.model_id != model.model_id:
                taken = sorted(set(other.portfolios) & set(model.portfolios))
                raise Conflict(
                    f"portfolio {taken[0]} already follows model {other.name!r}",
                    {"portfolio_id": taken[0], "model_id": other.model_id},
                )


def _audited(action: str, model: InvestmentModel, **facts: object) -> InvestmentModel:
    log.info(
        "audit",
        action=action,
        model_id=model.model_id,
        name=model.name,
        version=model.version,
        positions=len(model.positions),
        portfolios=len(model.portfolios),
        **facts,
    )
    return model
