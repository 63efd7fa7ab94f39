"""History's Destroy dialog (`tokens:destroy_version`): owners and editors erase one old
version for good; the current version cannot be destroyed; viewers get 403, outsiders 404."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from tests.factories import TokenFactory
from tests.helpers import HTMX, MANAGERS, text, triggers
from tokens.models import TokenVersion

pytestmark = pytest.mark.django_db

FIRST, SECOND = "first-value-" + "a" * 16, "second-value-" + "b" * 16


@pytest.fixture
def edited(workspace):
    """API_KEY set twice: the first value is the old version, the second the current one."""
    token = TokenFactory(workspace=workspace, key="API_KEY", value=FIRST)
    token.set_value(SECOND)
    return token


def destroy(workspace, token, **query) -> str:
    path = reverse("tokens:destroy_version", args=[workspace.slug, token.pk])
    return path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def detail(workspace, token) -> str:
    return reverse("tokens:detail", args=[workspace.slug, token.pk])


def old(token) -> TokenVersion:
    return token.versions.get(version=0)


@pytest.mark.parametrize("role", MANAGERS)
def test_owner_and_editor_destroy_an_old_version(workspace, role_client, role, edited):
    client = role_client[role]
    response = client.post(destroy(workspace, edited), {"version": "0"}, headers=HTMX)

    assert response.status_code == 204
    assert "tokenHistoryChanged" in triggers(response)
    version = old(edited)
    assert version.is_destroyed and bytes(version.ciphertext) == b"" and version.value_hint == ""
    assert version.destroyed_by == client.user
    edited.refresh_from_db()
    assert (edited.value_version, edited.reveal()) == (1, SECOND), "the current value stays"


def test_the_dialog_preselects_the_version_and_explains(workspace, editor_client, edited):
    page = text(editor_client.get(destroy(workspace, edited, version=0), headers=HTMX))
    assert "erased for good; it can never be restored" in page
    assert 'value="0" checked' in page
    assert 'value="1"' not in page, "the current version is not offered"
    assert FIRST not in page and SECOND not in page


def test_plain_post_redirects_to_the_token_page_with_a_message(workspace, editor_client, edited):
    response = editor_client.post(destroy(workspace, edited), {"version": "0"})
    assert response.status_code == 302 and response["Location"] == detail(workspace, edited)
    page = text(editor_client.get(response["Location"]))
    assert "destroyed for good" in page


def test_the_current_version_cannot_be_destroyed(workspace, editor_client, edited):
    response = editor_client.post(destroy(workspace, edited), {"version": "1"}, headers=HTMX)
    assert response.status_code == 200
    assert "Choose" in text(response), "the current version is not a choice"
    edited.refresh_from_db()
    assert edited.reveal() == SECOND
    assert not TokenVersion.objects.filter(destroyed_at__isnull=False).exists()


def test_a_token_with_one_version_has_nothing_to_destroy(workspace, editor_client):
    token = TokenFactory(workspace=workspace, key="ONLY_ONE", value=FIRST)
    response = editor_client.post(destroy(workspace, token), {"version": "0"}, headers=HTMX)
    assert response.status_code == 200
    assert "ONLY_ONE has no older version to destroy." in text(response)
    assert not token.versions.get().is_destroyed


def test_viewer_gets_403_and_nothing_changes(workspace, viewer_client, edited):
    assert viewer_client.get(destroy(workspace, edited)).status_code == 403
    assert viewer_client.post(destroy(workspace, edited), {"version": "0"}).status_code == 403
    assert not old(edited).is_destroyed


def test_outsider_gets_404(outsider_client, workspace, edited):
    response = outsider_client.post(destroy(workspace, edited), {"version": "0"})
    assert response.status_code == 404
    assert not old(edited).is_destroyed


def test_a_destroyed_version_cannot_be_restored(workspace, editor_client, edited):
    editor_client.post(destroy(workspace, edited), {"version": "0"})
    restore = reverse("tokens:restore", args=[workspace.slug, edited.pk])

    dialog = text(editor_client.get(restore, headers=HTMX))
    assert "API_KEY has no older version to restore." in dialog
    response = editor_client.post(restore, {"version": "0"}, headers=HTMX)
    assert response.status_code == 200
    edited.refresh_from_db()
    assert (edited.value_version, edited.reveal()) == (1, SECOND)


def test_destroying_twice_is_refused(workspace, editor_client, edited):
    editor_client.post(destroy(workspace, edited), {"version": "0"})
    response = editor_client.post(destroy(workspace, edited), {"version": "0"}, headers=HTMX)
    assert response.status_code == 200
    assert "has no older version to destroy" in text(response)
    assert AuditEvent.objects.filter(action=AuditAction.VERSION_DESTROYED).count() == 1


def test_history_keeps_the_line_and_says_who_destroyed_it(workspace, editor_client, edited):
    editor_client.post(destroy(workspace, edited), {"version": "0"})
    page = text(editor_client.get(detail(workspace, edited)))
    assert "Destroyed by eddie" in page
    assert 'aria-label="Destroy version 1"' not in page
    assert 'aria-label="Restore version 1"' not in page
    assert page.count("<tr>") >= 3, "both versions are still listed"


def test_destroy_is_audited_without_a_value(workspace, editor_client, edited):
    editor_client.post(destroy(workspace, edited), {"version": "0"})
    event = AuditEvent.objects.get(action=AuditAction.VERSION_DESTROYED)
    assert (event.token_id, event.token_key, event.actor_name) == (edited.pk, "API_KEY", "eddie")
    assert event.detail == {"destroyed_version": 0}
    assert FIRST not in str(event.detail) and "Version destroyed" in text(
        editor_client.get(detail(workspace, edited))
    )
