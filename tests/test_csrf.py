"""CSRF: every POST endpoint refuses a request without a CSRF token, and changes nothing.

Walks the same URL table as the isolation test (tests/url_table.py), plus Django's sign-in views
and the admin. Each refusal is checked against a control request that carries the token and is
not refused, so a test client that never checked CSRF could not pass.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from tests.helpers import HTMX
from tests.url_table import Route, build_world, routes_in_project
from tokens.models import Token
from workspaces.models import Membership, Workspace

pytestmark = pytest.mark.django_db

POST_ROUTES = [route for route in routes_in_project() if route.post is not None]


def database_state() -> tuple:
    return (
        list(Token.objects.values_list("pk", "key", "status", "description", "value_version")),
        list(Membership.objects.values_list("pk", "role")),
        Workspace.objects.count(),
        AuditEvent.objects.count(),
    )


def csrf_client(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def token_from(client: Client, url: str) -> str:
    client.get(url)
    return client.cookies["csrftoken"].value


def assert_refused(response) -> None:
    assert response.status_code == 403
    assert "This form has expired" in response.text, "the styled CSRF page explains the refusal"


def test_every_url_that_accepts_post_is_checked():
    assert len(POST_ROUTES) >= 15


@pytest.mark.parametrize("route", POST_ROUTES, ids=lambda route: route.id)
def test_post_without_csrf_token_is_refused(route: Route):
    world = build_world(tokens_per_workspace=1)
    client = csrf_client(world.users[route.only_for or "owner"])
    url = route.url(world.a)
    before = database_state()

    assert_refused(client.post(url, {}))
    assert_refused(client.post(url, {}, headers=HTMX))
    assert_refused(client.post(url, {"csrfmiddlewaretoken": "x" * 64}))
    assert database_state() == before

    token = token_from(client, reverse("workspace_create"))
    control = client.post(url, {}, headers={"X-CSRFToken": token, **HTMX})
    assert control.status_code != 403, "with its token the same request gets through"


@pytest.mark.parametrize(
    "name",
    [
        "login",
        "logout",
        "password_change",
        "password_reset",
        "reauthenticate",
        "admin:login",
        "account_signup",
        "account_email",
        "mfa_authenticate",
        "mfa_activate_totp",
        "mfa_deactivate_totp",
        "mfa_generate_recovery_codes",
        "mfa_reauthenticate",
    ],
)
def test_sign_in_views_refuse_post_without_csrf_token(name):
    user = get_user_model().objects.create_user("csrf-user", password=None)
    client = Client(enforce_csrf_checks=True)
    if name in {"logout", "password_change", "reauthenticate", "account_email"} or (
        name.startswith("mfa_") and name != "mfa_authenticate"
    ):
        client.force_login(user)
    response = client.post(reverse(name), {"username": "csrf-user", "password": "x"})
    assert response.status_code == 403


def test_admin_change_form_refuses_post_without_csrf_token():
    world = build_world(tokens_per_workspace=1)
    admin = get_user_model().objects.create_superuser("root", "root@example.com", None)
    client = csrf_client(admin)
    token = world.a.token
    url = reverse("admin:tokens_token_change", args=[token.pk])
    before = database_state()

    response = client.post(url, {"key": "RENAMED", "description": "changed"})

    assert response.status_code == 403
    assert database_state() == before
