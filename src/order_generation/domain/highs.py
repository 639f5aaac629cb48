"""HiGHS on a MILP in its arrays, never past a deadline: the runner behind `milp`.

HiGHS does not always stop at its time limit: on some models its interrupt checks (the
`time_limit` option, the interrupt callbacks, `cancelSolve`) come seconds apart or later, and
a model that looped for good was reported against HiGHS 1.15.1 (ERGO-Code/HiGHS#2226). So every
solve runs in a worker process (`_Worker`): HiGHS gets the time left and an interrupt
callback at the deadline, and a worker that has not answered `GRACE` seconds after the
deadline is killed, so a call never outlasts its time limit by more than about `GRACE`.
Workers are fresh interpreters (never forks: the service runs threads), kept and reused, so
only the first solve of a process pays the ~0.3 s start; a call that gives up at its deadline
while its worker is still starting leaves the worker to start for the next call.
"""

import atexit
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Literal

import highspy
import numpy as np

GRACE = 0.1
"""Seconds a worker may run past the deadline before it is killed."""
IDLE_WORKERS = 4
"""Workers kept for reuse per process; more are stopped when they come back."""

Status = Literal["optimal", "time_limit", "infeasible", "failed"]


@dataclass(frozen=True, slots=True)
class Milp:
    """A MILP in HiGHS's arrays: columns with cost and bounds, rows row-wise."""

    cost: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    integer: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    starts: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    start: tuple[np.ndarray, np.ndarray] | None = None
    """A start: column indices and their values (HiGHS completes the others)."""
    options: tuple[tuple[str, Any], ...] = ()


