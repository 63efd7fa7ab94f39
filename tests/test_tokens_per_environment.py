"""The Tokens page with a key that has a token per environment: its rows sit together, each is
named by key and environments, "Add for another environment" opens the Create Token modal
prefilled, and the modal says where a typed key is already valid."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from tests.factories import ProductFactory, TokenFactory
from tests.helpers import HTMX, create_data, text, url
from tokens.models import Token, TokenType

pytestmark = pytest.mark.django_db

LIVE = "sk_live_0123456789abcdef0123"
TEST = "sk_test_0123456789abcdef4567"


def env(workspace, slug: str):
    return workspace.environments.get(slug=slug)


def stripe(workspace, slug: str, value: str, **kwargs) -> Token:
    kwargs.setdefault("description", "Payments")
    return TokenFactory(
        workspace=workspace,
        key="STRIPE_SECRET",
        value=value,
        environments=[env(workspace, slug)],
        **kwargs,
    )


def rows(page: str) -> list[str]:
    """Each row's accessible name for its Edit (or Delete) link, in table order."""
    return re.findall(r'aria-label="Delete ([^"]+)"', page)


def test_rows_of_one_key_sit_together_and_are_named_by_environment(workspace, owner_client):
    stripe(workspace, "sandbox", TEST)
    TokenFactory(workspace=workspace, key="A_FIRST")
    stripe(workspace, "production", LIVE)
    page = text(owner_client.get(url("list", workspace)))
    assert rows(page) == ["A_FIRST", "STRIPE_SECRET (Production)", "STRIPE_SECRET (Sandbox)"]
    for action in ("Edit", "Revoke", "Delete"):  # the seed's row actions, on each row
        assert f'aria-label="{action} STRIPE_SECRET (Production)"' in page
        assert f'aria-label="{action} STRIPE_SECRET (Sandbox)"' in page
    assert LIVE not in page and TEST not in page


def test_rows_of_one_key_stay_together_when_sorted_by_expiry(workspace, owner_client):
    soon = timezone.now().date() + dt.timedelta(days=3)
    later = timezone.now().date() + dt.timedelta(days=30)
    stripe(workspace, "production", LIVE)  # never expires
    TokenFactory(workspace=workspace, key="MIDDLE", expiry_date=later)
    stripe(workspace, "sandbox", TEST, expiry_date=soon)
    page = text(owner_client.get(url("list", workspace, sort="expiry")))
    # Sorted by expiry alone, MIDDLE (day 30) would sit between Sandbox (day 3) and Production
    # (never); the key's rows are placed by its earliest expiry instead.
    assert rows(page) == ["STRIPE_SECRET (Sandbox)", "STRIPE_SECRET (Production)", "MIDDLE"]


def test_add_for_another_environment_is_offered_while_an_environment_is_free(
    workspace, owner_client
):
    live = stripe(workspace, "production", LIVE)
    page = text(owner_client.get(url("list", workspace)))
    assert 'aria-label="Add STRIPE_SECRET for another environment"' in page
    assert f"/w/acme/tokens/new/?from={live.pk}" in page
    stripe(workspace, "sandbox", TEST)
    page = text(owner_client.get(url("list", workspace)))
    assert "for another environment" not in page  # both environments are taken


def test_a_revoked_row_offers_no_add(workspace, owner_client):
    stripe(workspace, "production", LIVE).revoke()
    assert "for another environment" not in text(owner_client.get(url("list", workspace)))


def test_viewers_are_not_offered_add(workspace, viewer_client):
    stripe(workspace, "production", LIVE)
    assert "for another environment" not in text(viewer_client.get(url("list", workspace)))


def test_add_opens_create_token_prefilled_with_only_free_environments(workspace, owner_client):
    checkout = ProductFactory(workspace=workspace, name="Checkout")
    live = stripe(workspace, "production", LIVE, type=TokenType.CREDENTIAL, products=[checkout])
    response = owner_client.get(url("create", workspace) + f"?from={live.pk}", headers=HTMX)
    page = text(response)
    assert response.status_code == 200
    assert "Create Token" in page
    assert 'value="STRIPE_SECRET"' in page
    assert "Payments</textarea>" in page
    assert re.search(r'<option value="credential" selected>', page)
    assert re.search(rf'value="{checkout.pk}"[^>]*checked', page)
    assert 'bi-hdd-stack"></i> Sandbox</label>' in page
    assert 'bi-hdd-stack"></i> Production</label>' not in page
    assert LIVE not in page


