"""`python -m order_generation.simulator`: serve a scenario and print one JSON line of URLs."""

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

import structlog

from order_generation.simulator.demo import demo_scenario
from order_generation.simulator.scenario import Scenario
from order_generation.simulator.server import SERVICES, Simulator


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, then serve until SIGTERM or SIGINT."""
    args = _parser().parse_args(argv)
    scenario = demo_scenario(args.seed) if args.demo else Scenario.load(args.scenario)
    if args.print_scenario:
        sys.stdout.write(json.dumps(scenario.to_dict(), indent=2) + "\n")
        return
    # stdout carries only the ready line; logs go to stderr, one JSON object a line, as the
    # service's own (serve passes them through to its log).
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    ports = {name: getattr(args, f"{name}_port") for name in (*SERVICES, "control")}
    asyncio.run(_serve(Simulator(scenario, args.host, ports, args.seed)))


async def _serve(simulator: Simulator) -> None:
    await simulator.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    sys.stdout.write(json.dumps(simulator.urls()) + "\n")
    sys.stdout.flush()
    structlog.get_logger(__name__).info(
        "simulated_globeco_ready",
        securities=len(simulator.scenario.securities),
        portfolios=len(simulator.scenario.portfolios),
        **simulator.urls(),
    )
    await stopping.wait()
    await simulator.stop()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m order_generation.simulator",
        description="Simulated GlobeCo Portfolio Accounting, Security, Pricing and Portfolio "
        "services. Prints one JSON line with their base URLs and a control URL when ready.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--scenario", type=Path, help="scenario JSON file to serve")
    source.add_argument("--demo", action="store_true", help="serve the seeded demo book")
    parser.add_argument("--seed", type=int, default=0, help="demo book and 5xx-rate seed")
    parser.add_argument("--host", default="127.0.0.1")
    for name in (*SERVICES, "control"):
        parser.add_argument(f"--{name}-port", type=int, default=0, help="0: any free port")
    parser.add_argument(
        "--print-scenario", action="store_true", help="print the scenario as JSON and exit"
    )
    return parser


if __name__ == "__main__":
    main()
