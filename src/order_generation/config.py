"""Service configuration from environment variables (and an optional .env file)."""

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

GLOBECO_URL_FIELDS = (
    "portfolio_accounting_service_url",
    "security_service_url",
    "pricing_service_url",
    "portfolio_service_url",
)


class Settings(BaseSettings):
    """Every setting, with its environment variable name and default."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    host: str = "0.0.0.0"
    port: int = Field(8088, ge=1, le=65535)
    workers: int = Field(1, ge=1)
    log_level: str = "INFO"
    cors_origins: Annotated[list[str], NoDecode] = ["*"]
    secret_key: SecretStr | None = None
    max_request_bytes: int = Field(1_048_576, ge=1024)
    max_inflight_rebalances: int = Field(64, ge=1)
    # Seconds a client has to send a request head, then its body, before it is disconnected.
    request_header_timeout: float = Field(10.0, gt=0)
    request_body_timeout: float = Field(30.0, gt=0)

    mongodb_url: str | None = None
    mongodb_database: str = "order-generation"
    data_dir: Path = Path("data")

    portfolio_accounting_service_url: str = "http://globeco-portfolio-accounting-service:8087"
    security_service_url: str = "http://globeco-security-service:8000"
    pricing_service_url: str = "http://globeco-pricing-service:8083"
    portfolio_service_url: str = "http://globeco-portfolio-service:8000"
    # Unset: simulate only on a first run (embedded MongoDB, no GlobeCo URL set).
    simulate_globeco: bool | None = None
    external_service_timeout: float = Field(10.0, gt=0)
    external_service_retries: int = Field(3, ge=0)
    retry_backoff_seconds: float = Field(0.1, ge=0)
    circuit_breaker_threshold: int = Field(5, ge=1)
    circuit_breaker_reset_seconds: float = Field(30.0, gt=0)
    ticker_cache_seconds: float = Field(600.0, ge=0)
    price_cache_seconds: float = Field(60.0, ge=0)
    portfolio_name_cache_seconds: float = Field(600.0, ge=0)

    max_optimization_time: float = Field(30.0, gt=0)
    rebalance_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)

    # Bounded waits, safe retries and sweeps while running (issue 13).
    rebalance_deadline_seconds: float = Field(25.0, gt=0)
    mongodb_timeout_seconds: float = Field(5.0, gt=0)
    idempotency_window_seconds: float = Field(86400.0, gt=0)
    sweep_interval_seconds: float = Field(300.0, gt=0)
    # Named API keys, `name:key,name:key`: the name is the actor of what the key does. Read
    # by `named_api_keys`, not by a validator: pydantic's errors would quote the keys.
    api_keys: SecretStr | None = None

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @property
    def named_api_keys(self) -> dict[str, SecretStr]:
        """API key name -> key, from API_KEYS."""
        return {} if self.api_keys is None else parse_api_keys(self.api_keys)

    @property
    def api_key_required(self) -> bool:
        return self.secret_key is not None or self.api_keys is not None

    @property
    def globeco_configured(self) -> bool:
        """True when any GlobeCo service URL was set explicitly."""
        return bool(self.model_fields_set & set(GLOBECO_URL_FIELDS))

    @property
    def starts_simulator(self) -> bool:
        """Whether `serve` starts the simulated GlobeCo suite.

        SIMULATE_GLOBECO decides when set; otherwise only a first run does: the embedded
        MongoDB and no GlobeCo URL, so a configured deployment never talks to a simulator.
        """
        if self.simulate_globeco is not None:
            return self.simulate_globeco
        return self.mongodb_url is None and not self.globeco_configured


def parse_api_keys(value: SecretStr) -> dict[str, SecretStr]:
    """`name:key,name:key` -> {name: key}; names unique, neither part empty."""
    keys: dict[str, SecretStr] = {}
    for item in value.get_secret_value().split(","):
        name, _, key = item.strip().partition(":")
        if not name.strip() or not key.strip() or name.strip() in keys:
            raise ValueError("API_KEYS must be name:key pairs separated by commas, names unique")
        keys[name.strip()] = SecretStr(key.strip())
    return keys
