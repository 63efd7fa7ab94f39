"""The admin for access keys: read-only, no add page, revoke and delete through the model (so
they are audited), and never the key or its hash."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from access.models import AccessKey
from audit.models import AuditAction, AuditEvent
from tests.factories import make_access_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client():
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-x-123")
    client = Client()
    client.force_login(user)
    client.user = user
    return client


def test_lists_and_shows_keys_without_the_key_or_hash(admin_client, workspace):
    row, key = make_access_key(workspace, allowed_networks=["203.0.113.0/24"])
    listing = admin_client.get(reverse("admin:access_accesskey_changelist"))
    page = admin_client.get(reverse("admin:access_accesskey_change", args=[row.pk]))
    for response in (listing, page):
        assert response.status_code == 200
        assert f"{row.identifier}…" in response.text
        assert key not in response.text and key[10:20] not in response.text
        assert row.key_hash not in response.text
    assert "203.0.113.0/24" in page.text
    assert admin_client.get(reverse("admin:access_accesskey_add")).status_code == 403


def test_the_change_page_changes_nothing(admin_client, workspace):
    row, _ = make_access_key(workspace)
    url = reverse("admin:access_accesskey_change", args=[row.pk])
    admin_client.post(url, {"name": "renamed", "allowed_networks": "[]"})
    row.refresh_from_db()
    assert row.name == "ci-deploy"


def test_revoking_from_the_list_is_audited(admin_client, workspace):
    row, key = make_access_key(workspace)
    response = admin_client.post(
        reverse("admin:access_accesskey_changelist"),
        {"action": "revoke_selected", "_selected_action": [row.pk]},
        follow=True,
    )
    assert "Revoked 1 access key(s): ci-deploy." in response.text
    assert AccessKey.objects.authenticate(key) is None
    event = AuditEvent.objects.get(action=AuditAction.ACCESS_KEY_REVOKED)
    assert event.actor == admin_client.user


def test_deleting_is_audited(admin_client, workspace):
    row, _ = make_access_key(workspace)
    response = admin_client.post(
        reverse("admin:access_accesskey_delete", args=[row.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not AccessKey.objects.exists()
    event = AuditEvent.objects.get(action=AuditAction.ACCESS_KEY_DELETED)
    assert event.actor == admin_client.user and event.detail["access_key"] == "ci-deploy"
