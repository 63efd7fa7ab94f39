"""The Tokens page (`tokens:list`): the table, its fragment, search, filters, sort and pages."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tests.factories import (
    AppFactory,
    EnvironmentFactory,
    ProductFactory,
    TokenFactory,
    bulk_tokens,
)
from tests.helpers import HTMX, MANAGERS, ROLES, selected_tab, text, url
from tokens.models import Token, TokenType

pytestmark = pytest.mark.django_db


# --- who sees what ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_every_member_sees_the_tokens_page(workspace, role_client, token, role):
    response = role_client[role].get(url("list", workspace))
    assert response.status_code == 200
    page = text(response)
    assert "<h1>Tokens</h1>" in page
    assert selected_tab(page, url("list", workspace))
    assert "STRIPE_SECRET" in page


def test_viewers_see_no_action_buttons(workspace, viewer_client, token):
    page = text(viewer_client.get(url("list", workspace)))
    assert "Create Token" not in page
    for action in ("Edit", "Revoke", "Delete"):
        assert f'aria-label="{action} STRIPE_SECRET"' not in page
    assert 'data-copy="$Secret{STRIPE_SECRET}"' in page  # copying a reference is reading


@pytest.mark.parametrize("role", MANAGERS)
def test_editors_and_owners_see_the_actions(workspace, role_client, token, role):
    page = text(role_client[role].get(url("list", workspace)))
    assert "Create Token" in page
    for action in ("Edit", "Revoke", "Delete"):
        assert f'aria-label="{action} STRIPE_SECRET"' in page


# --- the table -------------------------------------------------------------------------------


def test_list_is_a_fragment_for_htmx_and_a_page_otherwise(workspace, owner_client, token):
    full = owner_client.get(url("list", workspace))
    fragment = owner_client.get(url("list", workspace), headers=HTMX)
    assert "<html" in text(full) and 'id="token-table"' in text(full)
    assert "<html" not in text(fragment)
    assert text(fragment).lstrip().startswith('<div id="token-table"')
    assert "STRIPE_SECRET" in text(fragment)


def test_history_restore_gets_the_whole_page(workspace, owner_client, token):
    response = owner_client.get(
        url("list", workspace), headers={**HTMX, "HX-History-Restore-Request": "true"}
    )
    assert "<html" in text(response)


def test_list_refuses_post(workspace, owner_client):
    assert owner_client.post(url("list", workspace)).status_code == 405


def test_table_shows_every_column(workspace, owner_client):
    payments = ProductFactory(workspace=workspace, name="Payments")
    checkout = AppFactory(workspace=workspace, name="Checkout")
    production = workspace.environments.get(slug="production")
    TokenFactory(
        workspace=workspace,
        key="PAYMENT_API_KEY",
        type=TokenType.BEARER_TOKEN,
        description="Card processing",
        products=[payments],
        apps=[checkout],
        environments=[production],
        expiry_date=timezone.now().date() + dt.timedelta(days=200),
    )
    page = text(owner_client.get(url("list", workspace)))
    for heading in ("Key", "Type", "Description", "Scope", "Environments", "Expiry", "Status"):
        assert f">{heading}<" in page
    assert "Last used" in page
    assert "PAYMENT_API_KEY" in page
    assert "Bearer Token" in page
    assert "Card processing" in page
    assert "Payments</span>" in page and "Checkout</span>" in page
    assert ">Production</span>" in page and ">Sandbox</span>" not in page
    assert "in 6\xa0months" in page
    assert "All products &amp; apps" not in page
    assert 'class="status status-active">Active<' in page


def test_rows_escape_what_people_typed(workspace, owner_client):
    """A row is written in Python (tokens.table.row_html), not by the template's autoescape:
    a description, product, app and environment name with markup in it show as text."""
    hostile = "<script>alert(\"x\")</script> & 'quoted' for the card processor"
    product = ProductFactory(workspace=workspace, name='<b>"Pay"</b>')
    app = AppFactory(workspace=workspace, name="<img src=x onerror=alert(1)>")
    environment = EnvironmentFactory(workspace=workspace, name='<i>"Edge"</i>', slug="edge")
    TokenFactory(
        workspace=workspace,
        key="HOSTILE_KEY",
        description=hostile,
        products=[product],
        apps=[app],
        environments=[environment],
    )
    production = workspace.environments.get(slug="production")
    TokenFactory(workspace=workspace, key="HOSTILE_KEY", environments=[production])  # shared key
    page = text(owner_client.get(url("list", workspace)))
    escaped = (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;quoted&#x27; for the card "
        "processor"
    )
    assert f'<span class="description" title="{escaped}" tabindex="0">{escaped}</span>' in page
    assert "<script>alert" not in page
    assert "&lt;b&gt;&quot;Pay&quot;&lt;/b&gt;</span>" in page and '<b>"Pay"' not in page
    assert "&lt;img src=x onerror=alert(1)&gt;</span>" in page and "<img src=x" not in page
    assert ">&lt;i&gt;&quot;Edge&quot;&lt;/i&gt;</span>" in page and '<i>"Edge"' not in page
    # The label naming the row's environments, in its attributes, is escaped too.
    assert 'aria-label="Edit HOSTILE_KEY (&lt;i&gt;&quot;Edge&quot;&lt;/i&gt;)"' in page


def test_unscoped_tokens_say_all_products_and_apps_and_never(workspace, owner_client, token):
    page = text(owner_client.get(url("list", workspace)))
    assert "All products &amp; apps" in page
    assert '<span class="text-body-secondary">Never</span>' in page  # expiry and last used


def test_expiring_and_expired_tokens_have_badges(workspace, owner_client):
    soon = TokenFactory(
        workspace=workspace, key="SOON", expiry_date=timezone.now().date() + dt.timedelta(days=3)
    )
    gone = TokenFactory(workspace=workspace, key="GONE", period_days=30)
    Token.objects.filter(pk=gone.pk).update(expires_at=timezone.now() - dt.timedelta(days=2))
    TokenFactory(workspace=workspace, key="LATER", period_days=365)
    page = text(owner_client.get(url("list", workspace)))
    rows = {
        key: page[page.index(f'data-token-id="{t.pk}"') :][:4000]
        for key, t in (("SOON", soon), ("GONE", gone))
    }
    assert "Expires soon" in rows["SOON"]
    assert 'class="badge badge-expired">Expired<' in rows["GONE"]
    assert 'class="status status-expired">Expired<' in rows["GONE"]
    assert "2\xa0days ago" in rows["GONE"]
    assert page.count("Expires soon") == 1


def test_revoked_tokens_are_hidden_until_show_revoked(workspace, owner_client, token):
    TokenFactory(workspace=workspace, key="STILL_ACTIVE")
    token.revoke(by=None)
    page = text(owner_client.get(url("list", workspace)))
    listed = 'data-copy="$Secret{%s}"'
    assert listed % "STILL_ACTIVE" in page and listed % "STRIPE_SECRET" not in page
    assert "1–1 of 1 token" in page
    box = 'name="revoked" class="form-check-input" value="1" id="filter_revoked">'
    assert box in page
    assert ">Show revoked</label>" in page
    shown = text(owner_client.get(url("list", workspace, revoked=1)))
    assert listed % "STILL_ACTIVE" in shown and listed % "STRIPE_SECRET" in shown
    assert "1–2 of 2 tokens matching" not in shown  # showing more is not a narrowing filter
    assert 'value="1" id="filter_revoked" checked>' in shown
    # The Status filter's "Revoked" lists them alone, Show revoked or not.
    only = text(owner_client.get(url("list", workspace, status="revoked")))
    assert listed % "STRIPE_SECRET" in only and listed % "STILL_ACTIVE" not in only


def test_only_revoked_tokens_left_says_they_are_hidden(workspace, owner_client, token):
    token.revoke(by=None)
    page = text(owner_client.get(url("list", workspace)))
    assert "No tokens in use" in page and "No tokens yet" not in page
    assert f'href="{url("list", workspace)}?revoked=1">Show revoked</a>' in page


def test_revoked_tokens_show_revoked_and_cannot_be_edited(workspace, owner_client, token):
    token.revoke(by=None)
    page = text(owner_client.get(url("list", workspace, revoked=1)))
    assert 'class="status status-revoked">Revoked<' in page
    assert 'aria-label="Edit STRIPE_SECRET"' not in page
    assert 'aria-label="Revoke STRIPE_SECRET"' not in page
    assert 'aria-label="Delete STRIPE_SECRET"' in page


def test_last_used_is_shown_relative(workspace, owner_client, token):
    Token.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - dt.timedelta(hours=3))
    assert "3\xa0hours ago" in text(owner_client.get(url("list", workspace)))


def test_each_row_has_a_copy_button_for_its_reference(workspace, owner_client, token):
    page = text(owner_client.get(url("list", workspace)))
    assert 'data-copy="$Secret{STRIPE_SECRET}"' in page
    assert 'aria-label="Copy $Secret{STRIPE_SECRET}"' in page


def test_the_table_refreshes_itself_on_tokens_changed_keeping_filters(workspace, owner_client):
    TokenFactory(workspace=workspace, key="STRIPE_SECRET")
    page = text(owner_client.get(url("list", workspace, q="stripe", status="active", page=1)))
    expected = url("list", workspace) + "?q=stripe&amp;status=active"
    assert f'hx-get="{expected}" hx-trigger="tokensChanged from:body"' in page


def test_highlight_marks_the_row(workspace, owner_client, token):
    page = text(owner_client.get(url("list", workspace, highlight=token.pk)))
    assert f'data-token-id="{token.pk}" class="token-row token-active row-highlight"' in page


def test_empty_workspace_explains_tokens_and_offers_create(workspace, owner_client):
    page = text(owner_client.get(url("list", workspace)))
    assert "No tokens yet" in page
    assert "Tokens are secure credentials" in page
    assert page.count("</i> Create Token</a>") == 2  # the page's button and the empty state's


def test_empty_workspace_tells_viewers_whom_to_ask(workspace, viewer_client):
    page = text(viewer_client.get(url("list", workspace)))
    assert "No tokens yet" in page
    assert "Ask an editor or owner" in page


def test_no_match_offers_to_clear_filters(workspace, owner_client, token):
    page = text(owner_client.get(url("list", workspace, q="nothing-like-this")))
    assert "No tokens match" in page
    assert "Clear filters" in page


def test_other_workspaces_tokens_are_not_listed(workspace, other_workspace, owner_client, token):
    TokenFactory(workspace=other_workspace, key="GLOBEX_ONLY")
    page = text(owner_client.get(url("list", workspace)))
    assert "STRIPE_SECRET" in page
    assert "GLOBEX_ONLY" not in page


# --- search, filters, sort and pages ---------------------------------------------------------


def keys_listed(client, workspace, **query) -> list[str]:
    response = client.get(url("list", workspace, **query), headers=HTMX)
    return [row.token.key for row in response.context["page"]]


def test_search_matches_key_and_description(workspace, owner_client):
    TokenFactory(workspace=workspace, key="STRIPE_SECRET")
    TokenFactory(workspace=workspace, key="WEBHOOK", description="Signed by Stripe")
    TokenFactory(workspace=workspace, key="OTHER")
    assert keys_listed(owner_client, workspace, q="stripe") == ["STRIPE_SECRET", "WEBHOOK"]


def test_filter_by_type(workspace, owner_client):
    TokenFactory(workspace=workspace, key="A", type=TokenType.OAUTH_TOKEN)
    TokenFactory(workspace=workspace, key="B", type=TokenType.API_KEY)
    assert keys_listed(owner_client, workspace, type="oauth_token") == ["A"]


def test_filter_by_status(workspace, owner_client):
    TokenFactory(workspace=workspace, key="ACTIVE")
    TokenFactory(workspace=workspace, key="REVOKED").revoke(by=None)
    expired = TokenFactory(workspace=workspace, key="EXPIRED", period_days=7)
    Token.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - dt.timedelta(days=1))
    TokenFactory(
        workspace=workspace, key="SOON", expiry_date=timezone.now().date() + dt.timedelta(days=2)
    )
    assert keys_listed(owner_client, workspace, status="active") == ["ACTIVE", "SOON"]
    assert keys_listed(owner_client, workspace, status="revoked") == ["REVOKED"]
    assert keys_listed(owner_client, workspace, status="expired") == ["EXPIRED"]
    assert keys_listed(owner_client, workspace, status="expiring") == ["SOON"]


def test_filter_by_environment(workspace, owner_client):
    production = workspace.environments.get(slug="production")
    sandbox = workspace.environments.get(slug="sandbox")
    TokenFactory(workspace=workspace, key="PROD", environments=[production])
    TokenFactory(workspace=workspace, key="BOTH", environments=[production, sandbox])
    TokenFactory(workspace=workspace, key="SAND", environments=[sandbox])
    assert keys_listed(owner_client, workspace, env="sandbox") == ["BOTH", "SAND"]


def test_sort_by_key_expiry_and_last_used(workspace, owner_client):
    now = timezone.now()
    a = TokenFactory(workspace=workspace, key="A_TOKEN", period_days=90)
    b = TokenFactory(workspace=workspace, key="B_TOKEN", period_days=10)
    TokenFactory(workspace=workspace, key="C_TOKEN")
    Token.objects.filter(pk=a.pk).update(last_used_at=now - dt.timedelta(days=5))
    Token.objects.filter(pk=b.pk).update(last_used_at=now - dt.timedelta(hours=1))
    assert keys_listed(owner_client, workspace) == ["A_TOKEN", "B_TOKEN", "C_TOKEN"]
    assert keys_listed(owner_client, workspace, sort="-key") == ["C_TOKEN", "B_TOKEN", "A_TOKEN"]
    assert keys_listed(owner_client, workspace, sort="expiry") == ["B_TOKEN", "A_TOKEN", "C_TOKEN"]
    assert keys_listed(owner_client, workspace, sort="last_used") == [
        "B_TOKEN",
        "A_TOKEN",
        "C_TOKEN",
    ]


def test_sort_headings_link_to_the_other_direction_keeping_filters(workspace, owner_client):
    TokenFactory(workspace=workspace, key="A_TOKEN")
    page = text(owner_client.get(url("list", workspace, q="a", sort="expiry")))
    base = url("list", workspace)
    assert f'href="{base}?q=a&amp;sort=-expiry"' in page
    assert f'href="{base}?q=a&amp;sort=-key"' not in page
    assert f'href="{base}?q=a"' in page  # Key, ascending, is the default: no sort parameter
    assert 'aria-sort="ascending"' in page


def test_the_htmx_table_keeps_its_sortable_headings(workspace, owner_client):
    TokenFactory(workspace=workspace, key="A_TOKEN")
    fragment = text(owner_client.get(url("list", workspace, sort="expiry"), headers=HTMX))
    base = url("list", workspace)
    assert f'href="{base}?sort=-expiry" hx-get="{base}?sort=-expiry" hx-push-url="true"' in fragment
    assert 'aria-sort="ascending"' in fragment


def test_bad_query_parameters_are_ignored(workspace, owner_client, token):
    response = owner_client.get(
        url("list", workspace, type="x", status="y", env="z", sort="w", page="abc", per_page="-1")
    )
    assert response.status_code == 200
    assert "STRIPE_SECRET" in text(response)


QUERIES = [
    {},
    {"page": 400},
    {"per_page": 100},
    {"per_page": 100, "page": 100},
    {"q": "number 99", "sort": "-last_used"},
    {"status": "active", "env": "production", "type": "api_key", "sort": "expiry"},
    {"status": "expiring"},
]


def test_ten_thousand_tokens_keep_the_query_count_constant_and_are_paginated(
    workspace, owner_client, django_assert_max_num_queries
):
    bulk_tokens(workspace, 10_000)
    for query in QUERIES:
        for headers in ({}, HTMX):
            with django_assert_max_num_queries(
                12
            ):  # the other tokens of the keys shown; pending usage?
                response = owner_client.get(url("list", workspace, **query), headers=headers)
            assert response.status_code == 200, query
    page = text(owner_client.get(url("list", workspace, page=2)))
    assert "26–50 of 10000 tokens" in page
    assert "Page 2 of 400" in page
    assert page.count('class="token-row') == 25
    assert len(keys_listed(owner_client, workspace, per_page=100)) == 100
