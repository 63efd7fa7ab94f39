"""Compare environments (`tokens:compare`): a row per key, a column per environment, the status,
scope and version of each token, the gaps with one click to fill them; never a value."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from tests.factories import EnvironmentFactory, ProductFactory, TokenFactory
from tests.helpers import HTMX, ROLES, selected_tab, text, url
from tokens.models import Token, midnight_utc
from tokens.templatetags.tokens_extras import utc_date

pytestmark = pytest.mark.django_db

LIVE = "sk_live_compare_0123456789ab"
TEST = "sk_test_compare_0123456789cd"


def env(workspace, slug: str):
    return workspace.environments.get(slug=slug)


def make(workspace, key: str, slugs, **kwargs) -> Token:
    environments = [env(workspace, slug) for slug in slugs]
    return TokenFactory(workspace=workspace, key=key, environments=environments, **kwargs)


def cells(page: str, key: str) -> list[str]:
    """The text of each cell of `key`'s row (tags stripped), in column order."""
    row = re.search(rf'<tr data-key="{key}">.*?</tr>', page, re.S)
    assert row, key
    found = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in found]


@pytest.mark.parametrize("role", ROLES)
def test_every_member_sees_the_tab(workspace, role_client, role):
    make(workspace, "STRIPE_SECRET", ["production"], value=LIVE)
    response = role_client[role].get(url("compare", workspace))
    assert response.status_code == 200
    page = text(response)
    assert selected_tab(page, url("compare", workspace))
    assert '<th scope="col">Production</th>' in page and '<th scope="col">Sandbox</th>' in page


def test_the_tab_sits_beside_tokens_access_keys_and_activity(workspace, owner_client):
    page = text(owner_client.get(url("list", workspace)))
    tabs = re.findall(r'role="tab"[^>]*>.*?</i> ([^<]+)</a>', page)
    assert tabs[:2] == ["Tokens", "Compare environments"]
    assert "Activity" in tabs and "Access keys" in tabs


def test_each_cell_says_status_scope_and_version(workspace, owner_client):
    checkout = ProductFactory(workspace=workspace, name="Checkout")
    soon = timezone.now().date() + dt.timedelta(days=3)
    live = make(workspace, "STRIPE_SECRET", ["production"], value=LIVE)
    live.set_value("sk_live_second_value_0000")
    make(workspace, "STRIPE_SECRET", ["sandbox"], value=TEST, products=[checkout], expiry_date=soon)
    page = text(owner_client.get(url("compare", workspace)))
    assert cells(page, "STRIPE_SECRET") == [
        "Active Every product and app · v2",
        f"Expiring {utc_date(midnight_utc(soon))} Product Checkout · v1",
    ]


def test_expired_revoked_and_missing_cells(workspace, owner_client):
    expired = make(workspace, "OLD_KEY", ["production"])
    Token.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - dt.timedelta(days=2))
    make(workspace, "OLD_KEY", ["sandbox"]).revoke()
    page = text(owner_client.get(url("compare", workspace)))
    production, sandbox = cells(page, "OLD_KEY")
    expired.refresh_from_db()
    assert production == f"Expired {utc_date(expired.expires_at)} Every product and app · v1"
    assert sandbox.startswith("Revoked Every product and app · v1 Missing")


def test_a_missing_cell_offers_add_prefilled_for_that_environment(workspace, owner_client):
    live = make(workspace, "STRIPE_SECRET", ["production"], value=LIVE)
    page = text(owner_client.get(url("compare", workspace)))
    add = f"/w/acme/tokens/new/?from={live.pk}&amp;environment={env(workspace, 'sandbox').pk}"
    assert f'href="{add}"' in page
    assert 'aria-label="Add STRIPE_SECRET for Sandbox"' in page
    modal = text(owner_client.get(add.replace("&amp;", "&"), headers=HTMX))
    assert 'value="STRIPE_SECRET"' in modal
    assert re.search(r'name="environments" value="\d+" id="id_environments_0" checked', modal)
    assert 'bi-hdd-stack"></i> Sandbox</label>' in modal
    assert 'bi-hdd-stack"></i> Production</label>' not in modal


def test_viewers_see_gaps_but_no_add(workspace, viewer_client):
    make(workspace, "STRIPE_SECRET", ["production"])
    page = text(viewer_client.get(url("compare", workspace)))
    assert "Missing" in page and "Add STRIPE_SECRET" not in page


def test_keys_missing_somewhere_filter(workspace, owner_client):
    make(workspace, "EVERYWHERE", ["production", "sandbox"])
    make(workspace, "SPLIT", ["production"])
    make(workspace, "SPLIT", ["sandbox"])
    make(workspace, "PROD_ONLY", ["production"])
    make(workspace, "REVOKED_IN_SANDBOX", ["production"])
    make(workspace, "REVOKED_IN_SANDBOX", ["sandbox"]).revoke()
    everything = text(owner_client.get(url("compare", workspace)))
    assert "4 keys" in everything
    page = text(owner_client.get(url("compare", workspace, missing="on"), headers=HTMX))
    assert re.findall(r'<tr data-key="(\w+)"', page) == ["PROD_ONLY", "REVOKED_IN_SANDBOX"]
    assert "2 keys missing somewhere" in page
    assert "<html" not in page


def test_nothing_missing_says_so(workspace, owner_client):
    make(workspace, "EVERYWHERE", ["production", "sandbox"])
    page = text(owner_client.get(url("compare", workspace, missing="on")))
    assert "No key is missing anywhere" in page


def test_no_value_hint_or_ciphertext_on_the_page(workspace, owner_client):
    live = make(workspace, "STRIPE_SECRET", ["production"], value=LIVE)
    make(workspace, "STRIPE_SECRET", ["sandbox"], value=TEST)
    page = text(owner_client.get(url("compare", workspace)))
    for secret in (LIVE, TEST, live.value_hint, "89ab", "89cd", "••••"):
        assert secret not in page
    assert bytes(live.ciphertext).hex() not in page


def test_another_workspaces_tokens_never_show(workspace, other_workspace, owner_client):
    TokenFactory(workspace=other_workspace, key="THEIR_KEY")
    assert "THEIR" not in text(owner_client.get(url("compare", workspace)))


@pytest.mark.parametrize(("keys", "extra_environments"), [(3, 0), (60, 6)])
def test_the_query_count_is_constant_in_keys_and_environments(
    workspace, owner_client, django_assert_max_num_queries, keys, extra_environments
):
    products = [ProductFactory(workspace=workspace) for _ in range(2)]
    for _ in range(extra_environments):
        EnvironmentFactory(workspace=workspace)
    for n in range(keys):
        make(workspace, f"KEY_{n:03}", ["production"], products=products[: n % 3])
        make(workspace, f"KEY_{n:03}", ["sandbox"])
    for missing in ("", "on"):
        with django_assert_max_num_queries(12):
            response = owner_client.get(url("compare", workspace, missing=missing))
        assert response.status_code == 200
