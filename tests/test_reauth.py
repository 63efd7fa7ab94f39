"""Sudo mode (workspaces/reauth.py): sensitive views want a password given within the window.

Signing in (every step of it) starts the window; /accounts/reauthenticate/ ("Confirm your
password") or an authenticator code restarts it. Every view marked @recent_auth_required is found
through the URL resolver and checked (PROTECTED: every action that grants access or reveals a
credential), and so are allauth's two-factor settings (ALLAUTH_PROTECTED), which use the same
window and the same page. Every other URL is listed in REVIEWED as granting nothing, so a new
view cannot be added without a decision. Changing one's password asks for the current one.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import pytest
from allauth.account.models import EmailAddress
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from access.models import AccessKey
from accounts.models import Invitation
from notifications.models import Webhook
from tests.factories import DEFAULT_PASSWORD, MembershipFactory, UserFactory, make_webhook
from tests.helpers import (
    HTMX,
    access_key_data,
    access_url,
    age_authentication,
    give_two_factor,
    signed_in_with_code,
    text,
)
from workspaces.models import Membership, Role, Workspace
from workspaces.reauth import SESSION_KEY

pytestmark = pytest.mark.django_db

REAUTH = reverse("reauthenticate")
# Every view that grants access or reveals a credential, by URL name, with what its URL takes
# (from `Things`, below). Add each new one here: test_every_url_is_protected_or_reviewed fails
# until it is (and listed in REVIEWED if it grants nothing).
PROTECTED = {
    "access:create": lambda t: [t.workspace.slug],
    "identities:create": lambda t: [t.workspace.slug],
    "member_edit": lambda t: [t.workspace.slug, t.member.pk],
    "member_remove": lambda t: [t.workspace.slug, t.member.pk],
    "two_factor": lambda t: [t.workspace.slug],
    "sso_requirement": lambda t: [t.workspace.slug],
    "invitation_create": lambda t: [t.workspace.slug],
    "invitation_resend": lambda t: [t.workspace.slug, t.invitation.pk],
    "notifications:webhook_create": lambda t: [t.workspace.slug],
    "notifications:webhook_edit": lambda t: [t.workspace.slug, t.webhook.pk],
    "notifications:webhook_rotate": lambda t: [t.workspace.slug, t.webhook.pk],
    "account_email": lambda t: [],  # allauth's page, wrapped in config/urls.py
}
# allauth's pages that grant or reveal (two-factor settings): behind its reauthentication,
# which reads the same records and asks on the same page (tested below).
ALLAUTH_PROTECTED = {
    "mfa_activate_totp": "sets up two-factor",
    "mfa_deactivate_totp": "turns two-factor off",
    "mfa_generate_recovery_codes": "new recovery codes",
}
# Every other URL, reviewed: it grants no access and reveals no credential, or it is a step of
# signing in (the one flow, with its second factor) or of confirming.
REVIEWED = {
    # Signing in and out, and confirming (sudo mode itself).
    "login": "sign-in: allauth's flow, then its code step",
    "account_login": "the same page",
    "mfa_authenticate": "sign-in's code step",
    "account_confirm_login_code": "login by code (off)",
    "logout": "signs out",
    "account_logout": "the same page",
    "account_inactive": "a notice",
    "reauthenticate": "sudo mode's page",
    "account_reauthenticate": "the same page",
    "mfa_reauthenticate": "sudo mode by code",
    "account_request_reauthentication_code": "re-authentication by mailed code (off)",
    "account_confirm_reauthentication_code": "re-authentication by mailed code (off)",
    # Passwords: changing asks for the current one; a reset needs the mailed link.
    "password_change": "asks for the current password",
    "account_change_password": "the same page",
    "password_reset": "mails a link to the account's address",
    "account_reset_password": "the same page",
    "account_reset_password_done": "a notice",
    "account_reset_password_from_key": "needs the mailed link; signs nobody in",
    "account_reset_password_from_key_done": "a notice",
    "account_set_password": "a first password; an account without one cannot sign in",
    "account_signup": "open sign-up (off by default): a new account with no access",
    # Single sign-on (accounts/sso.py): signing in through the provider, then its code step.
    "openid_connect_login": "starts a provider sign-in (a POST with the CSRF token)",
    "openid_connect_callback": "the provider's answer: state, PKCE and ID token checked",
    "socialaccount_login_cancelled": "a notice",
    "socialaccount_login_error": "a notice",
    "socialaccount_signup": "a new account only for an invited verified address or open sign-up",
    "socialaccount_connections": "linking or unlinking the provider asks for sudo mode (allauth)",
    "None": "allauth's old /accounts/social/ addresses: redirects to /accounts/3rdparty/",
    "account_email_verification_sent": "a notice",
    "account_confirm_email": "needs the mailed link; adding the address needed sudo",
    # Two-factor pages that show nothing secret.
    "mfa_index": "the Account page",
    "account": "the Account page",
    "mfa_view_recovery_codes": "shows codes once, right after set-up or regeneration",
    "mfa_download_recovery_codes": "off (codes are shown once)",
    # Invitations: joining needs the mailed link; revoking takes access away.
    "invitation_open": "needs the mailed link",
    "invitation_accept": "needs the mailed link",
    "invitation_revoke": "takes access away",
    "workspace_leave": "takes one's own access away",
    # Workspace pages: values are write-only; access keys are shown once, at creation.
    "home": "lists one's workspaces",
    "workspace_create": "a new workspace of one's own",
    "members": "lists members",
    "products": "lists the catalog",
    "environments": "lists the catalog",
    "catalog_add": "the catalog",
    "catalog_edit": "the catalog",
    "catalog_delete": "the catalog",
    "access:list": "key prefixes only",
    "access:revoke": "takes access away",
    "access:delete": "takes access away",
    "identities:list": "names, issuers and conditions only",
    "identities:delete": "takes access away",
    "imports:start": "writes values (write-only)",
    "imports:preview": "key names only",
    "tokens:list": "no values",
    "audit:activity": "no values",
    "audit:export": "no values (the trail holds none; the export is itself audited)",
    "tokens:compare": "keys by environment: status, scope, version; no values",
    "tokens:check": "which references of a pasted configuration would fail where; no values",
    "tokens:create": "writes a value (write-only)",
    "tokens:key_hint": "where a key is valid: environments and scope, no values",
    "tokens:bulk": "revokes, deletes, moves",
    "tokens:edit": "writes a value (write-only)",
    "tokens:revoke": "takes a value away",
    "tokens:delete": "takes a value away",
    "tokens:detail": "history without values",
    "tokens:restore": "an older value back (write-only)",
    "tokens:destroy_version": "takes a value away",
    "notifications:webhooks": "secret prefixes only",
    "notifications:deliveries": "the delivery log (no secrets)",
    "notifications:webhook_delete": "stops deliveries",
    "notifications:redeliver": "sends a stored event again to the same address",
    "notifications:reminders": "one's own mail preference",
    "notifications:workspace_reminders": "the workspace's reminder switch",
    # The HTTP API authenticates each request by access key; no session, no sign-in.
    "api:resolve": "access-key authenticated",
    "api:values": "access-key authenticated",
    "api:value": "access-key authenticated (one value, for External Secrets Operator)",
    "api:oidc_exchange": "a CI job's OIDC token for a short-lived credential; checked in full",
    "api:openapi": "the schema",
    "healthz": "liveness",
}


def url_names(patterns=None, namespace: str = "", only_protected: bool = False) -> set[str]:
    """The URL names of the site (the admin's apart: test_admin_changes_need_recent_auth), or
    only those marked @recent_auth_required."""
    found = set()
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace == "admin":
                continue
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            found |= url_names(entry.url_patterns, ns, only_protected)
        elif isinstance(entry, URLPattern) and (
            not only_protected or getattr(entry.callback, "requires_recent_auth", False)
        ):
            found.add(f"{namespace}{entry.name}")
    return found


def protected_url_names() -> set[str]:
    return url_names(only_protected=True)


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


@dataclass
class Things:
    """What the protected views' URLs name: another member, a pending invitation, a webhook."""

    workspace: Workspace
    member: Membership
    invitation: Invitation
    webhook: Webhook


@pytest.fixture
def things(workspace, owner) -> Things:
    invitation, _key = Invitation.create(
        workspace, email="pending@example.com", role=Role.VIEWER, by=owner
    )
    return Things(
        workspace=workspace,
        member=MembershipFactory(workspace=workspace, user__username="zed", role=Role.VIEWER),
        invitation=invitation,
        webhook=make_webhook(workspace)[0],
    )


def protected_url(name: str, things: Things) -> str:
    return reverse(name, args=PROTECTED[name](things))


def protected_urls(things: Things) -> list[str]:
    return [protected_url(name, things) for name in sorted(PROTECTED)]


def test_the_protected_views_are_exactly_the_listed_ones():
    assert protected_url_names() == set(PROTECTED)


def test_every_url_is_protected_or_reviewed():
    """A new view that grants access or reveals a credential cannot be added unprotected: every
    URL is in PROTECTED (and marked), ALLAUTH_PROTECTED or REVIEWED as granting nothing."""
    listed = set(PROTECTED) | set(ALLAUTH_PROTECTED) | set(REVIEWED)
    assert url_names() - listed == set(), "unreviewed URLs: protect them or review them"
    assert listed - url_names() == set(), "listed URLs that no longer exist"
    assert not (set(PROTECTED) | set(ALLAUTH_PROTECTED)) & set(REVIEWED)


def test_the_window_is_fifteen_minutes_by_default():
    assert settings.COFFER_REAUTH_MINUTES == 15


def test_signing_in_opens_the_window(things, owner):
    client = signed_in(owner)
    for path in protected_urls(things):
        assert client.get(path).status_code == 200


def state(workspace) -> tuple:
    """What the protected views could change: access keys, memberships, the 2FA requirement,
    invitations (and their keys), webhooks (and their secrets)."""
    workspace.refresh_from_db()
    return (
        AccessKey.objects.count(),
        sorted(workspace.memberships.values_list("user__username", "role")),
        workspace.require_two_factor,
        workspace.require_sso,
        sorted(Invitation.objects.values_list("email", "role", "key_hash", "expires_at")),
        sorted(
            (w.url, w.description, w.events, w.active, bytes(w.secret_ciphertext))
            for w in Webhook.objects.all()
        ),
        sorted(EmailAddress.objects.values_list("email", "verified", "primary")),
    )


# One POST body for every protected form: a new access key, the role "owner", two-factor
# required, an invitation of an outsider as owner, a webhook to an outside address, a new email.
EVERY_FORM = {
    "role": "owner",
    "require_two_factor": "on",
    "require_sso": "on",
    "email": "attacker@evil.example",
    "url": "https://hooks.evil.example/steal",
    "description": "changed",
    "events": ["token.revoked"],
    "action_add": "",
}


@pytest.mark.parametrize("name", sorted(PROTECTED))
def test_every_protected_view_refuses_without_recent_authentication(things, owner, name):
    workspace = things.workspace
    client = signed_in(owner, minutes_ago=16)
    path = protected_url(name, things)
    expected = f"{REAUTH}?next={quote(path, safe='')}"
    data = {**access_key_data(workspace), **EVERY_FORM}
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
def test_every_protected_view_works_within_the_window(things, owner, name):
    client = signed_in(owner, minutes_ago=14)

    assert client.get(protected_url(name, things)).status_code == 200


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


def test_anonymous_users_are_sent_to_sign_in(things):
    client = Client()
    for path in (REAUTH, *protected_urls(things)):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


# --- allauth's sensitive pages use the same window and the same page -------------------------

# Two-factor settings (allauth's views, behind its reauthentication_required). They read the
# same session records, so one confirmation covers them and ours.


@pytest.mark.parametrize("name", sorted(ALLAUTH_PROTECTED))
def test_two_factor_settings_refuse_without_recent_authentication(workspace, owner, name):
    from allauth.mfa.models import Authenticator

    if name == "mfa_activate_totp":
        client = signed_in(owner, minutes_ago=16)
    else:
        client = signed_in_with_code(owner, give_two_factor(owner), minutes_ago=16)
    before = sorted(Authenticator.objects.values_list("type", "data"))
    path = reverse(name)

    for response in (client.get(path), client.post(path, {"code": "123456"})):
        assert response.status_code == 302
        assert response["Location"].startswith(f"{REAUTH}?next=")
    assert sorted(Authenticator.objects.values_list("type", "data")) == before

    client.post(REAUTH, {"password": DEFAULT_PASSWORD})
    assert client.get(path).status_code == 200, "one confirmation covers allauth's pages too"


def test_one_confirmation_covers_both_kinds_of_page(things, owner):
    client = signed_in_with_code(owner, give_two_factor(owner), minutes_ago=16)
    client.post(REAUTH, {"password": DEFAULT_PASSWORD})

    assert client.get(reverse("mfa_generate_recovery_codes")).status_code == 200
    assert client.get(protected_url("member_edit", things)).status_code == 200


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
