"""Schemathesis against the service's own OpenAPI document: no generated input gets a 500.

Valid and invalid requests are generated for every operation and sent to the service running
as a process on the GlobeCo simulator.
"""

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.api.book import make_book
from tests.e2e.test_operations import _env
from tests.support.service import running_service
from tests.support.simulator import run_simulator

BOOK = make_book(portfolios=6, seed=3)
EXAMPLES_PER_OPERATION = 20


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with run_simulator(BOOK.scenario) as simulator:
        env = _env(tmp_path_factory.mktemp("fuzz"), simulator)
        with running_service(env) as service:
            yield service.url


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_server_error(service_url: str, mode: GenerationMode):
    schema = schemathesis.openapi.from_url(f"{service_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 15, "every public operation is in the document"
    exercised = 0
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case[Any]) -> None:
            response = case.call(base_url=service_url, timeout=30)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: "
                f"{response.text[:300]}"
            )
            if response.status_code >= 400:
                assert set(response.json()["error"]) >= {"code", "message", "trace_id"}

        try:
            call()
        except Unsatisfiable:
            # An operation without parameters or body has no invalid request to make.
            assert mode is GenerationMode.NEGATIVE
            continue
        exercised += 1
    assert exercised >= 12
