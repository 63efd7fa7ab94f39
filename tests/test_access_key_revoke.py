"""Revoking an access key (`access:revoke`): owners only, final, immediate, recorded."""

from __future__ import annotations

import datetime as dt

import pytest

from access.models import AccessKey
from audit.models import AuditAction, AuditEvent
from tests.factories import make_access_key
from tests.helpers import ACCESS_WARNING, HTMX, access_url, text, triggers

pytestmark = pytest.mark.django_db


@pytest.fixture
def made(workspace):
    return make_access_key(workspace, name="ci-deploy")


def test_dialog_warns_and_says_when_last_used(workspace, owner_client, made):
    key, secret = made
    page = text(owner_client.get(access_url("revoke", workspace, key), headers=HTMX))
    assert ACCESS_WARNING in page
    assert "Never used" in page
    assert "Revoke access key" in page
    assert f"{key.identifier}…" in page and secret not in page
    AccessKey.objects.filter(pk=key.pk).update(
        last_used_at=dt.datetime(2026, 3, 4, 10, 30, tzinfo=dt.UTC), last_used_from="192.0.2.9"
    )
    page = text(owner_client.get(access_url("revoke", workspace, key), headers=HTMX))
    assert "Mar 4, 2026, 10:30 UTC" in page and "from 192.0.2.9" in page


def test_revoke_with_htmx(workspace, owner_client, made):
    key, secret = made
    response = owner_client.post(access_url("revoke", workspace, key), headers=HTMX)
    assert response.status_code == 204
    events = triggers(response)
    assert "accessKeysChanged" in events and "closeModal" in events
    assert "ci-deploy revoked" in events["showToast"]["message"]
    key.refresh_from_db()
    assert key.is_revoked and key.revoked_by == owner_client.user
    assert AccessKey.objects.authenticate(secret) is None, "the API refuses it at once"
    event = AuditEvent.objects.get(action=AuditAction.ACCESS_KEY_REVOKED)
    assert event.actor == owner_client.user


def test_revoke_without_javascript(workspace, owner_client, made):
    key, _ = made
    response = owner_client.post(access_url("revoke", workspace, key))
    assert response.status_code == 302
    assert response["Location"] == access_url("list", workspace)
    page = text(owner_client.get(response["Location"]))
    assert "Access key ci-deploy revoked" in page, "the message as a toast"
    assert ">Revoked</span>" in page


def test_revoking_twice_says_so_and_changes_nothing(workspace, owner_client, made):
    key, _ = made
    owner_client.post(access_url("revoke", workspace, key))
    revoked_at = AccessKey.objects.get(pk=key.pk).revoked_at
    page = text(owner_client.get(access_url("revoke", workspace, key), headers=HTMX))
    assert "This access key is already revoked." in page
    response = owner_client.post(access_url("revoke", workspace, key))
    assert response.status_code == 409
    assert "This access key is already revoked." in text(response)
    assert AccessKey.objects.get(pk=key.pk).revoked_at == revoked_at
    assert AuditEvent.objects.filter(action=AuditAction.ACCESS_KEY_REVOKED).count() == 1


@pytest.mark.parametrize("role", ["editor", "viewer"])
def test_editors_and_viewers_get_403(workspace, role_client, made, role):
    key, secret = made
    client = role_client[role]
    assert client.get(access_url("revoke", workspace, key)).status_code == 403
    assert client.post(access_url("revoke", workspace, key), headers=HTMX).status_code == 403
    assert AccessKey.objects.authenticate(secret) is not None


def test_another_workspaces_key_gets_404(workspace, other_workspace, owner_client):
    theirs, secret = make_access_key(other_workspace)
    assert owner_client.post(access_url("revoke", workspace, theirs)).status_code == 404
    assert AccessKey.objects.authenticate(secret) is not None


def test_unknown_and_huge_ids_get_404(workspace, owner_client):
    for pk in (999_999, 2**63, 10**30):
        response = owner_client.get(f"/w/{workspace.slug}/tokens/access-keys/{pk}/revoke/")
        assert response.status_code == 404, pk
