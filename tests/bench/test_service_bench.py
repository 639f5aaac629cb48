"""The service benchmark's own arithmetic: how long a read waited behind writes."""

import pytest

from bench.service import _unqueued
from bench.service_procs import Event


def test_a_read_loses_only_the_writes_it_queued_behind():
    events = [
        Event(9.000, 9.030, "insert", "rebalance_portfolios"),  # before the poll: ignored
        Event(10.000, 10.020, "insert", "rebalance_portfolios"),  # running when sent
        Event(10.020, 10.025, "find", "models"),  # the poll's own read
        Event(10.025, 10.045, "insert", "rebalance_portfolios"),  # after its read
    ]
    polls = [(10.005, 30.0), (20.0, 8.0)]  # sent at 10.005 for 30 ms; a quiet one

    assert _unqueued(polls, events) == pytest.approx([30.0 - 15.0, 8.0])
