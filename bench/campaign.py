"""The SRE campaign of issue 13, bounded: races, retries, kills, overload, faults and fuzzing
against the real service (two workers) on an in-memory MongoDB and the GlobeCo simulator.

    python -m bench.campaign            # 100 trials per probe, ~3 minutes
    python -m bench.campaign --quick    # 10 trials per probe, for the test suite

Each probe prints one row: what it tried, how often, what came back, and the figure the
issue names with its target.
"""

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from xml.etree import ElementTree

import httpx
from pymongo import AsyncMongoClient
from rich.console import Console
from rich.table import Table

from bench import service_procs as procs
from bench.service_book import ModelSpec, bench_book

console = Console(width=160)
API = "/api/v1"
DATABASE = "bench-campaign"
IN_FLIGHT = 4  # MAX_INFLIGHT_REBALANCES of the service under test
DEADLINE_SECONDS = 5.0  # REBALANCE_DEADLINE_SECONDS of the service under test
SERVICE_ENV = {
    "WORKERS": "2",
    "MAX_INFLIGHT_REBALANCES": str(IN_FLIGHT),
    "REBALANCE_DEADLINE_SECONDS": str(DEADLINE_SECONDS),
    "SWEEP_INTERVAL_SECONDS": "2",
    "SWEEP_AFTER_SECONDS": "1",
    "MONGODB_TIMEOUT_SECONDS": "3",
    "LOG_LEVEL": "WARNING",
}


@dataclass(frozen=True)
class Row:
    probe: str
    trials: int
    outcomes: str
    figure: str
    target: str
    ok: bool


@dataclass
class Campaign:
    trials: int
    base_url: str
    control_url: str
    mongo_uri: str
    models: dict[str, dict[str, Any]]  # spec name -> the stored model (with model_id)
    restart: Callable[[], Awaitable[None]]  # kill -9 the service's group and start it again
    pid: Callable[[], int]


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    trials = 10 if args.quick else 100
    with tempfile.TemporaryDirectory() as workdir:
        rows = asyncio.run(_campaign(Path(workdir), trials))
    _report(rows)


async def _campaign(workdir: Path, trials: int) -> list[Row]:
    specs = [ModelSpec("campaign 20", 20, 20), ModelSpec("campaign 100", 100, 60)]
    book = bench_book(specs)
    scenario = workdir / "scenario.json"
    book.scenario.dump(scenario)
    with contextlib.ExitStack() as stack:
        sim_log = stack.enter_context((workdir / "simulator.log").open("wb"))
        _, urls = stack.enter_context(procs.simulator(scenario, sim_log))
        mongo = stack.enter_context(procs.mongo_in_memory())
        env = {k.upper(): v for k, v in urls.items() if k != "control_url"}
        env |= SERVICE_ENV | {"MONGODB_URL": mongo.uri, "MONGODB_DATABASE": DATABASE}
        log = stack.enter_context((workdir / "service.log").open("wb"))
        service = stack.enter_context(_Restartable(env, log))
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as http:
            models = {}
            for name, body in book.models.items():
                created = await http.post(f"{API}/models", json=body)
                created.raise_for_status()
                models[name] = created.json()
        campaign = Campaign(
            trials,
            service.url,
            urls["control_url"],
            mongo.uri,
            models,
            service.restart,
            lambda: service.pid,
        )
        rows = []
        for probe in PROBES:
            console.print(f"[dim]{time.strftime('%H:%M:%S')} {probe.__name__}[/dim]")
            rows.append(await probe(campaign))
        mongo.process.kill()  # the last probe: the database goes away
        rows.append(await _database_gone(campaign))
        return rows


