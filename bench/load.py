"""A bounded load on a running service: a mix of reads and rebalances, latency per route.

    python -m bench.load                                   # 30 s at concurrency 8, :8088
    python -m bench.load http://127.0.0.1:8088 --seconds 60 --concurrency 32
    python -m bench.load --requests 2000 --mix models=1,model=4,rebalance=2

It reads the models through the API (GET /models) to find model and portfolio ids, so it
works against `make run` (the demo book) as against any loaded service, then sends the mix
from `--concurrency` workers until `--seconds` pass or `--requests` were sent, and prints
latency percentiles of the successful answers per route and every other outcome by status.
Only loopback addresses unless `--allow-remote` (for a cluster of your own).
"""

import argparse
import asyncio
import ipaddress
import json
import os
import random
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from rich.console import Console
from rich.table import Table

from bench.service_stats import DriveResult, Request, drive, ms

console = Console(width=140)
MAX_SECONDS = 3600
MAX_REQUESTS = 1_000_000
ROUTES = {
    "models": "GET /models",
    "model": "GET /model/{id}",
    "rebalance": "POST /portfolio/{id}/rebalance",
    "model-rebalance": "POST /model/{id}/rebalance",
}


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if not args.allow_remote and not _is_loopback(args.url):
        sys.exit(f"{args.url} is not a loopback address; pass --allow-remote for your own cluster")
    mix = _mix(args.mix)
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    result, models = asyncio.run(_run(args, mix, headers))
    _report(args, result, models)
    if args.json:
        args.json.write_text(json.dumps(_as_json(result), indent=2) + "\n")


async def _run(
    args: argparse.Namespace, mix: dict[str, int], headers: dict[str, str]
) -> tuple[DriveResult, list[dict[str, Any]]]:
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(
        base_url=args.url.rstrip("/"), timeout=args.timeout, limits=limits, headers=headers
    ) as http:
        try:
            answer = await http.get("/api/v1/models")
        except httpx.HTTPError as error:
            sys.exit(f"cannot reach {args.url}: {type(error).__name__} {error}")
        if answer.status_code != 200:
            sys.exit(f"GET /api/v1/models answered {answer.status_code}: {answer.text[:200]}")
        models: list[dict[str, Any]] = answer.json()
        if not models:
            sys.exit("the service has no models: start it with `make run` (demo book) or add one")
        portfolios = [p for model in models for p in model["portfolios"]]
        if not portfolios and (mix.get("rebalance") or mix.get("model-rebalance")):
            sys.exit("no model has portfolios to rebalance; drop the rebalances from --mix")
        console.print(
            f"{args.url}: {len(models)} models, {len(portfolios)} portfolios; "
            f"concurrency {args.concurrency}, at most {args.seconds:g} s"
            + (f" and {args.requests} requests" if args.requests else "")
            + f"; mix {', '.join(f'{k}={v}' for k, v in mix.items())}"
        )
        rng = random.Random(args.seed)
        model_ids = [model["model_id"] for model in models]
        with_portfolios = [model["model_id"] for model in models if model["portfolios"]]
        kinds, weights = list(mix), list(mix.values())

        def pick(_index: int) -> Request:
            kind = rng.choices(kinds, weights)[0]
            route = ROUTES[kind]
            if kind == "models":
                return route, "GET", "/api/v1/models"
            if kind == "model":
                return route, "GET", f"/api/v1/model/{rng.choice(model_ids)}"
            if kind == "rebalance":
                return route, "POST", f"/api/v1/portfolio/{rng.choice(portfolios)}/rebalance"
            return route, "POST", f"/api/v1/model/{rng.choice(with_portfolios)}/rebalance"

        result = await drive(
            http, pick, concurrency=args.concurrency, count=args.requests, seconds=args.seconds
        )
    return result, models


def _report(args: argparse.Namespace, result: DriveResult, models: list[dict[str, Any]]) -> None:
    table = Table(title=f"{result.total.count} requests in {result.seconds:.1f} s")
    table.add_column("route")
    for column in ("requests", "req/s", "p50 ms", "p90 ms", "p95 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right")
    table.add_column("not 2xx (by status)")
    rows = sorted(result.routes.items())
    if len(rows) > 1:
        rows.append(("all", result.total))
    for route, stats in rows:
        table.add_row(
            route,
            str(stats.count),
            f"{stats.count / result.seconds:.1f}" if result.seconds else "-",
            ms(stats.p(50)),
            ms(stats.p(90)),
            ms(stats.p(95)),
            ms(stats.p(99)),
            ms(max(stats.latencies_ms, default=float("nan"))),
            stats.error_text(),
        )
    console.print(table)
    console.print("Latencies are of the 2xx answers; 503s with Retry-After are back-pressure.")


def _as_json(result: DriveResult) -> dict[str, Any]:
    return {
        "seconds": result.seconds,
        "routes": {
            route: {
                "requests": stats.count,
                "p50_ms": stats.p(50),
                "p90_ms": stats.p(90),
                "p95_ms": stats.p(95),
                "p99_ms": stats.p(99),
                "outcomes": dict(stats.outcomes),
            }
            for route, stats in result.routes.items()
        },
    }


def _mix(text: str) -> dict[str, int]:
    mix: dict[str, int] = {}
    for item in text.split(","):
        kind, _, weight = item.partition("=")
        if kind.strip() not in ROUTES or not weight.strip().isdigit():
            raise SystemExit(f"--mix: expected NAME=WEIGHT with NAME in {', '.join(ROUTES)}")
        if int(weight):
            mix[kind.strip()] = int(weight)
    if not mix:
        raise SystemExit("--mix: give at least one route a weight above 0")
    return mix


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def _bounded(limit: float, kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        value = kind(text)
        if not 0 < value <= limit:
            raise argparse.ArgumentTypeError(f"must be above 0 and at most {limit:g}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:8088")
    parser.add_argument("--seconds", type=_bounded(MAX_SECONDS, float), default=30.0)
    parser.add_argument("--requests", type=_bounded(MAX_REQUESTS, int), help="stop after this many")
    parser.add_argument("--concurrency", type=_bounded(1024, int), default=8)
    parser.add_argument(
        "--mix",
        default="models=1,model=4,rebalance=2",
        help=f"weights per route: {', '.join(ROUTES)} (default %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--seed", type=int, default=0, help="for the choice of routes and ids")
    parser.add_argument(
        "--api-key", default=os.environ.get("SECRET_KEY"), help="X-API-Key (default: $SECRET_KEY)"
    )
    parser.add_argument("--allow-remote", action="store_true", help="allow a non-loopback URL")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return parser


if __name__ == "__main__":
    main()
