"""Rebalance from files: read a model, portfolios and prices into problems; solve them in parallel.

Files (see the README, "Rebalance from files"):
- model: JSON, the body of `POST /models` (name, positions; portfolios ignored);
- portfolios: CSV with columns portfolio_id, security_id, quantity, where a row with security_id
  CASH carries the cash amount, or JSON, one object or a list of
  `{portfolio_id, portfolio_name?, cash, holdings: {security_id: quantity}}`;
- prices: CSV with columns security_id, price, or a JSON object `{security_id: price}`;
- policy (optional): JSON, a policy whose fields replace the model's; single fields given as
  options replace those in turn.

Shapes are checked here; every rule is the domain's (`InvestmentModel`, `RebalanceProblem`).
A bad file raises `InvalidInput` whose message starts with the file, then the line (CSV) or the
JSON path, then the field.
"""

import csv
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, TextIO

from pydantic import Field, TypeAdapter, ValidationError

from order_generation.api.schemas import ModelBody, Money, PolicyBody, Schema, policy_of
from order_generation.domain.errors import InvalidInput, ServiceError
from order_generation.domain.models import InvestmentModel
from order_generation.domain.policy import Policy
from order_generation.domain.rebalance import RebalanceProblem, solve
from order_generation.domain.runs import PortfolioFailure, PortfolioOutcome

CASH = "CASH"
PORTFOLIO_COLUMNS = ("portfolio_id", "security_id", "quantity")
PRICE_COLUMNS = ("security_id", "price")
Outcome = PortfolioOutcome | PortfolioFailure


@dataclass(frozen=True)
class Job:
    """One portfolio to rebalance, validated by the domain."""

    portfolio_id: str
    portfolio_name: str | None
    problem: RebalanceProblem


@dataclass(frozen=True)
class Batch:
    model: InvestmentModel
    jobs: tuple[Job, ...]


class PortfolioBody(Schema):
    """One portfolio of a JSON portfolio file."""

    portfolio_id: Annotated[str, Field(min_length=1)]
    portfolio_name: str | None = None
    cash: Money = Decimal(0)
    holdings: dict[str, int] = Field(default_factory=dict)


@dataclass
class _Portfolio:
    """A portfolio as read, with where each of its securities was given (for error messages)."""

    portfolio_id: str
    name: str | None
    cash: Decimal
    holdings: dict[str, int]
    where: str
    held_at: dict[str, str]


def read_batch(
    model_file: Path,
    portfolio_files: Sequence[Path],
    prices_file: Path,
    policy_file: Path | None = None,
    policy_options: Mapping[str, str] | None = None,
) -> Batch:
    """Every file read and every portfolio validated, or `InvalidInput` for the first problem.

    `policy_options` are single policy fields by name, as given on the command line.
    """
    model, position_at = read_model(model_file)
    policy = read_policy(model.policy, policy_file, policy_options or {})
    model = replace(model, policy=policy)
    prices, price_at = read_prices(prices_file)
    portfolios: dict[str, _Portfolio] = {}
    for path in portfolio_files:
        for portfolio in _read_portfolios(path):
            if portfolio.portfolio_id in portfolios:
                first = portfolios[portfolio.portfolio_id].where
                raise InvalidInput(f"{portfolio.where}: portfolio_id", f"already given in {first}")
            portfolios[portfolio.portfolio_id] = portfolio
    jobs = tuple(
        _job(model, p, prices, {**position_at, **p.held_at}, price_at, prices_file)
        for p in portfolios.values()
    )
    return Batch(model, jobs)


def read_model(path: Path) -> tuple[InvestmentModel, dict[str, str]]:
    """The model, and where each position's security_id sits in the file."""
    body = _validate(path, TypeAdapter(ModelBody), _load_json(path))
    try:
        positions = tuple(p.to_domain() for p in body.positions)
        model = InvestmentModel(body.name, positions, policy=policy_of(body.policy))
    except InvalidInput as error:
        raise InvalidInput(f"{path}: {error.field}", error.rule) from None
    return model, {
        p.security_id: f"{path}: positions[{i}].security_id" for i, p in enumerate(body.positions)
    }


