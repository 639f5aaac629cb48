"""`python -m bench.service_mongo`: the embedded MongoDB on its in-memory engine, as a process,
timing every command it serves so that a benchmark can tell storage time apart.

Prints its `mongodb://` URI when ready. Then, for each line `events` on its standard input,
it prints one JSON line: the commands served since the last such line, each as
[start, end, command, collection] with times on the machine's monotonic clock (the clock of
`time.monotonic()` and `time.perf_counter()` in every process here). Stops on SIGTERM or when
its standard input closes. Its own process, so its CPU work competes with neither the
service's nor the benchmark's GIL.
"""

import contextlib
import json
import signal
import struct
import sys
import time
from typing import Any

from order_generation.adapters.embedded_mongo import EmbeddedMongo

Event = tuple[float, float, str, str]


class CommandTimer:
    """Wraps the wire server's per-request dispatch and records when each command ran."""

    def __init__(self, server: Any) -> None:
        self.events: list[Event] = []
        dispatch = server._dispatch_wire_request

        async def timed(header: Any, payload: bytes, *, connection: Any) -> bytes | None:
            started = time.monotonic()
            try:
                response: bytes | None = await dispatch(header, payload, connection=connection)
                return response
            finally:
                self.events.append((started, time.monotonic(), *_command(payload)))

        server._dispatch_wire_request = timed

    def take(self) -> list[Event]:
        taken, self.events = self.events, []
        return taken


def _command(payload: bytes) -> tuple[str, str]:
    """The command name and its string argument (the collection, for CRUD) of an OP_MSG."""
    try:
        # flag bits (4), section kind 0 (1), document length (4), then the first element
        offset = 9
        kind = payload[offset]
        end = payload.index(b"\0", offset + 1)
        name = payload[offset + 1 : end].decode()
        if kind != 0x02:  # not a string: e.g. {"ping": 1}
            return name, ""
        (length,) = struct.unpack_from("<i", payload, end + 1)
        return name, payload[end + 5 : end + 4 + length].decode()
    except (IndexError, ValueError, struct.error):
        return "?", ""


def main() -> None:
    mongo = EmbeddedMongo(None)
    uri = mongo.start()
    timer = CommandTimer(mongo._server)
    mongo.freeze_survivors()
    sys.stdout.write(uri + "\n")
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        for line in sys.stdin:
            if line.strip() == "events":
                sys.stdout.write(json.dumps(timer.take()) + "\n")
                sys.stdout.flush()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    mongo.stop()


if __name__ == "__main__":
    main()
