"""The benchmark's helper processes: each prints one ready line (or answers a health check),
and each is stopped by its PID."""

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple

import httpx

_STOP_SECONDS = 30


class Event(NamedTuple):
    """One command the in-memory MongoDB served, timed on the monotonic clock."""

    start: float
    end: float
    command: str
    collection: str

    @property
    def seconds(self) -> float:
        return self.end - self.start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def ready_line_child(
    command: list[str], timeout: float = 60, stderr: IO[bytes] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run a process that prints one ready line on stdout; yield it and the line; stop by PID."""
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        line = process.stdout.readline().strip() if ready else ""
        if not line:
            raise RuntimeError(f"{' '.join(command)} did not start (exit {process.poll()})")
        yield process, line
    finally:
        _stop(process)


@dataclass(frozen=True)
class Mongo:
    """The in-memory MongoDB process; `events()` are the commands it served since last asked."""

    process: subprocess.Popen[str]
    uri: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def events(self) -> list[Event]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("events\n")
        self.process.stdin.flush()
        return [Event(*event) for event in json.loads(self.process.stdout.readline())]


@contextlib.contextmanager
def mongo_in_memory() -> Iterator[Mongo]:
    """The embedded MongoDB on its in-memory engine, in a process that times its commands."""
    with ready_line_child([sys.executable, "-m", "bench.service_mongo"]) as (process, uri):
        yield Mongo(process, uri)


@contextlib.contextmanager
def simulator(scenario_file: Path, log: IO[bytes]) -> Iterator[tuple[int, dict[str, str]]]:
    """The GlobeCo simulator on a scenario file: (pid, its ready line: URLs and control_url)."""
    command = [sys.executable, "-m", "order_generation.simulator", "--scenario", str(scenario_file)]
    with ready_line_child(command, stderr=log) as (process, line):
        yield process.pid, json.loads(line)


@contextlib.contextmanager
def service(
    env: Mapping[str, str], log: IO[bytes], timeout: float = 60
) -> Iterator[tuple[int, str]]:
    """`order-generation serve` on a free loopback port: (pid, base URL) once it is ready."""
    port = free_port()
    executable = Path(sys.executable).parent / "order-generation"
    process = subprocess.Popen(
        [str(executable), "serve"],
        env={**os.environ, **env, "PORT": str(port), "HOST": "127.0.0.1"},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the service exited during start-up (exit {process.returncode})"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the service did not become ready in time")
            time.sleep(0.1)
        yield process.pid, base_url
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live children (Linux /proc); 0 if gone."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for one in (pid, *_children(pid)):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]
