"""SIGTERM to the whole process group, as systemd and a terminal send it: requests in flight
still finish, and the embedded database stops last."""

import asyncio
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.book import make_book
from tests.support.service import SERVICE, START_TIMEOUT_SECONDS, ServiceProcess, free_port
from tests.support.simulator import SimulatorProcess

API = "/api/v1"
BOOK = make_book(portfolios=4, seed=11)


@pytest.fixture
def service_group(tmp_path: Path, simulator: SimulatorProcess) -> Iterator[ServiceProcess]:
    """`serve` with two workers and the embedded database, in a process group of its own."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URL", "MONGODB_DATABASE")}
    env |= {k.upper(): v for k, v in simulator.urls.items()}
    env |= {"DATA_DIR": str(tmp_path), "PORT": str(port), "HOST": "127.0.0.1", "WORKERS": "2"}
    log_path = tmp_path / "service.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(SERVICE), "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = ServiceProcess(f"http://127.0.0.1:{port}", log_path, process)
    try:
        _wait_ready(service)
        yield service
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=START_TIMEOUT_SECONDS)


def _wait_ready(service: ServiceProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        assert service.process.poll() is None, service.log_path.read_text()
        try:
            if httpx.get(f"{service.url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("the service did not become ready in time")


def _embedded_port(service: ServiceProcess) -> int:
    [started] = [
        line for line in service.log_lines() if line["event"] == "embedded_mongodb_started"
    ]
    return int(started["uri"].rsplit(":", 1)[1].split("/")[0])


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_sigterm_to_the_group_lets_a_slow_rebalance_finish_and_stops_the_database_last(
    service_group: ServiceProcess, simulator: SimulatorProcess
):
    url = service_group.url
    created = httpx.post(f"{url}{API}/models", json=BOOK.model, timeout=10)
    assert created.status_code == 201, created.text
    database_port = _embedded_port(service_group)
    answers: list[httpx.Response] = []
    portfolio = BOOK.model["portfolios"][0]
    request = threading.Thread(
        target=lambda: answers.append(
            httpx.post(f"{url}{API}/portfolio/{portfolio}/rebalance", timeout=30)
        )
    )
    asyncio.run(simulator.set_faults("accounting", latency_ms=1500))
    try:
        request.start()
        time.sleep(0.7)  # the request is waiting on the Accounting service
        os.killpg(service_group.process.pid, signal.SIGTERM)
        request.join(timeout=30)
        assert service_group.process.wait(timeout=40) == 0
    finally:
        asyncio.run(simulator.clear_faults())
    assert answers[0].status_code == 200, answers[0].text
    assert answers[0].json()["rebalance_id"] is not None  # stored before the database stopped
    assert not _accepts(database_port)  # and the database did stop
