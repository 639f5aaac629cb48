"""Security service: the ticker of each security id, cached."""

from collections.abc import Iterable, Mapping
from typing import Any

from order_generation.adapters.resilience import GlobecoClient, TtlCache
from order_generation.config import Settings
from order_generation.domain.errors import NotFound


class SecurityClient(GlobecoClient):
    """Maps security ids to tickers; misses go through the list endpoint when that is cheaper."""

    service = "security"
    title = "Security"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.security_service_url, settings)
        self.cache: TtlCache[str, str] = TtlCache(settings.ticker_cache_seconds, "tickers")

    async def tickers(self, security_ids: Iterable[str]) -> dict[str, str]:
        """The ticker of each security id; NotFound names every id the service does not know."""
        wanted = list(dict.fromkeys(security_ids))
        found = await self.cache.get_many(wanted, self._load)
        if unknown := [security_id for security_id in wanted if security_id not in found]:
            raise NotFound(
                f"Security service does not know security {', '.join(unknown)}",
                {"service": self.service, "security_ids": unknown},
            )
        return found

    async def _load(self, security_ids: list[str]) -> Mapping[str, str]:
        return await self._fetch(
            security_ids, "/api/v1/securities", _parse_list, "/api/v1/security/{}", _ticker
        )


def _parse_list(body: list[dict[str, Any]]) -> dict[str, str]:
    return {_text(item["securityId"]): _ticker(item) for item in body}


def _ticker(security: dict[str, Any]) -> str:
    return _text(security["ticker"])


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("expected a non-empty string")
    return value
