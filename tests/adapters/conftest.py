"""One simulator process for the client tests; `globeco` clears its faults and counts."""

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from order_generation.adapters.accounting import AccountingClient
from order_generation.adapters.portfolio import PortfolioClient
from order_generation.adapters.pricing import PricingClient
from order_generation.adapters.security import SecurityClient
from order_generation.config import Settings
from order_generation.simulator import Portfolio, Scenario, Security
from tests.support.simulator import SimulatorProcess, run_simulator

SECURITY_IDS = [f"sec{i:021d}" for i in range(120)]
TICKERS = {security_id: f"T{i:03d}" for i, security_id in enumerate(SECURITY_IDS)}
PRICED = SECURITY_IDS[:110]
UNPRICED = SECURITY_IDS[110]  # its ticker has no price at all
ZERO_PRICE = SECURITY_IDS[111]  # its ticker's close is 0
NO_CLOSE = SECURITY_IDS[112]  # its ticker's close is null

HOLDER = "holder000000000000000001"
CASH_ONLY = "cashonly0000000000000002"
NEW = "newportfolio000000000003"
NAMELESS = "nameless0000000000000004"
NAMED = [f"named{i:019d}" for i in range(6)]
UNKNOWN = "unknown00000000000000000"


def price_of(index: int) -> Decimal:
    return Decimal(3) + Decimal(index) * Decimal("12.37")


SCENARIO = Scenario(
    securities=tuple(Security(security_id, TICKERS[security_id]) for security_id in SECURITY_IDS),
    prices={
        **{TICKERS[security_id]: price_of(i) for i, security_id in enumerate(PRICED)},
        TICKERS[ZERO_PRICE]: Decimal(0),
        TICKERS[NO_CLOSE]: None,
    },
    portfolios=(
        Portfolio(
            HOLDER,
            "Holder Fund",
            Decimal("1234.56"),
            {SECURITY_IDS[0]: 100, SECURITY_IDS[1]: 5, SECURITY_IDS[2]: 0},
        ),
        Portfolio(CASH_ONLY, "Cash Fund", Decimal("5000")),
        Portfolio(NEW, "Fresh Fund", new=True),
        Portfolio(NAMELESS, None, Decimal(10)),
        *(Portfolio(pid, f"Named {i}", Decimal(1)) for i, pid in enumerate(NAMED)),
    ),
)


@pytest.fixture(scope="session")
def globeco_process() -> Iterator[SimulatorProcess]:
    with run_simulator(SCENARIO) as simulator:
        yield simulator


@pytest.fixture
async def globeco(globeco_process: SimulatorProcess) -> SimulatorProcess:
    """The shared simulator, with no faults and no calls counted yet."""
    await globeco_process.clear_faults()
    await globeco_process.reset_calls()
    return globeco_process


@pytest.fixture
def fast(globeco: SimulatorProcess) -> Settings:
    """Short timeouts, backoff and cool-down, so fault tests stay quick."""
    return fast_settings(globeco)


def fast_settings(globeco: SimulatorProcess, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "external_service_timeout": 0.5,
        "external_service_retries": 3,
        "retry_backoff_seconds": 0.01,
        "circuit_breaker_threshold": 5,
        "circuit_breaker_reset_seconds": 0.3,
        **overrides,
    }
    return globeco.settings(**values)


@pytest.fixture
async def accounting(fast: Settings) -> AsyncIterator[AccountingClient]:
    async with AccountingClient(fast) as client:
        yield client


@pytest.fixture
async def security(fast: Settings) -> AsyncIterator[SecurityClient]:
    async with SecurityClient(fast) as client:
        yield client


@pytest.fixture
async def pricing(fast: Settings) -> AsyncIterator[PricingClient]:
    async with PricingClient(fast) as client:
        yield client


@pytest.fixture
async def portfolio(fast: Settings) -> AsyncIterator[PortfolioClient]:
    async with PortfolioClient(fast) as client:
        yield client


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Any]:
    """The test's database, read and written raw (no Decimal codec)."""
    assert settings.mongodb_url is not None
    raw_client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    yield raw_client[settings.mongodb_database]
    await raw_client.close()
