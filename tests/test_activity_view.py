"""The Activity tab (`tokens:activity`): the workspace's audit trail, newest first."""

from __future__ import annotations

import pytest

from tests.factories import AuditEventFactory, TokenFactory
from tests.helpers import HTMX, ROLES, selected_tab, text, url
from tokens.models import AuditAction, AuditEvent

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
    response = role_client[role].get(url("activity", workspace))
    page = text(response)
    assert response.status_code == 200
    assert page.index("NEWER_KEY") < page.index("OLDER_KEY")
    assert "Changed Token Value, Environments" in page
    assert selected_tab(page, url("activity", workspace))


def test_activity_shows_only_this_workspace(workspace, other_workspace, owner_client):
    AuditEventFactory(workspace=other_workspace, token_key="GLOBEX_KEY")
    AuditEventFactory(workspace=workspace, token_key="ACME_KEY")
    page = text(owner_client.get(url("activity", workspace)))
    assert "ACME_KEY" in page and "GLOBEX_KEY" not in page


def test_activity_is_paginated_and_has_a_fragment(workspace, owner_client):
    AuditEvent.objects.bulk_create(
        AuditEvent(workspace=workspace, action=AuditAction.CREATED, token_key=f"K{n:03d}")
        for n in range(120)
    )
    page = text(owner_client.get(url("activity", workspace, page=3)))
    assert "101–120 of 120 events" in page
    fragment = owner_client.get(url("activity", workspace, page=2), headers=HTMX)
    assert "<html" not in text(fragment)
    assert text(fragment).lstrip().startswith('<div id="activity-list"')


def test_activity_is_empty_friendly(workspace, viewer_client):
    assert "No activity yet" in text(viewer_client.get(url("activity", workspace)))


def test_activity_query_count_is_constant(workspace, owner_client, django_assert_max_num_queries):
    AuditEvent.objects.bulk_create(
        AuditEvent(workspace=workspace, action=AuditAction.CREATED, token_key=f"K{n}")
        for n in range(500)
    )
    with django_assert_max_num_queries(7):
        owner_client.get(url("activity", workspace))


def test_activity_rows_link_to_their_token(workspace, viewer_client):
    kept = TokenFactory(workspace=workspace, key="KEPT_KEY")
    gone = TokenFactory(workspace=workspace, key="GONE_KEY")
    gone.delete_token()
    page = text(viewer_client.get(url("activity", workspace)))
    detail = url("detail", workspace, kept)
    assert f'<a href="{detail}"><code>KEPT_KEY</code></a>' in page
    assert "<code>GONE_KEY</code>" in page, "a deleted token's events keep its key"
    assert f'/tokens/{gone.pk}/"' not in page, "but no link to a page that is gone"
    assert viewer_client.get(detail).status_code == 200
