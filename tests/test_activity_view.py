"""The Activity tab (`audit:activity`): the workspace's audit trail, newest first."""

from __future__ import annotations

import pytest

from audit.models import AuditAction, AuditEvent
from tests.factories import AuditEventFactory, TokenFactory
from tests.helpers import HTMX, ROLES, event_sentences, selected_tab, text, url

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", ROLES)
def test_activity_lists_the_workspace_trail_newest_first(workspace, role_client, role):
    AuditEventFactory(workspace=workspace, token_key="OLDER_KEY", actor_name="olivia")
    AuditEventFactory(
        workspace=workspace,
        action=AuditAction.UPDATED,
        token_key="NEWER_KEY",
        actor_name="eddie",
        detail={"changed": ["value", "environments"]},
    )
    response = role_client[role].get(url("audit:activity", workspace))
    page = text(response)
    assert response.status_code == 200
    assert event_sentences(page) == [
        "eddie changed the value and environments of NEWER_KEY",
        "olivia created OLDER_KEY",
    ]
    assert selected_tab(page, url("audit:activity", workspace))


def test_activity_shows_only_this_workspace(workspace, other_workspace, owner_client):
    AuditEventFactory(workspace=other_workspace, token_key="GLOBEX_KEY")
    AuditEventFactory(workspace=workspace, token_key="ACME_KEY")
    page = text(owner_client.get(url("audit:activity", workspace)))
    assert "ACME_KEY" in page and "GLOBEX_KEY" not in page


def test_activity_is_paginated_and_has_a_fragment(workspace, owner_client):
    AuditEvent.objects.bulk_create(
        AuditEvent(workspace=workspace, action=AuditAction.CREATED, token_key=f"K{n:03d}")
        for n in range(120)
    )
    page = text(owner_client.get(url("audit:activity", workspace, page=3)))
    assert "101–120 of 120 events" in page
    fragment = owner_client.get(url("audit:activity", workspace, page=2), headers=HTMX)
    assert "<html" not in text(fragment)
    assert text(fragment).lstrip().startswith('<div id="activity-list"')


def test_activity_is_empty_friendly(workspace, viewer_client):
    assert "No activity yet" in text(viewer_client.get(url("audit:activity", workspace)))


def test_activity_query_count_is_constant(workspace, owner_client, django_assert_max_num_queries):
    AuditEvent.objects.bulk_create(
        AuditEvent(workspace=workspace, action=AuditAction.CREATED, token_key=f"K{n}")
        for n in range(500)
    )
    with django_assert_max_num_queries(8):
        owner_client.get(url("audit:activity", workspace))


def test_activity_rows_link_to_their_token(workspace, viewer_client):
    kept = TokenFactory(workspace=workspace, key="KEPT_KEY")
    gone = TokenFactory(workspace=workspace, key="GONE_KEY")
    gone.delete_token()
    page = text(viewer_client.get(url("audit:activity", workspace)))
    detail = url("detail", workspace, kept)
    link = (
        f'<a class="event-key-link" href="{detail}">Open '
        '<span class="token-key event-key" title="KEPT_KEY">KEPT_<wbr>KEY</span>'
    )
    assert link in page, "the details link the token's page"
    assert "system deleted GONE_KEY" in event_sentences(page), "its events keep its key"
    assert f'/tokens/{gone.pk}/"' not in page, "but no link to a page that is gone"
    assert viewer_client.get(detail).status_code == 200
