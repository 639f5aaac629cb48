"""The stored-runs benchmark runs end to end (its quick plan) and prints its three tables."""

import subprocess
import sys


def test_the_quick_store_bench_prints_its_tables():
    done = subprocess.run(
        [sys.executable, "-m", "bench.store", "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for title in (
        "Time to store one portfolio result",
        "A 20 x 100 run stored while GET /model/{id} polls",
        "Reading that run back",
        "POST /rebalances/portfolios (100 ids",
    ):
        assert title in done.stdout
    assert "last / first:" in done.stdout
