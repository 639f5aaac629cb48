"""The simulator's HTTP servers: one port per GlobeCo service, one for control.

A minimal HTTP/1.1 server on asyncio streams rather than uvicorn: "down" must close the
listening socket and every open connection of one service, and "hang" must hold a request
without answering, both of which need the sockets in hand.
"""

import asyncio
import json
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import structlog

from order_generation.simulator.pages import not_found_body, render_pages
from order_generation.simulator.scenario import Scenario

log = structlog.get_logger(__name__)

# Service name -> the Settings field (and ready-line key) that holds its base URL.
URL_KEYS = {
    "accounting": "portfolio_accounting_service_url",
    "security": "security_service_url",
    "pricing": "pricing_service_url",
    "portfolio": "portfolio_service_url",
}
SERVICES = tuple(URL_KEYS)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes
    keep_alive: bool


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b"{}"

    @classmethod
    def json(cls, status: int, data: object) -> "Response":
        return cls(status, json.dumps(data).encode())

    def encode(self, keep_alive: bool) -> bytes:
        head = (
            f"HTTP/1.1 {self.status} {HTTPStatus(self.status).phrase}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n"
            + ("" if keep_alive else "Connection: close\r\n")
            + "\r\n"
        )
        return head.encode("latin-1") + self.body


Handler = Callable[[Request, asyncio.StreamReader], Awaitable[Response | None]]


class HttpEndpoint:
    """One listening port that can be taken down (refusing connections) and brought back."""

    def __init__(self, handler: Handler, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen (again) on the port; the first start picks a free one when the port is 0."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Refuse new connections and cut the open ones, as a crashed service would."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while (request := await _read_request(reader)) is not None:
                response = await self._handler(request, reader)
                if response is None:
                    break
                writer.write(response.encode(request.keep_alive))
                await writer.drain()
                if not request.keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    line = await reader.readline()
    if not line.strip():
        return None
    method, target, version = line.decode("latin-1").split()
    headers: dict[str, str] = {}
    while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return Request(method, unquote(target.split("?", 1)[0]), body, keep_alive)


@dataclass
class Faults:
    """What one service does wrong: latency, a rate of 503s, the next N answers 503, hang, down."""

    latency_ms: float = 0
    error_rate: float = 0
    fail_next: int = 0
    hang: bool = False
    down: bool = False
    seed: int = 0
    rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.error_rate <= 1 or self.latency_ms < 0 or self.fail_next < 0:
            raise ValueError("need 0 <= error_rate <= 1, latency_ms >= 0, fail_next >= 0")
        self.rng = random.Random(self.seed)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["rng"]
        return data


class SimulatedService:
    """One GlobeCo service: fixed pages from the scenario, behind the faults of the moment."""

    def __init__(self, name: str, pages: Mapping[str, bytes], host: str, port: int, seed: int):
        self.name = name
        self.faults = Faults(seed=seed)
        self.calls: Counter[str] = Counter()
        self._pages = pages
        self.endpoint = HttpEndpoint(self._answer, host, port)

    async def set_faults(self, faults: Faults) -> None:
        """Replace the faults, taking the port down or bringing it back as needed."""
        was_down, self.faults = self.faults.down, faults
        if faults.down and not was_down:
            await self.endpoint.stop()
        elif was_down and not faults.down:
            await self.endpoint.start()
        log.info("simulator_faults", service=self.name, **faults.to_dict())

    async def _answer(self, request: Request, reader: asyncio.StreamReader) -> Response | None:
        self.calls[f"{request.method} {request.path}"] += 1
        faults = self.faults
        if faults.hang:
            await reader.read()  # hold the request until the client gives up
            return None
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.fail_next > 0 or (faults.error_rate and faults.rng.random() < faults.error_rate):
            faults.fail_next = max(0, faults.fail_next - 1)
            return Response.json(503, {"error": "injected fault"})
        if request.method != "GET":
            return Response.json(405, {"detail": "Method Not Allowed"})
        if (page := self._pages.get(request.path)) is None:
            return Response.json(404, not_found_body(self.name, request.path))
        return Response(200, page)


class Simulator:
    """The four simulated services and the control API, sharing one event loop."""

    def __init__(
        self,
        scenario: Scenario,
        host: str = "127.0.0.1",
        ports: Mapping[str, int] | None = None,
        seed: int = 0,
    ) -> None:
        ports = ports or {}
        self.scenario = scenario
        self.services = {
            name: SimulatedService(name, pages, host, ports.get(name, 0), seed)
            for name, pages in render_pages(scenario).items()
        }
        self._seed = seed
        self.control = HttpEndpoint(self._control, host, ports.get("control", 0))

    async def start(self) -> None:
        """Open every port."""
        for service in self.services.values():
            await service.endpoint.start()
        await self.control.start()

    async def stop(self) -> None:
        """Close every port."""
        await self.control.stop()
        for service in self.services.values():
            await service.endpoint.stop()

    def urls(self) -> dict[str, str]:
        """The ready line: each service's base URL under its Settings field name, and control."""
        urls = {URL_KEYS[name]: s.endpoint.url for name, s in self.services.items()}
        return {**urls, "control_url": self.control.url}

    async def _control(self, request: Request, _reader: asyncio.StreamReader) -> Response:
        route = (request.method, *request.path.strip("/").split("/"))
        match route:
            case ("GET", "health"):
                return Response.json(200, {"status": "ok"})
            case ("GET", "calls"):
                return Response.json(200, {n: dict(s.calls) for n, s in self.services.items()})
            case ("DELETE", "calls"):
                for service in self.services.values():
                    service.calls.clear()
                return Response.json(200, {})
            case ("GET", "faults"):
                return Response.json(200, self._faults())
            case ("PUT", "faults", name) if name in self.services:
                return await self._put_faults(self.services[name], request.body)
            case ("DELETE", "faults"):
                for service in self.services.values():
                    await service.set_faults(Faults(seed=self._seed))
                return Response.json(200, self._faults())
            case ("GET", "scenario"):
                return Response.json(200, self.scenario.to_dict())
        return Response.json(404, {"detail": f"no control route {request.method} {request.path}"})

    async def _put_faults(self, service: SimulatedService, body: bytes) -> Response:
        try:
            faults = Faults(**{"seed": self._seed, **json.loads(body or b"{}")})
        except (TypeError, ValueError) as exc:
            return Response.json(400, {"detail": str(exc)})
        await service.set_faults(faults)
        return Response.json(200, faults.to_dict())

    def _faults(self) -> dict[str, Any]:
        return {name: service.faults.to_dict() for name, service in self.services.items()}
