"""Liveness, readiness (MongoDB reachable) and a detailed health report."""

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from order_generation.adapters.resilience import GlobecoClient
from order_generation.api.dependencies import StoreDep
from order_generation.config import Settings
from order_generation.metrics import exposition

router = APIRouter(prefix="/health", tags=["health"])
metrics_router = APIRouter(tags=["health"])
_PROBE_SECONDS = 2.0


@metrics_router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    body, content_type = exposition()
    return Response(body, media_type=content_type)


async def _mongo_status(store: StoreDep) -> str:
    try:
        await store.ping()
    except Exception:
        return "unavailable"
    return "ok"


@router.get("/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready")
async def ready(store: StoreDep) -> JSONResponse:
    mongo = await _mongo_status(store)
    status = 200 if mongo == "ok" else 503
    return JSONResponse({"status": "ok" if status == 200 else "unavailable"}, status_code=status)


@router.get("/health")
async def health(request: Request, store: StoreDep) -> JSONResponse:
    settings: Settings = request.app.state.settings
    globeco = request.app.state.rebalance_service.globeco
    clients = (globeco.accounting, globeco.security, globeco.pricing, globeco.portfolio)
    mongo, *services = await asyncio.gather(
        _mongo_status(store),
        *(_globeco_status(client, simulated=bool(settings.simulate_globeco)) for client in clients),
    )
    failing = any(service["status"] == "failing" for service in services)
    checks: dict[str, Any] = {"mongodb": {"status": mongo}}
    checks |= {client.service: service for client, service in zip(clients, services, strict=True)}
    body: dict[str, Any] = {
        "status": "ok" if mongo == "ok" and not failing else "degraded",
        "uptime_seconds": round(time.monotonic() - request.app.state.started_at, 3),
        "checks": checks,
    }
    # Only MongoDB makes the service unusable; a GlobeCo service down degrades rebalances.
    return JSONResponse(body, status_code=200 if mongo == "ok" else 503)


async def _globeco_status(client: GlobecoClient, *, simulated: bool) -> dict[str, Any]:
    """`simulated` or `reachable` when it answers HTTP, else `failing` with the reason."""
    reason = await client.probe(_PROBE_SECONDS)
    if reason is not None:
        return {
            "status": "failing",
            "simulated": simulated,
            "url": client.base_url,
            "reason": reason,
        }
    status = "simulated" if simulated else "reachable"
    return {"status": status, "simulated": simulated, "url": client.base_url}
