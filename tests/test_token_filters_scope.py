"""The Tokens page's Product and App filters: the tokens that product or app may use.

A token scoped to no product and no app ("All products & apps") is usable by every product and
app, so it is listed under each; one scoped elsewhere is not. The filters live in the URL like
type, status and environment, and one the page cannot apply is named above the table.
"""

from __future__ import annotations

import pytest

from tests.factories import AppFactory, ProductFactory, TokenFactory, bulk_tokens
from tests.helpers import HTMX, text, url
from tokens.models import Token, UseContext


@pytest.fixture
def catalog(workspace):
    payments = ProductFactory(workspace=workspace, name="Payments", slug="payments")
    storefront = ProductFactory(workspace=workspace, name="Storefront", slug="storefront")
    checkout = AppFactory(workspace=workspace, name="Checkout", slug="checkout")
    mobile = AppFactory(workspace=workspace, name="Mobile", slug="mobile")
    TokenFactory(workspace=workspace, key="EVERYWHERE")
    TokenFactory(workspace=workspace, key="PAYMENTS_ONLY", products=[payments])
    TokenFactory(workspace=workspace, key="STOREFRONT_ONLY", products=[storefront])
    TokenFactory(workspace=workspace, key="CHECKOUT_ONLY", apps=[checkout])
    TokenFactory(workspace=workspace, key="MOBILE_ONLY", apps=[mobile])
    return {"payments": payments, "checkout": checkout}


KEYS = {"EVERYWHERE", "PAYMENTS_ONLY", "STOREFRONT_ONLY", "CHECKOUT_ONLY", "MOBILE_ONLY"}


def listed(client, workspace, **query) -> set[str]:
    page = text(client.get(url("list", workspace, **query)))
    return {key for key in KEYS if f">{key}<" in page.replace("<wbr>", "")}


def test_the_product_filter_lists_what_the_product_may_use(workspace, viewer_client, catalog):
    assert listed(viewer_client, workspace, product="payments") == {"EVERYWHERE", "PAYMENTS_ONLY"}


def test_the_app_filter_lists_what_the_app_may_use(workspace, viewer_client, catalog):
    assert listed(viewer_client, workspace, app="checkout") == {"EVERYWHERE", "CHECKOUT_ONLY"}


def test_product_and_app_together_list_what_that_pair_may_use(workspace, viewer_client, catalog):
    assert listed(viewer_client, workspace, product="payments", app="checkout") == {
        "EVERYWHERE",
        "PAYMENTS_ONLY",
        "CHECKOUT_ONLY",
    }


def test_the_filters_agree_with_the_resolver(workspace, viewer_client, catalog):
    production = workspace.environments.get(slug="production")
    context = UseContext(production, product=catalog["payments"], app=catalog["checkout"])
    usable = {t.key for t in Token.objects.for_workspace(workspace) if t.is_usable_by(context)}
    assert listed(viewer_client, workspace, product="payments", app="checkout") == usable


def test_the_filter_selects_show_the_workspace_s_products_and_apps(
    workspace, viewer_client, catalog
):
    page = text(viewer_client.get(url("list", workspace, product="payments")))
    assert 'for="filter_product">Filter by product</label>' in page
    assert 'for="filter_app">Filter by app</label>' in page
    assert '<option value="payments" selected>Payments</option>' in page
    assert '<option value="mobile">Mobile</option>' in page


def test_the_filter_stays_in_the_paging_and_sorting_links(workspace, viewer_client, catalog):
    page = text(viewer_client.get(url("list", workspace, product="payments", per_page=25)))
    assert "?product=payments&amp;sort=-key" in page
    assert "Clear filters" in page


@pytest.mark.parametrize("name", ["product", "app"])
def test_an_unknown_product_or_app_says_it_was_not_applied(workspace, viewer_client, catalog, name):
    page = text(viewer_client.get(url("list", workspace, **{name: "mars"})))
    assert f"That {name} is not in this workspace, so it was not applied" in page
    assert listed(viewer_client, workspace, **{name: "mars"}) == KEYS


def test_another_workspace_s_product_is_not_applied(
    workspace, other_workspace, viewer_client, catalog
):
    ProductFactory(workspace=other_workspace, name="Globex Rockets", slug="secret-product")
    page = text(viewer_client.get(url("list", workspace, product="secret-product")))
    assert "That product is not in this workspace" in page
    assert "Globex Rockets" not in page


def test_the_filters_keep_the_query_count_constant(
    workspace, owner_client, django_assert_max_num_queries
):
    bulk_tokens(workspace, 500)
    product, app = workspace.products.first(), workspace.apps.first()
    for query in ({"product": product.slug}, {"app": app.slug, "product": product.slug}):
        for headers in ({}, HTMX):
            with django_assert_max_num_queries(
                12
            ):  # the other tokens of the keys shown; pending usage?
                response = owner_client.get(url("list", workspace, **query), headers=headers)
            assert response.status_code == 200
