"""An embedded MongoDB wire server (mongoeco) for running without a `mongod`.

It runs on its own thread and event loop so its CPU work never blocks the caller's loop;
`python -m order_generation.adapters.embedded_mongo FILE` runs it as a process of its own,
prints its URI, and stops on SIGTERM or when its standard input closes (its parent is gone).
"""

import asyncio
import contextlib
import gc
import signal
import sys
import threading
from pathlib import Path

from mongoeco.engines.memory import MemoryEngine
from mongoeco.engines.sqlite import SQLiteEngine
from mongoeco.wire.proxy import AsyncMongoEcoProxyServer

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
        engine = MemoryEngine() if self.path is None else SQLiteEngine(str(self.path))
        self._server = AsyncMongoEcoProxyServer(engine=engine, host=self._host, port=self._port)
        address = await self._server.start()
        return str(address.uri)


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
