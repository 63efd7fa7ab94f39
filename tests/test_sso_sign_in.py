"""Single sign-on (accounts/sso.py) against a real provider on 127.0.0.1 (tests/oidc_provider.py):
the sign-in page's button, who a first sign-in may become (a linked account, an existing account
only through a trusted verified address, a new account only with an invitation), the second
factor after the provider, and sudo mode for an account without a password."""

from __future__ import annotations

import pyotp
import pytest
from allauth.socialaccount.models import SocialAccount, SocialApp, SocialToken
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from accounts.models import Invitation
from tests.factories import DEFAULT_PASSWORD, MembershipFactory, UserFactory
from tests.helpers import (
    SSO_LOGIN,
    age_authentication,
    give_two_factor,
    invitation_link,
    sso_button_action,
    sso_sign_in,
    text,
)
from tests.oidc_provider import CLIENT_SECRET
from workspaces.models import Role
from workspaces.reauth import has_recent_auth

pytestmark = pytest.mark.django_db


def signed_in_user(client: Client):
    return get_user_model().objects.filter(pk=client.session.get("_auth_user_id")).first()


@pytest.fixture
def ada(workspace, sso_provider):
    """A member of acme whose provider account is already linked."""
    user = UserFactory(username="ada", email="ada@example.com")
    MembershipFactory(workspace=workspace, user=user, role=Role.EDITOR)
    SocialAccount.objects.create(user=user, provider="sso", uid=sso_provider.person["sub"])
    return user


def test_sign_in_page_shows_the_provider_button(sso_provider):
    page = text(Client().get(reverse("login")))
    assert "Sign in with Acme SSO" in page


def test_no_button_without_a_provider(db):
    assert "Sign in with" not in text(Client().get(reverse("login")))


def test_linked_person_signs_in_and_lands_in_their_workspace(ada, workspace, sso_provider):
    client = Client()
    response = sso_sign_in(client, sso_provider)
    assert response.status_code == 302
    assert signed_in_user(client) == ada
    assert "Acme" in text(client.get(response["Location"], follow=True))


def test_the_flow_starts_only_with_a_post_carrying_the_csrf_token(ada, sso_provider):
    client = Client(enforce_csrf_checks=True)
    assert client.post(SSO_LOGIN).status_code == 403
    # A GET shows a page to confirm (a link from elsewhere cannot start a sign-in).
    response = client.get(SSO_LOGIN)
    assert response.status_code == 200 and not sso_provider.authorize_requests


def test_existing_account_is_not_joined_by_address_unless_trusted(workspace, sso_provider):
    user = UserFactory(username="ada", email="ada@example.com")
    client = Client()
    response = sso_sign_in(client, sso_provider)
    assert response.status_code == 403
    assert "already uses this email address" in text(response)
    assert signed_in_user(client) is None
    assert not SocialAccount.objects.filter(user=user).exists()
    assert user.has_usable_password() and type(user).objects.get(pk=user.pk).has_usable_password()


def test_trusted_provider_joins_an_existing_account_by_verified_address(
    workspace, sso_provider, settings
):
    settings.SOCIALACCOUNT_PROVIDERS = sso_provider.settings(link_by_email=True)[
        "SOCIALACCOUNT_PROVIDERS"
    ]
    user = UserFactory(username="ada", email="ada@example.com")
    client = Client()
    assert sso_sign_in(client, sso_provider).status_code == 302
    assert signed_in_user(client) == user
    # Linked: the next sign-in no longer depends on the address.
    assert SocialAccount.objects.get(user=user).uid == sso_provider.person["sub"]
    # The account's password (vouched for when it was made) still works: break-glass.
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)


def test_trusted_provider_cannot_join_by_an_unverified_address(workspace, sso_provider, settings):
    settings.SOCIALACCOUNT_PROVIDERS = sso_provider.settings(link_by_email=True)[
        "SOCIALACCOUNT_PROVIDERS"
    ]
    user = UserFactory(username="ada", email="ada@example.com")
    sso_provider.person["email_verified"] = False
    client = Client()
    response = sso_sign_in(client, sso_provider)
    assert response.status_code == 403
    assert signed_in_user(client) is None
    assert not SocialAccount.objects.filter(user=user).exists()


def test_unknown_address_without_invitation_gets_no_account(db, sso_provider):
    client = Client()
    response = sso_sign_in(client, sso_provider)
    assert "Sign-up is closed" in text(response)
    assert signed_in_user(client) is None
    assert not get_user_model().objects.filter(email="ada@example.com").exists()


def test_open_sign_up_refuses_an_unverified_address(db, sso_provider, settings):
    settings.COFFER_OPEN_SIGNUP = True
    sso_provider.person["email_verified"] = False
    client = Client()
    response = sso_sign_in(client, sso_provider)
    assert response.status_code == 403 and "did not confirm" in text(response)
    assert not get_user_model().objects.filter(email="ada@example.com").exists()


