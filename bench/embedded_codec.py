"""mongoeco's per-value conversions against the embedded server's fast paths, on the
documents of a stored run (one part: 50 positions), in one process.

    python -m bench.embedded_codec

Each step is what the embedded server does to every document: an insert decodes the wire
BSON, brings it to its internal form twice and serialises it for SQLite; a read decodes it
from SQLite and encodes it for the wire. The originals are timed first, then the fast paths
are installed and the same steps timed again.
"""

import datetime
import time
from collections.abc import Callable
from decimal import Decimal
from statistics import median
from typing import Any

import bson
import mongoeco.wire.bson_bridge as wire
from mongoeco.core.codec import DocumentCodec
from rich.console import Console
from rich.table import Table

from order_generation.adapters import embedded_codec
from order_generation.adapters.decimal128 import to_decimal128

REPEATS = 30


def a_part() -> dict[str, Any]:
    """A stored result part as the service writes it: 50 positions of 15 fields."""

    def money(text: str) -> bson.Decimal128:
        return to_decimal128(Decimal(text))

    day = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
    positions = [
        {
            "security_id": f"S{i:023d}",
            "ticker": f"T{i}",
            "price": money(f"{100 + i}.37"),
            "original_quantity": 100 + i,
            "adjusted_quantity": 110 + i,
            "original_position_market_value": money(f"{(100 + i) * 137}.00"),
            "adjusted_position_market_value": money(f"{(110 + i) * 137}.50"),
            "target": money("0.0190"),
            "high_drift": money("0.02"),
            "low_drift": money("0.02"),
            "actual": money(f"0.01{i:08d}"),
            "actual_drift": money(f"0.0{i:09d}"),
            "transaction_type": "BUY",
            "trade_quantity": 10,
            "trade_date": day,
        }
        for i in range(50)
    ]
    key = {"rebalance_id": bson.ObjectId(), "index": 7, "part": 0, "portfolio_id": "P" * 24}
    return key | {"portfolio_name": "Fund 7", "trade_date": day, "positions": positions}


def steps(document: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    own = wire.decode_wire_value(document)
    internal = DocumentCodec.to_internal(own)
    stored = DocumentCodec.encode(internal)
    read = DocumentCodec.decode(stored, preserve_bson_wrappers=True)
    return {
        "wire BSON -> mongoeco values": lambda: wire.decode_wire_value(document),
        "-> internal form (twice per insert)": lambda: DocumentCodec.to_internal(own),
        "-> SQLite form": lambda: DocumentCodec.encode(internal),
        "SQLite form -> values": lambda: DocumentCodec.decode(stored, preserve_bson_wrappers=True),
        "values -> wire BSON": lambda: wire.encode_wire_value(read),
    }


def timed(step: Callable[[], Any]) -> float:
    """Median ms of REPEATS calls."""
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        step()
        times.append((time.perf_counter() - started) * 1000)
    return median(times)


def main() -> None:
    document = a_part()
    before = {name: timed(step) for name, step in steps(document).items()}
    embedded_codec.install()
    after = {name: timed(step) for name, step in steps(document).items()}
    table = Table(title="One 50-position result part, ms per document (median of 30)")
    for column in ("step", "mongoeco", "fast paths", "mongoeco / fast"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for name in before:
        ratio = before[name] / after[name]
        table.add_row(name, f"{before[name]:.2f}", f"{after[name]:.2f}", f"{ratio:.1f}x")
    total_before = sum(before.values()) + before["-> internal form (twice per insert)"]
    total_after = sum(after.values()) + after["-> internal form (twice per insert)"]
    table.add_row(
        "all of an insert and a read",
        f"{total_before:.2f}",
        f"{total_after:.2f}",
        f"{total_before / total_after:.1f}x",
    )
    Console().print(table)


if __name__ == "__main__":
    main()
