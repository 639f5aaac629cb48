"""An embedded MongoDB wire server (mongoeco) for running without a `mongod`.

It runs on its own thread and event loop so its CPU work never blocks the caller's loop;
`python -m order_generation.adapters.embedded_mongo FILE` runs it as a process of its own,
prints its URI, and stops on SIGTERM or when its standard input closes (its parent is gone).
"""

import asyncio
import contextlib
import copy
import dataclasses
import gc
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import bson
import mongoeco.core.codec
import mongoeco.engines.sqlite
from mongoeco._types import _bson_values
from mongoeco.core.identity import id_contains_numeric_value
from mongoeco.core.operation_context import ChangePublicationPolicy
from mongoeco.engines._sqlite_plan_heuristics import sort_requires_python
from mongoeco.engines._sqlite_write_scope import SQLiteWriteScope
from mongoeco.engines.memory import MemoryEngine
from mongoeco.engines.sqlite import SQLiteEngine
from mongoeco.engines.sqlite_query import json_path_for_field, type_expression_sql
from mongoeco.wire.proxy import AsyncMongoEcoProxyServer

from order_generation.adapters import embedded_codec, embedded_queries

_START_TIMEOUT_SECONDS = 30.0


class EmbeddedMongo:
    """A wire server over a SQLite file (or memory when `path` is None) on 127.0.0.1."""

    def __init__(self, path: Path | None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.path = path
        self._host = host
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="embedded-mongo", daemon=True
        )
        self._server: AsyncMongoEcoProxyServer | None = None
        self.uri = ""

    def start(self) -> str:
        """Start serving and return the `mongodb://` URI the driver connects to."""
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        self.uri = future.result(timeout=_START_TIMEOUT_SECONDS)
        return self.uri

    def freeze_survivors(self, every: float = 1.0) -> None:
        """For a server in a process of its own: every `every` seconds, collect the young
        objects and freeze the survivors (`gc.freeze`), so that collections scan only what
        is new. Stored documents live as long as the server, and a full collection over the
        millions of objects of a large stored run otherwise stalls every command for up to a
        second. Frozen objects are still freed when their last reference goes."""

        def freeze() -> None:
            gc.collect(1)
            gc.freeze()
            self._loop.call_later(every, freeze)

        self._loop.call_soon_threadsafe(freeze)

    def stop(self) -> None:
        """Close the server, its storage, and the thread."""
        if self._server is not None:
            future = asyncio.run_coroutine_threadsafe(self._server.close(), self._loop)
            future.result(timeout=_START_TIMEOUT_SECONDS)
            self._server = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=_START_TIMEOUT_SECONDS)
        self._loop.close()

    async def _serve(self) -> str:
        _tune_engine()
        engine = MemoryEngine() if self.path is None else _FastSQLiteEngine(str(self.path))
        self._server = AsyncMongoEcoProxyServer(engine=engine, host=self._host, port=self._port)
        address = await self._server.start()
        return str(address.uri)


