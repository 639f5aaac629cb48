"""Slow clients are disconnected (issue 13.10): real sockets sending half a request to the
app served by uvicorn with the service's protocol.

Deadlines are a fraction of a second here; each socket waits up to PATIENCE seconds, so a
held connection fails the test instead of hanging it.
"""

import asyncio
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI

from order_generation.api.app import create_app
from order_generation.config import Settings
from order_generation.serving import deadline_protocol
from tests.support.server import serving

PATIENCE = 20.0
HEAD = b"GET /health/live HTTP/1.1\r\nHost: service\r\n"
SLOW_ANSWER_SECONDS = 1.0


@pytest.fixture
def address(settings: Settings) -> Iterator[tuple[str, int]]:
    settings = settings.model_copy(
        update={"request_header_timeout": 0.3, "request_body_timeout": 0.3}
    )
    app = create_app(settings)
    _add_slow_route(app)
    with serving(app, http=deadline_protocol(settings)) as url:
        parts = urlsplit(url)
        assert parts.hostname is not None
        assert parts.port is not None
        yield parts.hostname, parts.port


def _add_slow_route(app: FastAPI) -> None:
    async def slow() -> dict[str, bool]:
        await asyncio.sleep(SLOW_ANSWER_SECONDS)
        return {"slow": True}

    app.add_api_route("/slow", slow)


def _connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=PATIENCE)
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    """Reads until the server closes; True if it did before PATIENCE ran out."""
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    return True


def _answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"}"):
        chunk = sock.recv(4096)
        assert chunk, f"closed before a full answer: {data!r}"
        data += chunk
    return data


def test_a_connection_that_sends_nothing_is_closed(address: tuple[str, int]):
    with _connect(address) as sock:
        assert _closed_by_server(sock)


def test_a_head_that_never_ends_is_closed(address: tuple[str, int]):
    with _connect(address) as sock:
        sock.sendall(HEAD)
        assert _closed_by_server(sock)


def test_a_body_that_never_arrives_is_closed(address: tuple[str, int]):
    with _connect(address) as sock:
        sock.sendall(
            b"POST /api/v1/models HTTP/1.1\r\nHost: service\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"name":'
        )
        assert _closed_by_server(sock)


def test_an_answer_slower_than_the_deadlines_is_still_sent(address: tuple[str, int]):
    with _connect(address) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: service\r\n\r\n")
        assert b'{"slow":true}' in _answer(sock)


def test_a_keep_alive_connection_serves_requests_sent_in_time(address: tuple[str, int]):
    with _connect(address) as sock:
        for _ in range(3):
            sock.sendall(HEAD + b"\r\n")
            assert _answer(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(HEAD)  # then one half-sent
        assert _closed_by_server(sock)


def test_a_nul_in_a_header_is_refused_by_the_protocol(address: tuple[str, int]):
    with _connect(address) as sock:
        sock.sendall(
            b"GET /health/live HTTP/1.1\r\nHost: service\r\nX-Correlation-ID: a\x00b\r\n\r\n"
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 400")
