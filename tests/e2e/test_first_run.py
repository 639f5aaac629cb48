"""A first run and the operator's view of it, through the real `order-generation serve` process."""

import shutil
from pathlib import Path

import httpx

from order_generation.config import Settings
from tests.support.service import running_service

ROOT = Path(__file__).resolve().parents[2]
API = "/api/v1"
# Every setting the machine running the tests might carry; a first run has none of them.
ALL_SETTINGS = tuple(name.upper() for name in Settings.model_fields)


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
