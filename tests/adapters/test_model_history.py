"""Model history and the one-model-per-portfolio index, through the real driver, including
a write interrupted between the model and its entry."""

from collections.abc import AsyncIterator
from typing import Any, NoReturn

import pytest
from structlog.testing import capture_logs

from order_generation.adapters.mongo import MongoStore
from order_generation.config import Settings
from order_generation.domain.errors import Conflict, NotFound
from order_generation.domain.models import InvestmentModel

P = [f"P{n:023d}" for n in range(4)]


class Crash(Exception):
    """The process stopping at this point."""


def crash(*_: object, **__: object) -> NoReturn:
    raise Crash


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[MongoStore]:
    store = await _open(settings)
    yield store
    await store.close()


async def _open(settings: Settings) -> MongoStore:
    assert settings.mongodb_url is not None
    store = MongoStore(settings.mongodb_url, settings.mongodb_database)
    await store.open()
    return store


async def _versions(store: MongoStore, model_id: str) -> list[tuple[int, str]]:
    return [(e.version, e.action) for e in await store.models.model_history(model_id, 0, 100)]


async def test_a_crash_after_the_model_write_keeps_its_entry_and_start_up_commits_it(
    store: MongoStore, settings: Settings, database: Any, monkeypatch: pytest.MonkeyPatch
):
    created = await store.models.insert_model(InvestmentModel("m", portfolios=(P[0],)), "ann")
    assert created.model_id is not None
    monkeypatch.setattr(store.models.history, "commit", crash)

    with pytest.raises(Crash):
        await store.models.replace_model(created, "bob", "updated")

    assert (await store.models.get_model(created.model_id)).version == 2
    assert await _versions(store, created.model_id) == [(2, "updated"), (1, "created")]
    assert await database["model_history"].count_documents({"state": "pending"}) == 1
    restarted = await _open(settings)
    assert await database["model_history"].count_documents({"state": "pending"}) == 0
    assert await _versions(restarted, created.model_id) == [(2, "updated"), (1, "created")]
    await restarted.close()


async def test_an_entry_left_pending_is_kept_by_the_write_after_it(
    store: MongoStore, monkeypatch: pytest.MonkeyPatch
):
    created = await store.models.insert_model(InvestmentModel("m"), "ann")
    assert created.model_id is not None
    with monkeypatch.context() as patch:
        patch.setattr(store.models.history, "commit", crash)
        with pytest.raises(Crash):
            await store.models.replace_model(created, "bob", "updated")
    second = await store.models.get_model(created.model_id)

    await store.models.replace_model(second, "cy", "updated")

    entries = await store.models.model_history(created.model_id, 0, 10)
    assert [(e.version, e.actor) for e in entries] == [(3, "cy"), (2, "bob"), (1, "ann")]


async def test_a_crash_before_the_model_write_leaves_no_visible_entry(
    store: MongoStore, settings: Settings, database: Any, monkeypatch: pytest.MonkeyPatch
):
    created = await store.models.insert_model(InvestmentModel("m"), "ann")
    assert created.model_id is not None
    with monkeypatch.context() as patch:
        patch.setattr(store.models._models, "find_one_and_update", crash)
        with pytest.raises(Crash):
            await store.models.replace_model(created, "bob", "updated")

    assert await _versions(store, created.model_id) == [(1, "created")]
    await store.models.replace_model(created, "cy", "updated")  # takes version 2 for real
    restarted = await _open(settings)  # the lost entry for version 2 is swept
    assert await database["model_history"].count_documents({}) == 2
    entries = await restarted.models.model_history(created.model_id, 0, 10)
    assert [(e.version, e.actor) for e in entries] == [(2, "cy"), (1, "ann")]
    await restarted.close()


async def test_a_crash_during_a_delete_is_finished_at_start_up(
    store: MongoStore, settings: Settings, database: Any, monkeypatch: pytest.MonkeyPatch
):
    created = await store.models.insert_model(InvestmentModel("m", portfolios=(P[1],)), "ann")
    assert created.model_id is not None
    with monkeypatch.context() as patch:
        patch.setattr(store.models.history, "commit", crash)
        with pytest.raises(Crash):
            await store.models.delete_model(created.model_id, 1, "bob")

    with pytest.raises(NotFound):
        await store.models.get_model(created.model_id)
    assert await store.models.models_following([P[1]]) == []
    assert await _versions(store, created.model_id) == [(2, "deleted"), (1, "created")]
    restarted = await _open(settings)
    assert await database["models"].count_documents({}) == 0
    assert await _versions(restarted, created.model_id) == [(2, "deleted"), (1, "created")]
    await restarted.models.insert_model(InvestmentModel("again", portfolios=(P[1],)), "cy")
    await restarted.close()


async def test_a_crash_before_a_create_lands_leaves_no_model_and_no_history(
    store: MongoStore, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(store.models._models, "insert_one", crash)
    with pytest.raises(Crash):
        await store.models.insert_model(InvestmentModel("m"), "ann")
    monkeypatch.undo()

    assert await store.models.list_models(0, 10, []) == []
    entry = await store.models.history.pending()
    assert len(entry) == 1
    with pytest.raises(NotFound):
        await store.models.model_history(str(entry[0]["model_id"]), 0, 10)


async def test_a_portfolio_of_another_model_is_refused_by_the_database(store: MongoStore):
    first = await store.models.insert_model(InvestmentModel("a", portfolios=(P[0],)), "ann")
    second = await store.models.insert_model(InvestmentModel("b"), "ann")

    with pytest.raises(Conflict, match="follows model 'a'") as refused:
        await store.models.replace_model(
            InvestmentModel("b", portfolios=(P[2], P[0]), model_id=second.model_id), "bob", "x"
        )
    assert refused.value.details == {"portfolio_id": P[0], "model_id": first.model_id}
    with pytest.raises(Conflict, match="follows model 'a'"):
        await store.models.insert_model(InvestmentModel("c", portfolios=(P[0],)), "ann")
    assert [m.name for m in await store.models.models_following([P[0], P[2]])] == ["a"]


async def test_models_sharing_a_portfolio_are_reported_at_start_up(
    settings: Settings, database: Any
):
    for name in ("a", "b"):
        await database["models"].insert_one(
            {"name": name, "positions": [], "portfolios": [P[3]], "version": 1}
        )

    with capture_logs() as logs:
        store = await _open(settings)
    reported = [line for line in logs if line["event"] == "portfolios_in_several_models"]
    assert len(reported) == 1
    holders = reported[0]["portfolios"][P[3]]
    assert [h.split(" ")[1] for h in holders] == ["(a)", "(b)"]
    indexes = await database["models"].index_information()
    assert not indexes["portfolios_1"].get("unique")
    assert [m.name for m in await store.models.models_following([P[3]])] == ["a", "b"]

    await database["models"].update_one({"name": "b"}, {"$set": {"portfolios": []}})
    await store.close()
    store = await _open(settings)
    indexes = await database["models"].index_information()
    assert "portfolios_1" not in indexes
    assert indexes["portfolio_follows_one_model"]["unique"] is True
    await store.close()


async def test_ids_beyond_one_query_are_asked_in_chunks(store: MongoStore):
    many = [f"Q{n:023d}" for n in range(2_500)]
    await store.models.insert_model(InvestmentModel("big", portfolios=tuple(many)), "ann")
    await store.models.insert_model(InvestmentModel("other", portfolios=(P[0],)), "ann")

    found = await store.models.models_following([*many, P[0]])

    assert sorted(m.name for m in found) == ["big", "other"]
