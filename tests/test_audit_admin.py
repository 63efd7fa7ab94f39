"""The audit trail in the Django admin (audit/admin.py): listed, read as a sentence, never
added, edited or deleted there."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(workspace) -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_the_admin_lists_events_and_shows_one_as_its_sentence(staff, workspace):
    event = AuditEvent.record(
        workspace,
        AuditAction.MEMBER_ADDED,
        actor_name="olivia",
        detail={"member": "zed", "role": "viewer"},
    )

    listing = staff.get(reverse("admin:audit_auditevent_changelist"))
    page = staff.get(reverse("admin:audit_auditevent_change", args=[event.pk]))

    assert listing.status_code == 200 and "olivia" in listing.content.decode()
    assert page.status_code == 200
    assert "olivia added zed as Viewer" in page.content.decode()


def test_nobody_adds_edits_or_deletes_an_event_in_the_admin(staff, workspace):
    event = AuditEvent.record(workspace, AuditAction.KEY_ROTATED)

    assert staff.get(reverse("admin:audit_auditevent_add")).status_code == 403
    staff.post(reverse("admin:audit_auditevent_delete", args=[event.pk]), {"post": "yes"})
    staff.post(reverse("admin:audit_auditevent_change", args=[event.pk]), {"action": "x"})

    event.refresh_from_db()
    assert event.action == AuditAction.KEY_ROTATED
