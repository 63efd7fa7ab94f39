"""Revoking a token (`tokens:revoke`): the warning dialog, with and without htmx, only once."""

from __future__ import annotations

import datetime as dt

import pytest

from audit.models import AuditAction, AuditEvent
from tests.helpers import HTMX, MANAGERS, WARNING, text, triggers, url
from tokens.models import Token, TokenStatus

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", MANAGERS)
def test_revoke_dialog_warns_and_says_when_last_used(workspace, role_client, token, role):
    page = text(role_client[role].get(url("revoke", workspace, token), headers=HTMX))
    assert WARNING in page
    assert "Never used" in page
    assert "Revoke token" in page
    Token.objects.filter(pk=token.pk).update(
        last_used_at=dt.datetime(2026, 3, 4, 10, 30, tzinfo=dt.UTC)
    )
    page = text(role_client[role].get(url("revoke", workspace, token), headers=HTMX))
    assert "Mar 4, 2026, 10:30 UTC" in page
    assert "Never used" not in page


def test_revoke_with_htmx(workspace, editor_client, token):
    response = editor_client.post(url("revoke", workspace, token), headers=HTMX)
    assert response.status_code == 204
    assert triggers(response)["tokensChanged"] == {"id": str(token.pk)}
    assert "revoked" in triggers(response)["showToast"]["message"]
    token.refresh_from_db()
    assert token.status == TokenStatus.REVOKED
    assert token.revoked_by == editor_client.user


def test_revoke_without_javascript(workspace, owner_client, token):
    response = owner_client.post(url("revoke", workspace, token))
    assert response.status_code == 302
    assert "Token STRIPE_SECRET revoked." in text(owner_client.get(response["Location"]))


def test_revoking_twice_is_refused_clearly(workspace, owner_client, token):
    token.revoke(by=None)
    page = text(owner_client.get(url("revoke", workspace, token), headers=HTMX))
    assert "This token is already revoked." in page
    response = owner_client.post(url("revoke", workspace, token))
    assert response.status_code == 409
    assert "This token is already revoked." in text(response)
    assert AuditEvent.objects.filter(action=AuditAction.REVOKED).count() == 1