class _FastSQLiteEngine(SQLiteEngine):
    """The SQLite engine without its cross-process change-stream outbox (the service opens
    no change stream): with it, every write also serialised the whole document again and
    ran a lease, a heartbeat thread and three commits on a second connection."""

    capabilities = dataclasses.replace(SQLiteEngine.capabilities, change_delivery="none")

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._checking = threading.local()  # per thread: the document being checked, its keys

    def _validate_document_against_unique_indexes(
        self, db_name: str, coll_name: str, document: Any, **flags: Any
    ) -> None:
        # A single insert asked for a scan of the whole collection, decoding every stored
        # document, to find an _id equal to this one but stored differently; only numbers
        # (1 == 1.0) can be that, any other _id is found by its primary key.
        if not id_contains_numeric_value(document.get("_id")):
            flags["scan_payload_id"] = False
        self._checking.candidate, self._checking.keys = document, {}
        try:
            super()._validate_document_against_unique_indexes(db_name, coll_name, document, **flags)
        finally:
            self._checking.candidate, self._checking.keys = None, {}

    def _unique_index_keys(
        self, document: dict[str, Any], fields: list[str]
    ) -> set[tuple[object, ...]]:
        # A unique index on an array is checked against every stored document, and the
        # engine computed the new document's keys again for each: 5,000 portfolios against
        # 300 models were 1.5 million keys. They are computed once per check.
        if document is not getattr(self._checking, "candidate", None):
            return super()._unique_index_keys(document, fields)
        known: dict[tuple[str, ...], set[tuple[object, ...]]] = self._checking.keys
        keys = known.get(tuple(fields))
        if keys is None:
            keys = known[tuple(fields)] = super()._unique_index_keys(document, fields)
        return keys

    async def create_index(self, db_name: str, coll_name: str, keys: Any, **options: Any) -> str:
        # Each field of an index also gets its probe index (`embedded_queries`): the feature
        # probes the engine asks again after every write are then index lookups.
        name = await super().create_index(db_name, coll_name, keys, **options)
        run_blocking: Any = self._run_blocking  # untyped in mongoeco
        fields = [field for field, _ in keys]
        await run_blocking(self._create_probe_indexes, fields, options.get("context"))
        return name

    def _create_probe_indexes(self, fields: list[str], context: Any) -> None:
        with self._lock:
            conn = self._require_connection(context)
            with SQLiteWriteScope(
                conn,
                begin_write=lambda current: self._begin_write(current, context),
                commit_write=lambda current: self._commit_write(current, context),
                rollback_write=lambda current: self._rollback_write(current, context),
            ):
                for field in fields:
                    conn.execute(embedded_queries.probe_index_sql(field))

    def _field_contains_tagged_value_type_in_collection(
        self, db_name: str, coll_name: str, field: str, value_type: str
    ) -> bool:
        query = embedded_queries.tagged_probe_sql(field)
        feature = f"tagged_type:{field}:{value_type}"
        return self._probe(feature, query, db_name, coll_name, value_type)

    def _field_has_comparison_type_mismatch_in_collection(
        self, db_name: str, coll_name: str, field: str, expected_type: str
    ) -> bool:
        # The engine's probe (type not null and not in the kind's) is not one an index serves.
        query = embedded_queries.mismatch_probe_sql(field, expected_type)
        if query is None:
            return super()._field_has_comparison_type_mismatch_in_collection(
                db_name, coll_name, field, expected_type
            )
        feature = f"comparison_mismatch:{field}:{expected_type}"
        return self._probe(feature, query, db_name, coll_name)

    def _probe(self, feature: str, query: str, db_name: str, coll_name: str, *params: Any) -> bool:
        """A feature probe remembered until the collection's next write, as the engine's."""
        key, known = (db_name, coll_name, feature), self._collection_features_cache
        if key not in known:
            found = self._require_connection().execute(query, (db_name, coll_name, *params))
            known[key] = found.fetchone() is not None
        return bool(known[key])

    def _sort_requires_python(self, db_name: str, coll_name: str, plan: Any, sort: Any) -> bool:
        # Whether a matching document holds an array under a sort key was asked with the
        # generic translation of the filter, which no index serves: each sorted read of a
        # page scanned the whole collection, twice. It is now asked with the translation
        # the find itself runs, so it looks at the documents the find returns.
        def as_the_find_does(query_plan: Any) -> tuple[str, list[object]]:
            return self._translate_query_plan_with_multikey(db_name, coll_name, query_plan)

        return sort_requires_python(
            db_name=db_name,
            coll_name=coll_name,
            plan=plan,
            sort=sort,
            plan_has_array_traversing_paths=self._plan_has_array_traversing_paths,
            translate_query_plan=as_the_find_does,
            field_traverses_array_in_collection=self._field_traverses_array_in_collection,
            field_contains_tagged_bytes_in_collection=self._field_contains_tagged_bytes_in_collection,
            field_contains_tagged_undefined_in_collection=self._field_contains_tagged_undefined_in_collection,
            fetchone=lambda sql, params: self._require_connection().execute(sql, params).fetchone(),
            type_expression_sql=type_expression_sql,
            json_path_for_field=json_path_for_field,
        )

    def _decode_codec_payload(self, payload: Any, *, preserve_bson_wrappers: bool) -> Any:
        # The engine looked up the codec's signature (inspect.signature) on every document.
        return self._codec.decode(payload, preserve_bson_wrappers=preserve_bson_wrappers)


_tuned = False


def _tune_engine() -> None:
    """Process-wide fixes to mongoeco's per-value work, each keeping its behaviour."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    embedded_codec.install()
    embedded_queries.install()
    module: Any = mongoeco.engines.sqlite
    record_change = module._sqlite_append_change

    def record_emitted_changes_only(conn: Any, *, context: Any, **change: Any) -> Any:
        # Without change streams a write records a "gap" entry; no one reads it.
        if context is not None and context.publication is ChangePublicationPolicy.RECORD_GAP:
            return None
        return record_change(conn, context=context, **change)

    module._sqlite_append_change = record_emitted_changes_only
    codec: Any = mongoeco.core.codec
    validate_subtree = codec.validate_bson_value

    def validate_keys_or_value(value: object) -> None:
        # The encoder validates every node as it reaches it, so validating a document's whole
        # subtree at each level validated each value once per level above it.
        if isinstance(value, dict):
            if not all(isinstance(key, str) for key in value):
                raise TypeError("BSON document keys must be strings")
            return
        validate_subtree(value)

    codec.validate_bson_value = validate_keys_or_value
    # Immutable values: a deep copy of a document need not rebuild them one by one.
    for immutable in (_bson_values.Decimal128, bson.Decimal128, bson.ObjectId):
        copy._deepcopy_dispatch[immutable] = copy._deepcopy_atomic  # type: ignore[attr-defined]


def main() -> None:
    server = EmbeddedMongo(Path(sys.argv[1]))
    sys.stdout.write(server.start() + "\n")
    server.freeze_survivors()
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    server.stop()


if __name__ == "__main__":
    main()
