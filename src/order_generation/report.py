"""Rebalance results for people and programs: a table per portfolio, JSON or CSV; the summary.

JSON is what `POST /model/{id}/rebalance` answers: one RebalanceDTO per portfolio, or
`{portfolio_id, error: {code, message}}` for one that failed. CSV has one row per security of
each rebalanced portfolio (its drift row, with the order if there is one) plus a CASH row whose
quantities are the cash before and after; failed portfolios are left to the summary.
"""

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from enum import StrEnum
from typing import TextIO

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from order_generation.api.rebalance_schemas import FailureDetail, RebalanceFailureOut, RebalanceOut
from order_generation.batch import CASH, Outcome
from order_generation.domain.runs import PortfolioFailure, PortfolioOutcome

CSV_COLUMNS = (
    "portfolio_id",
    "security_id",
    "price",
    "original_quantity",
    "adjusted_quantity",
    "transaction_type",
    "trade_quantity",
    "trade_date",
    "target",
    "low_drift",
    "high_drift",
    "actual",
    "actual_drift",
)
_TABLE_WIDTH = 120


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def write(outcomes: Sequence[Outcome], output_format: Format, out: TextIO) -> None:
    """Every portfolio, in input order, in the chosen format."""
    if output_format is Format.json:
        out.write(to_json(outcomes))
    elif output_format is Format.csv:
        write_csv(outcomes, out)
    else:
        width = None if out.isatty() else _TABLE_WIDTH
        write_tables(outcomes, Console(file=out, width=width, markup=False, highlight=False))


def to_json(outcomes: Sequence[Outcome]) -> str:
    entries = [_entry(o).model_dump(mode="json") for o in outcomes]
    return json.dumps(entries, indent=2) + "\n"


def _entry(outcome: Outcome) -> RebalanceOut | RebalanceFailureOut:
    if isinstance(outcome, PortfolioFailure):
        error = FailureDetail(code=outcome.code, message=outcome.message)
        return RebalanceFailureOut(
            rebalance_id=None, portfolio_id=outcome.portfolio_id, error=error
        )
    return RebalanceOut.of_result(
        outcome.result,
        outcome.trade_date,
        rebalance_id=None,
        model_id=None,
        portfolio_id=outcome.portfolio_id,
        portfolio_name=outcome.portfolio_name,
    )


def write_csv(outcomes: Sequence[Outcome], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for outcome in outcomes:
        if isinstance(outcome, PortfolioOutcome):
            writer.writerows(_csv_rows(outcome))


def _csv_rows(outcome: PortfolioOutcome) -> Iterator[list[object]]:
    result = outcome.result
    trades = {t.security_id: t for t in result.trades}
    for d in result.drifts:
        trade = trades.get(d.security_id)
        yield [
            outcome.portfolio_id,
            d.security_id,
            d.price,
            d.original_quantity,
            d.adjusted_quantity,
            trade.side if trade else "",
            trade.quantity if trade else "",
            outcome.trade_date.isoformat() if trade else "",
            d.target,
            d.low_drift,
            d.high_drift,
            d.actual,
            d.actual_drift,
        ]
    yield [outcome.portfolio_id, CASH, "", result.cash_before, result.cash_after, *[""] * 8]


def write_tables(outcomes: Sequence[Outcome], console: Console) -> None:
    for outcome in outcomes:
        if isinstance(outcome, PortfolioFailure):
            console.print(f"{outcome.portfolio_id}: FAILED {outcome.code}: {outcome.message}")
        else:
            console.print(_heading(outcome))
            console.print(_table(outcome))
            for line in _breaches(outcome):
                console.print(line, soft_wrap=True)
        console.print()


def _heading(outcome: PortfolioOutcome) -> str:
    result = outcome.result
    name = f" ({outcome.portfolio_name})" if outcome.portfolio_name else ""
    return (
        f"{outcome.portfolio_id}{name}: market value {_money(result.market_value)}, "
        f"cash {_money(result.cash_before)} -> {_money(result.cash_after)}, "
        f"{len(result.trades)} orders, mode {result.mode}"
        + (", not proven optimal" if result.status == "feasible" else "")
    )


def _breaches(outcome: PortfolioOutcome) -> list[str]:
    """The bands the answer leaves (best-effort bands), one line each."""
    breaches = outcome.result.breaches
    lines = [f"{len(breaches)} outside their bands:"] if breaches else []
    return lines + [
        f"  {b.security_id} holds {_money(b.amount)}, {_money(b.outside)} outside "
        f"{_money(b.floor)} .. {_money(b.ceiling)}: {b.reason}"
        for b in breaches
    ]


def _table(outcome: PortfolioOutcome) -> Table:
    result = outcome.result
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for header in ("security", "price", "held", "order", "after"):
        table.add_column(header, justify="left" if header == "security" else "right")
    for header in ("target", "-drift", "+drift", "actual", "actual drift"):
        table.add_column(header, justify="right")
    trades = {t.security_id: t for t in result.trades}
    for d in result.drifts:
        trade = trades.get(d.security_id)
        table.add_row(
            d.security_id,
            _money(d.price),
            str(d.original_quantity),
            f"{trade.side} {trade.quantity}" if trade else "",
            str(d.adjusted_quantity),
            *(_percent(w) for w in (d.target, d.low_drift, d.high_drift, d.actual, d.actual_drift)),
        )
    return table


def _money(amount: Decimal) -> str:
    return f"{amount:,f}"


def _percent(weight: Decimal) -> str:
    return f"{weight * 100:.2f}%"


def failures(outcomes: Sequence[Outcome]) -> list[PortfolioFailure]:
    return [o for o in outcomes if isinstance(o, PortfolioFailure)]


@contextmanager
def progress(total: int) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr; the callable marks one portfolio done.

    It redraws only when told, so no thread runs while the process pool forks its workers.
    """
    columns = (
        TextColumn("rebalancing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), auto_refresh=False) as bar:
        task = bar.add_task("rebalance", total=total)

        def done() -> None:
            bar.advance(task)
            bar.refresh()

        yield done


def summary(outcomes: Sequence[Outcome], seconds: float) -> list[str]:
    """One line of counts, then one line per failed portfolio with its reason."""
    failed = failures(outcomes)
    lines = [
        f"{len(outcomes)} portfolios in {seconds:.2f} s: "
        f"{len(outcomes) - len(failed)} succeeded, {len(failed)} failed"
    ]
    lines += [f"  {f.portfolio_id} failed: {f.code}: {f.message}" for f in failed]
    return lines
