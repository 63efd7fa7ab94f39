"""The Reminders page (`notifications:reminders`, `notifications:workspace_reminders`): each
owner or editor turns their own expiry reminders off and on; an owner turns them off for the
whole workspace; viewers read it and get none; posts need the CSRF token; odd input changes
nothing it should not."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import MembershipFactory, UserFactory
from tests.helpers import MANAGERS, text
from workspaces.models import Membership, Role

pytestmark = pytest.mark.django_db


def page(workspace) -> str:
    return reverse("notifications:reminders", args=[workspace.slug])


def switch(workspace) -> str:
    return reverse("notifications:workspace_reminders", args=[workspace.slug])


def membership(client) -> Membership:
    return Membership.objects.get(user=client.user)


@pytest.mark.parametrize("role", MANAGERS)
def test_owner_and_editor_turn_their_own_reminders_off_and_on(workspace, role_client, role):
    client = role_client[role]
    assert 'name="expiry_reminders" id="id_expiry_reminders" checked' in text(
        client.get(page(workspace))
    )

    response = client.post(page(workspace), {}, follow=True)  # the box unticked
    assert "You will get no more expiry reminders for this workspace." in text(response)
    assert membership(client).expiry_reminders is False
    assert 'id="id_expiry_reminders" checked' not in text(response)

    response = client.post(page(workspace), {"expiry_reminders": "on"}, follow=True)
    assert "You will get expiry reminders for this workspace." in text(response)
    assert membership(client).expiry_reminders is True


def test_turning_mine_off_leaves_the_others_alone(workspace, owner_client, editor_client):
    owner_client.post(page(workspace), {})
    assert membership(owner_client).expiry_reminders is False
    assert membership(editor_client).expiry_reminders is True
    workspace.refresh_from_db()
    assert workspace.reminders_enabled is True


def test_the_page_names_the_thresholds(workspace, viewer_client, settings):
    settings.COFFER_REMINDER_DAYS = [14, 1, 0]
    assert "Reminders go out 14 days before, 1 day before, on the day." in text(
        viewer_client.get(page(workspace))
    )


def test_viewer_reads_the_page_but_has_nothing_to_switch(workspace, viewer_client):
    response = viewer_client.get(page(workspace))
    assert response.status_code == 200
    assert "Viewers get no reminders: they cannot renew a token." in text(response)
    assert 'name="expiry_reminders"' not in text(response)
    assert 'name="reminders_enabled"' not in text(response)
    assert viewer_client.post(page(workspace), {}).status_code == 403
    assert membership(viewer_client).expiry_reminders is True, "unchanged"


def test_only_the_owner_sees_and_uses_the_workspace_switch(workspace, owner_client, editor_client):
    assert 'name="reminders_enabled"' in text(owner_client.get(page(workspace)))
    assert 'name="reminders_enabled"' not in text(editor_client.get(page(workspace)))
    assert editor_client.post(switch(workspace), {}).status_code == 403
    workspace.refresh_from_db()
    assert workspace.reminders_enabled is True


def test_owner_turns_reminders_off_for_the_workspace_and_on_again(
    workspace, owner_client, editor_client
):
    response = owner_client.post(switch(workspace), {}, follow=True)
    assert "Expiry reminders are off for Acme." in text(response)
    workspace.refresh_from_db()
    assert workspace.reminders_enabled is False
    assert "An owner has turned expiry reminders off for Acme." in text(
        editor_client.get(page(workspace))
    )

    owner_client.post(switch(workspace), {"reminders_enabled": "on"})
    workspace.refresh_from_db()
    assert workspace.reminders_enabled is True


def test_the_workspace_switch_takes_no_get(workspace, owner_client):
    assert owner_client.get(switch(workspace)).status_code == 405


def test_outsiders_get_404(workspace, outsider_client):
    assert outsider_client.get(page(workspace)).status_code == 404
    assert outsider_client.post(page(workspace), {}).status_code == 404
    assert outsider_client.post(switch(workspace), {}).status_code == 404
    workspace.refresh_from_db()
    assert workspace.reminders_enabled is True


@pytest.mark.parametrize("target", ["mine", "workspace"])
def test_a_post_without_the_csrf_token_is_refused(workspace, target):
    owner = UserFactory(username="csrf-owner")
    MembershipFactory(workspace=workspace, user=owner, role=Role.OWNER)
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    client.get(page(workspace))  # a CSRF cookie, but no token in the form
    response = client.post(page(workspace) if target == "mine" else switch(workspace), {})
    assert response.status_code == 403
    workspace.refresh_from_db()
    assert workspace.reminders_enabled is True
    assert Membership.objects.get(user=owner).expiry_reminders is True


@pytest.mark.parametrize(
    ("data", "wanted"),
    [
        ({"expiry_reminders": "false"}, False),
        ({"expiry_reminders": "0"}, True),  # a ticked box sends any value but "false"
        ({"expiry_reminders": "\x00"}, True),
        ({"expiry_reminders": "x" * 10_000}, True),
        ({"expiry_reminders": ["on", "off"]}, True),
        ({"unexpected": "field"}, False),
    ],
)
def test_odd_input_is_read_as_a_checkbox_and_never_errors(workspace, editor_client, data, wanted):
    response = editor_client.post(page(workspace), data)
    assert response.status_code == 302
    assert membership(editor_client).expiry_reminders is wanted
    assert editor_client.post(switch(workspace), data).status_code == 403, "editors cannot"
    workspace.refresh_from_db()
    assert workspace.reminders_enabled is True
