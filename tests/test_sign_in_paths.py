"""Every way to sign in goes through the one sign-in (allauth's, with its second factor), and a
sign-in that skipped a step never counts as a recent authentication (sudo mode).

The ways in: the sign-in page (/accounts/login/, then its code page); /admin/login/ (sent to the
sign-in page: tests/test_admin_sign_in.py); password reset (signs nobody in, and would go
through the code page if it did); the invitation's sign-up (a new account, no second factor
yet); open sign-up (off by default, a new account too). Django's own sign-in views are not
mounted, and the HTTP API takes access keys only, never a session."""

from __future__ import annotations

import re
from urllib.parse import quote

import pyotp
import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.factories import DEFAULT_PASSWORD, MembershipFactory, UserFactory
from tests.helpers import access_url, give_two_factor, signed_in_with_code
from workspaces.models import Role
from workspaces.reauth import SESSION_KEY

pytestmark = pytest.mark.django_db

LOGIN = reverse("login")
CODE_PAGE = reverse("mfa_authenticate")
REAUTH = reverse("reauthenticate")


@pytest.fixture
def olivia(workspace):
    """An owner with two-factor; `olivia.secret` is her TOTP secret."""
    user = UserFactory(username="olivia", email="olivia@example.com")
    MembershipFactory(workspace=workspace, user=user, role=Role.OWNER)
    user.secret = give_two_factor(user)
    return user


def password_step(client: Client, username: str = "olivia"):
    return client.post(LOGIN, {"username": username, "password": DEFAULT_PASSWORD})


def test_a_half_finished_sign_in_opens_nothing(olivia, workspace):
    client = Client()

    assert password_step(client)["Location"] == CODE_PAGE

    assert "_auth_user_id" not in client.session
    for path in (access_url("create", workspace), reverse("tokens:list", args=["acme"])):
        assert client.get(path)["Location"].startswith(LOGIN)
    assert not [r for r in client.session.get(SESSION_KEY, []) if r.get("reauthenticated")]


def test_a_sign_in_that_skipped_the_code_never_counts_as_recent(olivia, workspace):
    """As an admin-login session did: the password given, the code never, then signed in by a
    login() that skipped the code step. (No such path remains; this keeps sudo mode shut if one
    is ever added.)"""
    client = Client()
    password_step(client)
    client.force_login(olivia)  # a login() that skipped the code step
    create = access_url("create", workspace)

    response = client.get(create)
    assert response["Location"] == f"{REAUTH}?next={quote(create, safe='')}"
    assert client.get(reverse("mfa_deactivate_totp"))["Location"].startswith(REAUTH)

    # Its password alone does not confirm: the code page asks for the factor it skipped.
    to_code = f"{reverse('mfa_reauthenticate')}?next={quote(create, safe='')}"
    assert client.get(f"{REAUTH}?next={quote(create)}")["Location"] == to_code
    response = client.post(REAUTH, {"password": DEFAULT_PASSWORD, "next": create})
    assert response["Location"] == to_code
    assert client.get(create).status_code == 302, "still shut"

    client.post(reverse("mfa_reauthenticate"), {"code": pyotp.TOTP(olivia.secret).now()})
    assert client.get(create).status_code == 200, "the code opens it"


def test_a_workspace_that_requires_two_factor_asks_a_session_that_skipped_the_code(
    olivia, workspace
):
    workspace.set_two_factor_requirement(True, by=olivia)
    client = Client()
    password_step(client)
    client.force_login(olivia)  # a login() that skipped the code step
    tokens = reverse("tokens:list", args=["acme"])

    response = client.get(tokens)

    assert response["Location"] == f"{reverse('mfa_reauthenticate')}?next={quote(tokens, safe='')}"
    page = client.get(response["Location"]).content.decode()
    assert "Acme requires two-factor authentication. Enter a code" in page
    response = client.post(response["Location"], {"code": pyotp.TOTP(olivia.secret).now()})
    assert response["Location"] == tokens
    assert client.get(tokens).status_code == 200


def test_a_full_sign_in_with_the_code_opens_sudo_mode(olivia, workspace):
    client = signed_in_with_code(olivia, olivia.secret)

    assert client.get(access_url("create", workspace)).status_code == 200
    assert client.get(reverse("mfa_deactivate_totp")).status_code == 200


def test_the_password_confirms_in_a_session_that_gave_the_code(olivia, workspace):
    client = signed_in_with_code(olivia, olivia.secret, minutes_ago=30)
    create = access_url("create", workspace)

    response = client.post(REAUTH, {"password": DEFAULT_PASSWORD, "next": create})

    assert response["Location"] == create
    assert client.get(create).status_code == 200


def reset_password(client: Client, mailoutbox) -> None:
    client.post(reverse("password_reset"), {"email": "olivia@example.com"})
    link = re.search(r"https?://[^/\s]+(/accounts/password/reset/key/\S+/)", mailoutbox[-1].body)
    form = client.get(link[1], follow=True)
    new = "a-brand-new-passphrase-31"
    client.post(form.redirect_chain[-1][0], {"password1": new, "password2": new})


def test_password_reset_signs_nobody_in(olivia, mailoutbox):
    client = Client()

    reset_password(client, mailoutbox)

    olivia.refresh_from_db()
    assert not olivia.check_password(DEFAULT_PASSWORD), "reset"
    assert "_auth_user_id" not in client.session


def test_password_reset_with_sign_in_on_still_asks_for_the_code(olivia, mailoutbox, settings):
    settings.ACCOUNT_LOGIN_ON_PASSWORD_RESET = True
    client = Client()

    reset_password(client, mailoutbox)

    assert "_auth_user_id" not in client.session, "the code step comes first"
    assert client.get(reverse("home"))["Location"].startswith(LOGIN)


def test_the_invitations_sign_up_signs_in_a_new_account_with_no_step_to_skip(olivia, workspace):
    from accounts.models import Invitation

    _invitation, key = Invitation.create(
        workspace, email="newbie@example.com", role=Role.OWNER, by=olivia
    )
    client = Client()
    client.get(reverse("invitation_open", args=[key]))
    new = "a-long-unusual-passphrase-42"

    client.post(
        reverse("invitation_accept"), {"username": "newbie", "password1": new, "password2": new}
    )

    assert "_auth_user_id" in client.session, "signed in with the password just chosen"
    assert client.get(access_url("create", workspace)).status_code == 200


def test_djangos_own_sign_in_views_are_not_mounted():
    def callbacks(patterns):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                yield from callbacks(entry.url_patterns)
            elif isinstance(entry, URLPattern):
                yield entry.callback

    modules = {getattr(view, "__module__", "") for view in callbacks(get_resolver().url_patterns)}
    assert "django.contrib.auth.views" not in modules
    assert "config.admin_site" in modules, "the admin's sign-in is ours (sent to allauth's)"


def test_open_sign_up_is_off_by_default():
    client = Client()
    response = client.post(
        reverse("account_signup"),
        {"username": "eve", "email": "e@example.com", "password1": "x" * 20, "password2": "x" * 20},
    )

    assert "_auth_user_id" not in client.session
    assert not UserFactory._meta.model.objects.filter(username="eve").exists()
    assert response.status_code == 200
