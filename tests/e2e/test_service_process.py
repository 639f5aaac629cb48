"""The service as its own process, started the way the README starts it."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.model_factory import model_body

SERVICE = Path(sys.executable).parent / "order-generation"
START_TIMEOUT_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_service(
    env: dict[str, str], without: tuple[str, ...] = ()
) -> Iterator[tuple[str, Path]]:
    """Start `order-generation serve`, wait until ready, stop it by its PID with SIGTERM."""
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if k not in without}
    log_path = Path(env["DATA_DIR"]) / f"service-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(SERVICE), "serve"],
            env=inherited | env | {"PORT": str(port), "HOST": "127.0.0.1"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(base_url, process)
            yield base_url, log_path
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=START_TIMEOUT_SECONDS)


def _wait_ready(base_url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, "the service exited during start-up"
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail("the service did not become ready in time")


@pytest.fixture
def service_env(tmp_path: Path) -> dict[str, str]:
    env = {"DATA_DIR": str(tmp_path), "LOG_LEVEL": "INFO"}
    if "MONGODB_URL" in os.environ:
        env["MONGODB_DATABASE"] = f"e2e-{uuid.uuid4().hex[:12]}"
    return env


def test_models_survive_a_restart_of_the_service(service_env: dict[str, str]):
    body = model_body(positions=2)
    with running_service(service_env) as (url, _):
        created = httpx.post(f"{url}/api/v1/models", json=body, timeout=10).json()
        assert created["version"] == 1

    with running_service(service_env) as (url, _):
        fetched = httpx.get(f"{url}/api/v1/model/{created['model_id']}", timeout=10)
        assert fetched.json() == created


def test_without_mongodb_url_the_embedded_server_is_used_and_logged(tmp_path: Path):
    service_env = {"DATA_DIR": str(tmp_path)}
    with running_service(service_env, without=("MONGODB_URL", "MONGODB_DATABASE")) as (
        url,
        log_path,
    ):
        health = httpx.get(f"{url}/health/health", timeout=10).json()
        assert health["checks"]["mongodb"]["status"] == "ok"
    assert (Path(service_env["DATA_DIR"]) / "order-generation.sqlite").exists()
    assert "embedded_mongodb_started" in log_path.read_text()
