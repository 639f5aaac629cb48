"""How long a request waits when something fails, and how many runs retries store.

`python -m bench.failures` runs the service in-process on the real driver, an embedded MongoDB
process and a simulator process, and prints one table: each wait as seconds and as a ratio
to the setting that bounds it, and stored runs with and without an Idempotency-Key.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from rich.console import Console
from rich.table import Table

from order_generation.api.app import create_app
from order_generation.config import Settings
from order_generation.simulator.demo import demo_models

API = "/api/v1"
CONCURRENT_RETRIES = 8


def _child(command: list[str]) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


@asynccontextmanager
async def _service(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as http,
    ):
        yield http


async def _timed(call: Callable[[], Awaitable[httpx.Response]]) -> tuple[float, int]:
    started = time.perf_counter()
    response = await call()
    return time.perf_counter() - started, response.status_code


async def main() -> None:
    directory = Path(tempfile.mkdtemp(prefix="bench-failures-"))
    module = "order_generation.adapters.embedded_mongo"
    mongo, mongo_url = _child([sys.executable, "-m", module, str(directory / "db.sqlite")])
    simulator, ready = _child([sys.executable, "-m", "order_generation.simulator", "--demo"])
    urls = json.loads(ready)
    control = urls.pop("control_url")
    model = demo_models()[0]
    base = {**urls, "mongodb_url": mongo_url, "external_service_timeout": 2.0}
    rows: list[tuple[str, str, float, str]] = []
    try:
        async with httpx.AsyncClient(base_url=control) as faults:
            await faults.put("/faults/accounting", json={"hang": True})
            for deadline in (1000.0, 1.0):
                settings = Settings(
                    _env_file=None,
                    **base,
                    rebalance_deadline_seconds=deadline,
                    mongodb_database=f"hung-{deadline:g}",
                )
                async with _service(settings) as http:
                    await http.post(f"{API}/models", json=model)
                    url = f"{API}/portfolio/{model['portfolios'][0]}/rebalance"
                    seconds, status = await _timed(partial(http.post, url))
                limit = "none: 4 attempts of 2 s" if deadline == 1000 else "deadline 1 s"
                rows.append(("hung Accounting", limit, seconds, f"{status}"))
            await faults.delete("/faults")
            rows += await _retries(base, model)
        rows += await _database_gone(base, mongo)
    finally:
        for process in (simulator, mongo):
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.wait()
    _print(rows)


async def _retries(
    base: dict[str, Any], model: dict[str, Any]
) -> list[tuple[str, str, float, str]]:
    rows = []
    for keyed in (False, True):
        settings = Settings(_env_file=None, **base, mongodb_database=f"retries-{keyed}")
        async with _service(settings) as http, _service(settings) as second_worker:
            await http.post(f"{API}/models", json=model)
            url = f"{API}/portfolio/{model['portfolios'][0]}/rebalance"
            headers = {"Idempotency-Key": "bench"} if keyed else {}
            started = time.perf_counter()
            answers = await asyncio.gather(
                *(
                    w.post(url, headers=headers)
                    for w in (http, second_worker) * (CONCURRENT_RETRIES // 2)
                )
            )
            seconds = time.perf_counter() - started
            runs = len((await http.get(f"{API}/rebalances?limit=100")).json())
        statuses = ",".join(sorted({str(a.status_code) for a in answers}))
        label = "same Idempotency-Key" if keyed else "no key"
        rows.append(
            (
                f"{CONCURRENT_RETRIES} sends at once, 2 apps",
                label,
                seconds,
                f"{statuses}; {runs} run(s) stored",
            )
        )
    return rows


async def _database_gone(
    base: dict[str, Any], mongo: subprocess.Popen[str]
) -> list[tuple[str, str, float, str]]:
    rows = []
    settings = Settings(
        _env_file=None, **base, mongodb_timeout_seconds=1.0, mongodb_database="gone"
    )
    async with _service(settings) as http:
        await http.get(f"{API}/models")
        os.kill(mongo.pid, signal.SIGSTOP)
        seconds, status = await _timed(lambda: http.get(f"{API}/models"))
        rows.append(("MongoDB frozen (SIGSTOP)", "timeout 1 s", seconds, str(status)))
        os.kill(mongo.pid, signal.SIGKILL)
        mongo.wait()
        seconds, status = await _timed(lambda: http.get(f"{API}/models"))
        rows.append(("MongoDB killed", "timeout 1 s", seconds, str(status)))
        seconds, status = await _timed(lambda: http.get("/health/ready"))
        rows.append(("MongoDB killed: readiness", "timeout 1 s", seconds, str(status)))
    return rows


def _print(rows: list[tuple[str, str, float, str]]) -> None:
    table = Table(title="Waits under failures (in-process service, real driver and HTTP)")
    for column in ("failure", "bound", "seconds", "x bound", "answer"):
        table.add_column(column)
    for failure, bound, seconds, answer in rows:
        number = bound.split()[-2] if bound.startswith(("deadline", "timeout")) else ""
        ratio = f"{seconds / float(number):.2f}" if number else ""
        table.add_row(failure, bound, f"{seconds:.2f}", ratio, answer)
    Console().print(table)


if __name__ == "__main__":
    asyncio.run(main())
