"""`order-generation rebalance` as a user runs it: a subprocess on the examples and on bad files."""

import csv
import json
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

CLI = Path(sys.executable).parent / "order-generation"
EXAMPLES = Path(__file__).parents[2] / "examples"
MODEL, PRICES = EXAMPLES / "model.json", EXAMPLES / "prices.csv"
AAPL, GME = "AAPL00000000000000000000", "GME000000000000000000000"


def run(*args: object) -> subprocess.CompletedProcess[str]:
    command = [str(CLI), "rebalance", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def example_portfolios() -> dict[str, dict[str, Any]]:
    portfolios = json.loads((EXAMPLES / "portfolios.json").read_text())
    return {p["portfolio_id"]: p for p in portfolios}


def example_prices() -> dict[str, Decimal]:
    with PRICES.open() as file:
        return {row["security_id"]: Decimal(row["price"]) for row in csv.DictReader(file)}


def check_entry(entry: dict[str, Any]) -> None:
    """Recompute from the example files: bands, cash, and the orders that lead there."""
    portfolio = example_portfolios()[entry["portfolio_id"]]
    prices = example_prices()
    holdings: dict[str, int] = portfolio["holdings"]
    bands = {p["security_id"]: p for p in json.loads(MODEL.read_text())["positions"]}
    market_value = Decimal(portfolio["cash"]) + sum(q * prices[s] for s, q in holdings.items())
    assert Decimal(entry["market_value"]) == market_value

    drifts = {d["security_id"]: d for d in entry["drifts"]}
    assert set(drifts) == set(bands) | set(holdings)
    spent, expected = Decimal(0), {}
    for security_id, drift in drifts.items():
        band = bands.get(security_id, {"target": 0, "low_drift": 0, "high_drift": 0})
        target = Decimal(band["target"])
        before, after = int(drift["original_quantity"]), int(drift["adjusted_quantity"])
        assert before == holdings.get(security_id, 0)
        assert after >= 0
        amount = after * prices[security_id]
        low = market_value * (target - Decimal(band["low_drift"]))
        assert low <= amount <= market_value * (target + Decimal(band["high_drift"]))
        spent += amount
        if after != before:
            expected[security_id] = ("BUY" if after > before else "SELL", abs(after - before))
    cash_after = Decimal(entry["cash_after_rebalance"])
    assert cash_after == market_value - spent
    assert cash_after >= 0
    orders = entry["transactions"]
    assert {t["security_id"]: (t["transaction_type"], t["quantity"]) for t in orders} == expected


@pytest.fixture(scope="module")
def json_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], str]:
    """The JSON portfolios, answered as JSON into a file by two workers: (entries, stderr)."""
    output = tmp_path_factory.mktemp("json") / "out.json"
    portfolios = EXAMPLES / "portfolios.json"
    done = run(MODEL, portfolios, "--prices", PRICES, "--format", "json", "--output", output)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    return json.loads(output.read_text()), done.stderr


def test_json_output_is_the_api_shape_and_every_order_checks_out(
    json_run: tuple[list[dict[str, Any]], str],
):
    entries, stderr = json_run
    assert [e["portfolio_id"] for e in entries] == list(example_portfolios())
    for entry in entries:
        assert entry["rebalance_id"] is None
        assert entry["model_id"] is None
        check_entry(entry)
    holding_gme = next(e for e in entries if GME in {d["security_id"] for d in e["drifts"]})
    assert {"transaction_type": "SELL", "quantity": 2000} in [
        {k: t[k] for k in ("transaction_type", "quantity")}
        for t in holding_gme["transactions"]
        if t["security_id"] == GME
    ]
    all_cash = next(e for e in entries if e["portfolio_name"] == "New, all cash")
    assert all(t["transaction_type"] == "BUY" for t in all_cash["transactions"])
    assert "4 portfolios in" in stderr
    assert "4 succeeded, 0 failed" in stderr


