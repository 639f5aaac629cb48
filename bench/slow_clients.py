"""How long half-sent requests hold connections: uvicorn's h11 protocol against the service's.

    python -m bench.slow_clients                    # 200 slow clients per kind, 2 s deadlines
    python -m bench.slow_clients --clients 400 --deadline 1 --patience 15

For each protocol a server on a loopback port gets `--clients` connections that send half a
request head and as many that send a head and half the announced body; the table says how
many the server closed within `--patience` seconds and how long it held them (the patience
when it never closed them), and the median time a complete request took meanwhile, also as
a ratio against the stock protocol's.
"""

import argparse
import asyncio
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import uvicorn
from rich.console import Console
from rich.table import Table

from order_generation.serving import DeadlineH11Protocol

HALF_HEAD = b"GET / HTTP/1.1\r\nHost: bench\r\n"
HALF_BODY = b"POST / HTTP/1.1\r\nHost: bench\r\nContent-Length: 1000\r\n\r\n{"
FULL = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"


async def _echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _server(http: Any) -> Iterator[int]:
    port = _free_port()
    config = uvicorn.Config(_echo, port=port, http=http, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join()


async def _slow_client(port: int, data: bytes, patience: float) -> float | None:
    """Seconds until the server closed the connection; None if it held it past `patience`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()
    writer.write(data)
    try:
        async with asyncio.timeout(patience):
            while await reader.read(4096):
                pass
        return time.perf_counter() - started
    except TimeoutError:
        return None
    finally:
        writer.close()


async def _full_request(port: int) -> float:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(FULL)
    await reader.read()
    writer.close()
    return time.perf_counter() - started


async def _campaign(port: int, clients: int, patience: float) -> dict[str, Any]:
    slow = [
        asyncio.create_task(_slow_client(port, data, patience))
        for data in (HALF_HEAD, HALF_BODY)
        for _ in range(clients)
    ]
    await asyncio.sleep(0.5)  # every slow client connected and sent its half
    served = [await _full_request(port) for _ in range(20)]
    held = await asyncio.gather(*slow)
    heads, bodies = held[:clients], held[clients:]
    return {"heads": heads, "bodies": bodies, "served": statistics.median(served)}


def _held(times: list[float | None], patience: float) -> str:
    closed = [t for t in times if t is not None]
    worst = max(closed) if len(closed) == len(times) else patience
    return f"{len(closed)}/{len(times)} closed, longest {worst:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--deadline", type=float, default=2.0)
    parser.add_argument("--patience", type=float, default=10.0)
    args = parser.parse_args()
    protocols = {
        "uvicorn h11 (stock)": "h11",
        f"deadlines {args.deadline:g} s": partial(
            DeadlineH11Protocol, header_timeout=args.deadline, body_timeout=args.deadline
        ),
    }
    table = Table(title=f"{args.clients} half heads + {args.clients} half bodies")
    for column in ("protocol", "half heads", "half bodies", "full request (median)", "ratio"):
        table.add_column(column)
    baseline = None
    for name, http in protocols.items():
        with _server(http) as port:
            result = asyncio.run(_campaign(port, args.clients, args.patience))
        baseline = baseline or result["served"]
        table.add_row(
            name,
            _held(result["heads"], args.patience),
            _held(result["bodies"], args.patience),
            f"{result['served'] * 1000:.1f} ms",
            f"{result['served'] / baseline:.2f}",
        )
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
