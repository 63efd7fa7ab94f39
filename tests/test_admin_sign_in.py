"""The Django admin is signed into through the one sign-in (allauth's, with its second factor):
/admin/login/ sends the browser there and back; the admin's own password form takes no
password. Changes made in the admin need sudo mode, like the same changes on Coffer's pages."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from tests.factories import DEFAULT_PASSWORD, UserFactory, WorkspaceFactory
from tests.helpers import age_authentication, give_two_factor, signed_in_with_code, text
from workspaces.models import Membership, Role

pytestmark = pytest.mark.django_db

ADMIN = reverse("admin:index")
ADMIN_LOGIN = reverse("admin:login")
LOGIN = reverse("login")


@pytest.fixture
def staff():
    """The owner of the install: createsuperuser's account, with two-factor on."""
    user = get_user_model().objects.create_superuser("root", "root@example.com", DEFAULT_PASSWORD)
    user.totp_secret = give_two_factor(user)
    return user


def test_the_password_alone_at_the_admin_login_does_not_sign_in(staff):
    client = Client()

    response = client.post(
        f"{ADMIN_LOGIN}?next={ADMIN}", {"username": "root", "password": DEFAULT_PASSWORD}
    )

    assert "_auth_user_id" not in client.session, "not signed in"
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)
    assert client.get(ADMIN)["Location"].startswith(ADMIN_LOGIN)
    workspace = WorkspaceFactory(slug="acme", require_two_factor=True)
    Membership.objects.create(workspace=workspace, user=staff, role=Role.OWNER)
    assert client.get(reverse("tokens:list", args=["acme"])).status_code == 302
    assert client.get(reverse("mfa_deactivate_totp"))["Location"].startswith(LOGIN)


def test_the_admin_login_sends_to_the_sign_in_page_and_back(staff):
    response = Client().get(f"{ADMIN_LOGIN}?next=/admin/auth/user/")

    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={quote('/admin/auth/user/', safe='')}"


def test_after_signing_in_with_the_code_the_admin_works(staff):
    client = signed_in_with_code(staff, staff.totp_secret, next_url=ADMIN)

    assert client.after_code == ADMIN
    page = client.get(ADMIN)
    assert page.status_code == 200 and "Coffer administration" in text(page)
    assert client.get(reverse("admin:workspaces_membership_changelist")).status_code == 200


def test_staff_without_two_factor_sign_in_on_the_sign_in_page(db):
    get_user_model().objects.create_superuser("ops", "ops@example.com", DEFAULT_PASSWORD)
    client = Client()

    response = client.post(
        f"{LOGIN}?next={ADMIN}", {"username": "ops", "password": DEFAULT_PASSWORD}
    )

    assert response["Location"] == ADMIN
    assert client.get(ADMIN).status_code == 200


def test_a_signed_in_member_who_is_not_staff_is_refused(db):
    client = Client()
    client.force_login(UserFactory(username="vera"))

    assert client.get(ADMIN_LOGIN).status_code == 403
    assert client.get(ADMIN)["Location"].startswith(ADMIN_LOGIN)


def test_the_admins_password_change_is_the_sign_in_pages(staff):
    client = signed_in_with_code(staff, staff.totp_secret)

    response = client.post(
        reverse("admin:password_change"),
        {"old_password": DEFAULT_PASSWORD, "new_password1": "n" * 20, "new_password2": "n" * 20},
    )

    assert response.status_code == 302 and response["Location"] == reverse("password_change")
    staff.refresh_from_db()
    assert staff.check_password(DEFAULT_PASSWORD), "unchanged: allauth's page asks and notifies"


def test_admin_changes_need_recent_authentication(staff):
    workspace = WorkspaceFactory(slug="acme")
    outsider = UserFactory(username="mallory")
    client = signed_in_with_code(staff, staff.totp_secret, minutes_ago=16)
    add = reverse("admin:workspaces_membership_add")
    data = {"workspace": workspace.pk, "user": outsider.pk, "role": "owner"}

    assert client.get(add).status_code == 200, "reading needs no confirmation"
    response = client.post(add, data)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('reauthenticate')}?next={quote(add, safe='')}"
    assert not Membership.objects.filter(user=outsider).exists()

    client.post(reverse("reauthenticate"), {"password": DEFAULT_PASSWORD})
    assert client.post(add, data).status_code == 302
    assert Membership.objects.filter(user=outsider, role=Role.OWNER).exists()


def test_a_session_aged_past_the_window_can_still_read_the_admin_and_sign_out(staff):
    client = signed_in_with_code(staff, staff.totp_secret)
    age_authentication(client, 60 * 60)

    assert client.get(reverse("admin:workspaces_workspace_changelist")).status_code == 200
    response = client.post(reverse("admin:logout"))
    assert not response["Location"].startswith(reverse("reauthenticate"))
    assert "_auth_user_id" not in client.session
