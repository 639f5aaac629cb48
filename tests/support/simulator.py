"""Run the GlobeCo simulator as a child process for tests, and steer its faults."""

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from order_generation.config import Settings
from order_generation.simulator import Scenario


@dataclass
class SimulatorProcess:
    """A running simulator: its URLs (keyed like the Settings fields) and a fault-control handle."""

    pid: int
    urls: dict[str, str]
    control_url: str

    def settings(self, storage: Settings | None = None, **overrides: Any) -> Settings:
        """Settings whose four GlobeCo URLs point at this simulator (no .env read), on the
        MongoDB server and database of `storage` when given."""
        fields: dict[str, Any] = {**self.urls, **overrides}
        if storage is not None:
            fields |= {
                "mongodb_url": storage.mongodb_url,
                "mongodb_database": storage.mongodb_database,
            }
        return Settings(_env_file=None, **fields)

    async def set_faults(self, service: str, **faults: Any) -> dict[str, Any]:
        """Replace one service's faults: latency_ms, error_rate, fail_next, hang, down, seed."""
        return await self._control("PUT", f"/faults/{service}", json=faults)

    async def clear_faults(self) -> None:
        await self._control("DELETE", "/faults")

    async def calls(self) -> dict[str, dict[str, int]]:
        """Requests received so far: service -> "GET /path" -> count."""
        counts: dict[str, dict[str, int]] = await self._control("GET", "/calls")
        return counts

    async def call_count(self, service: str, path: str | None = None) -> int:
        """Requests one service received, to one path or in all."""
        counts = (await self.calls())[service]
        return sum(n for key, n in counts.items() if path is None or key == f"GET {path}")

    async def reset_calls(self) -> None:
        await self._control("DELETE", "/calls")

    async def scenario(self) -> dict[str, Any]:
        return await self._control("GET", "/scenario")

    async def _control(self, method: str, path: str, json: object = None) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.control_url, timeout=5) as http:
            response = await http.request(method, path, json=json)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


@contextmanager
def run_simulator(
    scenario: Scenario | Mapping[str, Any] | Path | None = None,
    *,
    seed: int = 0,
    startup_timeout: float = 15.0,
) -> Iterator[SimulatorProcess]:
    """Start the simulator on a scenario (None: the demo book for `seed`); stop it by its PID."""
    with tempfile.TemporaryDirectory(prefix="globeco-sim-") as tmp:
        command = [sys.executable, "-m", "order_generation.simulator", "--seed", str(seed)]
        if scenario is None:
            command.append("--demo")
        else:
            command += ["--scenario", str(_scenario_file(scenario, Path(tmp)))]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            urls = _ready_line(process, startup_timeout)
            control_url = urls.pop("control_url")
            yield SimulatorProcess(process.pid, urls, control_url)
        finally:
            _stop(process)


def _scenario_file(scenario: Scenario | Mapping[str, Any] | Path, directory: Path) -> Path:
    if isinstance(scenario, Path):
        return scenario
    if not isinstance(scenario, Scenario):
        scenario = Scenario.from_dict(scenario)
    path = directory / "scenario.json"
    scenario.dump(path)
    return path


def _ready_line(process: subprocess.Popen[str], timeout: float) -> dict[str, str]:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else ""
    if not line:
        raise RuntimeError(f"simulator did not start (exit code {process.poll()})")
    urls: dict[str, str] = json.loads(line)
    return urls


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
