"""Sudo mode (workspaces/reauth.py): sensitive views want a password given within the window.

Signing in starts the window; /accounts/reauthenticate/ ("Confirm your password") or an
authenticator code restarts it. Every view marked @recent_auth_required is found through the URL
resolver and checked (PROTECTED: creating an access key or a workload identity, changing a
role, removing a member, requiring two-factor), and so are allauth's two-factor settings
(ALLAUTH_PROTECTED), which use the same window and the same page. Changing one's password
asks for the current one.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from access.models import AccessKey
from tests.factories import DEFAULT_PASSWORD, MembershipFactory, UserFactory
from tests.helpers import HTMX, access_key_data, access_url, age_authentication, text
from workspaces.models import Role
from workspaces.reauth import SESSION_KEY

pytestmark = pytest.mark.django_db

REAUTH = reverse("reauthenticate")
# Every view that needs a recent password, by URL name, with what its URL takes. Add each new
# one here.
PROTECTED = {
    "access:create": lambda ws, other: [ws.slug],
    "identities:create": lambda ws, other: [ws.slug],
    "member_edit": lambda ws, other: [ws.slug, other.pk],
    "member_remove": lambda ws, other: [ws.slug, other.pk],
    "two_factor": lambda ws, other: [ws.slug],
}


def protected_url_names(patterns=None, namespace: str = "") -> set[str]:
    found = set()
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            found |= protected_url_names(entry.url_patterns, ns)
        elif isinstance(entry, URLPattern) and getattr(entry.callback, "requires_recent_auth", 0):
            found.add(f"{namespace}{entry.name}")
    return found


@pytest.fixture
def owner(workspace):
    user = UserFactory(username="olivia")
    MembershipFactory(workspace=workspace, user=user, role=Role.OWNER)
    return user


def signed_in(user, minutes_ago: float = 0) -> Client:
    """A client that signed in through the sign-in page `minutes_ago`."""
    client = Client()
    response = client.post(
        reverse("login"), {"username": user.get_username(), "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 302, "signed in"
    if minutes_ago:
        age_authentication(client, minutes_ago * 60)
    return client


@pytest.fixture
def other_member(workspace):
    return MembershipFactory(workspace=workspace, user__username="zed", role=Role.VIEWER)


def protected_url(name: str, workspace, other_member=None) -> str:
    if other_member is None:
        other_member = MembershipFactory(workspace=workspace, role=Role.VIEWER)
    return reverse(name, args=PROTECTED[name](workspace, other_member))


def protected_urls(workspace) -> list[str]:
    other = MembershipFactory(workspace=workspace, role=Role.VIEWER)
    return [protected_url(name, workspace, other) for name in sorted(PROTECTED)]


def test_the_protected_views_are_exactly_the_listed_ones():
    assert protected_url_names() == set(PROTECTED)


def test_the_window_is_fifteen_minutes_by_default():
    assert settings.COFFER_REAUTH_MINUTES == 15


def test_signing_in_opens_the_window(workspace, owner):
    client = signed_in(owner)
    for path in protected_urls(workspace):
        assert client.get(path).status_code == 200


def state(workspace) -> tuple:
    """What the protected views could change: access keys, memberships, the 2FA requirement."""
    workspace.refresh_from_db()
    return (
        AccessKey.objects.count(),
        sorted(workspace.memberships.values_list("user__username", "role")),
        workspace.require_two_factor,
    )


@pytest.mark.parametrize("name", sorted(PROTECTED))
def test_every_protected_view_refuses_without_recent_authentication(
    workspace, owner, other_member, name
):
    client = signed_in(owner, minutes_ago=16)
    path = protected_url(name, workspace, other_member)
    expected = f"{REAUTH}?next={quote(path, safe='')}"
    data = {**access_key_data(workspace), "role": "owner", "require_two_factor": "on"}
    before = state(workspace)

    response = client.get(path)
    assert response.status_code == 302 and response["Location"] == expected
    response = client.post(path, data)
    assert response.status_code == 302 and response["Location"] == expected
    response = client.get(path, headers=HTMX)
    assert response.status_code == 200 and response["HX-Redirect"] == expected
    response = client.post(path, data, headers=HTMX)
    assert response["HX-Redirect"] == expected
    assert state(workspace) == before, "nothing changed"


@pytest.mark.parametrize("name", sorted(PROTECTED))
def test_every_protected_view_works_within_the_window(workspace, owner, other_member, name):
    client = signed_in(owner, minutes_ago=14)

    assert client.get(protected_url(name, workspace, other_member)).status_code == 200


def test_a_session_without_a_recorded_time_is_refused(workspace, owner):
    client = signed_in(owner)
    session = client.session
    del session[SESSION_KEY]
    session.save()
    assert client.get(access_url("create", workspace))["Location"].startswith(REAUTH)


def test_within_the_window_nothing_is_asked(workspace, owner):
    client = signed_in(owner, minutes_ago=14)
    assert client.get(access_url("create", workspace)).status_code == 200


def test_the_window_follows_the_setting(workspace, owner, settings):
    settings.COFFER_REAUTH_MINUTES = 1
    client = signed_in(owner, minutes_ago=2)
    assert client.get(access_url("create", workspace))["Location"].startswith(REAUTH)


def test_confirm_page_looks_like_sign_in(workspace, owner):
    client = signed_in(owner, minutes_ago=30)
    next_path = access_url("create", workspace)
    response = client.get(f"{REAUTH}?next={quote(next_path)}")
    page = text(response)
    assert response.status_code == 200
    assert "Confirm your password" in page
    assert 'class="auth-card"' in page
    assert 'autocomplete="current-password"' in page
    assert f'name="next" value="{next_path}"' in page
    assert "olivia" in page
    assert "<script>" not in page and " on" + "click=" not in page
    assert "no-store" in response["Cache-Control"]


def test_the_right_password_reopens_the_window_and_goes_back(workspace, owner):
    client = signed_in(owner, minutes_ago=30)
    next_path = access_url("create", workspace)
    response = client.post(REAUTH, {"password": DEFAULT_PASSWORD, "next": next_path})
    assert response.status_code == 302 and response["Location"] == next_path
    assert client.get(next_path).status_code == 200
    response = client.post(next_path, access_key_data(workspace))
    assert response.status_code == 200 and AccessKey.objects.count() == 1


@pytest.mark.parametrize("password", ["wrong-password", "", DEFAULT_PASSWORD + " "])
def test_a_wrong_password_is_refused_and_changes_nothing(workspace, owner, password):
    client = signed_in(owner, minutes_ago=30)
    before = client.session[SESSION_KEY]
    response = client.post(REAUTH, {"password": password, "next": access_url("create", workspace)})
    assert response.status_code == 200
    assert "That is not your password" in text(response) or "This field is required" in text(
        response
    )
    assert client.session[SESSION_KEY] == before
    assert client.get(access_url("create", workspace)).status_code == 302


def test_another_users_password_does_not_count(workspace, owner):
    UserFactory(username="mallory")  # same DEFAULT_PASSWORD, another account
    client = signed_in(owner, minutes_ago=30)
    client.post(REAUTH, {"password": DEFAULT_PASSWORD, "username": "mallory"})
    # The username field is for password managers only: the signed-in user's password counts.
    assert client.get(access_url("create", workspace)).status_code == 200
    other = signed_in(UserFactory(username="eve"), minutes_ago=30)
    response = other.post(REAUTH, {"password": "not-eves-password", "username": "olivia"})
    assert "That is not your password" in text(response)


def test_wrong_passwords_are_throttled_like_sign_ins(workspace, owner):
    client = signed_in(owner, minutes_ago=30)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert client.post(REAUTH, {"password": "wrong-password"}).status_code == 200
    response = client.post(REAUTH, {"password": "wrong-password"})
    assert response.status_code == 429
    assert "Too many failed sign-ins" in text(response)
    assert AccessAttempt.objects.filter(username="olivia").exists()
    response = client.post(REAUTH, {"password": DEFAULT_PASSWORD})
    assert response.status_code == 429, "locked out: even the right password waits"
    assert client.get(access_url("create", workspace)).status_code == 302


@pytest.mark.parametrize(
    "next_value",
    [
        "https://evil.example/",
        "//evil.example/path",
        "/\\evil.example",
        "http://testserver/w/acme/",
        "javascript:alert(1)",
        "",
    ],
)
def test_next_stays_on_this_site(workspace, owner, next_value):
    client = signed_in(owner, minutes_ago=30)
    response = client.post(REAUTH, {"password": DEFAULT_PASSWORD, "next": next_value})
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    page = text(client.get(f"{REAUTH}?next={quote(next_value)}"))
    assert f'name="next" value="{reverse("home")}"' in page


def test_anonymous_users_are_sent_to_sign_in(workspace):
    client = Client()
    for path in (REAUTH, *protected_urls(workspace)):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


# --- allauth's sensitive pages use the same window and the same page -------------------------

# Two-factor settings (allauth's views, behind its reauthentication_required). They read the
# same session records, so one confirmation covers them and ours.
ALLAUTH_PROTECTED = ["mfa_activate_totp", "mfa_deactivate_totp", "mfa_generate_recovery_codes"]


def give_two_factor(user) -> None:
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    TOTP.activate(user, generate_totp_secret())
    RecoveryCodes.activate(user)


@pytest.mark.parametrize("name", ALLAUTH_PROTECTED)
def test_two_factor_settings_refuse_without_recent_authentication(workspace, owner, name):
    from allauth.mfa.models import Authenticator

    client = signed_in(owner, minutes_ago=16)
    if name != "mfa_activate_totp":
        give_two_factor(owner)
    before = sorted(Authenticator.objects.values_list("type", "data"))
    path = reverse(name)

    for response in (client.get(path), client.post(path, {"code": "123456"})):
        assert response.status_code == 302
        assert response["Location"].startswith(f"{REAUTH}?next=")
    assert sorted(Authenticator.objects.values_list("type", "data")) == before

    client.post(REAUTH, {"password": DEFAULT_PASSWORD})
    assert client.get(path).status_code == 200, "one confirmation covers allauth's pages too"


def test_one_confirmation_covers_both_kinds_of_page(workspace, owner, other_member):
    client = signed_in(owner, minutes_ago=16)
    give_two_factor(owner)
    client.post(REAUTH, {"password": DEFAULT_PASSWORD})

    assert client.get(reverse("mfa_generate_recovery_codes")).status_code == 200
    assert client.get(protected_url("member_edit", workspace, other_member)).status_code == 200


def test_changing_the_password_asks_for_the_current_one(owner):
    client = signed_in(owner)
    new = "another-long-passphrase-77"

    response = client.post(
        reverse("password_change"),
        {"oldpassword": "not-it", "password1": new, "password2": new},
    )

    assert response.status_code == 200
    owner.refresh_from_db()
    assert owner.check_password(DEFAULT_PASSWORD)
