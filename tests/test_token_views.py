"""The Tokens page's views: the table, the Activity tab, create, edit, revoke and delete.

Each endpoint as a full page and as an htmx fragment, for each role, for outsiders and for
anonymous users; and the promise that a submitted value never comes back to the browser.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import (
    AppFactory,
    AuditEventFactory,
    EnvironmentFactory,
    ProductFactory,
    TokenFactory,
    token_form_data,
)
from tokens import crypto
from tokens.models import AuditAction, AuditEvent, Token, TokenStatus, TokenType, WorkspaceKey

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
WARNING = "Revoking or deleting a token will immediately break any services currently using it."
SECRET = "view-test-secret-4f1c9a77e2b0d3c5"


def url(name: str, workspace, token=None, **query) -> str:
    args = [workspace.slug] + ([token.pk] if token is not None else [])
    path = reverse(f"tokens:{name}", args=args)
    if query:
        path += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return path


def text(response) -> str:
    return response.content.decode()


def create_data(workspace, **overrides) -> dict:
    return token_form_data(workspace, **({"value": SECRET} | overrides))


def edit_data(token, **overrides) -> dict:
    values = {
        "key": token.key,
        "value": "",
        "description": token.description,
        "type": token.type,
        "expiry_date": token.expiry_date.isoformat() if token.expiry_date else "",
        "period": "",
        "period_custom": token.period_days or "",
        "products": [p.pk for p in token.products.all()],
        "apps": [a.pk for a in token.apps.all()],
        "environments": [e.pk for e in token.environments.all()],
    }
    values.update(overrides)
    return values


def triggers(response) -> dict:
    return json.loads(response["HX-Trigger"])


@pytest.fixture
def token(workspace):
    return TokenFactory(workspace=workspace, key="STRIPE_SECRET", value=SECRET)


@pytest.fixture
def role_client(request):
    """`role_client[role]`: the signed-in client of that role (made only when asked for)."""

    class Clients:
        def __getitem__(self, role: str) -> Client:
            return request.getfixturevalue(f"{role}_client")

    return Clients()


def selected_tab(page: str, href: str) -> bool:
    return f'aria-selected="true" aria-current="page" href="{href}"' in page


ROLES = ["owner", "editor", "viewer"]
MANAGERS = ["owner", "editor"]


# --- who may see what ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["list", "activity", "create"])
def test_anonymous_users_are_sent_to_sign_in(workspace, client, name):
    response = client.get(url(name, workspace))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", ["edit", "revoke", "delete"])
def test_anonymous_users_are_sent_to_sign_in_from_token_pages(workspace, client, token, name):
    for method in (client.get, client.post):
        response = method(url(name, workspace, token))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", ["list", "activity", "create"])
def test_outsiders_get_404(workspace, outsider_client, name):
    assert outsider_client.get(url(name, workspace)).status_code == 404
    assert outsider_client.get(url(name, workspace), headers=HTMX).status_code == 404


@pytest.mark.parametrize("name", ["edit", "revoke", "delete"])
def test_outsiders_get_404_for_tokens_and_nothing_changes(workspace, outsider_client, token, name):
    assert outsider_client.get(url(name, workspace, token)).status_code == 404
    response = outsider_client.post(url(name, workspace, token), {"confirm_key": token.key})
    assert response.status_code == 404
    token.refresh_from_db()
    assert token.status == TokenStatus.ACTIVE


@pytest.mark.parametrize("name", ["edit", "revoke", "delete"])
def test_a_token_of_another_workspace_is_404_through_ones_own_workspace(
    workspace, other_workspace, owner_client, name
):
    foreign = TokenFactory(workspace=other_workspace, key="FOREIGN")
    path = reverse(f"tokens:{name}", args=[workspace.slug, foreign.pk])
    assert owner_client.get(path).status_code == 404
    assert owner_client.post(path, {"confirm_key": "FOREIGN"}).status_code == 404
    assert Token.objects.filter(pk=foreign.pk, status=TokenStatus.ACTIVE).exists()


def test_an_unknown_token_is_404(workspace, owner_client):
    path = reverse("tokens:edit", args=[workspace.slug, uuid.uuid4()])
    assert owner_client.get(path).status_code == 404


@pytest.mark.parametrize("name", ["create", "edit", "revoke", "delete"])
def test_viewers_get_403_and_nothing_changes(workspace, viewer_client, token, name):
    path = url(name, workspace) if name == "create" else url(name, workspace, token)
    assert viewer_client.get(path).status_code == 403
    assert viewer_client.get(path, headers=HTMX).status_code == 403
    post = create_data(workspace, key="NEW_ONE") if name == "create" else {"confirm_key": token.key}
    assert viewer_client.post(path, post).status_code == 403
    assert list(Token.objects.values_list("key", "status")) == [("STRIPE_SECRET", "active")]


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


# --- the table ----------------------------------------------------------------------------


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


@pytest.mark.parametrize("name", ["list", "activity", "create"])
def test_token_pages_are_never_cached_and_vary_on_htmx(workspace, owner_client, name):
    response = owner_client.get(url(name, workspace))
    assert "no-store" in response["Cache-Control"]
    assert "HX-Request" in response["Vary"]


@pytest.mark.parametrize("name", ["edit", "revoke", "delete"])
def test_token_dialogs_are_never_cached(workspace, owner_client, token, name):
    response = owner_client.get(url(name, workspace, token), headers=HTMX)
    assert "no-store" in response["Cache-Control"]
    assert "HX-Request" in response["Vary"]


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
    rows = {key: page[page.index(f'data-token-id="{t.pk}"') :][:4000] for key, t in (
        ("SOON", soon), ("GONE", gone))}  # fmt: skip
    assert "Expires soon" in rows["SOON"]
    assert 'class="badge badge-expired">Expired<' in rows["GONE"]
    assert 'class="status status-expired">Expired<' in rows["GONE"]
    assert "2\xa0days ago" in rows["GONE"]
    assert page.count("Expires soon") == 1


def test_revoked_tokens_show_revoked_and_cannot_be_edited(workspace, owner_client, token):
    token.revoke(by=None)
    page = text(owner_client.get(url("list", workspace)))
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
    assert page.count("Create Token") == 2  # the page's button and the empty state's


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


def keys_listed(client, workspace, **query) -> list[str]:
    response = client.get(url("list", workspace, **query), headers=HTMX)
    return [token.key for token in response.context["page"]]


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


def test_bad_query_parameters_are_ignored(workspace, owner_client, token):
    response = owner_client.get(
        url("list", workspace, type="x", status="y", env="z", sort="w", page="abc", per_page="-1")
    )
    assert response.status_code == 200
    assert "STRIPE_SECRET" in text(response)


def bulk_tokens(workspace, count: int) -> None:
    """`count` tokens with real ciphertext, in a few queries (create_token is one at a time)."""
    dek = WorkspaceKey.dek_for(workspace)
    environments = list(workspace.environments.all())
    products = [ProductFactory(workspace=workspace) for _ in range(3)]
    apps = [AppFactory(workspace=workspace) for _ in range(3)]
    now = timezone.now()
    tokens = []
    for n in range(count):
        token = Token(
            workspace=workspace,
            key=f"BULK_{n:05d}",
            type=TokenType.values[n % 4],
            description=f"Bulk token {n}",
            expires_at=now + dt.timedelta(days=n % 400) if n % 3 else None,
            last_used_at=now - dt.timedelta(minutes=n) if n % 2 else None,
        )
        token.ciphertext = crypto.encrypt_value(
            dek, f"bulk-value-{n}", workspace_id=workspace.pk, token_id=token.pk, version=0
        )
        tokens.append(token)
    Token.objects.bulk_create(tokens, batch_size=2000)
    relations = (
        (Token.environments.through, "environment_id", environments),
        (Token.products.through, "product_id", products),
        (Token.apps.through, "app_id", apps),
    )
    for through, column, objects in relations:
        through.objects.bulk_create(
            [
                through(token_id=token.pk, **{column: objects[n % len(objects)].pk})
                for n, token in enumerate(tokens)
                if column == "environment_id" or n % 5 == 0
            ],
            batch_size=5000,
        )


QUERIES = [
    {},
    {"page": 400},
    {"per_page": 100},
    {"per_page": 100, "page": 100},
    {"q": "bulk token 99", "sort": "-last_used"},
    {"status": "active", "env": "production", "type": "api_key", "sort": "expiry"},
    {"status": "expiring"},
]


def test_ten_thousand_tokens_keep_the_query_count_constant_and_are_paginated(
    workspace, owner_client, django_assert_max_num_queries
):
    bulk_tokens(workspace, 10_000)
    for query in QUERIES:
        for headers in ({}, HTMX):
            with django_assert_max_num_queries(10):
                response = owner_client.get(url("list", workspace, **query), headers=headers)
            assert response.status_code == 200, query
    page = text(owner_client.get(url("list", workspace, page=2)))
    assert "26–50 of 10000 tokens" in page
    assert "Page 2 of 400" in page
    assert page.count('class="token-row') == 25
    assert len(keys_listed(owner_client, workspace, per_page=100)) == 100


# --- activity -----------------------------------------------------------------------------


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


# --- create -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", MANAGERS)
def test_create_form_has_the_documents_labels_and_groups(workspace, role_client, role):
    response = role_client[role].get(url("create", workspace), headers=HTMX)
    page = text(response)
    assert response.status_code == 200
    assert "<html" not in page
    for label in ("Token Key", "Token Value", "Description", "Type", "Expiry Date", "Period"):
        assert f">{label}<" in page
    for legend in ("Products", "Apps", "Environments"):
        assert f'<legend class="form-label">{legend}' in page
    for heading in ("Expiry", "Scope", "Environment"):
        assert f"</i> {heading}</h2>" in page
    for option in ("Credential", "API Key", "Bearer Token", "OAuth Token"):
        assert f">{option}</option>" in page
    assert "Production</label>" in page and "Sandbox</label>" in page
    assert 'type="password" name="value"' in page
    assert 'autocomplete="new-password"' in page
    assert "data-toggle-password" in page
    assert '<button type="submit" class="btn btn-primary">Create Token</button>' in page
    assert "If both fields are left empty, the token will never expire." in page


def test_create_form_is_a_whole_page_without_javascript(workspace, owner_client):
    page = text(owner_client.get(url("create", workspace)))
    assert "<html" in page and "Create Token" in page
    assert f'href="{url("list", workspace)}"' in page  # Cancel goes back to the table


@pytest.mark.parametrize("role", MANAGERS)
def test_create_with_htmx_closes_the_modal_and_refreshes_the_table(workspace, role_client, role):
    product = ProductFactory(workspace=workspace, name="Payments")
    response = role_client[role].post(
        url("create", workspace),
        create_data(workspace, products=[product.pk], period="custom", period_custom="45"),
        headers=HTMX,
    )
    assert response.status_code == 204
    token = Token.objects.get(key="PAYMENT_API_KEY")
    assert triggers(response) == {
        "tokensChanged": {"id": str(token.pk)},
        "closeModal": {},
        "showToast": {
            "message": "Token PAYMENT_API_KEY created. Reference it as $Secret{PAYMENT_API_KEY}.",
            "level": "success",
        },
    }
    assert token.reveal() == SECRET
    assert token.period_days == 45
    assert list(token.products.all()) == [product]
    assert token.created_by == role_client[role].user


def test_create_without_javascript_redirects_with_a_message(workspace, owner_client):
    response = owner_client.post(url("create", workspace), create_data(workspace))
    token = Token.objects.get(key="PAYMENT_API_KEY")
    assert response.status_code == 302
    assert response["Location"] == url("list", workspace, highlight=token.pk)
    page = text(owner_client.get(response["Location"]))
    assert "Token PAYMENT_API_KEY created." in page
    assert "row-highlight" in page


def test_invalid_create_shows_errors_in_the_modal_keeping_inputs_but_not_the_value(
    workspace, owner_client
):
    response = owner_client.post(
        url("create", workspace),
        create_data(workspace, key="bad key!", description="Keep me", environments=[]),
        headers=HTMX,
    )
    page = text(response)
    assert response.status_code == 200
    assert "<html" not in page
    assert "A Token Key starts with a letter or underscore" in page
    assert "Choose at least one environment." in page
    assert 'value="bad key!"' in page
    assert "Keep me" in page
    assert SECRET not in page
    assert "the value you typed was not sent back" in page
    assert not Token.objects.exists()


def test_duplicate_key_is_explained(workspace, owner_client, token):
    response = owner_client.post(
        url("create", workspace), create_data(workspace, key="STRIPE_SECRET"), headers=HTMX
    )
    assert "A token with key STRIPE_SECRET already exists in this workspace." in text(response)
    assert SECRET not in text(response)
    assert Token.objects.count() == 1


def test_past_expiry_date_is_explained(workspace, owner_client):
    yesterday = (timezone.now().date() - dt.timedelta(days=1)).isoformat()
    response = owner_client.post(
        url("create", workspace), create_data(workspace, expiry_date=yesterday), headers=HTMX
    )
    assert "The Expiry Date must be in the future" in text(response)
    assert not Token.objects.exists()


def test_environment_of_another_workspace_is_rejected(workspace, other_workspace, owner_client):
    foreign = EnvironmentFactory(workspace=other_workspace)
    response = owner_client.post(
        url("create", workspace), create_data(workspace, environments=[foreign.pk]), headers=HTMX
    )
    assert response.status_code == 200
    assert "Select a valid choice." in text(response)
    assert not Token.objects.exists()


# --- the value from a file ---------------------------------------------------------------

PEM = (
    b"-----BEGIN EC PRIVATE KEY-----\r\n"
    b"MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\r\n"
    b"AwEHoUQDQgAEPR3tU2eh9bq6+ZUptvmPfE8oW0QPGM6fpnNmrL+k1aLxN1LLtM5k\n"
    b"-----END EC PRIVATE KEY-----\n"
)
PEM_LINE = "MHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49"
FILE_NAME = "prod-signing-key-7c1e.pem"


def pem_file(content: bytes = PEM, name: str = FILE_NAME) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/x-pem-file")


def test_create_form_offers_a_file_and_posts_multipart(workspace, owner_client):
    page = text(owner_client.get(url("create", workspace), headers=HTMX))
    assert ">Or load the value from a file<" in page
    assert 'type="file" name="value_file" class="form-control"' in page
    assert 'enctype="multipart/form-data"' in page
    assert 'hx-encoding="multipart/form-data"' in page
    assert "the file&#x27;s exact contents become the value" in page


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_create_from_a_pem_file_keeps_its_exact_bytes(workspace, owner_client, headers):
    response = owner_client.post(
        url("create", workspace),
        {**create_data(workspace, value=""), "value_file": pem_file()},
        headers=headers,
    )
    assert response.status_code == (204 if headers else 302)
    token = Token.objects.get(key="PAYMENT_API_KEY")
    assert token.reveal().encode() == PEM
    assert PEM_LINE not in text(response) and FILE_NAME not in text(response)


@pytest.mark.parametrize(
    ("value", "content", "message"),
    [
        (SECRET, PEM, "Type a value or choose a file, not both."),
        ("", b"k" * 65_537, "The value is 65,537 bytes; the limit is 64 KiB (65,536 bytes)."),
        ("", b"-----BEGIN\xff\xfe-----\n", "The file must be UTF-8 text."),
        ("", b"", "The file is empty."),
    ],
    ids=["both", "oversize", "not-utf8", "empty"],
)
def test_a_bad_file_is_explained_next_to_it_and_nothing_is_stored(
    workspace, owner_client, value, content, message
):
    response = owner_client.post(
        url("create", workspace),
        {**create_data(workspace, value=value), "value_file": pem_file(content)},
        headers=HTMX,
    )
    page = text(response)
    assert response.status_code == 200
    assert f'<div class="invalid-feedback d-block" id="id_value_file_error">{message}</div>' in page
    assert "Enter the token value." not in page
    assert FILE_NAME not in page and PEM_LINE not in page and SECRET not in page
    assert not Token.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.CREATED).exists()


def test_a_good_file_in_an_invalid_form_is_asked_for_again(workspace, owner_client):
    response = owner_client.post(
        url("create", workspace),
        {**create_data(workspace, value="", environments=[]), "value_file": pem_file()},
        headers=HTMX,
    )
    page = text(response)
    assert "Choose at least one environment." in page
    assert "the file you chose was not sent back to the browser. Please choose it again." in page
    assert 'type="file" name="value_file" class="form-control"' in page
    assert FILE_NAME not in page and PEM_LINE not in page
    assert not Token.objects.exists()


def test_edit_with_a_file_replaces_the_value_and_bumps_its_version(workspace, editor_client, token):
    response = editor_client.post(
        url("edit", workspace, token), {**edit_data(token), "value_file": pem_file()}, headers=HTMX
    )
    assert response.status_code == 204
    assert triggers(response)["showToast"]["message"] == "Token STRIPE_SECRET saved."
    token.refresh_from_db()
    assert token.reveal().encode() == PEM
    assert token.value_version == 1
    assert PEM_LINE not in text(response) and FILE_NAME not in text(response)


FIVE_MB = 5_000_000
FIVE_MB_MESSAGE = "The value is 5,000,000 bytes; the limit is 64 KiB (65,536 bytes)."


@pytest.fixture
def upload_peak(monkeypatch) -> dict:
    """The most bytes the upload handler ever held in memory, and whether it saw the file."""
    from tokens.uploads import CappedUploadHandler

    peak = {"kept": 0, "chunks": 0}
    receive = CappedUploadHandler.receive_data_chunk

    def spy(handler, raw_data, start):
        result = receive(handler, raw_data, start)
        peak["kept"] = max(peak["kept"], handler.kept)
        peak["chunks"] += 1
        return result

    monkeypatch.setattr(CappedUploadHandler, "receive_data_chunk", spy)
    return peak


def test_a_5_mb_file_is_refused_with_its_real_size_and_never_held(
    workspace, owner_client, upload_peak
):
    response = owner_client.post(
        url("create", workspace),
        {**create_data(workspace, value=""), "value_file": pem_file(b"k" * FIVE_MB)},
        headers=HTMX,
    )
    page = text(response)
    assert response.status_code == 200
    assert (
        f'<div class="invalid-feedback d-block" id="id_value_file_error">{FIVE_MB_MESSAGE}</div>'
        in page
    )
    assert "Enter the token value." not in page and FILE_NAME not in page
    assert not Token.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.CREATED).exists()
    assert upload_peak["chunks"] > 1  # the file went through the handler, chunk by chunk
    assert 0 < upload_peak["kept"] <= 64 * 1024


def test_a_5_mb_file_on_edit_is_refused_and_the_value_is_unchanged(
    workspace, editor_client, token, upload_peak
):
    response = editor_client.post(
        url("edit", workspace, token),
        {**edit_data(token), "value_file": pem_file(b"k" * FIVE_MB)},
        headers=HTMX,
    )
    assert response.status_code == 200
    assert FIVE_MB_MESSAGE in text(response)
    token.refresh_from_db()
    assert token.reveal() == SECRET
    assert token.value_version == 0
    assert upload_peak["kept"] <= 64 * 1024


def test_file_contents_and_name_never_reach_the_browser(workspace, owner_client):
    """Every response to a request carrying a file, valid or not, with and without htmx."""
    responses = []
    for headers in ({}, HTMX):
        for overrides in ({"key": "bad key"}, {"value": SECRET}, {"environments": []}):
            responses.append(
                owner_client.post(
                    url("create", workspace),
                    {
                        **create_data(workspace, **{"value": "", **overrides}),
                        "value_file": pem_file(),
                    },
                    headers=headers,
                )
            )
    owner_client.post(
        url("create", workspace), {**create_data(workspace, value=""), "value_file": pem_file()}
    )
    token = Token.objects.get(key="PAYMENT_API_KEY")
    for headers in ({}, HTMX):
        responses.append(
            owner_client.post(
                url("edit", workspace, token),
                {**edit_data(token, environments=[]), "value_file": pem_file()},
                headers=headers,
            )
        )
        responses.append(
            owner_client.post(
                url("edit", workspace, token),
                {**edit_data(token), "value_file": pem_file()},
                headers=headers,
            )
        )
    for name in ("list", "activity"):
        responses.append(owner_client.get(url(name, workspace), headers=HTMX))
    responses.append(owner_client.get(url("edit", workspace, token), headers=HTMX))
    for response in responses:
        body = response.content.decode() + json.dumps(dict(response.headers))
        assert PEM_LINE not in body
        assert FILE_NAME not in body
        assert "BEGIN EC PRIVATE KEY" not in body
    assert token.reveal().encode() == PEM
    assert not AuditEvent.objects.filter(detail__icontains="PRIVATE").exists()


# --- edit ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", MANAGERS)
def test_edit_form_is_prefilled_except_the_value(workspace, role_client, role):
    product = ProductFactory(workspace=workspace, name="Payments")
    token = TokenFactory(
        workspace=workspace,
        key="STRIPE_SECRET",
        value=SECRET,
        description="Live mode",
        type=TokenType.OAUTH_TOKEN,
        period_days=30,
        products=[product],
    )
    response = role_client[role].get(url("edit", workspace, token), headers=HTMX)
    page = text(response)
    assert response.status_code == 200
    assert 'value="STRIPE_SECRET"' in page
    assert "Live mode" in page
    assert '<option value="oauth_token" selected>' in page
    assert '<option value="30" selected>' in page
    assert f'value="{product.pk}" id="id_products_0" checked' in page
    assert SECRET not in page
    assert "Leave blank to keep the current value" in page
    assert "Changing the key breaks existing $Secret{STRIPE_SECRET} references." in page
    assert "Save changes" in page


def test_edit_with_blank_value_keeps_it(workspace, editor_client, token):
    response = editor_client.post(
        url("edit", workspace, token), edit_data(token, description="Rotated"), headers=HTMX
    )
    assert response.status_code == 204
    token.refresh_from_db()
    assert token.description == "Rotated"
    assert token.reveal() == SECRET
    assert triggers(response)["showToast"]["message"] == "Token STRIPE_SECRET saved."


def test_edit_with_a_new_value_replaces_it(workspace, editor_client, token):
    response = editor_client.post(
        url("edit", workspace, token), edit_data(token, value="brand-new-value-xyz"), headers=HTMX
    )
    assert response.status_code == 204
    token.refresh_from_db()
    assert token.reveal() == "brand-new-value-xyz"
    assert token.value_version == 1
    assert "brand-new-value-xyz" not in text(response)


def test_edit_with_no_change_says_so(workspace, editor_client, token):
    response = editor_client.post(url("edit", workspace, token), edit_data(token), headers=HTMX)
    assert triggers(response)["showToast"]["message"] == "Nothing changed in STRIPE_SECRET."


def test_renaming_warns_about_old_references(workspace, editor_client, token):
    response = editor_client.post(
        url("edit", workspace, token), edit_data(token, key="STRIPE_LIVE"), headers=HTMX
    )
    token.refresh_from_db()
    assert token.key == "STRIPE_LIVE"
    assert triggers(response)["showToast"]["message"] == (
        "Token STRIPE_SECRET renamed to STRIPE_LIVE: update any $Secret{STRIPE_SECRET} references."
    )


def test_invalid_rename_keeps_the_warning_visible(workspace, editor_client, token):
    response = editor_client.post(
        url("edit", workspace, token),
        edit_data(token, key="STRIPE_LIVE", environments=[], value="typed-again"),
        headers=HTMX,
    )
    page = text(response)
    assert "Choose at least one environment." in page
    assert "data-key-change-warning>" in page  # not hidden
    assert "will stop resolving" in page
    assert "typed-again" not in page
    token.refresh_from_db()
    assert token.key == "STRIPE_SECRET"


def test_edit_without_javascript_redirects(workspace, owner_client, token):
    response = owner_client.post(url("edit", workspace, token), edit_data(token, description="x"))
    assert response.status_code == 302
    assert response["Location"] == url("list", workspace, highlight=token.pk)


def test_revoked_tokens_cannot_be_edited(workspace, owner_client, token):
    token.revoke(by=None)
    full = owner_client.get(url("edit", workspace, token))
    assert full.status_code == 409
    assert "Revoked tokens cannot be edited." in text(full)
    modal = owner_client.get(url("edit", workspace, token), headers=HTMX)
    assert modal.status_code == 200  # htmx only swaps 2xx: the explanation shows in the modal
    assert "Revoked tokens cannot be edited." in text(modal)
    response = owner_client.post(url("edit", workspace, token), edit_data(token, description="x"))
    assert response.status_code == 409
    token.refresh_from_db()
    assert token.description == ""


# --- revoke -------------------------------------------------------------------------------


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


# --- delete -------------------------------------------------------------------------------


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


# --- the value never comes back -----------------------------------------------------------


def test_submitted_values_never_reach_the_browser(workspace, owner_client: Client):
    """Every response after a value is submitted, valid or not, with and without htmx."""
    values = [f"never-echo-{n}-{uuid.uuid4().hex}" for n in range(6)]
    responses = []
    for headers in ({}, HTMX):
        responses.append(
            owner_client.post(
                url("create", workspace),
                create_data(workspace, key="bad key", value=values[0]),
                headers=headers,
            )
        )
        responses.append(
            owner_client.post(
                url("create", workspace),
                create_data(workspace, value="x" * 70_000 + values[1]),
                headers=headers,
            )
        )
    owner_client.post(url("create", workspace), create_data(workspace, value=values[2]))
    token = Token.objects.get(key="PAYMENT_API_KEY")
    responses.append(
        owner_client.post(
            url("edit", workspace, token),
            edit_data(token, value=values[3], environments=[]),
            headers=HTMX,
        )
    )
    responses.append(
        owner_client.post(url("edit", workspace, token), edit_data(token, value=values[4]))
    )
    for name in ("list", "activity"):
        responses.append(owner_client.get(url(name, workspace)))
        responses.append(owner_client.get(url(name, workspace), headers=HTMX))
    for name in ("edit", "revoke", "delete"):
        responses.append(owner_client.get(url(name, workspace, token)))
        responses.append(owner_client.get(url(name, workspace, token), headers=HTMX))
    for response in responses:
        body = response.content.decode() + json.dumps(dict(response.headers))
        for value in values[:5]:
            assert value not in body
    token.refresh_from_db()
    assert token.reveal() == values[4]  # the last edit did go through
