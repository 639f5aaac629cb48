"""The service as its own process, started the way the README starts it."""

import os
import uuid
from pathlib import Path

import httpx
import pytest

from tests.api.model_factory import model_body
from tests.support.service import running_service


@pytest.fixture
def service_env(tmp_path: Path) -> dict[str, str]:
    env = {"DATA_DIR": str(tmp_path), "LOG_LEVEL": "INFO"}
    if "MONGODB_URL" in os.environ:
        env["MONGODB_DATABASE"] = f"e2e-{uuid.uuid4().hex[:12]}"
    return env


def test_models_survive_a_restart_of_the_service(service_env: dict[str, str]):
    body = model_body(positions=2)
    with running_service(service_env) as service:
        created = httpx.post(f"{service.url}/api/v1/models", json=body, timeout=10).json()
        assert created["version"] == 1

    with running_service(service_env) as service:
        fetched = httpx.get(f"{service.url}/api/v1/model/{created['model_id']}", timeout=10)
        assert fetched.json() == created


def test_without_mongodb_url_the_embedded_server_is_used_and_logged(tmp_path: Path):
    service_env = {"DATA_DIR": str(tmp_path)}
    with running_service(service_env, without=("MONGODB_URL", "MONGODB_DATABASE")) as service:
        health = httpx.get(f"{service.url}/health/health", timeout=10).json()
        assert health["checks"]["mongodb"]["status"] == "ok"
    assert (Path(service_env["DATA_DIR"]) / "order-generation.sqlite").exists()
    assert "embedded_mongodb_started" in service.log_path.read_text()
