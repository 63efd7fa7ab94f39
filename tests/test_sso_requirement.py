"""A workspace that requires single sign-on (Members > Single sign-on; workspaces/access.py):
owners turn it on (sudo mode, audited); a session that signed in with a password is asked to
sign in through the provider before any page of the workspace; owners keep a break-glass path
with password and two-factor code; access keys keep working."""

from __future__ import annotations

import pytest
from allauth.socialaccount.models import SocialAccount
from django.test import Client
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from tests.factories import MembershipFactory, UserFactory, make_access_key
from tests.helpers import (
    HTMX,
    give_two_factor,
    signed_in_with_code,
    sso_button_action,
    sso_sign_in,
    text,
)
from tests.test_reauth import signed_in
from workspaces.models import Role

pytestmark = pytest.mark.django_db

TOKENS = reverse("tokens:list", args=["acme"])
SETTING = reverse("sso_requirement", args=["acme"])


@pytest.fixture
def ada(workspace, sso_provider):
    """An editor of acme whose provider account is linked (she also has a password)."""
    user = UserFactory(username="ada", email="ada@example.com")
    MembershipFactory(workspace=workspace, user=user, role=Role.EDITOR)
    SocialAccount.objects.create(user=user, provider="sso", uid=sso_provider.person["sub"])
    return user


@pytest.fixture
def olivia(workspace):
    user = UserFactory(username="olivia")
    MembershipFactory(workspace=workspace, user=user, role=Role.OWNER)
    return user


@pytest.fixture
def required(workspace, olivia):
    workspace.set_sso_requirement(True, by=olivia)
    return workspace


def test_owner_requires_single_sign_on_and_it_is_audited(workspace, olivia, sso_provider):
    owner = signed_in(olivia)
    assert "Require single sign-on" in text(owner.get(SETTING))
    response = owner.post(SETTING, {"require_sso": "on"})
    assert response.status_code == 302
    workspace.refresh_from_db()
    assert workspace.require_sso
    event = AuditEvent.objects.get(action=AuditAction.SSO_REQUIREMENT_CHANGED)
    assert event.actor == olivia and event.detail["required"] is True


def test_it_cannot_be_required_without_a_provider(workspace, olivia):
    owner = signed_in(olivia)
    response = owner.post(SETTING, {"require_sso": "on"})
    assert response.status_code == 200
    assert "No single sign-on provider is set up" in text(response)
    workspace.refresh_from_db()
    assert not workspace.require_sso


def test_editor_cannot_change_it(workspace, ada):
    editor = signed_in(ada)
    assert editor.post(SETTING, {"require_sso": "on"}).status_code == 403
    workspace.refresh_from_db()
    assert not workspace.require_sso


def test_password_session_is_refused_and_shown_the_way(required, ada):
    member = signed_in(ada)
    for name in ("tokens:list", "members", "products"):
        response = member.get(reverse(name, args=["acme"]))
        assert response.status_code == 403, name
        assert "Acme requires single sign-on" in text(response)
        assert "Sign in with Acme SSO" in text(response)
    assert member.get(TOKENS, headers=HTMX)["HX-Redirect"] == TOKENS
    # Leaving the workspace stays possible.
    assert member.get(reverse("workspace_leave", args=["acme"])).status_code == 200


def test_single_sign_on_session_is_let_in(required, ada, sso_provider):
    member = signed_in(ada)
    page = text(member.get(TOKENS))
    response = sso_sign_in(member, sso_provider, login_url=sso_button_action(page))
    assert response["Location"] == TOKENS, "back to the page that asked"
    assert member.get(TOKENS).status_code == 200


def test_owner_break_glass_with_password_and_two_factor(required, olivia):
    secret = give_two_factor(olivia)
    owner = signed_in_with_code(olivia, secret)
    assert owner.get(TOKENS).status_code == 200
    assert owner.get(SETTING).status_code == 200, "and may turn the requirement off"


def test_owner_with_password_alone_is_refused(required, olivia):
    assert signed_in(olivia).get(TOKENS).status_code == 403


def test_editor_with_password_and_two_factor_is_refused(required, ada):
    secret = give_two_factor(ada)
    assert signed_in_with_code(ada, secret).get(TOKENS).status_code == 403


def test_access_keys_keep_working(required, token):
    _key, secret = make_access_key(required, environment=required.environments.first())
    response = Client().get(reverse("api:values"), headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200
