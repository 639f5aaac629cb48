"""Operating the service as a process: logs, metrics across workers, graceful shutdown."""

import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from order_generation.config import GLOBECO_URL_FIELDS
from tests.api.book import make_book
from tests.support.service import ServiceProcess, running_service
from tests.support.simulator import SimulatorProcess

API = "/api/v1"
BOOK = make_book(portfolios=12, seed=5)


def _env(tmp_path: Path, simulator: SimulatorProcess, **extra: str) -> dict[str, str]:
    env = {"DATA_DIR": str(tmp_path), **{k.upper(): v for k, v in simulator.urls.items()}}
    if "MONGODB_URL" in os.environ:
        env["MONGODB_DATABASE"] = f"e2e-{uuid.uuid4().hex[:12]}"
    return env | extra


@pytest.fixture(scope="module")
def two_workers(
    tmp_path_factory: pytest.TempPathFactory, simulator: SimulatorProcess
) -> Iterator[ServiceProcess]:
    env = _env(tmp_path_factory.mktemp("workers"), simulator, WORKERS="2")
    with running_service(env) as service:
        created = httpx.post(f"{service.url}{API}/models", json=BOOK.model, timeout=10)
        assert created.status_code == 201
        yield service


def test_a_correlation_id_is_on_every_log_line_of_its_request(two_workers: ServiceProcess):
    portfolio = BOOK.model["portfolios"][0]
    response = httpx.post(
        f"{two_workers.url}{API}/portfolio/{portfolio}/rebalance",
        headers={"X-Correlation-ID": "e2e-corr-1"},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.headers["X-Correlation-ID"] == "e2e-corr-1"
    time.sleep(0.2)
    lines = [line for line in two_workers.log_lines() if line.get("correlation_id") == "e2e-corr-1"]
    events = {line["event"] for line in lines}
    assert {"request", "audit", "globeco_call"} <= events
    calls = [line for line in lines if line["event"] == "globeco_call"]
    assert any(portfolio in line["path"] for line in calls if line["service"] == "accounting")
    audit = next(line for line in lines if line["event"] == "audit")
    assert audit["action"] == "rebalance_portfolio"
    assert audit["rebalance_id"] == response.json()["rebalance_id"]
    assert all("cash" not in line for line in lines), "no bodies in logs"


def _metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.compile(rf"^{name}\{{(.*)\}} (\S+)$", re.MULTILINE)
    total = 0.0
    for found_labels, value in pattern.findall(text):
        if all(part in found_labels.split(",") for part in wanted.split(",") if part):
            total += float(value)
    return total


def test_metrics_add_up_across_workers(two_workers: ServiceProcess):
    before = httpx.get(f"{two_workers.url}/metrics", timeout=10).text
    route = {"method": "GET", "route": "/api/v1/model/{model_id}", "status": "404"}
    for _ in range(30):  # a new connection each time, so either worker may answer
        assert httpx.get(f"{two_workers.url}{API}/model/{'0' * 24}").status_code == 404
    after = httpx.get(f"{two_workers.url}/metrics", timeout=10).text
    assert _metric(after, "http_requests_total", **route) - _metric(
        before, "http_requests_total", **route
    ) == pytest.approx(30)


def test_rebalance_metrics_after_a_real_rebalance(two_workers: ServiceProcess):
    portfolio = BOOK.model["portfolios"][1]
    response = httpx.post(f"{two_workers.url}{API}/portfolio/{portfolio}/rebalance", timeout=30)
    assert response.status_code == 200
    text = httpx.get(f"{two_workers.url}/metrics", timeout=10).text
    assert _metric(text, "rebalances_total", kind="portfolio", outcome="success") >= 1
    assert _metric(text, "rebalance_duration_seconds_count", kind="portfolio") >= 1
    assert _metric(text, "solver_duration_seconds_count") >= 1
    assert _metric(text, "globeco_request_duration_seconds_count", service="accounting") >= 1
    assert _metric(text, "cache_misses_total", cache="tickers") >= 1
    assert "globeco_circuit_breaker_state" in text
    assert "rebalances_in_flight" in text
    assert "http_request_duration_seconds_bucket" in text


def test_sigterm_lets_the_request_in_flight_finish(
    tmp_path: Path, simulator: SimulatorProcess
) -> None:
    import asyncio

    env = _env(tmp_path, simulator)
    portfolio = BOOK.model["portfolios"][2]
    with running_service(env) as service:
        assert httpx.post(f"{service.url}{API}/models", json=BOOK.model, timeout=10).is_success
        asyncio.run(simulator.set_faults("accounting", latency_ms=1500))
        answers: list[httpx.Response] = []
        request = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{service.url}{API}/portfolio/{portfolio}/rebalance", timeout=30)
            )
        )
        try:
            request.start()
            time.sleep(0.7)
            service.process.terminate()
            request.join(timeout=30)
            assert service.process.wait(timeout=40) == 0
        finally:
            asyncio.run(simulator.clear_faults())
    assert answers[0].status_code == 200, answers[0].text


def test_the_run_command_needs_no_globeco_url(tmp_path: Path):
    """With no GlobeCo URL configured, `serve` starts the simulated suite and its demo models."""
    unset = (*(field.upper() for field in GLOBECO_URL_FIELDS), "MONGODB_URL", "SIMULATE_GLOBECO")
    with running_service({"DATA_DIR": str(tmp_path)}, without=unset) as service:
        models = httpx.get(f"{service.url}{API}/models", timeout=10).json()
        assert {m["name"] for m in models} >= {"Demo Balanced", "Demo Growth"}
        model = models[0]
        response = httpx.post(f"{service.url}{API}/model/{model['model_id']}/rebalance", timeout=60)
        assert response.status_code == 200
        assert len(response.json()) == len(model["portfolios"])
        assert all("error" not in entry for entry in response.json())
    assert "simulated_globeco_started" in service.log_path.read_text()
