"""Service benchmark: the real service process against the GlobeCo simulator, over loopback.

    python -m bench.service            # full run (about seven minutes)
    python -m bench.service --quick    # a short run with a 200-portfolio model

Starts, each as a process stopped by its PID: the simulator on a generated book (every
service answering 2 ms late), the embedded MongoDB on its in-memory engine (timing every
command it serves), and `order-generation serve` (gunicorn, one uvicorn worker). Then:

1. single-portfolio rebalances of 20 and 100 positions at concurrency 1, 16 and 64: latency
   percentiles of the successful answers, throughput, errors, and the storage time per
   request (the MongoDB commands served meanwhile); at concurrency 1 the requests run one at
   a time, so each latency is also given without the storage commands inside it;
2. a model rebalance of 1,000 portfolios x 100 positions, split in its three phases from
   the times MongoDB saw its commands: gathering and solving (until the run's first write),
   storage (until the model's last_rebalance_date is written), and the HTTP answer (building,
   serialising and sending it);
3. the same model rebalance again, while GET /model/{id} is sent, one request after another
   on a connection of its own (the polls cost the service CPU, hence two runs); since
   a stalled event loop then shows as one slow request, the longest wait and the time spent
   waiting past 50 ms are printed too, and the p99 of each poll less the time its read waited
   behind a write in the embedded server (which runs one command at a time).
"""

import argparse
import asyncio
import bisect
import contextlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench import service_procs as procs
from bench.service_book import ModelSpec, bench_book
from bench.service_procs import Event, Mongo
from bench.service_stats import DriveResult, RouteStats, drive, ms, percentile
from order_generation.adapters.mongo import MongoStore
from order_generation.domain.runs import PortfolioOutcome
from order_generation.simulator.server import SERVICES

console = Console(width=150)
LATENCY_MS = 2.0
DATABASE = "bench-service"
TARGET_SINGLE_P50_MS = 20.0  # 100 positions, concurrency 1
TARGET_MODEL_SECONDS = 5.0  # 1,000 x 100, excluding storage
TARGET_GET_P99_MS = 50.0  # GET /model/{id} while a model rebalance runs
RUN_COLLECTIONS = ("rebalances", "rebalance_portfolios")


@dataclass(frozen=True)
class Plan:
    concurrencies: tuple[int, ...]
    requests: dict[int, int]  # concurrency -> requests per cell
    cell_seconds: float  # time cap per cell
    portfolios_20: int
    portfolios_100: int  # the model rebalance's portfolios (and the 100-position singles')


FULL = Plan((1, 16, 64), {1: 200, 16: 500, 64: 1000}, 60, 200, 1000)
QUICK = Plan((1, 16, 64), {1: 40, 16: 120, 64: 240}, 15, 100, 200)


@dataclass
class Single:
    """One cell of the single-portfolio table."""

    result: DriveResult
    storage_s: float  # MongoDB busy serving the cell's commands, summed
    excluding_storage_ms: list[float]  # concurrency 1 only: each latency less its commands

    def storage_ms_per_request(self) -> float:
        count = self.result.total.count
        return self.storage_s * 1000 / count if count else math.nan


