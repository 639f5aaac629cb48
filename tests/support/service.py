"""The service as its own process, started the way the README starts it."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

SERVICE = Path(sys.executable).parent / "order-generation"
START_TIMEOUT_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class ServiceProcess:
    url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (other lines, e.g. a child's, are skipped)."""
        lines = []
        for line in self.log_path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                lines.append(json.loads(line))
        return lines


@contextlib.contextmanager
def running_service(
    env: dict[str, str], without: tuple[str, ...] = (), cwd: Path | None = None
) -> Iterator[ServiceProcess]:
    """Start `order-generation serve`, wait until ready, stop it by its PID with SIGTERM.

    The log goes to DATA_DIR, or to `cwd` (where a `.env` file is read) when DATA_DIR is not given.
    """
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if k not in without}
    log_path = Path(env.get("DATA_DIR") or cwd or ".") / f"service-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(SERVICE), "serve"],
            env=inherited | env | {"PORT": str(port), "HOST": "127.0.0.1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(base_url, process)
            yield ServiceProcess(base_url, log_path, process)
        finally:
            if process.poll() is None:
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