class _Restartable:
    """`order-generation serve` in a process group of its own, so kill -9 takes every worker."""

    def __init__(self, env: dict[str, str], log: IO[bytes]) -> None:
        self._env = env | {"PORT": str(procs.free_port()), "HOST": "127.0.0.1"}
        self._log = log
        self.url = f"http://127.0.0.1:{self._env['PORT']}"
        self._process: Any = None

    @property
    def pid(self) -> int:
        return int(self._process.pid)

    def __enter__(self) -> "_Restartable":
        self._start()
        return self

    def __exit__(self, *_: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGTERM)
        self._process.wait(timeout=30)

    async def restart(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()
        await asyncio.to_thread(self._start)

    def _start(self) -> None:
        executable = Path(sys.executable).parent / "order-generation"
        self._process = subprocess.Popen(
            [str(executable), "serve"],
            env={**os.environ, **self._env},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError("the service did not become ready in time")


# --- the probes -------------------------------------------------------------------------


async def _portfolio_in_two_models(c: Campaign) -> Row:
    statuses: Counter[str] = Counter()
    doubled = 0
    async with _client(c) as http:
        for trial in range(c.trials):
            ids = [await _new_model(http, f"race {trial} {side}") for side in "ab"]
            portfolio = f"RACE{uuid.uuid4().hex[:20]}"
            answers = await asyncio.gather(
                *(
                    http.post(f"{API}/model/{i}/portfolio", json={"portfolios": [portfolio]})
                    for i in ids
                )
            )
            statuses.update(str(a.status_code) for a in answers)
            held = [
                portfolio in (await http.get(f"{API}/model/{i}")).json()["portfolios"] for i in ids
            ]
            doubled += all(held)
    return Row(
        "two models add one portfolio at once",
        c.trials,
        _text(statuses),
        f"{doubled} trials end in both",
        "0",
        doubled == 0,
    )


async def _versionless_edits(c: Campaign) -> Row:
    async with _client(c) as http:
        model_id = await _new_model(http, f"edits {uuid.uuid4().hex[:6]}", positions=0)
        count = min(c.trials, 100)
        answers = await asyncio.gather(
            *(
                http.post(
                    f"{API}/model/{model_id}/position",
                    json={
                        "security_id": f"EDIT{n:020d}",
                        "target": "0.005",
                        "low_drift": "0.001",
                        "high_drift": "0.001",
                    },
                )
                for n in range(count)
            )
        )
        kept = len((await http.get(f"{API}/model/{model_id}")).json()["positions"])
    statuses = Counter(str(a.status_code) for a in answers)
    return Row(
        "concurrent position additions, no version",
        count,
        _text(statuses),
        f"{kept} of {count} kept, {statuses['409']} x 409",
        "all kept, 0 x 409",
        kept == count and not statuses["409"],
    )


async def _idempotent_retries(c: Campaign) -> Row:
    portfolio = c.models["campaign 20"]["portfolios"][0]
    distinct_runs, statuses = 0, Counter[str]()
    async with _client(c) as http:
        before = await _stored_runs(http, portfolio)
        for _ in range(c.trials // 10 or 1):
            key = {"Idempotency-Key": uuid.uuid4().hex}
            answers = await asyncio.gather(
                *(
                    http.post(f"{API}/portfolio/{portfolio}/rebalance", headers=key)
                    for _ in range(5)
                )
            )
            statuses.update(str(a.status_code) for a in answers)
            distinct_runs += len({a.json().get("rebalance_id") for a in answers if a.is_success})
        stored = await _stored_runs(http, portfolio) - before
        other = await http.post(
            f"{API}/portfolio/{c.models['campaign 20']['portfolios'][1]}/rebalance", headers=key
        )
    keys = c.trials // 10 or 1
    return Row(
        "5 concurrent requests per Idempotency-Key",
        keys * 5,
        _text(statuses) + f"; key on another portfolio: {other.status_code}",
        f"{stored} stored runs, {distinct_runs} distinct ids for {keys} keys",
        f"{keys} and {keys}; 4xx",
        stored == keys == distinct_runs and 400 <= other.status_code < 500,
    )


async def _deadline(c: Campaign) -> Row:
    portfolio = c.models["campaign 20"]["portfolios"][2]
    async with _client(c) as http, _fault(c, "accounting", {"hang": True}):
        before = await _stored_runs(http, portfolio)
        started = time.perf_counter()
        answer = await http.post(f"{API}/portfolio/{portfolio}/rebalance")
        seconds = time.perf_counter() - started
    async with _client(c) as http:
        stored = await _stored_runs(http, portfolio) - before
    return Row(
        f"Accounting hangs (deadline {DEADLINE_SECONDS:g} s)",
        1,
        f"{answer.status_code}, {stored} stored",
        f"answered in {seconds:.1f} s",
        f"503 by {DEADLINE_SECONDS + 1:g} s, 0 stored",
        answer.status_code == 503 and seconds <= DEADLINE_SECONDS + 1 and not stored,
    )


async def _overload(c: Campaign) -> Row:
    model_id = c.models["campaign 20"]["model_id"]
    async with _client(c) as http, _fault(c, "accounting", {"latency_ms": 300}):
        answers = await asyncio.gather(
            *(http.post(f"{API}/model/{model_id}/rebalance") for _ in range(4 * IN_FLIGHT)),
            return_exceptions=True,
        )
    statuses = Counter(
        type(a).__name__ if isinstance(a, BaseException) else str(a.status_code) for a in answers
    )
    shed = statuses["503"] + statuses["429"]
    return Row(
        f"{4 * IN_FLIGHT} model rebalances at once (bound {IN_FLIGHT})",
        4 * IN_FLIGHT,
        _text(statuses),
        f"{shed} shed, {statuses['500']} x 500",
        "some shed, 0 x 500",
        shed > 0 and not statuses["500"] and set(statuses) <= {"200", "503", "429"},
    )


async def _kill_during_runs(c: Campaign) -> Row:
    model_id = c.models["campaign 100"]["model_id"]
    kills = max(3, c.trials // 15)
    for _ in range(kills):
        async with _client(c) as http:
            run = asyncio.create_task(http.post(f"{API}/model/{model_id}/rebalance"))
            await asyncio.sleep(random.uniform(0.5, 2.0))
            await c.restart()
            with contextlib.suppress(httpx.HTTPError):
                await run
    left = await _leftovers(c.mongo_uri)
    await asyncio.sleep(float(SERVICE_ENV["SWEEP_INTERVAL_SECONDS"]) * 3)
    swept = await _leftovers(c.mongo_uri)
    return Row(
        "kill -9 during model rebalances",
        kills,
        f"left after the kills: {left[0]} pending, {left[1]} orphan parts",
        f"{swept[0]} pending, {swept[1]} orphans a few sweeps later",
        "0 and 0",
        swept == (0, 0),
    )


async def _metrics_cardinality(c: Campaign) -> Row:
    """Unknown paths and invented methods: the first half may add a few fixed series
    (unmatched route, OTHER method), the second half must add none."""
    counts = []
    async with _client(c) as http:
        counts.append(await _series(http))
        for half in range(2):
            for n in range(c.trials // 2):
                method = random.choice(["GET", "BREW", "PURGE", f"X{half}{n}"])
                await http.request(method, f"/nope/{half}/{n}")
            counts.append(await _series(http))
    first, second = counts[1] - counts[0], counts[2] - counts[1]
    return Row(
        "unknown routes and methods",
        c.trials,
        f"{first} new series in the first half",
        f"{second} new in the second half",
        "0",
        second == 0,
    )


async def _slow_clients(c: Campaign) -> Row:
    host, port = c.base_url.removeprefix("http://").split(":")
    started = time.perf_counter()
    closed = await asyncio.gather(*(_half_request(host, int(port)) for _ in range(c.trials)))
    held = time.perf_counter() - started
    return Row(
        "clients sending half a request",
        c.trials,
        f"{sum(closed)} closed by the server",
        f"all closed within {held:.1f} s",
        "closed, < 60 s",
        all(closed) and held < 60,
    )


async def _fuzz(c: Campaign) -> Row:
    async with _client(c) as http:
        rules = (await http.get("/openapi.json")).json()["info"]["x-rules-not-in-schema"]
    phrases = [rule["message"] for rule in rules]
    cases = await asyncio.to_thread(_schemathesis, c.base_url, c.trials)
    failures = [(name, text) for name, text in cases if text is not None]
    undeclared = [name for name, text in failures if not _declared(text, phrases)]
    return Row(
        "schemathesis run, all checks",
        len(cases),
        f"{len(cases)} operations, up to {c.trials} examples each; "
        f"{len(failures) - len(undeclared)} refuse only by a rule the document declares",
        f"{len(undeclared)} failing: {', '.join(undeclared[:3])}" if undeclared else "0 failing",
        "0",
        not undeclared,
    )


# Schemathesis feeds values captured from answers into other requests and still calls them
# schema-valid: a preview's `rebalance_id: null` went into /rebalance/{rebalance_id}, whose
# pattern refuses "null", as a "schema-valid request rejected" (docs/decisions.md).
_NO_CAPTURED_VALUES = "".join(
    f"[phases.{phase}.extra-data-sources]\nresponses = false\n"
    for phase in ("examples", "coverage", "fuzzing")
)


def _schemathesis(base_url: str, examples: int) -> list[tuple[str, str | None]]:
    """Schemathesis's own runner with every check: (operation, its failures' text or None),
    from its JUnit report. The stateful phase and values captured from answers are left out:
    both feed one answer's fields into the next request unchecked."""
    with tempfile.TemporaryDirectory() as reports:
        config = Path(reports) / "schemathesis.toml"
        config.write_text(_NO_CAPTURED_VALUES)
        command = [
            str(Path(sys.executable).parent / "schemathesis"),
            f"--config-file={config}",
            "run",
            f"{base_url}/openapi.json",
            "--checks=all",
            "--phases=examples,coverage,fuzzing",
            f"--max-examples={examples}",
            "--seed=1",
            "--report=junit",
            f"--report-dir={reports}",
            "--no-color",
        ]
        subprocess.run(command, capture_output=True, timeout=900, check=False, cwd=reports)
        [report] = Path(reports).glob("*.xml")
        return [
            (case.get("name", "?"), None if failure is None else failure.text or "")
            for case in ElementTree.parse(report).getroot().iter("testcase")
            for failure in [case.find("failure")]
        ]


def _declared(failure: str, phrases: list[str]) -> bool:
    """Whether every failure in the text is a refused valid request (ST202) whose error
    message carries a phrase of a rule the document declares it cannot state."""
    codes = re.findall(r"^- (ST\d+)", failure, re.MULTILINE)
    messages = re.findall(r'"message":"([^"]*)"', failure)
    return set(codes) == {"ST202"} and all(any(p in m for p in phrases) for m in messages)


async def _database_gone(c: Campaign) -> Row:
    model_id = c.models["campaign 20"]["model_id"]
    async with _client(c) as http:
        started = time.perf_counter()
        answer = await http.get(f"{API}/model/{model_id}")
        seconds = time.perf_counter() - started
        ready = await http.get("/health/ready")
    return Row(
        "MongoDB stopped",
        1,
        f"GET model {answer.status_code}, ready {ready.status_code}",
        f"answered in {seconds:.1f} s",
        "503 within ~5 s",
        answer.status_code == 503 == ready.status_code and seconds <= 6,
    )


PROBES = (
    _portfolio_in_two_models,
    _versionless_edits,
    _idempotent_retries,
    _deadline,
    _overload,
    _metrics_cardinality,
    _slow_clients,
    _fuzz,
    _kill_during_runs,
)


# --- helpers ---------------------------------------------------------------------------


def _client(c: Campaign) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=c.base_url, timeout=60, limits=httpx.Limits(max_connections=200)
    )


async def _new_model(http: httpx.AsyncClient, name: str, positions: int = 1) -> str:
    body = {
        "name": name,
        "portfolios": [],
        "positions": [
            {"security_id": f"RACE{n:020d}", "target": "0.01", "low_drift": "0", "high_drift": "0"}
            for n in range(positions)
        ],
    }
    created = await http.post(f"{API}/models", json=body)
    created.raise_for_status()
    return str(created.json()["model_id"])


async def _stored_runs(http: httpx.AsyncClient, portfolio: str) -> int:
    found = await http.post(
        f"{API}/rebalances/portfolios?limit=100", json={"portfolios": [portfolio]}
    )
    found.raise_for_status()
    return len(found.json())


@contextlib.asynccontextmanager
async def _fault(c: Campaign, service: str, faults: dict[str, Any]) -> Any:
    async with httpx.AsyncClient(base_url=c.control_url, timeout=10) as control:
        (await control.put(f"/faults/{service}", json=faults)).raise_for_status()
        try:
            yield
        finally:
            (await control.put(f"/faults/{service}", json={})).raise_for_status()


async def _leftovers(mongo_uri: str) -> tuple[int, int]:
    """(runs not complete, result documents whose header is gone), read straight from MongoDB."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    try:
        db = client[DATABASE]
        pending = await db.rebalances.count_documents({"status": {"$ne": "complete"}})
        headers = {doc["_id"] async for doc in db.rebalances.find({}, {"_id": 1})}
        orphans = 0
        async for doc in db.rebalance_portfolios.find({}, {"rebalance_id": 1}):
            orphans += doc["rebalance_id"] not in headers
        return pending, orphans
    finally:
        await client.close()


async def _series(http: httpx.AsyncClient) -> int:
    text = (await http.get("/metrics")).text
    return sum(1 for line in text.splitlines() if line.startswith("http_requests_total{"))


async def _half_request(host: str, port: int) -> bool:
    """Send half the headers and wait: True when the server closes the connection."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST /api/v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), timeout=60) is not None
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


def _text(counter: Counter[str]) -> str:
    return ", ".join(f"{key} x{n}" for key, n in sorted(counter.items())) or "-"


def _report(rows: list[Row]) -> None:
    table = Table(title="Issue 13 campaign", show_lines=False)
    for column in ("probe", "trials", "outcomes", "figure", "target", ""):
        table.add_column(column)
    for row in rows:
        mark = "[green]ok[/green]" if row.ok else "[red]MISSED[/red]"
        table.add_row(row.probe, str(row.trials), row.outcomes, row.figure, row.target, mark)
    console.print(table)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 trials per probe")
    return parser


if __name__ == "__main__":
    main()
