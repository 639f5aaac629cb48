"""A first run and the operator's view of it, through the real `order-generation serve` process."""

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from order_generation.config import Settings
from tests.api.book import make_book
from tests.support.service import SERVICE, ServiceProcess, free_port, running_service
from tests.support.simulator import run_simulator

ROOT = Path(__file__).resolve().parents[2]
API = "/api/v1"
# Every setting the machine running the tests might carry; a first run has none of them.
ALL_SETTINGS = tuple(name.upper() for name in Settings.model_fields)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The service with nothing configured: embedded MongoDB, simulated GlobeCo, demo models."""
    env = {"DATA_DIR": str(tmp_path_factory.mktemp("first-run"))}
    with running_service(env, without=ALL_SETTINGS) as service:
        yield service


def test_the_root_leads_to_the_docs(first_run: ServiceProcess) -> None:
    response = httpx.get(f"{first_run.url}/", timeout=10)
    assert response.is_redirect
    assert response.headers["location"] == "/docs"
    docs = httpx.get(f"{first_run.url}/", timeout=10, follow_redirects=True)
    assert docs.status_code == 200
    assert docs.url.path == "/docs"
    assert "/" not in httpx.get(f"{first_run.url}/openapi.json", timeout=10).json()["paths"]


def test_version_prints_the_package_version() -> None:
    done = subprocess.run(
        [str(SERVICE), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"order-generation {version('order-generation')}"


def test_a_copy_of_env_example_is_a_working_first_run(tmp_path: Path) -> None:
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    with running_service({}, without=ALL_SETTINGS, cwd=tmp_path) as service:
        models = httpx.get(f"{service.url}{API}/models", timeout=10).json()
        model = next(m for m in models if m["name"] == "Demo Balanced")
        response = httpx.post(f"{service.url}{API}/model/{model['model_id']}/rebalance", timeout=60)
        assert response.status_code == 200, response.text
        assert all("error" not in entry for entry in response.json())
    assert (tmp_path / "data" / "order-generation.sqlite").exists(), "DATA_DIR from .env"
    assert "simulated_globeco_started" in service.log_path.read_text()


def _configured_db(tmp_path: Path, mongodb_url: str, **extra: str) -> dict[str, str]:
    database = f"e2e-{uuid.uuid4().hex[:12]}"
    env = {"DATA_DIR": str(tmp_path), "MONGODB_URL": mongodb_url, "MONGODB_DATABASE": database}
    return env | extra


def _stored_models(mongodb_url: str, database: str) -> int:
    client: MongoClient[dict[str, object]] = MongoClient(mongodb_url)
    try:
        return client[database]["models"].count_documents({})
    finally:
        client.drop_database(database)
        client.close()


def test_a_configured_database_gets_no_simulator_and_no_demo_data(
    tmp_path: Path, mongodb_url: str
) -> None:
    env = _configured_db(tmp_path, mongodb_url)
    with running_service(env, without=ALL_SETTINGS) as service:
        assert httpx.get(f"{service.url}{API}/models", timeout=10).json() == []
    assert "simulated_globeco_started" not in service.log_path.read_text()
    assert _stored_models(mongodb_url, env["MONGODB_DATABASE"]) == 0


def test_the_simulator_asked_for_with_a_configured_database_writes_no_demo_models(
    tmp_path: Path, mongodb_url: str
) -> None:
    env = _configured_db(tmp_path, mongodb_url, SIMULATE_GLOBECO="true")
    with running_service(env, without=ALL_SETTINGS) as service:
        assert httpx.get(f"{service.url}{API}/models", timeout=10).json() == []
    started = [line for line in service.log_lines() if line["event"] == "simulated_globeco_started"]
    assert len(started) == 1
    assert started[0]["demo_models_loaded"] == 0
    assert _stored_models(mongodb_url, env["MONGODB_DATABASE"]) == 0


def test_the_simulator_can_be_turned_off_on_a_first_run(tmp_path: Path) -> None:
    env = {"DATA_DIR": str(tmp_path), "SIMULATE_GLOBECO": "false"}
    with running_service(env, without=ALL_SETTINGS) as service:
        assert httpx.get(f"{service.url}{API}/models", timeout=10).json() == []
    assert "simulated_globeco_started" not in service.log_path.read_text()


def _serve_fails(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`serve` that must stop at start-up: its exit code and what it wrote."""
    inherited = {k: v for k, v in os.environ.items() if k not in ALL_SETTINGS}
    return subprocess.run(
        [str(SERVICE), "serve"],
        env=inherited | {"DATA_DIR": str(tmp_path), "HOST": "127.0.0.1"} | env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_bad_setting_ends_start_up_with_one_line(tmp_path: Path) -> None:
    done = _serve_fails(tmp_path, PORT="abc")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: bad setting: PORT: Input should be a valid integer")
    assert "'abc'" in done.stderr


def test_an_unreachable_mongodb_url_ends_start_up_with_one_line(tmp_path: Path) -> None:
    url = f"mongodb://user:hunter2@127.0.0.1:{free_port()}/"
    done = _serve_fails(tmp_path, MONGODB_URL=url, PORT=str(free_port()))
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: MONGODB_URL mongodb://***@127.0.0.1:")
    assert "not reachable" in done.stderr
    assert "hunter2" not in done.stdout + done.stderr


def test_health_says_the_first_run_services_are_simulated(first_run: ServiceProcess) -> None:
    health = httpx.get(f"{first_run.url}/health/health", timeout=10).json()
    for service in ("accounting", "security", "pricing", "portfolio"):
        assert health["checks"][service]["status"] == "simulated", health
        assert health["checks"][service]["simulated"] is True
    assert health["status"] == "ok"


def test_health_says_which_real_service_is_reachable_and_which_is_failing(
    tmp_path: Path, mongodb_url: str
) -> None:
    with run_simulator(make_book(portfolios=2, seed=3).scenario) as simulator:
        urls = {k.upper(): v for k, v in simulator.urls.items()}
        closed = f"http://127.0.0.1:{free_port()}"
        env = _configured_db(tmp_path, mongodb_url, **urls | {"PRICING_SERVICE_URL": closed})
        with running_service(env, without=ALL_SETTINGS) as service:
            response = httpx.get(f"{service.url}/health/health", timeout=10)
    assert response.status_code == 200, "only MongoDB makes the service unusable"
    health = response.json()
    assert health["status"] == "degraded"
    assert health["checks"]["pricing"] == {
        "status": "failing",
        "simulated": False,
        "url": closed,
        "reason": "connection refused or failed",
    }
    for name in ("accounting", "security", "portfolio"):
        assert health["checks"][name]["status"] == "reachable", health
    _stored_models(mongodb_url, env["MONGODB_DATABASE"])


def test_every_log_line_is_json_and_a_request_is_one_line(tmp_path: Path) -> None:
    with running_service({"DATA_DIR": str(tmp_path)}, without=ALL_SETTINGS) as service:
        headers = {"X-Correlation-ID": "one-line-per-request"}
        assert httpx.get(f"{service.url}{API}/models", headers=headers, timeout=10).is_success
    text = service.log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines()]  # every line, the children's too
    assert len(lines) == len(text.splitlines())
    by_logger = {line.get("logger") for line in lines}
    assert {"gunicorn.error", "uvicorn.error", "order_generation.cli"} <= by_logger
    events = [line["event"] for line in lines]
    assert any(event.startswith("Starting gunicorn") for event in events)
    assert "Application startup complete." in events
    assert "simulated_globeco_ready" in events  # the simulator child
    assert "Shutting down: Master" in events
    request = [line for line in lines if line.get("correlation_id") == "one-line-per-request"]
    assert [line["event"] for line in request] == ["request"]
    assert "uvicorn.access" not in by_logger


@pytest.mark.parametrize(
    ("host", "secret", "warned"),
    [("0.0.0.0", "", True), ("0.0.0.0", "s3cret", False), ("127.0.0.1", "", False)],
)
def test_all_interfaces_without_a_secret_key_is_warned_of(
    tmp_path: Path, host: str, secret: str, warned: bool
) -> None:
    # An unreachable MONGODB_URL stops serve before it binds anything: no port opens here.
    url = f"mongodb://127.0.0.1:{free_port()}/"
    env = {"HOST": host, "MONGODB_URL": url} | ({"SECRET_KEY": secret} if secret else {})
    done = _serve_fails(tmp_path, **env)
    assert done.returncode == 1
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    warnings = [line for line in lines if line["event"] == "api_open_without_key"]
    assert len(warnings) == int(warned), done.stdout
    if warned:
        assert warnings[0]["level"] == "warning"
        assert "SECRET_KEY" in warnings[0]["hint"]
