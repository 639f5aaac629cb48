"""`order-generation replay FILE` as a user runs it: a subprocess on a run exported from the
service (`GET /rebalance/{id}`), made by a real model rebalance against the GlobeCo simulator."""

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from order_generation.config import Settings
from tests.api.book import make_book
from tests.api.test_models_api import API
from tests.support.app import app_client
from tests.support.simulator import SimulatorProcess

CLI = Path(sys.executable).parent / "order-generation"
BOOK = make_book(portfolios=8, seed=3)
TOO_SMALL = BOOK.model["portfolios"][-1]
POLICY = {"withdraw": "1234.56", "min_cash": "250.5", "round_lot": 2}


def replay(*args: object, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(CLI), "replay", *map(str, args)]
    done = subprocess.run(
        command, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture
async def service(
    simulator: SimulatorProcess, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(simulator.settings(settings)) as http:
        yield http


@pytest.fixture
async def exported(service: httpx.AsyncClient, tmp_path: Path) -> Path:
    """A model run under a policy, exported as the README says: the JSON of GET /rebalance/{id}."""
    model_id = (await service.post(f"{API}/models", json=BOOK.model)).json()["model_id"]
    entries = (await service.post(f"{API}/model/{model_id}/rebalance", json=POLICY)).json()
    response = await service.get(f"{API}/rebalance/{entries[0]['rebalance_id']}")
    path = tmp_path / "run.json"
    path.write_bytes(response.content)
    return path


def read(path: Path) -> dict[str, Any]:
    run: dict[str, Any] = json.loads(path.read_text())
    return run


def write(path: Path, run: dict[str, Any]) -> None:
    path.write_text(json.dumps(run))


def traded(portfolio: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in portfolio["positions"] if p["transaction_type"])


async def test_an_exported_run_replays_to_the_same_orders(exported: Path):
    run = read(exported)
    done = replay(exported)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"rebalance {run['rebalance_id']} (model {run['model_id']} version 1): "
        f"{len(run['portfolios'])} portfolios replayed, every order is the same"
    )
    for portfolio in run["portfolios"]:
        orders = sum(1 for p in portfolio["positions"] if p["transaction_type"])
        assert f"{portfolio['portfolio_id']}: same orders ({orders})" in lines
    assert f"{TOO_SMALL}: not replayed, it failed in the run (OPTIMIZATION_FAILED)" in lines


async def test_the_json_answer_is_the_services(service: httpx.AsyncClient, exported: Path):
    rebalance_id = read(exported)["rebalance_id"]
    from_service = (await service.post(f"{API}/rebalance/{rebalance_id}/replay")).json()
    done = replay(exported, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == from_service
    assert from_service["same"] is True


async def test_an_export_read_from_stdin(exported: Path):
    done = replay("-", stdin=json.dumps(read(exported)))
    assert done.returncode == 0, done.stderr
    assert "every order is the same" in done.stdout.splitlines()[0]


async def test_a_changed_price_in_the_file_names_the_orders_that_differ(exported: Path):
    run = read(exported)
    portfolio = run["portfolios"][0]
    position = traded(portfolio)
    position["price"] *= 9
    write(exported, run)

    done = replay(exported)

    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].endswith("some orders differ")
    heading = next(line for line in lines if line.startswith(portfolio["portfolio_id"]))
    assert "orders differ for" in heading
    stored = f"{position['transaction_type']} {position['trade_quantity']}"
    assert any(
        line.startswith(f"  {position['security_id']}: stored {stored}, replayed ")
        for line in lines
    ), done.stdout
    answer = json.loads(replay(exported, "--json").stdout)
    differing = answer["portfolios"][0]["differences"]
    assert differing
    assert all(
        (d["stored_side"], d["stored_quantity"]) != (d["replayed_side"], d["replayed_quantity"])
        for d in differing
    )
    assert all(p["same"] for p in answer["portfolios"][1:])


async def test_an_export_from_before_model_versions_cannot_be_replayed(exported: Path):
    run = read(exported)
    del run["model_version"]
    write(exported, run)
    done = replay(exported)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {exported}: rebalance {run['rebalance_id']} cannot be")
    assert "model version" in done.stderr


def test_a_file_that_is_not_an_exported_run(tmp_path: Path):
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    done = replay(listed)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {listed}: not an exported run:")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"rebalance_id": "x", "portfolios": [{"positions": 3}]}))
    assert "not an exported run: model_id: Field required" in replay(broken).stderr
    missing = replay(tmp_path / "absent.json")
    assert missing.returncode == 2
    assert "cannot be read" in missing.stderr