@dataclass
class Builder:
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    integer: list[int] = field(default_factory=list)
    row_lower: list[float] = field(default_factory=list)
    row_upper: list[float] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def column(self, lower: float, upper: float, *, integer: bool = False) -> int:
        self.lower.append(lower)
        self.upper.append(upper)
        if integer:
            self.integer.append(len(self.lower) - 1)
        return len(self.lower) - 1

    def row(self, lower: float, upper: float, entries: Sequence[tuple[int, float]]) -> None:
        self.row_lower.append(lower)
        self.row_upper.append(upper)
        self.starts.append(len(self.indices))
        self.indices.extend(column for column, _ in entries)
        self.values.extend(value for _, value in entries)

    def build(
        self,
        *,
        cost: Mapping[int, float] | None = None,
        start: Mapping[int, float] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Milp:
        costs = np.zeros(len(self.lower))
        for column, value in (cost or {}).items():
            costs[column] = value
        return Milp(
            costs,
            np.array(self.lower, dtype=np.float64),
            np.array(self.upper, dtype=np.float64),
            np.array(self.integer, dtype=np.int32),
            np.array(self.row_lower, dtype=np.float64),
            np.array(self.row_upper, dtype=np.float64),
            np.array(self.starts, dtype=np.int32),
            np.array(self.indices, dtype=np.int32),
            np.array(self.values, dtype=np.float64),
            None
            if start is None
            else (
                np.array(list(start), dtype=np.int32),
                np.array(list(start.values()), dtype=np.float64),
            ),
            tuple((options or {}).items()),
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Status
    solver_status: str
    objective: float | None = None
    values: np.ndarray | None = None


def new_solver(time_limit: float) -> highspy.Highs:
    solver = highspy.Highs()  # type: ignore[no-untyped-call]
    solver.setOptionValue("output_flag", False)
    solver.setOptionValue("mip_rel_gap", 0.0)
    solver.setOptionValue("mip_abs_gap", 0.0)
    solver.setOptionValue("time_limit", max(float(time_limit), 0.001))
    return solver


_KINDS: dict[highspy.HighsModelStatus, Status] = {
    highspy.HighsModelStatus.kOptimal: "optimal",
    highspy.HighsModelStatus.kInfeasible: "infeasible",
    # Every column is bounded or has a cost ≥ 0 that is minimised: never unbounded.
    highspy.HighsModelStatus.kUnboundedOrInfeasible: "infeasible",
    highspy.HighsModelStatus.kTimeLimit: "time_limit",
    highspy.HighsModelStatus.kInterrupt: "time_limit",
}


RETRIES: tuple[dict[str, Any], ...] = (
    {"presolve": "off"},
    {"mip_feasibility_tolerance": 1e-7},
)
"""Settings to solve again with when HiGHS ends in a solve error. HiGHS 1.15.1 was seen to
solve a 6-security best-effort model, find its own optimum 1e-6 outside a row (past its
tolerance) and report "Solve error"; without presolve, or with a tolerance of 1e-7, it solves."""


def solve_here(model: Milp, deadline: float) -> Outcome:
    """HiGHS in this process, interrupted at the deadline where HiGHS checks; after a solve
    error, again with each of `RETRIES` while time remains."""
    outcome = _solve_once(model, deadline, {})
    for retry in RETRIES:
        if outcome.solver_status != "Solve error":
            break
        outcome = _solve_once(model, deadline, retry)
    return outcome


def _solve_once(model: Milp, deadline: float, options: Mapping[str, Any]) -> Outcome:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return Outcome("time_limit", "time_limit")
    solver = new_solver(remaining)
    for name, value in (*model.options, *options.items()):
        solver.setOptionValue(name, value)
    n = len(model.cost)
    no_entries = np.zeros(0, dtype=np.int32)
    solver.addCols(
        n, model.cost, model.lower, model.upper, 0, np.zeros(n, np.int32), no_entries, np.zeros(0)
    )
    if len(model.integer):
        kinds = np.full(len(model.integer), int(highspy.HighsVarType.kInteger), dtype=np.uint8)
        solver.changeColsIntegrality(len(model.integer), model.integer, kinds)
    if len(model.row_lower):
        solver.addRows(
            len(model.row_lower),
            model.row_lower,
            model.row_upper,
            len(model.indices),
            model.starts,
            model.indices,
            model.values,
        )
    if model.start is not None:
        columns, start = model.start
        solver.setSolution(len(columns), columns, start)

    def interrupt(event: Any) -> None:
        if time.monotonic() >= deadline:
            event.interrupt()

    solver.cbMipInterrupt += interrupt
    solver.run()
    status = solver.getModelStatus()
    name = solver.modelStatusToString(status)
    kind = _KINDS.get(status, "failed")
    info = solver.getInfo()
    values = None
    if info.primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible:
        values = np.array(solver.getSolution().col_value[:n])
    objective = info.objective_function_value if values is not None else None
    return Outcome(kind, name, objective, values)


class _Worker:
    """A Python process that solves the models it is sent, one at a time.

    It is a fresh interpreter (`subprocess`), not a `multiprocessing` child: those cannot be
    started from daemonic processes, and spawning one re-imports the caller's main module.
    It imports only this module, with the caller's `sys.path`, and talks over a socket pair
    framed by `multiprocessing.connection`; it exits when its end of the socket closes.
    """

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        code = (
            f"import sys; sys.path[:0] = {sys.path!r}; "
            f"from order_generation.domain.highs import _serve; _serve({theirs.fileno()})"
        )
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", code], pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL
            )
        finally:
            theirs.close()
        self.connection = Connection(ours.detach())
        self.ready = False

    def wait_ready(self, deadline: float) -> bool:
        if not self.ready and self.connection.poll(max(deadline - time.monotonic(), 0)):
            self.connection.recv()
            self.ready = True
        return self.ready

    def solve(self, model: Milp, deadline: float) -> Outcome | None:
        """HiGHS's outcome, or None when the worker did not answer in time."""
        self.connection.send((model, deadline))
        if not self.connection.poll(max(deadline + GRACE - time.monotonic(), 0)):
            return None
        outcome: Outcome = self.connection.recv()
        return outcome

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        self.connection.close()


def _serve(fd: int) -> None:  # pragma: no cover - runs in the worker
    connection = Connection(fd)
    connection.send("ready")
    while True:
        try:
            model, deadline = connection.recv()
        except EOFError:
            return
        try:
            outcome = solve_here(model, deadline)
        except Exception as error:
            outcome = Outcome("failed", f"error in the solver process: {error!r}")
        connection.send(outcome)


_idle: list[_Worker] = []
_idle_owner = os.getpid()
_idle_lock = threading.Lock()


def _take() -> _Worker:
    global _idle_owner
    with _idle_lock:
        if _idle_owner != os.getpid():  # forked: those workers belong to the parent
            _idle.clear()
            _idle_owner = os.getpid()
        if _idle:
            return _idle.pop()
    return _Worker()


def _give_back(worker: _Worker) -> None:
    with _idle_lock:
        if _idle_owner == os.getpid() and len(_idle) < IDLE_WORKERS:
            _idle.append(worker)
            return
    worker.stop()


@atexit.register
def _stop_idle() -> None:
    with _idle_lock:
        workers = list(_idle) if _idle_owner == os.getpid() else []
        _idle.clear()
    for worker in workers:
        worker.stop()


def run(model: Milp, deadline: float) -> Outcome:
    """HiGHS on `model` in a worker, never past the deadline by more than about GRACE."""
    try:
        worker = _take()
    except OSError:  # no process can be started: HiGHS here, with its own time limit
        return solve_here(model, deadline)
    try:
        if not worker.wait_ready(deadline) or time.monotonic() >= deadline:
            _give_back(worker)
            return Outcome("time_limit", "time_limit")
        outcome = worker.solve(model, deadline)
    except (EOFError, OSError) as error:
        worker.stop()
        return Outcome("failed", f"the solver process failed: {error!r}")
    if outcome is None:
        worker.stop()
        return Outcome("time_limit", "time_limit, solver process stopped")
    _give_back(worker)
    return outcome
