"""A simulator of the four GlobeCo services, for tests, benchmarks and a first run."""

from order_generation.simulator.demo import demo_models, demo_scenario
from order_generation.simulator.scenario import Portfolio, Scenario, Security
from order_generation.simulator.server import SERVICES, URL_KEYS, Simulator

__all__ = [
    "SERVICES",
    "URL_KEYS",
    "Portfolio",
    "Scenario",
    "Security",
    "Simulator",
    "demo_models",
    "demo_scenario",
]
