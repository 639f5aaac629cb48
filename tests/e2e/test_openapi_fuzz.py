"""Schemathesis against the service's own OpenAPI document, every check included.

Valid and invalid requests are generated for every operation and sent to the service running
as a process on the GlobeCo simulator. Besides no 500s, the answers must match the document
(statuses, headers, bodies) and invalid requests must be refused. A schema-valid request may
be refused only by a rule the document lists as one no schema keyword states
(`x-rules-not-in-schema`), its error message carrying that rule's phrase.
"""

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.api.book import make_book
from tests.e2e.test_operations import _env
from tests.support.service import running_service
from tests.support.simulator import run_simulator

BOOK = make_book(portfolios=6, seed=3)
# Per operation and mode: about 700 requests, under a minute on two shared cores.
EXAMPLES_PER_OPERATION = 20


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with run_simulator(BOOK.scenario) as simulator:
        env = _env(tmp_path_factory.mktemp("fuzz"), simulator)
        with running_service(env) as service:
            yield service.url


def _declared_refusal(response: Any, phrases: list[str]) -> bool:
    if response.status_code not in (400, 422):
        return False
    message: str = response.json()["error"]["message"]
    return any(phrase in message for phrase in phrases)


def _failures(case: schemathesis.Case[Any], url: str, phrases: list[str]) -> list[str]:
    """Every check's failures for one generated request, declared refusals left out."""
    response = case.call(base_url=url, timeout=30)
    found: list[BaseException] = []
    for only_positive in (False, True):
        try:
            if only_positive:
                case.validate_response(response, checks=[positive_data_acceptance])
            else:
                case.validate_response(response, excluded_checks=[positive_data_acceptance])
        except BaseExceptionGroup as group:
            found.extend(group.exceptions)
    label = f"{case.method} {case.formatted_path} -> {response.status_code}"
    return [
        f"{label}: {str(failure)[:300]}"
        for failure in found
        if not (isinstance(failure, RejectedPositiveData) and _declared_refusal(response, phrases))
    ]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests_get_the_answers_the_document_promises(
    service_url: str, mode: GenerationMode
):
    schema = schemathesis.openapi.from_url(f"{service_url}/openapi.json")
    schema.config.generation.update(allow_x00=False)  # the document: strings never hold NUL
    document = schema.raw_schema
    phrases = [r["message"] for r in document["info"]["x-rules-not-in-schema"]]
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 15, "every public operation is in the document"
    failures: list[str] = []
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
            failures.extend(_failures(case, service_url, phrases))

        try:
            call()
        except Unsatisfiable:
            # An operation without parameters or body has no invalid request to make.
            assert mode is GenerationMode.NEGATIVE
            continue
        exercised += 1
    assert exercised >= 12
    assert not failures, "\n".join(sorted(set(failures))[:20])