def test_add_creates_the_sandbox_token_beside_the_production_one(workspace, owner_client):
    live = stripe(workspace, "production", LIVE)
    data = create_data(
        workspace,
        key="STRIPE_SECRET",
        value=TEST,
        environments=[env(workspace, "sandbox").pk],
    )
    response = owner_client.post(url("create", workspace) + f"?from={live.pk}", data, headers=HTMX)
    assert response.status_code == 204
    sandbox = Token.objects.get(key="STRIPE_SECRET", environments=env(workspace, "sandbox"))
    assert sandbox.reveal() == TEST
    assert Token.objects.get(pk=live.pk).reveal() == LIVE


def test_add_when_every_environment_is_taken_says_so(workspace, owner_client):
    live = stripe(workspace, "production", LIVE)
    stripe(workspace, "sandbox", TEST)
    page = text(owner_client.get(url("create", workspace) + f"?from={live.pk}", headers=HTMX))
    assert "already valid in every environment for this scope" in page


@pytest.mark.parametrize("bad", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_add_from_a_token_that_is_not_there_is_404(workspace, owner_client, bad):
    assert owner_client.get(url("create", workspace) + f"?from={bad}").status_code == 404


def test_add_from_another_workspaces_token_is_404(workspace, other_workspace, owner_client):
    theirs = TokenFactory(workspace=other_workspace, key="STRIPE_SECRET")
    assert owner_client.get(url("create", workspace) + f"?from={theirs.pk}").status_code == 404


# --- where the key is already valid ----------------------------------------------------------


def test_the_key_hint_says_where_the_key_is_valid(workspace, owner_client):
    checkout = ProductFactory(workspace=workspace, name="Checkout")
    stripe(workspace, "production", LIVE)
    stripe(workspace, "sandbox", TEST, products=[checkout])
    response = owner_client.get(url("key_hint", workspace, key="STRIPE_SECRET"), headers=HTMX)
    page = text(response)
    assert response.status_code == 200
    assert "is already valid in" in page
    assert "Production (every product and app)" in page
    assert "Sandbox (product Checkout)" in page
    assert LIVE not in page and TEST not in page
    assert "4567" not in page and "0123" not in page  # not even a hint of a value


@pytest.mark.parametrize("key", ["NEW_KEY", "not a key", ""])
def test_the_key_hint_is_empty_for_a_key_valid_nowhere(workspace, owner_client, key):
    stripe(workspace, "production", LIVE)
    response = owner_client.get(url("key_hint", workspace, key=key), headers=HTMX)
    assert response.status_code == 200
    assert "already valid" not in text(response)


def test_the_key_hint_leaves_out_revoked_tokens(workspace, owner_client):
    stripe(workspace, "production", LIVE).revoke()
    page = text(owner_client.get(url("key_hint", workspace, key="STRIPE_SECRET")))
    assert "already valid" not in page


def test_the_key_hint_is_for_editors(workspace, viewer_client, outsider_client):
    stripe(workspace, "production", LIVE)
    assert viewer_client.get(url("key_hint", workspace, key="STRIPE_SECRET")).status_code == 403
    assert outsider_client.get(url("key_hint", workspace, key="STRIPE_SECRET")).status_code == 404


def test_the_create_modal_asks_for_the_hint_as_the_key_is_typed(workspace, owner_client):
    page = text(owner_client.get(url("create", workspace), headers=HTMX))
    assert f'hx-get="{url("key_hint", workspace)}"' in page
    assert 'id="key-hint"' in page


def test_a_refused_create_shows_where_the_key_is_valid_too(workspace, owner_client):
    stripe(workspace, "production", LIVE)
    data = create_data(workspace, key="STRIPE_SECRET", value=TEST)
    page = text(owner_client.post(url("create", workspace), data, headers=HTMX))
    assert "STRIPE_SECRET is already valid in Production (every product and app); choose" in page
    assert "Production (every product and app)</li>" in page
    assert TEST not in page


# --- cost --------------------------------------------------------------------------------------


@pytest.mark.parametrize("keys", [2, 40])
def test_shared_keys_keep_the_query_count_constant(
    workspace, owner_client, django_assert_max_num_queries, keys
):
    """A key with a token per environment, some of them off the page: 14 queries at most."""
    for n in range(keys):
        for slug in ("production", "sandbox"):
            TokenFactory(
                workspace=workspace, key=f"KEY_{n:02}", environments=[env(workspace, slug)]
            )
    with django_assert_max_num_queries(15):  # with the check for pending usage records
        response = owner_client.get(url("list", workspace, per_page=25))
    assert response.status_code == 200


# --- the token named by key and environments, wherever two could be confused --------------------


def test_revoke_and_delete_dialogs_name_the_environment_when_the_key_is_shared(
    workspace, owner_client
):
    live = stripe(workspace, "production", LIVE)
    assert "Revoke STRIPE_SECRET?" in text(owner_client.get(url("revoke", workspace, live)))
    test = stripe(workspace, "sandbox", TEST)
    assert "Revoke STRIPE_SECRET (Sandbox)?" in text(
        owner_client.get(url("revoke", workspace, test))
    )
    assert "Delete STRIPE_SECRET (Production)?" in text(
        owner_client.get(url("delete", workspace, live))
    )
    response = owner_client.post(url("revoke", workspace, test))
    page = text(owner_client.get(response["Location"]))
    assert "Token STRIPE_SECRET (Sandbox) revoked." in page


def test_bulk_confirmation_lists_each_tokens_environments(workspace, owner_client):
    live, test = stripe(workspace, "production", LIVE), stripe(workspace, "sandbox", TEST)
    data = {"action": "revoke", "tokens": [str(live.pk), str(test.pk)]}
    page = text(owner_client.post(url("bulk", workspace), data, headers=HTMX))
    assert '<span class="token-key" title="STRIPE_SECRET">STRIPE_<wbr>SECRET</span> <span' in page
    assert "(Production)</span>" in page and "(Sandbox)</span>" in page


def test_bulk_change_of_environments_refuses_an_overlap_with_the_reason(workspace, owner_client):
    stripe(workspace, "production", LIVE)
    test = stripe(workspace, "sandbox", TEST)
    data = {
        "action": "environments",
        "tokens": [str(test.pk)],
        "confirm": "1",
        "environments": [env(workspace, "production").pk],
    }
    response = owner_client.post(url("bulk", workspace), data, headers=HTMX)
    page = text(response)
    assert response.status_code == 200
    assert (
        "STRIPE_SECRET (Sandbox): STRIPE_SECRET is already valid in Production (every product "
        "and app); choose other environments or narrow the scope."
    ) in page
    assert [e.slug for e in Token.objects.get(pk=test.pk).environments.all()] == ["sandbox"]


def test_the_admin_lists_each_tokens_environments(workspace, admin_client):
    stripe(workspace, "production", LIVE)
    stripe(workspace, "sandbox", TEST)
    page = text(admin_client.get("/admin/tokens/token/"))
    assert '<td class="field-environment_names">Production</td>' in page
    assert '<td class="field-environment_names">Sandbox</td>' in page


def test_the_admin_refuses_an_overlapping_token(workspace, admin_client):
    stripe(workspace, "production", LIVE)
    data = {
        "workspace": workspace.pk,
        "key": "STRIPE_SECRET",
        "description": "",
        "type": "api_key",
        "expiry_date": "",
        "period_days": "",
        "environments": [env(workspace, "production").pk],
        "new_value": TEST,
        "_save": "Save",
    }
    response = admin_client.post("/admin/tokens/token/add/", data)
    assert response.status_code == 200
    assert "STRIPE_SECRET is already valid in Production" in text(response)
    assert TEST not in text(response)
    assert Token.objects.count() == 1


def test_webhook_payloads_tell_the_two_tokens_of_a_key_apart(workspace):
    import json

    from notifications.models import WebhookDelivery
    from tests.factories import make_webhook

    make_webhook(workspace)
    live = stripe(workspace, "production", LIVE)
    test = stripe(workspace, "sandbox", TEST)
    test.revoke()
    bodies = [json.loads(d.body) for d in WebhookDelivery.objects.order_by("created_at", "id")]
    named = [(b["type"], b["token"]["key"], b["context"]["environments"]) for b in bodies]
    assert named == [
        ("token.created", "STRIPE_SECRET", ["production"]),
        ("token.created", "STRIPE_SECRET", ["sandbox"]),
        ("token.revoked", "STRIPE_SECRET", ["sandbox"]),
    ]
    assert {b["token"]["id"] for b in bodies} == {str(live.pk), str(test.pk)}
    assert LIVE not in json.dumps(bodies) and TEST not in json.dumps(bodies)


def test_a_reminder_mail_names_the_tokens_environments(workspace):
    from notifications.reminders import Reminder

    test = stripe(workspace, "sandbox", TEST)
    reminder = Reminder(token=test, threshold=7, days_left=3)
    assert reminder.context.startswith("Sandbox")
