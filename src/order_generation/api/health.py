"""Liveness, readiness (MongoDB reachable) and a detailed health report."""

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from order_generation.api.dependencies import StoreDep
from order_generation.metrics import exposition

router = APIRouter(prefix="/health", tags=["health"])
metrics_router = APIRouter(tags=["health"])


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
    mongo = await _mongo_status(store)
    body: dict[str, Any] = {
        "status": "ok" if mongo == "ok" else "degraded",
        "uptime_seconds": round(time.monotonic() - request.app.state.started_at, 3),
        "checks": {"mongodb": {"status": mongo}},
    }
    return JSONResponse(body, status_code=200 if mongo == "ok" else 503)