def test_invitation_accepted_through_single_sign_on(
    workspace, sso_provider, owner_client, mailoutbox
):
    owner_client.post(
        reverse("invitation_create", args=["acme"]),
        {"email": "Ada@Example.com", "role": Role.EDITOR},
    )
    client = Client()
    page = client.get(invitation_link(mailoutbox[-1]), follow=True)
    assert "Sign in with Acme SSO" in text(page)
    response = sso_sign_in(client, sso_provider, next_url=reverse("invitation_accept"))
    user = signed_in_user(client)
    assert user is not None and user.email == "ada@example.com"
    assert not user.has_usable_password()
    assert response["Location"] == reverse("invitation_accept")
    joined = client.post(reverse("invitation_accept"))
    assert joined["Location"] == reverse("tokens:list", args=["acme"])
    assert workspace.memberships.get(user=user).role == Role.EDITOR
    assert Invitation.objects.get().accepted_by == user


def test_account_with_two_factor_still_gives_its_code(ada, sso_provider):
    secret = give_two_factor(ada)
    client = Client()
    response = sso_sign_in(client, sso_provider)
    assert response["Location"].startswith(reverse("mfa_authenticate"))
    assert signed_in_user(client) is None, "the provider alone does not sign in"
    response = client.post(reverse("mfa_authenticate"), {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302 and signed_in_user(client) == ada


def test_account_without_password_confirms_sudo_mode_with_the_provider(ada, sso_provider):
    ada.set_unusable_password()
    ada.save()
    client = Client()
    sso_sign_in(client, sso_provider)
    age_authentication(client, 3600)
    target = reverse("invitation_create", args=["acme"])
    response = client.get(target)
    assert response["Location"].startswith(reverse("reauthenticate"))
    page = text(client.get(response["Location"]))
    assert "Confirm with Acme SSO" in page and "Confirm password" not in page
    response = sso_sign_in(client, sso_provider, login_url=sso_button_action(page))
    assert response["Location"] == target
    assert sso_provider.authorize_requests[-1]["prompt"] == "login"
    request = type("R", (), {"session": client.session, "user": ada})()
    assert has_recent_auth(request)


def test_no_client_secret_or_provider_token_is_kept_or_shown(ada, sso_provider):
    client = Client()
    assert CLIENT_SECRET not in text(client.get(reverse("login")))
    sso_sign_in(client, sso_provider)
    assert not SocialToken.objects.exists(), "the provider's tokens are not kept"
    account = SocialAccount.objects.get(user=ada)
    for token in sso_provider.access_tokens:
        assert token not in str(account.extra_data)
    # The admin offers no place that would store the client secret in plain text.
    assert not admin.site.is_registered(SocialApp)
    assert not admin.site.is_registered(SocialToken)
    assert admin.site.is_registered(SocialAccount), "an administrator can unlink an account"


def test_linking_the_provider_to_a_signed_in_account_needs_sudo_mode(workspace, sso_provider):
    import requests

    user = UserFactory(username="bob", email="bob@example.com")
    client = Client()
    client.force_login(user)
    age_authentication(client, 3600)  # signed in an hour ago: outside sudo mode's window
    response = client.post(SSO_LOGIN, {"process": "connect"})
    if response["Location"].startswith(sso_provider.url):
        answer = requests.get(
            response["Location"], allow_redirects=False, verify=str(sso_provider.certificate)
        )
        response = client.get(answer.headers["Location"].removeprefix("http://testserver"))
    assert response["Location"].startswith(reverse("reauthenticate"))
    assert not SocialAccount.objects.filter(user=user).exists()


def test_the_provider_origin_is_allowed_as_a_form_target():
    from config.settings import sso_form_action_origins

    assert sso_form_action_origins("https://idp.example.com:8443/realms/acme") == [
        "https://idp.example.com:8443"
    ]
    assert sso_form_action_origins("") == []


def test_sign_in_page_lets_the_button_post_to_the_provider(sso_provider):
    csp = Client().get(reverse("login"))["Content-Security-Policy"]
    form_action = next(p for p in csp.split(";") if p.strip().startswith("form-action"))
    assert sso_provider.url in form_action


def test_the_sign_in_page_reads_no_provider_from_the_database(sso_provider):
    """The provider comes from settings only: no query for database apps on the sign-in page
    (a fresh, not yet migrated install would answer 503 for the missing table)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        page = Client().get(reverse("login"))
    assert page.status_code == 200 and "Sign in with" in page.text, "control: the button"
    assert not [q["sql"] for q in queries if "socialaccount" in q["sql"]]