@dataclass
class ModelRun:
    portfolios: int
    polled: bool
    status: int = 0
    succeeded: int = 0
    failed: int = 0
    body_mb: float = 0.0
    total_s: float = math.nan
    first_byte_s: float = math.nan
    gather_solve_s: float = math.nan  # request sent -> the run's first write
    storage_s: float = math.nan  # the run's first write -> last_rebalance_date written
    storage_busy_s: float = math.nan  # MongoDB busy serving those writes, summed
    writes: int = 0
    solver_sum_s: float = math.nan
    polls: dict[str, RouteStats] = field(default_factory=dict)  # by phase, and "all"
    # by phase: each poll less the time its read was queued behind a write in MongoDB
    polls_unqueued: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def answer_s(self) -> float:
        """Storage done -> last byte received: build, validate, serialise, send."""
        return self.total_s - self.gather_solve_s - self.storage_s

    @property
    def excluding_storage_s(self) -> float:
        return self.total_s - self.storage_s


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.model_portfolios:
        plan = Plan(**{**plan.__dict__, "portfolios_100": args.model_portfolios})
    if args.skip_single:
        plan = Plan(**{**plan.__dict__, "concurrencies": ()})
    extra_env = dict(item.split("=", 1) for item in args.env)
    console.print(_machine_line("start"))
    with contextlib.ExitStack() as stack:
        workdir = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        workdir.mkdir(parents=True, exist_ok=True)
        specs = [
            ModelSpec("bench 20 positions", 20, plan.portfolios_20),
            ModelSpec("bench 100 positions", 100, plan.portfolios_100),
        ]
        book = bench_book(specs)
        scenario_file = workdir / "scenario.json"
        book.scenario.dump(scenario_file)
        sim_log = stack.enter_context((workdir / "simulator.log").open("wb"))
        sim_pid, urls = stack.enter_context(procs.simulator(scenario_file, sim_log))
        mongo = stack.enter_context(procs.mongo_in_memory())
        env = {key.upper(): value for key, value in urls.items() if key != "control_url"}
        env |= {"MONGODB_URL": mongo.uri, "MONGODB_DATABASE": DATABASE, "WORKERS": "1"}
        env |= {"LOG_LEVEL": "INFO", **extra_env}
        log = stack.enter_context((workdir / "service.log").open("wb"))
        service_pid, base_url = stack.enter_context(procs.service(env, log))
        pids = {"service": service_pid, "mongo": mongo.pid, "simulator": sim_pid}
        console.print(
            f"service {base_url} (pid {service_pid}), in-memory MongoDB (pid {mongo.pid}), "
            f"simulator (pid {sim_pid}) adding {LATENCY_MS:g} ms per call; files in {workdir}"
            + (f"; service settings {extra_env}" if extra_env else "")
        )
        singles, models = asyncio.run(
            _benchmark(plan, base_url, urls["control_url"], mongo, book.models, pids)
        )
    console.print(_machine_line("end"))
    _report(singles, models)
    if args.json:
        args.json.write_text(json.dumps(_as_json(singles, models), indent=2) + "\n")


async def _benchmark(
    plan: Plan,
    base_url: str,
    control_url: str,
    mongo: Mongo,
    models: dict[str, dict[str, Any]],
    pids: dict[str, int],
) -> tuple[dict[tuple[int, int], Single], list[ModelRun]]:
    async with httpx.AsyncClient(base_url=control_url, timeout=10) as control:
        for service in SERVICES:
            answer = await control.put(f"/faults/{service}", json={"latency_ms": LATENCY_MS})
            answer.raise_for_status()
    limits = httpx.Limits(max_connections=max(plan.concurrencies, default=1))
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        ids: dict[int, tuple[str, list[str]]] = {}
        for body in models.values():
            created = await http.post("/api/v1/models", json=body)
            created.raise_for_status()
            ids[len(body["positions"])] = (created.json()["model_id"], body["portfolios"])
        singles: dict[tuple[int, int], Single] = {}
        for positions, (_, portfolios) in sorted(ids.items()):
            if not plan.concurrencies:
                break
            warm = await drive(http, _single(portfolios, offset=0), concurrency=4, count=8)
            if warm.total.errors:
                raise RuntimeError(f"warm-up failed: {warm.total.error_text()}")
            for concurrency in plan.concurrencies:
                console.print(f"single-portfolio rebalance, {positions} positions, c={concurrency}")
                mongo.events()
                result = await drive(
                    http,
                    _single(portfolios, offset=concurrency * 7),
                    concurrency=concurrency,
                    count=plan.requests[concurrency],
                    seconds=plan.cell_seconds,
                )
                singles[positions, concurrency] = _single_cell(result, mongo.events(), concurrency)
        model_id, portfolios = ids[100]
        runs = []
        for polled in (False, True):
            console.print(
                f"model rebalance: {len(portfolios)} portfolios x 100 positions, "
                + ("with GET /model/{id} polled" if polled else "alone")
            )
            runs.append(
                await _model_rebalance(http, model_id, len(portfolios), polled, mongo, pids)
            )
    return singles, runs


