"""Security service: the ticker of each security id, cached."""

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from order_generation.adapters.resilience import GlobecoClient, TtlCache, fetch_each
from order_generation.config import Settings
from order_generation.domain.errors import NotFound

# Up to this many misses are fetched one by one (concurrently); more take one list call.
PER_ID_LIMIT = 4


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

    async def _load(self, security_ids: list[str]) -> dict[str, str]:
        if len(security_ids) > PER_ID_LIMIT:
            return self._decode(await self._get("/api/v1/securities"), _parse_list)
        return await fetch_each(security_ids, self._load_one)

    async def _load_one(self, security_id: str) -> dict[str, str]:
        response = await self._get(f"/api/v1/security/{quote(security_id, safe='')}")
        if response.status_code == 404:
            return {}
        return self._decode(response, lambda body: {security_id: _ticker(body)})


def _parse_list(body: list[dict[str, Any]]) -> dict[str, str]:
    return {_text(item["securityId"]): _ticker(item) for item in body}


def _ticker(security: dict[str, Any]) -> str:
    return _text(security["ticker"])


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError("expected a non-empty string")
    return value
