"""The Members page: owners invite people (tests/test_invitations.py), change roles and remove
them; a workspace keeps an owner. Nobody is added directly: there is no Add member."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import MembershipFactory, UserFactory
from tests.helpers import HTMX, triggers
from workspaces.models import Membership, Role

pytestmark = pytest.mark.django_db

LAST_OWNER = "A workspace needs at least one owner. Make someone else an owner first."


def roles(workspace) -> dict[str, str]:
    return dict(workspace.memberships.values_list("user__username", "role"))


# --- the page ----------------------------------------------------------------------------------


@pytest.mark.parametrize("member", ["owner_client", "editor_client", "viewer_client"])
def test_every_member_sees_who_belongs_and_their_roles(request, member, workspace):
    client = request.getfixturevalue(member)
    MembershipFactory(workspace=workspace, user__username="zed", role=Role.EDITOR)

    html = client.get(reverse("members", args=["acme"])).content.decode()

    assert "<h1>Members</h1>" in html
    assert "zed" in html and "zed@example.com" in html
    assert f"{client.user.username} <span" in html and "(you)" in html


def test_members_fragment_for_htmx(owner_client, workspace):
    response = owner_client.get(reverse("members", args=["acme"]), headers=HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html and "<table" in html
    assert "olivia" in html
    assert "HX-Request" in response["Vary"]


def test_owner_sees_add_role_and_remove_buttons(owner_client, workspace):
    other = MembershipFactory(workspace=workspace, role=Role.VIEWER)

    html = owner_client.get(reverse("members", args=["acme"])).content.decode()

    assert "Invite member" in html and "Add member" not in html
    assert reverse("member_edit", args=["acme", other.pk]) in html
    assert reverse("member_remove", args=["acme", other.pk]) in html
    assert 'hx-trigger="membersChanged from:body"' in html


@pytest.mark.parametrize("member", ["editor_client", "viewer_client"])
def test_editors_and_viewers_see_no_manage_buttons(request, member, workspace):
    client = request.getfixturevalue(member)

    for headers in ({}, HTMX):
        html = client.get(reverse("members", args=["acme"]), headers=headers).content.decode()
        assert "Invite member" not in html and "Add member" not in html
        assert "/members/invite/" not in html and "/edit/" not in html and "/remove/" not in html


# --- no direct adding ----------------------------------------------------------------------------


def test_there_is_no_way_to_add_an_account_without_its_consent(owner_client, workspace):
    UserFactory(username="newbie")

    response = owner_client.post(
        "/w/acme/members/add/", {"username": "newbie", "role": "viewer"}, headers=HTMX
    )

    assert response.status_code == 404
    assert "newbie" not in roles(workspace)


def test_an_empty_post_says_what_is_required(owner_client, workspace):
    other = MembershipFactory(workspace=workspace, role=Role.VIEWER)

    invite = owner_client.post(reverse("invitation_create", args=["acme"]), headers=HTMX)
    edit = owner_client.post(reverse("member_edit", args=["acme", other.pk]), headers=HTMX)

    assert "This field is required." in invite.content.decode()
    assert "This field is required." in edit.content.decode()
    assert workspace.memberships.count() == 2


# --- changing roles ----------------------------------------------------------------------------


def test_owner_changes_a_members_role(owner_client, workspace):
    other = MembershipFactory(workspace=workspace, user__username="zed", role=Role.VIEWER)
    url = reverse("member_edit", args=["acme", other.pk])

    form = owner_client.get(url, headers=HTMX).content.decode()
    response = owner_client.post(url, {"role": "owner"}, headers=HTMX)

    assert "Change role of zed" in form
    assert response.status_code == 204
    assert triggers(response)["showToast"]["message"] == "zed is now Owner."
    assert "HX-Redirect" not in response
    assert roles(workspace)["zed"] == Role.OWNER


def test_demoting_the_last_owner_is_refused(owner_client, workspace):
    me = Membership.objects.get(workspace=workspace, user=owner_client.user)
    MembershipFactory(workspace=workspace, role=Role.EDITOR)

    for headers in (HTMX, {}):
        response = owner_client.post(
            reverse("member_edit", args=["acme", me.pk]), {"role": "editor"}, headers=headers
        )
        assert response.status_code == 200
        assert LAST_OWNER in response.content.decode()
    assert roles(workspace)["olivia"] == Role.OWNER


def test_an_owner_may_step_down_when_another_owner_remains(owner_client, workspace):
    me = Membership.objects.get(workspace=workspace, user=owner_client.user)
    MembershipFactory(workspace=workspace, role=Role.OWNER)

    response = owner_client.post(
        reverse("member_edit", args=["acme", me.pk]), {"role": "viewer"}, headers=HTMX
    )

    # Their own buttons change, so the whole page reloads (the toast comes from the message).
    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("members", args=["acme"])
    assert roles(workspace)["olivia"] == Role.VIEWER
    page = owner_client.get(reverse("members", args=["acme"])).content.decode()
    assert "olivia is now Viewer." in page
    assert "Add member" not in page


# --- removing ----------------------------------------------------------------------------------


def test_owner_removes_a_member(owner_client, workspace):
    other = MembershipFactory(workspace=workspace, user__username="zed", role=Role.EDITOR)
    url = reverse("member_remove", args=["acme", other.pk])

    confirm = owner_client.get(url, headers=HTMX).content.decode()
    response = owner_client.post(url, headers=HTMX)

    assert "Remove zed?" in confirm and "zed will lose access to Acme at once." in confirm
    assert response.status_code == 204
    assert triggers(response)["showToast"]["message"] == "zed removed from Acme."
    assert "zed" not in roles(workspace)


def test_removed_member_loses_access(owner_client, editor_client, workspace):
    eddie = Membership.objects.get(workspace=workspace, user=editor_client.user)

    owner_client.post(reverse("member_remove", args=["acme", eddie.pk]))

    assert editor_client.get(reverse("products", args=["acme"])).status_code == 404


def test_removing_the_last_owner_is_refused(owner_client, workspace):
    me = Membership.objects.get(workspace=workspace, user=owner_client.user)
    url = reverse("member_remove", args=["acme", me.pk])

    confirm = owner_client.get(url, headers=HTMX).content.decode()
    for headers in (HTMX, {}):
        response = owner_client.post(url, headers=headers)
        assert response.status_code == 200
        assert LAST_OWNER in response.content.decode()

    assert LAST_OWNER in confirm
    assert "disabled>Remove member" in confirm
    assert roles(workspace)["olivia"] == Role.OWNER


def test_an_owner_leaving_is_sent_home(owner_client, workspace):
    me = Membership.objects.get(workspace=workspace, user=owner_client.user)
    MembershipFactory(workspace=workspace, role=Role.OWNER)

    response = owner_client.post(reverse("member_remove", args=["acme", me.pk]), headers=HTMX)

    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("home")
    assert "olivia" not in roles(workspace)
    assert owner_client.get(reverse("members", args=["acme"])).status_code == 404


# --- roles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("member", ["editor_client", "viewer_client"])
def test_editors_and_viewers_get_403_on_member_actions(request, member, workspace):
    client = request.getfixturevalue(member)
    UserFactory(username="newbie")
    owner = MembershipFactory(workspace=workspace, role=Role.OWNER)
    urls = [
        reverse("invitation_create", args=["acme"]),
        reverse("member_edit", args=["acme", owner.pk]),
        reverse("member_remove", args=["acme", owner.pk]),
    ]
    before = roles(workspace)

    for url in urls:
        for headers in ({}, HTMX):
            assert client.get(url, headers=headers).status_code == 403
            data = {"email": "newbie@example.com", "role": "owner"}
            assert client.post(url, data, headers=headers).status_code == 403
    # Not even one's own role.
    mine = Membership.objects.get(workspace=workspace, user=client.user)
    response = client.post(reverse("member_edit", args=["acme", mine.pk]), {"role": "owner"})
    assert response.status_code == 403
    assert roles(workspace) == before