def test_csv_portfolios_and_csv_output_agree_with_the_json_run(
    json_run: tuple[list[dict[str, Any]], str],
):
    done = run(MODEL, EXAMPLES / "portfolios.csv", "--prices", PRICES, "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(done.stdout.splitlines()))
    entries = {e["portfolio_id"]: e for e in json_run[0]}
    assert {r["portfolio_id"] for r in rows} == set(entries)
    for row in rows:
        entry = entries[row["portfolio_id"]]
        if row["security_id"] == "CASH":
            assert Decimal(row["original_quantity"]) == Decimal(entry["cash_before_rebalance"])
            assert Decimal(row["adjusted_quantity"]) == Decimal(entry["cash_after_rebalance"])
            continue
        drift = next(d for d in entry["drifts"] if d["security_id"] == row["security_id"])
        assert int(row["adjusted_quantity"]) == int(drift["adjusted_quantity"])
        trade = [t for t in entry["transactions"] if t["security_id"] == row["security_id"]]
        assert row["transaction_type"] == (trade[0]["transaction_type"] if trade else "")
    assert sum(r["security_id"] == "CASH" for r in rows) == len(entries)


def test_table_output_shows_orders_and_drifts_per_portfolio():
    done = run(MODEL, EXAMPLES / "portfolios.csv", "--prices", PRICES, "--jobs", "1")
    assert done.returncode == 0, done.stderr
    for portfolio_id in example_portfolios():
        assert f"{portfolio_id}: market value" in done.stdout
    gme = next(line for line in done.stdout.splitlines() if GME in line)
    assert "SELL 2000" in gme
    assert "actual drift" in done.stdout
    assert "4 succeeded, 0 failed" in done.stderr


def test_a_failing_portfolio_is_reported_while_the_others_complete(tmp_path: Path):
    portfolios = tmp_path / "two.csv"
    portfolios.write_text(
        f"portfolio_id,security_id,quantity\nTINY,CASH,100\nBIG,CASH,500000\nBIG,{AAPL},10\n"
    )
    done = run(MODEL, portfolios, "--prices", PRICES, "--format", "json")
    assert done.returncode == 1, done.stderr
    tiny, big = json.loads(done.stdout)
    assert tiny["portfolio_id"] == "TINY"
    assert tiny["error"]["code"] == "OPTIMIZATION_FAILED"
    assert "no feasible solution" in tiny["error"]["message"]
    assert big["portfolio_id"] == "BIG"
    assert big["transactions"]
    assert "2 portfolios in" in done.stderr
    assert "1 succeeded, 1 failed" in done.stderr
    assert "TINY failed: OPTIMIZATION_FAILED: no feasible solution" in done.stderr


def test_the_policy_is_the_model_one_then_the_policy_file_then_the_options(tmp_path: Path):
    model = json.loads(MODEL.read_text()) | {
        "policy": {"min_cash": "100", "no_sell": [GME], "round_lot": 5}
    }
    (tmp_path / "model.json").write_text(json.dumps(model))
    (tmp_path / "policy.json").write_text('{"roundLot": 10, "min_cash": "200", "mode": "full"}')
    done = run(
        tmp_path / "model.json",
        EXAMPLES / "portfolios.json",
        "--prices",
        PRICES,
        "--format",
        "json",
        "--policy",
        tmp_path / "policy.json",
        "--min-cash",
        "500",
        "--mode",
        "buy_only",
        "--bands",
        "best_effort",
    )
    assert done.returncode == 0, done.stderr
    applied = {
        "mode": "buy_only",
        "min_cash": "500",
        "min_cash_fraction": "0",
        "withdraw": "0",
        "no_buy": [],
        "no_sell": [GME],
        "hold": [],
        "min_trade_value": "0",
        "min_trade_quantity": 0,
        "round_lot": 10,
        "round_lots": {},
        "bands": "best_effort",
    }
    for entry in json.loads(done.stdout):
        assert entry["policy"] == applied
        assert entry["status"] in ("optimal", "feasible")
        assert all(d["breached"] is False for d in entry["drifts"]) == (entry["breaches"] == [])
        assert Decimal(entry["cash_after_rebalance"]) >= 500
        for trade in entry["transactions"]:
            assert trade["transaction_type"] == "BUY"
            assert trade["quantity"] % 10 == 0


def test_the_table_shows_the_mode_used_and_the_breaches(tmp_path: Path):
    portfolios = tmp_path / "tiny.csv"
    portfolios.write_text("portfolio_id,security_id,quantity\nTINY,CASH,100\n")
    done = run(MODEL, portfolios, "--prices", PRICES, "--bands", "best_effort", "--jobs", "1")
    assert done.returncode == 0, done.stderr
    assert "TINY: market value 100, cash 100 -> 100, 0 orders, mode full" in done.stdout
    assert "10 outside their bands:" in done.stdout
    aapl = next(line for line in done.stdout.splitlines() if line.startswith(f"  {AAPL} holds"))
    assert "holds 0.00, 10.00000 outside 10.00 .. 14.00: " in aapl


def test_a_withdrawal_above_a_market_value_fails_that_portfolio_alone():
    done = run(MODEL, EXAMPLES / "portfolios.json", "--prices", PRICES, "--withdraw", "150000")
    assert done.returncode == 1, done.stderr
    assert "3 succeeded, 1 failed" in done.stderr
    holds_gme = "PORTFOLIO000000000000003 failed: OPTIMIZATION_FAILED: no feasible solution"
    assert holds_gme in done.stderr


HEADER = "portfolio_id,security_id,quantity\n"
Case = Callable[[Path], list[object]]


def portfolio_file(name: str, text: str) -> Case:
    def case(directory: Path) -> list[object]:
        (directory / name).write_text(text)
        return [MODEL, directory / name, "--prices", PRICES]

    return case


def model_file(text: str) -> Case:
    def case(directory: Path) -> list[object]:
        (directory / "model.json").write_text(text)
        return [directory / "model.json", EXAMPLES / "portfolios.csv", "--prices", PRICES]

    return case


def prices_file(name: str, text: str) -> Case:
    def case(directory: Path) -> list[object]:
        (directory / name).write_text(text)
        return [MODEL, EXAMPLES / "portfolios.csv", "--prices", directory / name]

    return case


def options(*args: object) -> Case:
    def case(directory: Path) -> list[object]:
        return [MODEL, EXAMPLES / "portfolios.csv", "--prices", PRICES, *args]

    return case


def policy_file(text: str) -> Case:
    def case(directory: Path) -> list[object]:
        (directory / "policy.json").write_text(text)
        return options("--policy", directory / "policy.json")(directory)

    return case


BAD_FILES: dict[str, tuple[Case, list[str]]] = {
    "missing column": (
        portfolio_file("p.csv", "portfolio_id,security_id\nP,CASH\n"),
        ["p.csv: line 1: quantity: missing column"],
    ),
    "non-numeric quantity": (
        portfolio_file("p.csv", f"{HEADER}P,CASH,100\nP,{AAPL},ten\n"),
        ["p.csv: line 3: quantity: 'ten'"],
    ),
    "unknown security without a price": (
        portfolio_file("p.csv", f"{HEADER}P,CASH,100\nP,{'Z' * 24},5\n"),
        [f"p.csv: line 3: security_id: {'Z' * 24} has no price in", "prices.csv"],
    ),
    "broken JSON": (
        portfolio_file("p.json", '[{"portfolio_id": "P",\n  "cash": }]'),
        ["p.json: line 2 column 11: invalid JSON"],
    ),
    "fractional quantity in JSON": (
        portfolio_file("p.json", '{"portfolio_id": "P", "holdings": {"X": 1.5}}'),
        ["p.json: holdings.X:", "fractional"],
    ),
    "model breaking a rule": (
        model_file(MODEL.read_text().replace('"0.12"', '"0.123"', 1)),
        ["model.json: positions[0].target: must be 0 or a multiple of 0.005"],
    ),
    "negative price": (
        prices_file("prices.csv", f"security_id,price\n{AAPL},-5\n"),
        ["prices.csv: line 2: price: must be a decimal greater than 0"],
    ),
    "price that is not a number": (
        prices_file("prices.json", f'{{"{AAPL}": "abc"}}'),
        [f"prices.json: {AAPL}: Input should be a valid decimal"],
    ),
    "model policy breaking a rule": (
        model_file(MODEL.read_text().replace("{", '{"policy": {"withdraw": "-1"},', 1)),
        ["model.json: policy.withdraw: must be a decimal of at least 0"],
    ),
    "unknown policy field": (
        policy_file('{"maxCash": 1}'),
        ["policy.json: maxCash: Extra inputs are not permitted"],
    ),
    "policy lot of 0": (
        policy_file(f'{{"round_lots": {{"{AAPL}": 0}}}}'),
        [f"policy.json: round_lots.{AAPL}: must be a whole number of at least 1"],
    ),
    "round lot option of 0": (
        options("--round-lot", "0"),
        ["error: --round-lot: must be a whole number of at least 1"],
    ),
    "min cash option not a number": (
        options("--min-cash", "abc"),
        ["error: --min-cash: 'abc': Input should be a valid decimal"],
    ),
    "unknown mode": (
        options("--mode", "sideways"),
        ["error: --mode: 'sideways': Input should be 'full', 'bands', 'buy_only' or 'sell_only'"],
    ),
    "fractional minimum trade": (
        options("--min-trade-quantity", "1.5"),
        ["error: --min-trade-quantity: '1.5': Input should be a valid integer"],
    ),
}


@pytest.fixture(scope="module")
def bad_file_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every bad-file case at once: most of each run is the interpreter starting."""
    running = {}
    for name, (case, _) in BAD_FILES.items():
        command = [str(CLI), "rebalance", *map(str, case(tmp_path_factory.mktemp("bad")))]
        running[name] = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    runs = {}
    for name, process in running.items():
        stdout, stderr = process.communicate(timeout=120)
        runs[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return runs


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_bad_file_is_one_clear_line_and_exit_code_2(
    bad_file_runs: dict[str, subprocess.CompletedProcess[str]], name: str
):
    done = bad_file_runs[name]
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    message = done.stderr.strip()
    assert "Traceback" not in message
    assert message.startswith("error: ")
    assert len(message.splitlines()) == 1, message
    for fragment in BAD_FILES[name][1]:
        assert fragment in message
