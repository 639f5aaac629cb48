"""An app served by a real uvicorn server on a free port, in a thread of the test process."""

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from tests.support.service import free_port

START_SECONDS = 30


@contextlib.contextmanager
def serving(app: Any, **options: Any) -> Iterator[str]:
    """Serve `app` (lifespan included) until the block ends; yields its base URL. `options`
    are uvicorn.Config's, e.g. `http=` a protocol class."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_SECONDS
    while not server.started:
        assert thread.is_alive(), "uvicorn exited during start-up"
        assert time.monotonic() < deadline, "uvicorn did not start in time"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(START_SECONDS)
