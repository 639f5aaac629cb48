"""Comparisons translated with the index term, and the feature probes rewritten for the
probe indexes, answer what mongoeco's own answer, query for query, on the same kinds of
stored values."""

import contextlib
import datetime
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mongoeco.engines.sqlite
import mongoeco.engines.sqlite_query
from bson import Binary, Decimal128, ObjectId
from mongoeco.engines.sqlite import SQLiteEngine
from pymongo import AsyncMongoClient

from order_generation.adapters import embedded_queries
from order_generation.adapters.embedded_mongo import EmbeddedMongo, _FastSQLiteEngine

MODULES = (mongoeco.engines.sqlite_query, mongoeco.engines.sqlite)

# A field of one kind per collection, as the service stores them: the engine translates to
# SQL only then (mixed kinds are filtered in Python), and a mixed one shows the fallback.
STORED: dict[str, list[Any]] = {
    "numbers": [0, 1, 2.5, -3, 10**12, 7],
    "strings": ["a", "b", "P1", "", "1", "P10"],
    "mixed": [None, True, 0, 2.5, "a", "", [1, "a"], {"x": 1}, ObjectId(), Decimal128("1"),
              datetime.datetime(2026, 1, 1)],
    # Numbers with a tagged value among them: the engine's probes must find it.
    "decimals": [0, 1, 2.5, Decimal128("1"), Decimal128("2.50"), 7],
    "bytes": [0, 1, "a", Binary(b"\x01"), 2.5],
}  # fmt: skip
ASKED: list[Any] = [0, 1, 2.5, -3, 10**12, "a", "P1", "", "1"]
OPERATORS = ["$eq", "$gt", "$gte", "$lt", "$lte", "$ne"]


async def _answers(path: Path) -> dict[str, list[int]]:
    mongo = EmbeddedMongo(path)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo.start())
    try:
        answers = {}
        for name, stored in STORED.items():
            things = client["db"][name]
            await things.create_index([("f", 1), ("g", 1)])  # the engine's expression index
            docs = [{"_id": i, "f": value, "g": i % 3} for i, value in enumerate(stored)]
            await things.insert_many([*docs, {"_id": len(docs), "g": 1}])  # one without f
            for value in ASKED:
                for operator in OPERATORS:
                    for query in ({"f": {operator: value}}, {"f": {operator: value}, "g": 1}):
                        found = await things.find(query, {"_id": 1}).sort("_id", 1).to_list()
                        answers[f"{name} {query!r}"] = [doc["_id"] for doc in found]
        return answers
    finally:
        await client.close()
        mongo.stop()


@contextlib.contextmanager
def mongoeco_own_translation() -> Iterator[None]:
    names = ("_translate_scalar_equals", "_translate_same_type_comparison")
    saved = [(module, name, getattr(module, name)) for module in MODULES for name in names]
    for module in MODULES:
        module._translate_scalar_equals = embedded_queries._ORIGINAL_EQUALS  # type: ignore[attr-defined]
        module._translate_same_type_comparison = embedded_queries._ORIGINAL_COMPARISON  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module, name, function in saved:
            setattr(module, name, function)


async def test_the_probes_the_indexes_serve_answer_as_the_engines_own(
    tmp_path: Path, monkeypatch: Any
):
    for probe in (
        "_field_contains_tagged_value_type_in_collection",
        "_field_has_comparison_type_mismatch_in_collection",
    ):
        monkeypatch.setattr(_FastSQLiteEngine, probe, getattr(SQLiteEngine, probe))
    expected = await _answers(tmp_path / "own.sqlite")
    monkeypatch.undo()
    assert await _answers(tmp_path / "tuned.sqlite") == expected
    assert expected["decimals {'f': {'$eq': 1}}"] == [1, 3]  # 1 and Decimal128("1")


async def test_the_index_term_changes_no_answer(tmp_path: Path):
    with mongoeco_own_translation():
        expected = await _answers(tmp_path / "own.sqlite")
    embedded_queries.install()
    assert await _answers(tmp_path / "indexed.sqlite") == expected
    assert any(expected.values())  # not a comparison of empty answers


SORTED: list[Any] = [3, [4, 1], 2, Decimal128("2.5"), "b", [], None, 7, [9], 1.5]


async def _sorted_answers(path: Path) -> dict[str, list[int]]:
    mongo = EmbeddedMongo(path)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo.start())
    try:
        things = client["db"]["things"]
        await things.create_index([("f", 1), ("s", 1)])
        # f = i % 4 picks which documents match: an array under the sort key (f 0 and 1), a
        # Decimal128 (f 3) or plain values only (f 2, sorted in SQL); one has no s at all.
        docs = [{"_id": i, "f": i % 4, "s": value} for i, value in enumerate(SORTED)]
        await things.insert_many([*docs, {"_id": len(docs), "f": 1}])
        answers = {}
        for query in ({"f": 0}, {"f": 1}, {"f": 2}, {"f": 3}, {"f": {"$gte": 2}}, {}):
            for direction in (1, -1):
                found = things.find(query, {"_id": 1}).sort([("s", direction), ("_id", 1)])
                answers[f"{query!r} {direction}"] = [doc["_id"] async for doc in found]
        return answers
    finally:
        await client.close()
        mongo.stop()


async def test_sorting_by_a_key_some_matches_hold_as_an_array_answers_as_mongoeco(
    tmp_path: Path, monkeypatch: Any
):
    """Whether the sort needs Python is asked with the find's own filter translation."""
    tuned, own = _FastSQLiteEngine._sort_requires_python, SQLiteEngine._sort_requires_python
    monkeypatch.setattr(_FastSQLiteEngine, "_sort_requires_python", own)
    expected = await _sorted_answers(tmp_path / "own.sqlite")
    monkeypatch.setattr(_FastSQLiteEngine, "_sort_requires_python", tuned)
    assert await _sorted_answers(tmp_path / "tuned.sqlite") == expected
    assert expected["{'f': 1} 1"] != sorted(expected["{'f': 1} 1"])  # an order, not ids


async def test_the_probes_of_an_indexed_field_are_index_lookups(tmp_path: Path):
    path = tmp_path / "probes.sqlite"
    mongo = EmbeddedMongo(path)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo.start())
    try:
        things = client["db"]["things"]
        await things.create_index([("f", 1), ("g", 1)])
        await things.insert_many([{"f": i, "g": "x" * 100} for i in range(50)])
    finally:
        await client.close()
        mongo.stop()
    array_probe = (  # the engine's own, as it writes it
        "SELECT 1 FROM documents WHERE db_name = ? AND coll_name = ? "
        f"AND {embedded_queries.json_type_sql('g')} = 'array' LIMIT 1"
    )
    probes = [
        (array_probe, ("db", "things")),
        (embedded_queries.tagged_probe_sql("f"), ("db", "things", "decimal128")),
        (embedded_queries.mismatch_probe_sql("g", "string"), ("db", "things")),
    ]
    with contextlib.closing(sqlite3.connect(path)) as db:
        for query, params in probes:
            plan = " ".join(row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {query}", params))
            lookup = r"INDEX probe_\w+ \(db_name=\? AND coll_name=\? AND <expr>=\?"
            assert re.search(lookup, plan), plan
