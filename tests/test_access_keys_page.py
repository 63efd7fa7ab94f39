"""The Access keys tab (`access:list`): what the table shows, to whom, and at what cost."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from access.models import AccessKey
from tests.factories import AppFactory, ProductFactory, make_access_key
from tests.helpers import HTMX, ROLES, access_url, selected_tab, text, url

pytestmark = pytest.mark.django_db


def rows(page: str) -> int:
    return page.count("data-access-key-id=")


def test_the_tab_sits_beside_tokens_and_activity(workspace, viewer_client):
    page = text(viewer_client.get(url("list", workspace)))
    assert access_url("list", workspace) in page
    assert '<i aria-hidden="true" class="bi bi-robot"></i> Access keys</a>' in page
    tab = text(viewer_client.get(access_url("list", workspace)))
    assert selected_tab(tab, access_url("list", workspace))
    assert not selected_tab(tab, url("list", workspace))
    assert "Activity" in tab and "Tokens" in tab


def test_owner_sees_every_column(workspace, owner_client):
    product = ProductFactory(workspace=workspace, name="Payments", slug="payments")
    app = AppFactory(workspace=workspace, name="Checkout", slug="checkout")
    key, secret = make_access_key(
        workspace,
        name="ci-deploy",
        product=product,
        app=app,
        description="GitHub Actions deploys",
        allowed_networks=["203.0.113.0/24"],
        by=owner_client.user,
    )
    AccessKey.objects.filter(pk=key.pk).update(
        last_used_at=timezone.now() - dt.timedelta(hours=3),
        last_used_from="198.51.100.7",
        use_count=42,
    )

    page = text(owner_client.get(access_url("list", workspace))).replace("\xa0", " ")

    assert "ci-deploy" in page and "GitHub Actions deploys" in page
    assert f"{key.identifier}…" in page
    assert secret not in page and secret[len(key.identifier) :][:12] not in page
    for shown in ("Production", "Payments", "Checkout", "From 1 network only"):
        assert shown in page
    assert "olivia" in page, "created by"
    expires = key.expires_at.astimezone(dt.UTC)
    assert f"{expires:%b} {expires.day}, {expires.year}" in page
    assert "in 2 months" in page or "in 3 months" in page
    assert "3 hours ago" in page and "from 198.51.100.7" in page
    assert ">42</td>" in page
    assert ">Active</span>" in page
    assert f'aria-label="Revoke {key.name}"' in page
    assert f'aria-label="Delete {key.name}"' in page
    assert "Create access key" in page


def test_statuses_and_expiry_badges(workspace, owner_client):
    make_access_key(workspace, name="fresh")
    soon, _ = make_access_key(workspace, name="soon", expires=3)
    expired, _ = make_access_key(workspace, name="expired", expires=30)
    AccessKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - dt.timedelta(days=1))
    revoked, _ = make_access_key(workspace, name="revoked", expires=None)
    revoked.revoke(by=owner_client.user)

    page = text(owner_client.get(access_url("list", workspace)))

    assert page.count(">Active</span>") == 2
    assert page.count(">Expired</span>") == 2, "the status and the expiry badge"
    assert page.count(">Revoked</span>") == 1
    assert page.count("Expires soon") == 1
    assert f'aria-label="Revoke {revoked.name}"' not in page, "revoking is final"
    assert f'aria-label="Delete {revoked.name}"' in page
    assert f'aria-label="Revoke {soon.name}"' in page


@pytest.mark.parametrize("role", ["editor", "viewer"])
def test_editors_and_viewers_see_the_list_without_actions(workspace, role_client, role):
    key, _ = make_access_key(workspace)
    page = text(role_client[role].get(access_url("list", workspace)))
    assert "ci-deploy" in page and f"{key.identifier}…" in page
    assert "Create access key" not in page
    assert access_url("revoke", workspace, key) not in page
    assert access_url("delete", workspace, key) not in page


def test_empty_tab_says_what_keys_are(workspace, owner_client, viewer_client):
    page = text(owner_client.get(access_url("list", workspace)))
    assert "No access keys yet" in page
    assert "Create access key" in page
    assert "Ask an owner" in text(viewer_client.get(access_url("list", workspace)))


def test_htmx_gets_the_table_only(workspace, owner_client):
    make_access_key(workspace)
    response = owner_client.get(access_url("list", workspace), headers=HTMX)
    page = text(response)
    assert response.status_code == 200
    assert page.lstrip().startswith('<div id="access-key-table"')
    assert 'hx-trigger="accessKeysChanged from:body"' in page
    assert "<html" not in page
    assert "HX-Request" in response["Vary"]


def test_other_workspace_gets_404(workspace, outsider_client):
    make_access_key(workspace)
    assert outsider_client.get(access_url("list", workspace)).status_code == 404


def test_other_workspaces_keys_are_not_listed(workspace, other_workspace, owner_client):
    make_access_key(other_workspace, name="globex-secret-job")
    assert "globex-secret-job" not in text(owner_client.get(access_url("list", workspace)))


@pytest.mark.parametrize("role", ROLES)
def test_query_count_does_not_grow_with_keys(
    workspace, role_client, role, django_assert_max_num_queries
):
    client = role_client[role]
    product = ProductFactory(workspace=workspace, name="Payments", slug="payments")
    make_access_key(workspace, name="key-0", product=product, by=client.user)
    counts = {}
    for total in (1, 30):
        for n in range(AccessKey.objects.count(), total):
            make_access_key(workspace, name=f"key-{n}", product=product, by=client.user)
        for headers in ({}, HTMX):
            with django_assert_max_num_queries(7) as queries:  # 7th: usage records pending?
                response = client.get(access_url("list", workspace), headers=headers)
            assert rows(text(response)) == total
            counts[total, bool(headers)] = len(queries)
    assert counts[1, False] == counts[30, False]
    assert counts[1, True] == counts[30, True]
