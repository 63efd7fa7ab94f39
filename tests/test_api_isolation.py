"""Isolation for the HTTP API: every API route (tests/url_table.py) with keys that must not
reach workspace A's values: another workspace's, another environment's, another app's, revoked,
expired, a wrong checksum, a valid key with one character changed. All refused, nothing
revealed; a 422 report never tells another workspace's tokens apart from unknown ones."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from access import keys
from access.models import AccessKey
from tests.factories import AppFactory, EnvironmentFactory, make_access_key
from tests.url_table import ApiRoute, api_routes_in_project, build_world

pytestmark = pytest.mark.django_db

ROUTES = api_routes_in_project()
KEYED = [route for route in ROUTES if not route.public]


def send(route: ApiRoute, key: str | None, body: bytes | None = None, query: str = ""):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return Client().generic(
        route.method, route.url() + query, route.body if body is None else body, headers=headers
    )


def test_every_api_route_is_walked():
    assert {route.name for route in KEYED} == {"api:resolve", "api:values", "api:value"}


def a_key_with_one_character_changed(key: str) -> str:
    random_part = key[4:47]
    changed = ("B" if random_part[0] == "A" else "A") + random_part[1:]
    return "cfr_" + changed + keys.checksum(changed)


@pytest.mark.parametrize("route", KEYED, ids=lambda route: route.id)
def test_refused_keys_reveal_nothing(route, settings):
    settings.COFFER_API_AUTH_FAILURE_LIMIT = 1000
    world = build_world(tokens_per_workspace=2)
    a = world.a
    _, good = make_access_key(a.workspace, name="good", product=a.product, app=a.app)
    assert send(route, good).status_code == 200, "the control: A's own key works"

    revoked, revoked_key = make_access_key(a.workspace, name="revoked", app=a.app)
    revoked.revoke()
    expired, expired_key = make_access_key(a.workspace, name="expired", app=a.app)
    AccessKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - dt.timedelta(1))
    unauthorized = {
        "revoked": revoked_key,
        "expired": expired_key,
        "wrong checksum": good[:-2] + ("00" if good[-2:] != "00" else "11"),
        "one character changed": a_key_with_one_character_changed(good),
        "no key": None,
    }
    for label, key in unauthorized.items():
        response = send(route, key)
        assert response.status_code == 401, label
        assert not [value for value in world.values if value in response.text], label

    other_app = AppFactory(workspace=a.workspace, slug="mobile")
    _, theirs = make_access_key(world.b.workspace, name="b", app=world.b.app)
    qa = EnvironmentFactory(workspace=a.workspace, slug="qa")  # made after A's tokens
    _, staging = make_access_key(a.workspace, name="qa", environment=qa, app=a.app)
    _, mobile = make_access_key(a.workspace, name="mobile", app=other_app)
    in_workspace_refusals = {
        "another workspace's key": (theirs, "unknown token, or not available in this context"),
        "another environment's key": (staging, "unknown token, or not available in this context"),
        "another app's key": (mobile, "not in scope for mobile"),
    }
    for label, (key, reason) in in_workspace_refusals.items():
        if route.method == "HEAD":  # reads no value: says only that there is an answer
            response = send(route, key, query="?keys=ACME_TOKEN_0")
            assert (response.status_code, response.content) == (200, b""), label
            continue
        if route.name == "api:value":  # one key, in its path: ESO's "gone" is a 404
            response = send(route, key)
            assert response.status_code == 404, label
            assert response.json() == {"error": f"ACME_TOKEN_0: {reason}."}, label
            assert not [value for value in world.values if value in response.text], label
            continue
        response = send(route, key, query="?keys=ACME_TOKEN_0" if route.method == "GET" else "")
        assert response.status_code == 422, label
        assert not [value for value in world.values if value in response.text], label
        assert [entry["reason"] for entry in response.json()["references"]] == [reason], label


def test_another_workspaces_tokens_look_exactly_like_unknown_ones():
    world = build_world(tokens_per_workspace=1)
    _, theirs = make_access_key(world.b.workspace, name="b")
    resolve = next(route for route in KEYED if route.name == "api:resolve")
    existing = send(resolve, theirs, b"$Secret{ACME_TOKEN_0}").json()
    missing = send(resolve, theirs, b"$Secret{ACME_TOKEN_9}").json()
    for report in (existing, missing):
        for entry in report["references"]:
            entry.pop("key")
            entry.pop("reference")
    assert existing == missing


def test_a_key_lists_only_its_own_workspaces_values():
    world = build_world(tokens_per_workspace=2)
    _, theirs = make_access_key(world.b.workspace, name="b", app=world.b.app)
    values = next(route for route in KEYED if route.name == "api:values")
    response = send(values, theirs)
    assert response.status_code == 200
    assert set(response.json()) == {"GLOBEX_TOKEN_0", "GLOBEX_TOKEN_1"}
    assert not [value for value in world.a.values if value in response.text]


@pytest.mark.parametrize("route", [r for r in ROUTES if r.public], ids=lambda route: route.id)
def test_public_routes_reveal_no_workspace_data(route):
    world = build_world(tokens_per_workspace=1)
    response = send(route, None)
    assert response.status_code == route.status
    assert response["Cache-Control"] == "no-store"
    for secret in [*world.values, "acme", "globex", "ACME_TOKEN", "Payments"]:
        assert secret not in response.text
