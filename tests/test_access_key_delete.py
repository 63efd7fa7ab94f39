"""Deleting an access key (`access:delete`): owners type its name; gone for good, recorded."""

from __future__ import annotations

import pytest

from access.models import AccessKey
from audit.models import AuditAction, AuditEvent
from tests.factories import make_access_key
from tests.helpers import ACCESS_WARNING, HTMX, access_url, text, triggers

pytestmark = pytest.mark.django_db


@pytest.fixture
def made(workspace):
    return make_access_key(workspace, name="ci-deploy")


def test_dialog_asks_for_the_name(workspace, owner_client, made):
    key, _ = made
    page = text(owner_client.get(access_url("delete", workspace, key), headers=HTMX))
    assert ACCESS_WARNING in page
    assert 'Type <strong class="font-monospace">ci-deploy</strong> to confirm' in page
    assert 'data-confirm-match="ci-deploy"' in page
    assert "Delete access key" in page


@pytest.mark.parametrize("typed", ["", "ci-deplo", "CI-DEPLOY", "ci-deploy-x"])
def test_wrong_name_is_refused(workspace, owner_client, made, typed):
    key, secret = made
    response = owner_client.post(
        access_url("delete", workspace, key), {"confirm_name": typed}, headers=HTMX
    )
    assert response.status_code == 200
    assert "Type the name exactly as shown (ci-deploy) to delete the key." in text(response)
    assert AccessKey.objects.authenticate(secret) is not None
    assert not AuditEvent.objects.filter(action=AuditAction.ACCESS_KEY_DELETED).exists()


def test_delete_with_htmx(workspace, owner_client, made):
    key, secret = made
    response = owner_client.post(
        access_url("delete", workspace, key), {"confirm_name": "ci-deploy"}, headers=HTMX
    )
    assert response.status_code == 204
    assert "accessKeysChanged" in triggers(response)
    assert not AccessKey.objects.filter(pk=key.pk).exists()
    assert AccessKey.objects.authenticate(secret) is None
    event = AuditEvent.objects.get(action=AuditAction.ACCESS_KEY_DELETED)
    assert event.actor == owner_client.user
    assert event.detail["access_key"] == "ci-deploy"


def test_delete_without_javascript(workspace, owner_client, made):
    key, _ = made
    response = owner_client.post(
        access_url("delete", workspace, key), {"confirm_name": "ci-deploy"}
    )
    assert response.status_code == 302
    page = text(owner_client.get(response["Location"]))
    assert "Access key ci-deploy deleted for good." in page
    assert "No access keys yet" in page


def test_a_revoked_key_can_be_deleted(workspace, owner_client, made):
    key, _ = made
    key.revoke()
    owner_client.post(access_url("delete", workspace, key), {"confirm_name": "ci-deploy"})
    assert not AccessKey.objects.exists()


@pytest.mark.parametrize("role", ["editor", "viewer"])
def test_editors_and_viewers_get_403(workspace, role_client, made, role):
    key, _ = made
    client = role_client[role]
    assert client.get(access_url("delete", workspace, key)).status_code == 403
    response = client.post(access_url("delete", workspace, key), {"confirm_name": "ci-deploy"})
    assert response.status_code == 403
    assert AccessKey.objects.filter(pk=key.pk).exists()


def test_another_workspaces_key_gets_404(workspace, other_workspace, owner_client):
    theirs, _ = make_access_key(other_workspace, name="ci-deploy")
    response = owner_client.post(
        access_url("delete", workspace, theirs), {"confirm_name": "ci-deploy"}
    )
    assert response.status_code == 404
    assert AccessKey.objects.filter(pk=theirs.pk).exists()
