"""Leave workspace (Members page): any member may leave, except the last owner."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from tests.factories import MembershipFactory
from tests.helpers import HTMX, text
from workspaces.models import Membership, Role

pytestmark = pytest.mark.django_db

LEAVE = reverse("workspace_leave", args=["acme"])


@pytest.mark.parametrize("member", ["owner_client", "editor_client", "viewer_client"])
def test_every_member_sees_leave_workspace(request, member, workspace):
    client = request.getfixturevalue(member)

    page = text(client.get(reverse("members", args=["acme"])))

    assert "Leave workspace" in page and f'href="{LEAVE}"' in page


@pytest.mark.parametrize("member", ["editor_client", "viewer_client"])
def test_a_member_leaves_and_is_sent_home(request, member, workspace):
    client = request.getfixturevalue(member)

    dialog = text(client.get(LEAVE, headers=HTMX))
    response = client.post(LEAVE, headers=HTMX)

    assert "Leave Acme?" in dialog and "You lose access to Acme at once." in dialog
    assert response.status_code == 204 and response["HX-Redirect"] == reverse("home")
    assert not Membership.objects.filter(workspace=workspace, user=client.user).exists()
    assert client.get(reverse("members", args=["acme"])).status_code == 404
    event = AuditEvent.objects.get(action=AuditAction.MEMBER_LEFT)
    assert event.actor == client.user and event.subject == client.user.username


def test_leaving_without_javascript_redirects_home_with_a_message(viewer_client, workspace):
    response = viewer_client.post(LEAVE)

    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert "You left Acme." in text(viewer_client.get(reverse("home"), follow=True))


def test_the_last_owner_cannot_leave(owner_client, workspace):
    dialog = text(owner_client.get(LEAVE, headers=HTMX))
    response = owner_client.post(LEAVE, headers=HTMX)

    expected = "A workspace needs at least one owner. Make someone else an owner first."
    assert expected in dialog and "disabled" in dialog
    assert response.status_code == 200 and expected in text(response)
    assert Membership.objects.filter(workspace=workspace, user=owner_client.user).exists()


def test_an_owner_with_a_co_owner_can_leave(owner_client, workspace):
    MembershipFactory(workspace=workspace, role=Role.OWNER)

    assert owner_client.post(LEAVE).status_code == 302
    assert not Membership.objects.filter(workspace=workspace, user=owner_client.user).exists()


def test_outsiders_get_404(outsider_client, workspace):
    assert outsider_client.get(LEAVE).status_code == 404
    assert outsider_client.post(LEAVE).status_code == 404


def test_a_member_can_leave_a_workspace_that_requires_two_factor(viewer_client, workspace):
    workspace.require_two_factor = True
    workspace.save()

    assert viewer_client.get(reverse("members", args=["acme"])).status_code == 302, "sent to 2FA"
    assert viewer_client.post(LEAVE).status_code == 302
    assert not Membership.objects.filter(workspace=workspace, user=viewer_client.user).exists()
