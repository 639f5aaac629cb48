"""`order-generation serve` reads requests with the configured deadlines (issue 13.10)."""

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.api.book import make_book
from tests.e2e.test_operations import _env
from tests.support.service import running_service
from tests.support.simulator import run_simulator
from tests.test_serving import HEAD, PATIENCE, _answer, _closed_by_server

BOOK = make_book(portfolios=2, seed=13)


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    timeouts = {"REQUEST_HEADER_TIMEOUT": "0.5", "REQUEST_BODY_TIMEOUT": "0.5", "WORKERS": "2"}
    with run_simulator(BOOK.scenario) as simulator:
        env = _env(tmp_path_factory.mktemp("slow"), simulator, **timeouts)
        with running_service(env) as service:
            parts = urlsplit(service.url)
            assert parts.hostname is not None
            assert parts.port is not None
            yield parts.hostname, parts.port


def _socket(address: tuple[str, int]) -> socket.socket:
    return socket.create_connection(address, timeout=PATIENCE)


def test_every_worker_closes_half_sent_requests(address: tuple[str, int]):
    # More connections than workers, so both workers' protocols are exercised.
    sockets = [_socket(address) for _ in range(6)]
    for sock in sockets:
        sock.sendall(HEAD)
    assert all(_closed_by_server(sock) for sock in sockets)
    for sock in sockets:
        sock.close()


def test_a_request_sent_in_time_is_answered(address: tuple[str, int]):
    with _socket(address) as sock:
        sock.sendall(HEAD + b"\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200")
