"""The OpenAPI description: a valid OpenAPI 3.1 document whose paths are exactly the API's URL
patterns (the fuzz test, tests/test_api_fuzz.py, checks the answers against it)."""

from __future__ import annotations

import pytest
import schemathesis

from api.openapi import schema
from tests.url_table import api_routes_in_project

pytestmark = pytest.mark.django_db


def test_it_is_a_valid_openapi_document():
    schemathesis.openapi.from_dict(schema()).validate()


def test_it_describes_every_api_route_and_method_and_nothing_else():
    described = {
        (path, method.upper()) for path, item in schema()["paths"].items() for method in item
    }
    routes = {(route.documented_path(), route.method) for route in api_routes_in_project()}
    assert described == routes


def test_it_is_served_without_a_key(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.json() == schema()
    assert response["Cache-Control"] == "no-store"


def test_it_states_the_configured_limit(settings):
    settings.COFFER_API_MAX_BYTES = 12345
    assert "12,345 bytes" in str(schema()["paths"]["/api/v1/resolve"])
