"""Reading a request with deadlines, so slow or stalled clients cannot hold connections.

uvicorn's h11 protocol times out only an idle keep-alive connection: once a client has sent
part of a request head, or a head announcing a body it never sends, the connection is held
as long as the client likes. Here a request head must arrive within `header_timeout` of the
connection being ready for it, and its body within `body_timeout` of the head; else the
connection is closed.
"""

import asyncio
from functools import partial
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]

from order_generation.config import Settings

# The request part being read in each state of the client's side; none once it is in.
_HEAD, _BODY = "head", "body"
_READING = {h11.IDLE: _HEAD, h11.SEND_BODY: _BODY}


class DeadlineH11Protocol(H11Protocol):
    def __init__(self, *args: Any, header_timeout: float, body_timeout: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._timeouts = {_HEAD: header_timeout, _BODY: body_timeout}
        self._reading: str | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._follow()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _follow(self) -> None:
        """A deadline for the part now being read, kept while that part lasts."""
        reading = _READING.get(self.conn.their_state)
        if reading == self._reading:
            return
        self._disarm()
        self._reading = reading
        if reading is not None:
            self._deadline = self.loop.call_later(self._timeouts[reading], self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        self.logger.info("closing a connection: request %s not received in time", self._reading)
        self.transport.close()


def deadline_protocol(settings: Settings) -> Any:
    """The protocol class for uvicorn's `http` option, with the settings' deadlines."""
    return partial(
        DeadlineH11Protocol,
        header_timeout=settings.request_header_timeout,
        body_timeout=settings.request_body_timeout,
    )


class ServiceWorker(UvicornWorker):  # type: ignore[misc]
    """gunicorn's uvicorn worker, reading requests with the settings' deadlines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.http = deadline_protocol(Settings())