def read_policy(policy: Policy, path: Path | None, options: Mapping[str, str]) -> Policy:
    """`policy` with the fields of the policy file over it, then the options over those."""
    if path is not None:
        body = _validate(path, TypeAdapter(PolicyBody), _load_json(path))
        policy = _over(policy, body, lambda field: f"{path}: {field}")
    # Command-line values are text; the body's integers are JSON numbers.
    typed = {
        name: int(value) if _INTEGER.fullmatch(value) else value for name, value in options.items()
    }
    try:
        given = PolicyBody.model_validate(typed)
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0])
        text = f"{options[name]!r}: " if name in options else ""
        raise InvalidInput(_option(name), f"{text}{first['msg']}") from None
    return _over(policy, given, _option)


_INTEGER = re.compile(r"-?[0-9]+")


def _option(field: str) -> str:
    """The command-line option that sets one policy field."""
    return "--" + field.replace("_", "-")


def _over(policy: Policy, body: PolicyBody, where: Callable[[str], str]) -> Policy:
    """The fields given in `body` over `policy`; a broken rule names where it was given."""
    try:
        return body.to_domain(policy)
    except InvalidInput as error:
        raise InvalidInput(where(error.field.removeprefix("policy.")), error.rule) from None


def read_prices(path: Path) -> tuple[dict[str, Decimal], dict[str, str]]:
    """Prices by security, and where each was given."""
    if path.suffix.lower() == ".json":
        prices = _validate(path, TypeAdapter(dict[str, Money]), _load_json(path))
        return prices, {s: f"{path}: {s}" for s in prices}
    prices, price_at = {}, {}
    for line, row in _csv_rows(path, PRICE_COLUMNS):
        security_id = _text(path, line, row, "security_id")
        if security_id in prices:
            raise _bad(path, line, "security_id", f"{security_id} is priced twice")
        prices[security_id] = _cell(path, line, row, "price", _MONEY)
        price_at[security_id] = f"{path}: line {line}: price"
    return prices, price_at


def solve_all(
    jobs: Sequence[Job], *, workers: int, time_limit: float, done: Callable[[], None]
) -> list[Outcome]:
    """Solve every job in a pool of worker processes; `done` is called as each one finishes."""
    outcomes: list[Outcome | None] = [None] * len(jobs)
    with ProcessPoolExecutor(max(1, min(workers, len(jobs)))) as pool:
        futures = {pool.submit(solve_one, job, time_limit): i for i, job in enumerate(jobs)}
        try:
            for future in as_completed(futures):
                outcomes[futures[future]] = future.result()
                done()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return [o for o in outcomes if o is not None]


def solve_one(job: Job, time_limit: float) -> Outcome:
    """One portfolio; a rebalance failure is that portfolio's outcome, as in a model rebalance."""
    try:
        result = solve(job.problem, time_limit=time_limit)
    except ServiceError as error:
        return PortfolioFailure(job.portfolio_id, error.code, error.message)
    return PortfolioOutcome(job.portfolio_id, job.portfolio_name, result, date.today())


def _job(
    model: InvestmentModel,
    portfolio: _Portfolio,
    prices: dict[str, Decimal],
    security_at: dict[str, str],
    price_at: dict[str, str],
    prices_file: Path,
) -> Job:
    """The domain checks the problem; its complaint is pointed back at the file that caused it."""
    universe = {p.security_id for p in model.positions} | set(portfolio.holdings)
    try:
        problem = RebalanceProblem(
            positions=model.positions,
            holdings=portfolio.holdings,
            cash=portfolio.cash,
            prices={s: prices[s] for s in universe if s in prices},
            policy=model.policy,
        )
    except InvalidInput as error:
        kind, _, security_id = error.field.partition(".")
        if kind == "prices" and security_id in price_at:
            raise InvalidInput(price_at[security_id], error.rule) from None
        if kind == "prices":
            where = security_at[security_id]
            raise InvalidInput(where, f"{security_id} has no price in {prices_file}") from None
        raise InvalidInput(f"{portfolio.where}: {error.field}", error.rule) from None
    return Job(portfolio.portfolio_id, portfolio.name, problem)


def _read_portfolios(path: Path) -> list[_Portfolio]:
    portfolios = _json_portfolios(path) if path.suffix.lower() == ".json" else _csv_portfolios(path)
    if not portfolios:
        raise InvalidInput(str(path), "holds no portfolio")
    return portfolios


