"""Command line: `serve` runs the service the way production does; `rebalance` works on files."""

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, NoReturn

import structlog
import typer
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger
from pydantic import ValidationError

from order_generation.config import GLOBECO_URL_FIELDS, Settings
from order_generation.logs import configure_logging
from order_generation.report import Format

app = typer.Typer(help="GlobeCo Order Generation Service.", no_args_is_help=True)
log = structlog.get_logger(__name__)
_CHILD_START_SECONDS = 30
_MONGODB_CHECK_SECONDS = 5
_ALL_INTERFACES = ("0.0.0.0", "::", "", "[::]")


def _policy_option(text: str) -> Any:
    """One policy field as text; it is checked with the policy, not by click."""
    return typer.Option(help=text, rich_help_panel="Policy (over the model's)")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"order-generation {version('order-generation')}")
        raise typer.Exit()


@app.callback()
def main(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """GlobeCo Order Generation Service."""


@app.command()
def serve() -> None:
    """Serve the API with gunicorn and uvicorn workers (settings from the environment).

    Without MONGODB_URL an embedded MongoDB server starts; with it and no GlobeCo service URL
    either, a simulated GlobeCo suite with a demo book starts and its demo models are loaded.
    SIMULATE_GLOBECO=true starts the suite in any case (demo models only into the embedded
    database), SIMULATE_GLOBECO=false never.
    """
    try:
        settings = Settings()
    except ValidationError as error:
        _fail(_settings_error(error))
    configure_logging(settings.log_level)
    _warn_if_open(settings)
    if settings.mongodb_url is not None:
        _check_mongodb(settings.mongodb_url)
    with contextlib.ExitStack() as children:
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            metrics_dir = children.enter_context(tempfile.TemporaryDirectory(prefix="og-metrics-"))
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        embedded = settings.mongodb_url is None
        if embedded:
            os.environ["MONGODB_URL"] = _embedded_mongo(settings, children)
        if settings.starts_simulator:
            # Demo models go only into the embedded database, never into a configured one.
            _simulated_globeco(children, load_demo_models=embedded)
        _Gunicorn(settings).run()


@app.command()
def rebalance(
    model: Annotated[Path, typer.Argument(help="Model JSON: the body of POST /models.")],
    portfolios: Annotated[
        list[Path], typer.Argument(help="Portfolio files: CSV or JSON, one or many portfolios.")
    ],
    prices: Annotated[
        Path, typer.Option(help="Prices: CSV with security_id,price or a JSON object.")
    ],
    output_format: Annotated[Format, typer.Option("--format", help="Output format.")] = (
        Format.table
    ),
    output: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    jobs: Annotated[int, typer.Option(min=1, help="Worker processes.")] = os.cpu_count() or 1,
    time_limit: Annotated[
        float, typer.Option(min=0.001, help="Solver limit per portfolio, seconds.")
    ] = 30.0,
    policy: Annotated[
        Path | None,
        typer.Option(help="Policy JSON; its fields replace those of the model's policy."),
    ] = None,
    mode: Annotated[str | None, _policy_option("Mode: full, bands, buy_only or sell_only.")] = None,
    bands: Annotated[str | None, _policy_option("Bands: strict or best_effort.")] = None,
    min_cash: Annotated[
        str | None, _policy_option("Cash each portfolio keeps after its trades.")
    ] = None,
    withdraw: Annotated[str | None, _policy_option("Cash taken out of each portfolio.")] = None,
    min_trade_value: Annotated[str | None, _policy_option("Smallest order, in money.")] = None,
    min_trade_quantity: Annotated[str | None, _policy_option("Smallest order, in shares.")] = None,
    round_lot: Annotated[
        str | None, _policy_option("Orders are multiples of this many shares.")
    ] = None,
) -> None:
    """Rebalance portfolios from files to a model; calls no GlobeCo service, stores nothing.

    The policy is the model's, with the fields of --policy over it and the single-field
    options over those. Exit code 0: all rebalanced; 1: some portfolio failed (see the
    summary); 2: bad input.
    """
    from time import perf_counter

    from order_generation import report
    from order_generation.batch import read_batch, solve_all
    from order_generation.domain.errors import InvalidInput

    fields = {
        "mode": mode,
        "bands": bands,
        "min_cash": min_cash,
        "withdraw": withdraw,
        "min_trade_value": min_trade_value,
        "min_trade_quantity": min_trade_quantity,
        "round_lot": round_lot,
    }
    options = {name: value for name, value in fields.items() if value is not None}
    with contextlib.ExitStack() as stack:
        try:
            batch = read_batch(model, portfolios, prices, policy, options)
            out = stack.enter_context(output.open("w")) if output else sys.stdout
        except InvalidInput as error:
            _fail(error.message)
        except OSError as error:
            _fail(f"{output}: cannot be written ({error.strerror})")
        started = perf_counter()
        with report.progress(len(batch.jobs)) as done:
            outcomes = solve_all(batch.jobs, workers=jobs, time_limit=time_limit, done=done)
        report.write(outcomes, output_format, out)
    for line in report.summary(outcomes, perf_counter() - started):
        typer.echo(line, err=True)
    if report.failures(outcomes):
        raise typer.Exit(1)


@app.command()
def replay(
    run_file: Annotated[
        Path, typer.Argument(help="An exported run: the JSON of GET /rebalance/{id}; - for stdin.")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print what POST /rebalance/{id}/replay answers.")
    ] = False,
    time_limit: Annotated[
        float, typer.Option(min=0.001, help="Solver limit per portfolio, seconds.")
    ] = 30.0,
) -> None:
    """Solve every portfolio of an exported run again from what the run stored and compare
    the orders; calls no GlobeCo service. Exit code 0: every order is the same; 1: some
    differ or a portfolio cannot be solved again; 2: bad file, or a run stored before runs
    could be replayed.
    """
    from order_generation.api.rebalance_schemas import StoredRebalance
    from order_generation.api.replay import ReplayOut, recorded_of_export
    from order_generation.service.replay import NotReplayable, describe, replay_all

    try:
        text = sys.stdin.read() if str(run_file) == "-" else run_file.read_text()
        recorded = recorded_of_export(StoredRebalance.model_validate_json(text))
    except OSError as error:
        _fail(f"{run_file}: cannot be read ({error.strerror})")
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(map(str, first["loc"])) or "the file"
        _fail(f"{run_file}: not an exported run: {where}: {first['msg']}")
    except NotReplayable as error:
        _fail(f"{run_file}: {error.message}")
    replayed = replay_all(recorded, time_limit=time_limit)
    if as_json:
        typer.echo(ReplayOut.of(replayed).model_dump_json(indent=2))
    else:
        for line in describe(replayed):
            typer.echo(line)
    if not replayed.same:
        raise typer.Exit(1)


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _settings_error(error: ValidationError) -> str:
    """One line naming each bad variable, e.g. `PORT: Input should be a valid integer, …`."""
    problems = []
    for item in error.errors():
        name = "_".join(str(part) for part in item["loc"]).upper()
        value = item.get("input")
        shown = f" (got {value!r})" if isinstance(value, str | int | float) else ""
        problems.append(f"{name}: {item['msg']}{shown}")
    return "bad setting: " + "; ".join(problems)


def _warn_if_open(settings: Settings) -> None:
    """Every interface and no API key: anyone who can reach the machine can change models."""
    secret = settings.secret_key.get_secret_value() if settings.secret_key else ""
    if settings.host in _ALL_INTERFACES and not secret:
        log.warning(
            "api_open_without_key",
            host=settings.host,
            port=settings.port,
            hint="set SECRET_KEY to require an X-API-Key, or HOST=127.0.0.1 to stay local",
        )


def _check_mongodb(url: str) -> None:
    """Fail with one line, before any worker starts, when MONGODB_URL cannot be reached."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    shown = re.sub(r"//[^@/]*@", "//***@", url)
    try:
        client: MongoClient[dict[str, Any]] = MongoClient(
            url, serverSelectionTimeoutMS=int(_MONGODB_CHECK_SECONDS * 1000)
        )
        try:
            client.admin.command("ping")
        finally:
            client.close()
    except (PyMongoError, ValueError) as error:
        reason = re.split(r", Timeout:| \(configured timeouts", str(error))[0]
        _fail(f"MONGODB_URL {shown} is not reachable: {reason}", code=1)


def _embedded_mongo(settings: Settings, children: contextlib.ExitStack) -> str:
    sqlite_file = settings.data_dir.resolve() / "order-generation.sqlite"
    module = "order_generation.adapters.embedded_mongo"
    # In a session of its own the group's SIGTERM or SIGINT (systemd, Ctrl-C) does not reach
    # it: it stops when told, after gunicorn has let the requests in flight finish, or when
    # its standard input closes (this process is gone).
    command = [sys.executable, "-m", module, str(sqlite_file)]
    url = children.enter_context(_child(command, own_session=True))
    log.warning(
        "embedded_mongodb_started",
        uri=url,
        sqlite_file=str(sqlite_file),
        hint="set MONGODB_URL to use a real MongoDB server",
    )
    return url


def _simulated_globeco(children: contextlib.ExitStack, *, load_demo_models: bool) -> None:
    from order_generation.simulator.demo import demo_models

    command = [sys.executable, "-m", "order_generation.simulator", "--demo"]
    urls: dict[str, str] = json.loads(children.enter_context(_child(command)))
    for field in GLOBECO_URL_FIELDS:
        os.environ[field.upper()] = urls[field]
    # The workers report the services as simulated in /health/health.
    os.environ["SIMULATE_GLOBECO"] = "true"
    loaded = asyncio.run(_load_models(Settings(), demo_models())) if load_demo_models else 0
    log.warning(
        "simulated_globeco_started",
        note="SIMULATED GlobeCo services with a demo book; set the *_SERVICE_URL variables "
        "to use the real ones",
        demo_models_loaded=loaded,
        **({} if load_demo_models else {"demo_models": "not loaded into a configured MONGODB_URL"}),
        **{field: urls[field] for field in GLOBECO_URL_FIELDS},
    )


async def _load_models(settings: Settings, models: Sequence[dict[str, Any]]) -> int:
    """Create the demo models that do not exist yet; return how many were created."""
    from order_generation.adapters.mongo import MongoStore
    from order_generation.api.schemas import ModelBody
    from order_generation.domain.errors import Conflict
    from order_generation.service.models import ModelService

    assert settings.mongodb_url is not None
    store = MongoStore(settings.mongodb_url, settings.mongodb_database)
    created = 0
    try:
        await store.open()
        for model in models:
            with contextlib.suppress(Conflict):
                await ModelService(store.models).create(ModelBody.model_validate(model).to_domain())
                created += 1
    finally:
        await store.close()
    return created


@contextlib.contextmanager
def _child(command: list[str], *, own_session: bool = False) -> Iterator[str]:
    """Run a helper process that prints one ready line; stop it by its PID on exit."""
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=own_session,
    )
    assert process.stdout is not None
    assert process.stdin is not None
    try:
        line = process.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"{' '.join(command)} exited before it was ready")
        yield line
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=_CHILD_START_SECONDS)
        process.stdin.close()


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    """gunicorn with uvicorn workers; each worker builds its own app from the environment."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        super().__init__()

    def load_config(self) -> None:
        options = {
            "bind": f"{self._settings.host}:{self._settings.port}",
            "workers": self._settings.workers,
            "worker_class": "order_generation.serving.ServiceWorker",
            "graceful_timeout": 30,
            "timeout": 120,
            "keepalive": 5,
            "accesslog": None,
            "control_socket_disable": True,
            "logger_class": _GunicornLogs,
            "child_exit": _forget_worker_metrics,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from order_generation.api.app import create_app

        settings = Settings()
        configure_logging(settings.log_level)
        return create_app(settings)


def _forget_worker_metrics(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


class _GunicornLogs(GunicornLogger):  # type: ignore[misc]
    """gunicorn's own messages through the service's JSON logging."""

    def setup(self, cfg: Any) -> None:
        configure_logging(Settings().log_level)
