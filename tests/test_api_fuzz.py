"""Fuzzing: schemathesis sends generated requests (valid and invalid) to every operation of the
served OpenAPI description, against a real gunicorn server, and checks each answer: never a
server error, and status, content type, headers and body as the schema documents them;
operations that need a key refuse requests without one."""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.openapi import schema as openapi_schema
from tests.api_server import running_server

pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]


@pytest.fixture(scope="module")
def fuzz_server():
    with running_server(
        COFFER_API_RATE_LIMIT="1000000", COFFER_API_AUTH_FAILURE_LIMIT="1000000"
    ) as server:
        yield server


# The description as built in process; the first test proves the server serves exactly it.
schema = schemathesis.openapi.from_dict(openapi_schema())


def test_the_server_serves_this_description(fuzz_server):
    served = requests.get(f"{fuzz_server.url}/api/v1/openapi.json", timeout=10)
    assert served.json() == schema.raw_schema


@schema.parametrize()
@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_answers_as_documented(case, fuzz_server):
    response = case.call_and_validate(
        base_url=fuzz_server.url,
        headers={"Authorization": f"Bearer {fuzz_server.keys['main']}"},
        checks=CHECKS,
    )
    assert response.status_code < 500
