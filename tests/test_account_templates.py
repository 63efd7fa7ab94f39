"""allauth's pages in Coffer's look: each one a page of base.html (our CSS, the shell), under the
strict CSP with no inline script or style, working without JavaScript (plain forms that post)."""

from __future__ import annotations

import pytest
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.test import Client
from django.urls import reverse

from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.helpers import text
from tests.test_headers import assert_strict_headers

pytestmark = pytest.mark.django_db

ANONYMOUS_PAGES = [
    ("login", "Sign in to Coffer"),
    ("password_reset", "Reset your password"),
    ("account_reset_password_done", "Check your mail"),
    ("account_signup", "Sign-up is closed"),
    ("invitation_accept", "Open the invitation link from your mail"),
]
SIGNED_IN_PAGES = [
    ("account", "Two-factor authentication"),
    ("password_change", "Change password"),
    ("account_email", "Change email"),
    ("logout", "Sign out of Coffer?"),
    ("reauthenticate", "Confirm your password"),
    ("mfa_activate_totp", "Set up two-factor authentication"),
]
TWO_FACTOR_PAGES = [
    ("mfa_deactivate_totp", "Turn off two-factor authentication?"),
    ("mfa_generate_recovery_codes", "New recovery codes?"),
    ("mfa_view_recovery_codes", "Recovery codes"),
    ("mfa_reauthenticate", "Confirm it's you"),
]


def assert_our_page(response, heading: str, where: str) -> None:
    page = text(response)
    assert response.status_code == (404 if where == "invitation_accept" else 200), where
    assert heading in page, where
    assert "/static/css/coffer.css" in page, f"{where}: not in our layout"
    assert 'class="auth-card"' in page or "<h1>" in page, where
    assert "Menu:" not in page, f"{where}: allauth's bare layout"
    assert_strict_headers(response, where)


@pytest.mark.parametrize(("name", "heading"), ANONYMOUS_PAGES)
def test_pages_before_sign_in(name, heading):
    assert_our_page(Client().get(reverse(name)), heading, name)


@pytest.mark.parametrize(("name", "heading"), SIGNED_IN_PAGES)
def test_pages_when_signed_in(name, heading):
    client = Client()
    client.force_login(UserFactory(username="alice"))
    assert_our_page(client.get(reverse(name)), heading, name)


@pytest.mark.parametrize(("name", "heading"), TWO_FACTOR_PAGES)
def test_pages_with_two_factor_on(name, heading):
    user = UserFactory(username="alice")
    client = Client()
    client.force_login(user)
    TOTP.activate(user, generate_totp_secret())
    RecoveryCodes.activate(user)
    assert_our_page(client.get(reverse(name)), heading, name)


def test_the_two_factor_sign_in_page():
    user = UserFactory(username="alice")
    TOTP.activate(user, generate_totp_secret())
    client = Client()
    client.post(reverse("login"), {"username": "alice", "password": DEFAULT_PASSWORD})
    assert_our_page(client.get(reverse("mfa_authenticate")), "Two-factor authentication", "2fa")


def test_the_invitation_form_posts_need_the_csrf_token(workspace):
    from accounts.models import Invitation

    _invitation, key = Invitation.create(workspace, email="x@example.com", role="viewer", by=None)
    client = Client(enforce_csrf_checks=True)
    client.get(reverse("invitation_open", args=[key]))
    data = {"username": "x", "password1": "long-enough-pass-1", "password2": "long-enough-pass-1"}

    assert client.post(reverse("invitation_accept"), data).status_code == 403
    assert not workspace.memberships.filter(user__username="x").exists()


def test_the_set_password_and_confirm_email_pages():
    user = UserFactory(username="alice", password=None)  # e.g. made in the admin, no password
    client = Client()
    client.force_login(user)
    response = client.get(reverse("account_set_password"))
    assert response.status_code == 200
    assert "/static/css/coffer.css" in text(response)
    assert_strict_headers(response, "set password")

    response = client.get(reverse("account_confirm_email", args=["not-a-key"]))
    assert "/static/css/coffer.css" in text(response) and "Menu:" not in text(response)
    assert_strict_headers(response, "confirm email")
