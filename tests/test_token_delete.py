"""Deleting a token (`tokens:delete`): the warning dialog asks for the typed key."""

from __future__ import annotations

import pytest

from audit.models import AuditAction, AuditEvent
from tests.helpers import HTMX, MANAGERS, WARNING, text, triggers, url
from tokens.models import Token

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", MANAGERS)
def test_delete_dialog_warns_and_asks_for_the_key(workspace, role_client, token, role):
    page = text(role_client[role].get(url("delete", workspace, token), headers=HTMX))
    assert WARNING in page
    assert "Never used" in page
    assert 'data-confirm-match="STRIPE_SECRET"' in page
    assert "data-confirm-submit" in page


def test_delete_needs_the_typed_key(workspace, owner_client, token):
    response = owner_client.post(
        url("delete", workspace, token), {"confirm_key": "stripe_secret"}, headers=HTMX
    )
    assert response.status_code == 200
    assert "Type the key exactly as shown (STRIPE_SECRET) to delete it." in text(response)
    assert Token.objects.filter(pk=token.pk).exists()


@pytest.mark.parametrize("role", MANAGERS)
def test_delete_with_htmx(workspace, role_client, token, role):
    response = role_client[role].post(
        url("delete", workspace, token), {"confirm_key": "STRIPE_SECRET"}, headers=HTMX
    )
    assert response.status_code == 204
    assert triggers(response)["showToast"]["message"] == "Token STRIPE_SECRET deleted for good."
    assert "tokensChanged" in triggers(response)
    assert not Token.objects.filter(pk=token.pk).exists()
    assert AuditEvent.objects.filter(action=AuditAction.DELETED, token_key="STRIPE_SECRET").exists()


def test_delete_without_javascript(workspace, owner_client, token):
    response = owner_client.post(url("delete", workspace, token), {"confirm_key": "STRIPE_SECRET"})
    assert response.status_code == 302
    assert response["Location"] == url("list", workspace)
    assert not Token.objects.exists()


def test_revoked_tokens_can_be_deleted(workspace, owner_client, token):
    token.revoke(by=None)
    owner_client.post(url("delete", workspace, token), {"confirm_key": "STRIPE_SECRET"})
    assert not Token.objects.exists()