def _json_portfolios(path: Path) -> list[_Portfolio]:
    data = _load_json(path)
    single = isinstance(data, dict)
    bodies = _validate(path, TypeAdapter(list[PortfolioBody]), [data] if single else data, single)
    portfolios = []
    for index, body in enumerate(bodies):
        where = str(path) if single else f"{path}: [{index}]"
        prefix = f"{path}: " if single else f"{where}."
        held_at = {s: f"{prefix}holdings.{s}" for s in body.holdings}
        portfolios.append(
            _Portfolio(
                body.portfolio_id, body.portfolio_name, body.cash, body.holdings, where, held_at
            )
        )
    return portfolios


def _csv_portfolios(path: Path) -> list[_Portfolio]:
    portfolios: dict[str, _Portfolio] = {}
    for line, row in _csv_rows(path, PORTFOLIO_COLUMNS):
        portfolio_id = _text(path, line, row, "portfolio_id")
        security_id = _text(path, line, row, "security_id")
        portfolio = portfolios.setdefault(
            portfolio_id,
            _Portfolio(portfolio_id, None, Decimal(0), {}, f"{path}: line {line}", {}),
        )
        if security_id in portfolio.held_at:
            first = portfolio.held_at[security_id]
            raise _bad(path, line, "security_id", f"{security_id} is already given at {first}")
        portfolio.held_at[security_id] = f"{path}: line {line}: security_id"
        if security_id == CASH:
            portfolio.cash = _cell(path, line, row, "quantity", _MONEY)
        else:
            portfolio.holdings[security_id] = _cell(path, line, row, "quantity", _SHARES)
    for portfolio in portfolios.values():
        portfolio.held_at.pop(CASH, None)
    return list(portfolios.values())


_MONEY: TypeAdapter[Decimal] = TypeAdapter(Money)
_SHARES: TypeAdapter[int] = TypeAdapter(int)


def _csv_rows(path: Path, columns: Sequence[str]) -> Iterator[tuple[int, dict[str, str | None]]]:
    """(line number, row) for each non-empty row, after checking the header has `columns`."""
    with _open(path) as file:
        reader = csv.DictReader(file)
        header = [name.strip() for name in reader.fieldnames or ()]
        missing = [c for c in columns if c not in header]
        if missing:
            expected = ",".join(columns)
            raise _bad(path, 1, missing[0], f"missing column (expected {expected})")
        reader.fieldnames = header
        try:
            for row in reader:
                yield reader.line_num, row
        except csv.Error as error:
            raise _bad(path, reader.line_num, "row", str(error)) from None
        except UnicodeDecodeError:
            raise InvalidInput(str(path), "is not UTF-8 text") from None


def _text(path: Path, line: int, row: dict[str, str | None], column: str) -> str:
    value = (row.get(column) or "").strip()
    if not value:
        raise _bad(path, line, column, "is empty")
    return value


def _cell[T](
    path: Path, line: int, row: dict[str, str | None], column: str, adapter: TypeAdapter[T]
) -> T:
    text = _text(path, line, row, column)
    try:
        return adapter.validate_python(text)
    except ValidationError as error:
        raise _bad(path, line, column, f"{text!r}: {error.errors()[0]['msg']}") from None


def _bad(path: Path, line: int, column: str, rule: str) -> InvalidInput:
    return InvalidInput(f"{path}: line {line}: {column}", rule)


def _open(path: Path) -> TextIO:
    try:
        return path.open(newline="", encoding="utf-8-sig")
    except OSError as error:
        raise InvalidInput(str(path), f"cannot be read ({error.strerror})") from None


def _load_json(path: Path) -> object:
    with _open(path) as file:
        try:
            return json.load(file, parse_float=Decimal)
        except json.JSONDecodeError as error:
            where = f"{path}: line {error.lineno} column {error.colno}"
            raise InvalidInput(where, f"invalid JSON ({error.msg})") from None
        except UnicodeDecodeError:
            raise InvalidInput(str(path), "is not UTF-8 text") from None


def _validate[T](path: Path, adapter: TypeAdapter[T], data: object, single: bool = False) -> T:
    """Shape errors name the JSON path of the first problem."""
    try:
        return adapter.validate_python(data)
    except ValidationError as error:
        first = error.errors()[0]
        loc = first["loc"][1:] if single else first["loc"]
        raise InvalidInput(f"{path}: {_json_path(loc) or 'top level'}", first["msg"]) from None


def _json_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path
