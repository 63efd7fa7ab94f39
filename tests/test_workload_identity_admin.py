"""The admin for workload identities: read-only, no add page, deletion through the model (so
it is audited and ends the credentials), and no credential anywhere."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from identities.models import WorkloadCredential, WorkloadIdentity
from tests.factories import make_workload_identity

pytestmark = pytest.mark.django_db
GITHUB = "https://token.actions.githubusercontent.com"


@pytest.fixture
def admin_client():
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw-x-123")
    client = Client()
    client.force_login(user)
    client.user = user
    return client


def test_lists_and_shows_identities_read_only(admin_client, workspace):
    identity = make_workload_identity(workspace, issuer=GITHUB)
    _, credential = WorkloadCredential.objects.issue(identity, {"sub": "x"}, address=None)
    listing = admin_client.get(reverse("admin:identities_workloadidentity_changelist"))
    page = admin_client.get(reverse("admin:identities_workloadidentity_change", args=[identity.pk]))
    for response in (listing, page):
        assert response.status_code == 200
        assert "gh-deploy" in response.text
        assert credential not in response.text and credential[10:20] not in response.text
    assert "refs/heads/main" in page.text
    assert admin_client.get(reverse("admin:identities_workloadidentity_add")).status_code == 403


def test_deleting_in_the_admin_is_audited_and_ends_the_credentials(admin_client, workspace):
    identity = make_workload_identity(workspace, issuer=GITHUB)
    WorkloadCredential.objects.issue(identity, {"sub": "x"}, address=None)
    url = reverse("admin:identities_workloadidentity_delete", args=[identity.pk])
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not WorkloadIdentity.objects.exists() and not WorkloadCredential.objects.exists()
    event = AuditEvent.objects.get(action=AuditAction.WORKLOAD_IDENTITY_DELETED)
    assert event.actor == admin_client.user
