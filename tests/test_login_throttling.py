"""Login throttling: repeated failed sign-ins lock the username from that address for a while."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = reverse("login")


def sign_in(client: Client, username: str, password: str, address: str = "203.0.113.7"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def fail(client: Client, username: str, times: int, address: str = "203.0.113.7") -> None:
    """`times` failed sign-ins, fewer than the limit: each one just re-shows the form."""
    assert times < settings.AXES_FAILURE_LIMIT
    for _ in range(times):
        response = sign_in(client, username, "wrong-password", address)
        assert response.status_code == 200, "a plain failed sign-in re-shows the form"
        assert "Please enter a correct username and password" in response.text


def lock_out(client: Client, username: str) -> None:
    fail(client, username, settings.AXES_FAILURE_LIMIT - 1)
    assert sign_in(client, username, "wrong-password").status_code == 429


def test_limits_are_five_failures_and_fifteen_minutes():
    assert settings.AXES_FAILURE_LIMIT == 5
    assert dt.timedelta(minutes=15) == settings.AXES_COOLOFF_TIME


def test_fifth_failure_locks_even_the_right_password_out_with_a_clear_page(client):
    UserFactory(username="alice")
    lock_out(client, "alice")

    right_password = sign_in(client, "alice", DEFAULT_PASSWORD)

    assert right_password.status_code == 429
    assert "_auth_user_id" not in client.session
    page = right_password.text
    assert "Sign-in paused" in page
    assert "Too many failed sign-ins" in page
    assert "15 minutes" in page
    assert 'class="alert alert-warning"' in page, "a styled page, not a bare 403 text"
    assert "/static/css/coffer.css" in page


def test_lock_is_per_username_and_address(client):
    UserFactory(username="alice")
    UserFactory(username="bob")
    lock_out(client, "alice")

    assert sign_in(client, "alice", DEFAULT_PASSWORD).status_code == 429
    other_user = sign_in(Client(), "bob", DEFAULT_PASSWORD)
    assert other_user.status_code == 302, "another account from the same address still works"
    other_address = sign_in(Client(), "alice", DEFAULT_PASSWORD, address="198.51.100.20")
    assert other_address.status_code == 302, "a stranger cannot lock alice out everywhere"


def test_lock_lifts_after_the_cool_off(client):
    UserFactory(username="alice")
    lock_out(client, "alice")
    assert sign_in(client, "alice", DEFAULT_PASSWORD).status_code == 429

    AccessAttempt.objects.update(
        attempt_time=dt.datetime.now(dt.UTC) - settings.AXES_COOLOFF_TIME - dt.timedelta(seconds=1)
    )

    assert sign_in(client, "alice", DEFAULT_PASSWORD).status_code == 302
    assert client.session["_auth_user_id"]


def test_successful_sign_in_resets_the_count(client):
    UserFactory(username="alice")
    fail(client, "alice", settings.AXES_FAILURE_LIMIT - 1)
    assert sign_in(client, "alice", DEFAULT_PASSWORD).status_code == 302
    client.post(reverse("logout"))

    fail(client, "alice", settings.AXES_FAILURE_LIMIT - 1)
    assert sign_in(client, "alice", DEFAULT_PASSWORD).status_code == 302


def test_failed_attempts_never_store_the_password(client):
    UserFactory(username="alice")
    sign_in(client, "alice", "hunter2-distinctive-guess")

    for attempt in AccessAttempt.objects.all():
        stored = f"{attempt.get_data} {attempt.post_data} {attempt.http_accept} {attempt.path_info}"
        assert "hunter2-distinctive-guess" not in stored


def test_address_is_the_proxy_appended_hop_only_behind_a_trusted_proxy(rf, settings):
    from lib.http import client_ip_address

    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9")
    assert client_ip_address(request) == "10.0.0.2", "a client's own X-Forwarded-For is ignored"
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert client_ip_address(request) == "203.0.113.9", "spoofed earlier hops are ignored"


def test_an_administrator_can_unlock_early(client):
    UserFactory(username="alice")
    lock_out(client, "alice")

    call_command("axes_reset_username", "alice", stdout=io.StringIO())

    assert sign_in(client, "alice", DEFAULT_PASSWORD).status_code == 302


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"]
)
def test_sign_in_never_redirects_off_site(client, next_url):
    UserFactory(username="alice")
    response = client.post(
        f"{LOGIN}?next={next_url}",
        {"username": "alice", "password": DEFAULT_PASSWORD, "next": next_url},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