def _single(portfolios: list[str], offset: int) -> Any:
    def pick(index: int) -> tuple[str, str, str]:
        portfolio = portfolios[(offset + index) % len(portfolios)]
        return "POST /portfolio/{id}/rebalance", "POST", f"/api/v1/portfolio/{portfolio}/rebalance"

    return pick


def _single_cell(result: DriveResult, events: list[Event], concurrency: int) -> Single:
    storage = sum(event.seconds for event in events)
    excluding: list[float] = []
    if concurrency == 1:  # one request at a time: the commands inside its window are its own
        for latency, (sent, done) in zip(
            result.total.latencies_ms, result.total.windows, strict=True
        ):
            own = sum(e.seconds for e in events if sent <= e.start and e.end <= done)
            excluding.append(latency - own * 1000)
    return Single(result, storage, excluding)


async def _model_rebalance(
    http: httpx.AsyncClient,
    model_id: str,
    portfolios: int,
    polled: bool,
    mongo: Mongo,
    pids: dict[str, int],
) -> ModelRun:
    """One model rebalance, split in phases; `polled`: with GET /model/{id} sent meanwhile."""
    polls: list[tuple[float, float]] = []  # send time, latency (ms)
    poll_outcomes = RouteStats()
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=http.base_url, timeout=60) as poll:

        async def poller() -> None:
            """One GET at a time, back to back, on a connection of its own."""
            while not stop.is_set():
                sent = perf_counter()
                try:
                    answer = await poll.get(f"/api/v1/model/{model_id}")
                except httpx.HTTPError as error:
                    poll_outcomes.outcomes[type(error).__name__] += 1
                    continue
                poll_outcomes.outcomes[str(answer.status_code)] += 1
                if answer.is_success:
                    polls.append((sent, (perf_counter() - sent) * 1000))

        mongo.events()
        cpu_before = {name: procs.cpu_seconds(pid) for name, pid in pids.items()}
        polling = asyncio.create_task(poller() if polled else stop.wait())
        await asyncio.sleep(0.5)  # a baseline of idle polls
        started = perf_counter()
        async with http.stream("POST", f"/api/v1/model/{model_id}/rebalance", timeout=900) as reply:
            first_byte = perf_counter()
            body = await reply.aread()
        finished = perf_counter()
        stop.set()
        await polling
        cpu = {name: procs.cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        events = mongo.events()
    run = ModelRun(portfolios, polled, reply.status_code, body_mb=len(body) / 1e6, cpu=cpu)
    run.total_s, run.first_byte_s = finished - started, first_byte - started
    entries = json.loads(body) if reply.is_success else []
    run.failed = sum(1 for entry in entries if "error" in entry)
    run.succeeded = len(entries) - run.failed
    writes = [
        e
        for e in events
        if started <= e.start
        and e.command in ("insert", "update", "delete")
        and (e.collection in RUN_COLLECTIONS or e.collection == "models")
    ]
    if writes:
        storage_start, storage_end = writes[0].start, writes[-1].end
        run.gather_solve_s = storage_start - started
        run.storage_s = storage_end - storage_start
        run.storage_busy_s = sum(e.seconds for e in writes)
        run.writes = len(writes)
        phases = {
            "before": (0.0, started),
            "gathering + solving": (started, storage_start),
            "storing": (storage_start, storage_end),
            "answering": (storage_end, finished),
            "whole rebalance": (started, finished),
        }
        unqueued = _unqueued(polls, events)
        for phase, (low, high) in phases.items():
            if polled:
                run.polls[phase] = RouteStats(
                    latencies_ms=[latency for at, latency in polls if low <= at < high]
                )
                run.polls_unqueued[phase] = [
                    latency
                    for (at, _), latency in zip(polls, unqueued, strict=True)
                    if low <= at < high
                ]
    if polled:
        run.polls["all"] = poll_outcomes
    if entries:
        run.solver_sum_s = await _solver_seconds(mongo.uri, entries[0]["rebalance_id"])
    return run


def _unqueued(polls: list[tuple[float, float]], events: list[Event]) -> list[float]:
    """Each poll's latency less the time MongoDB spent on writes between the poll being sent
    and its own `find` on `models` starting: the embedded server runs one command at a time,
    so that is how long the read waited behind the writes."""
    finds = [e for e in events if e.command == "find" and e.collection == "models"]
    writes = [e for e in events if e.command in ("insert", "update", "delete")]
    write_starts = [e.start for e in writes]
    find_starts = [e.start for e in finds]
    result = []
    for sent, latency in polls:
        done = sent + latency / 1000
        i = bisect.bisect_left(find_starts, sent)
        read_at = find_starts[i] if i < len(finds) and find_starts[i] <= done else done
        queued = 0.0
        j = bisect.bisect_left(write_starts, read_at) - 1
        while j >= 0 and writes[j].end > sent:
            queued += min(writes[j].end, read_at) - max(writes[j].start, sent)
            j -= 1
        result.append(latency - max(queued, 0.0) * 1000)
    return result


async def _solver_seconds(mongo_uri: str, rebalance_id: str) -> float:
    """The solver time of every portfolio of the stored run, added up."""
    store = MongoStore(mongo_uri, DATABASE)
    try:
        stored = await store.runs.get_rebalance(rebalance_id)
    finally:
        await store.close()
    return sum(o.result.solve_seconds for o in stored.outcomes if isinstance(o, PortfolioOutcome))


def _report(singles: dict[tuple[int, int], Single], models: list[ModelRun]) -> None:
    table = Table(title=f"Single-portfolio rebalance (simulator +{LATENCY_MS:g} ms per call)")
    for column in ("positions", "concurrency", "requests", "p50 ms", "p95 ms", "p99 ms", "req/s"):
        table.add_column(column, justify="right")
    table.add_column("errors")
    table.add_column("storage ms/req", justify="right")
    table.add_column("p50 / p99 ms excl. storage", justify="right")
    table.add_column("target")
    for (positions, concurrency), cell in sorted(singles.items()):
        stats = cell.result.total
        excluding = cell.excluding_storage_ms
        target = ""
        if (positions, concurrency) == (100, 1):
            target = _verdict(
                f"p50 <= {TARGET_SINGLE_P50_MS:g} ms", stats.p(50), TARGET_SINGLE_P50_MS
            )
            target += "; excl. storage " + _verdict(
                "", percentile(excluding, 50), TARGET_SINGLE_P50_MS
            )
        table.add_row(
            str(positions),
            str(concurrency),
            str(stats.count),
            ms(stats.p(50)),
            ms(stats.p(95)),
            ms(stats.p(99)),
            f"{cell.result.throughput():.1f}",
            stats.error_text(),
            ms(cell.storage_ms_per_request()),
            f"{ms(percentile(excluding, 50))} / {ms(percentile(excluding, 99))}"
            if excluding
            else "",
            target,
        )
    if singles:
        console.print(table)

    alone, polled = models
    rows = Table(title=f"Model rebalance: {alone.portfolios} portfolios x 100 positions")
    rows.add_column("measure (seconds)")
    rows.add_column("alone", justify="right")
    rows.add_column("with GET polls", justify="right")
    rows.add_column("target (alone)")

    def row(label: str, value: Any, target: str = "") -> None:
        rows.add_row(label, *(value(run) for run in models), target)

    row("HTTP status; portfolios ok / failed", lambda r: f"{r.status}; {r.succeeded}/{r.failed}")
    row("total, client side", lambda r: f"{r.total_s:.2f}")
    row("  gathering + solving (until the run's first write)", lambda r: f"{r.gather_solve_s:.2f}")
    row("    solver time, summed over portfolios", lambda r: f"{r.solver_sum_s:.2f}")
    row("  storage (until last_rebalance_date is written)", lambda r: f"{r.storage_s:.2f}")
    row("    MongoDB busy serving its writes", lambda r: f"{r.storage_busy_s:.2f} ({r.writes})")
    row(
        f"  HTTP answer: build, serialise, send {alone.body_mb:.1f} MB",
        lambda r: f"{r.answer_s:.2f}",
    )
    if alone.portfolios == 1000:
        target = _verdict(
            f"<= {TARGET_MODEL_SECONDS:g} s", alone.excluding_storage_s, TARGET_MODEL_SECONDS
        )
    else:
        target = f"(for 1,000 portfolios: <= {TARGET_MODEL_SECONDS:g} s)"
    row("total excluding storage", lambda r: f"{r.excluding_storage_s:.2f}", target)
    row(
        "CPU seconds: service / MongoDB / simulator",
        lambda r: " / ".join(f"{seconds:.1f}" for seconds in r.cpu.values()),
    )
    console.print(rows)

    polls = Table(title="GET /model/{id} during the second rebalance, one after another")
    columns = ("phase", "polls", "p50 ms", "p99 ms", "max ms", "waited past 50 ms")
    for column in (*columns, "p99 ms less queued behind writes", "target"):
        polls.add_column(column, justify="left" if column in ("phase", "target") else "right")
    for phase, stats in polled.polls.items():
        if phase == "all":
            continue
        unqueued_p99 = percentile(polled.polls_unqueued[phase], 99)
        target = ""
        if phase == "whole rebalance":
            target = _verdict(f"p99 <= {TARGET_GET_P99_MS:g} ms", stats.p(99), TARGET_GET_P99_MS)
            target += "; less queued " + _verdict("", unqueued_p99, TARGET_GET_P99_MS)
        polls.add_row(
            phase,
            str(len(stats.latencies_ms)),
            ms(stats.p(50)),
            ms(stats.p(99)),
            ms(max(stats.latencies_ms, default=math.nan)),
            f"{sum(max(0.0, x - TARGET_GET_P99_MS) for x in stats.latencies_ms) / 1000:.2f} s",
            ms(unqueued_p99),
            target,
        )
    if "all" in polled.polls:
        polls.caption = f"errors: {polled.polls['all'].error_text()}"
    console.print(polls)


def _verdict(label: str, value: float, limit: float) -> str:
    if math.isnan(value):
        return f"{label}: no data".strip()
    met = "met" if value <= limit else "MISSED"
    return f"{label} {met} ({value / limit:.2f}x)".strip()


def _as_json(singles: dict[tuple[int, int], Single], models: list[ModelRun]) -> dict[str, Any]:
    return {
        "single": [
            {
                "positions": positions,
                "concurrency": concurrency,
                "requests": cell.result.total.count,
                "p50_ms": cell.result.total.p(50),
                "p95_ms": cell.result.total.p(95),
                "p99_ms": cell.result.total.p(99),
                "throughput": cell.result.throughput(),
                "outcomes": dict(cell.result.total.outcomes),
                "storage_ms_per_request": cell.storage_ms_per_request(),
                "p50_ms_excluding_storage": percentile(cell.excluding_storage_ms, 50),
            }
            for (positions, concurrency), cell in sorted(singles.items())
        ],
        "model": [
            {k: v for k, v in run.__dict__.items() if k not in ("polls", "polls_unqueued")}
            | {
                "excluding_storage_s": run.excluding_storage_s,
                "answer_s": run.answer_s,
                "get_model": {
                    phase: {
                        "count": len(s.latencies_ms),
                        "p50_ms": s.p(50),
                        "p99_ms": s.p(99),
                        "p99_ms_less_queued": percentile(run.polls_unqueued.get(phase, []), 99),
                    }
                    for phase, s in run.polls.items()
                },
            }
            for run in models
        ],
    }


def _machine_line(when: str) -> str:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"[{when}] {time.strftime('%H:%M:%S')} cpus {os.cpu_count()}, load average {load}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.service", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer requests, a 200-portfolio model"
    )
    parser.add_argument("--model-portfolios", type=int, help="portfolios of the model rebalanced")
    parser.add_argument(
        "--skip-single", action="store_true", help="only the model rebalance (and its polls)"
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="extra service setting"
    )
    parser.add_argument("--keep", type=Path, help="keep the scenario and the service log here")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return parser


if __name__ == "__main__":
    main()
