"""Adding, renaming and deleting environments, products and apps (owners only)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from access.models import AccessKey
from tests.factories import (
    AppFactory,
    EnvironmentFactory,
    ProductFactory,
    TokenFactory,
    make_access_key,
)
from tests.helpers import HTMX, triggers
from workspaces.models import App, Environment, Product

pytestmark = pytest.mark.django_db

KINDS = [
    ("products", Product, ProductFactory, "product", "products"),
    ("apps", App, AppFactory, "app", "products"),
    ("environments", Environment, EnvironmentFactory, "environment", "environments"),
]


# --- add ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "model", "factory", "noun", "page"), KINDS)
def test_add_form_is_a_modal_fragment_for_htmx_and_a_page_otherwise(
    owner_client, workspace, kind, model, factory, noun, page
):
    url = reverse("catalog_add", args=["acme", kind])

    fragment = owner_client.get(url, headers=HTMX)
    full = owner_client.get(url)

    html = fragment.content.decode()
    assert fragment.status_code == 200
    assert "<html" not in html
    assert f'hx-post="{url}"' in html
    assert f"Add {noun}" in html
    assert 'name="name"' in html and 'name="slug"' in html
    assert full.status_code == 200
    assert "<html" in full.content.decode()
    assert "hx-post" not in full.content.decode().split("page-modal")[1]  # plain POST form


@pytest.mark.parametrize(("kind", "model", "factory", "noun", "page"), KINDS)
def test_owner_adds_an_item_with_htmx(owner_client, workspace, kind, model, factory, noun, page):
    url = reverse("catalog_add", args=["acme", kind])

    response = owner_client.post(url, {"name": "Mobile Web", "slug": ""}, headers=HTMX)

    assert response.status_code == 204
    assert triggers(response) == {
        "catalogChanged": {},
        "closeModal": {},
        "showToast": {"message": f"{noun.capitalize()} “Mobile Web” added.", "level": "success"},
    }
    item = model.objects.get(workspace=workspace, slug="mobile-web")
    assert item.name == "Mobile Web"


@pytest.mark.parametrize(("kind", "model", "factory", "noun", "page"), KINDS)
def test_owner_adds_an_item_without_javascript(
    owner_client, workspace, kind, model, factory, noun, page
):
    url = reverse("catalog_add", args=["acme", kind])

    response = owner_client.post(url, {"name": "Partner API", "slug": "partner"})

    assert response.status_code == 302
    assert response["Location"] == reverse(page, args=["acme"])
    assert model.objects.filter(workspace=workspace, slug="partner").exists()
    listing = owner_client.get(response["Location"]).content.decode()
    assert f"{noun.capitalize()} “Partner API” added." in listing
    assert "<code>partner</code>" in listing


def test_the_list_refreshes_on_catalog_changed(owner_client, workspace):
    html = owner_client.get(reverse("products", args=["acme"])).content.decode()

    assert 'hx-trigger="catalogChanged from:body"' in html
    assert f'hx-get="{reverse("products", args=["acme"])}"' in html


@pytest.mark.parametrize(
    ("data", "field_message"),
    [
        ({"name": "", "slug": ""}, "This field is required."),
        ({"name": "Payments", "slug": "other"}, "already has a product with name “Payments”"),
        ({"name": "Other", "slug": "payments"}, "already has a product with slug “payments”"),
        ({"name": "payments", "slug": ""}, "already has a product with slug “payments”"),
        ({"name": "Bad", "slug": "bad slug"}, "Enter a valid “slug”"),
        ({"name": "#$%", "slug": ""}, "Enter a slug"),
        ({"name": "n" * 101, "slug": ""}, "at most 100 characters"),
        ({"name": "Long", "slug": "s" * 51}, "at most 50 characters"),
    ],
)
def test_invalid_item_is_refused_with_a_message_and_nothing_changes(
    owner_client, workspace, data, field_message
):
    ProductFactory(workspace=workspace, name="Payments", slug="payments")
    url = reverse("catalog_add", args=["acme", "products"])

    for headers in (HTMX, {}):
        response = owner_client.post(url, data, headers=headers)
        assert response.status_code == 200
        assert field_message in response.content.decode()
        assert "HX-Trigger" not in response
    assert list(workspace.products.values_list("slug", flat=True)) == ["payments"]


def test_an_empty_post_says_the_name_is_required(owner_client, workspace):
    response = owner_client.post(reverse("catalog_add", args=["acme", "products"]), headers=HTMX)

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not workspace.products.exists()


def test_same_name_in_another_workspace_is_fine(owner_client, workspace, other_workspace):
    ProductFactory(workspace=other_workspace, name="Payments", slug="payments")

    response = owner_client.post(
        reverse("catalog_add", args=["acme", "products"]), {"name": "Payments"}, headers=HTMX
    )

    assert response.status_code == 204
    assert workspace.products.filter(slug="payments").exists()


# --- edit --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "model", "factory", "noun", "page"), KINDS)
def test_owner_renames_an_item(owner_client, workspace, kind, model, factory, noun, page):
    item = factory(workspace=workspace, name="Old", slug="old")
    url = reverse("catalog_edit", args=["acme", kind, item.pk])

    form = owner_client.get(url, headers=HTMX).content.decode()
    response = owner_client.post(url, {"name": "New", "slug": "new"}, headers=HTMX)

    assert 'value="Old"' in form and f"Edit {noun} “Old”" in form
    assert response.status_code == 204
    assert triggers(response)["showToast"]["message"] == f"{noun.capitalize()} “New” saved."
    item.refresh_from_db()
    assert (item.name, item.slug) == ("New", "new")


def test_renaming_to_a_siblings_name_is_refused(owner_client, workspace):
    ProductFactory(workspace=workspace, name="Payments", slug="payments")
    item = ProductFactory(workspace=workspace, name="Storefront", slug="storefront")

    response = owner_client.post(
        reverse("catalog_edit", args=["acme", "products", item.pk]),
        {"name": "Payments", "slug": "storefront"},
        headers=HTMX,
    )

    assert response.status_code == 200
    assert "already has a product with name “Payments”" in response.content.decode()
    item.refresh_from_db()
    assert item.name == "Storefront"


# --- delete ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "model", "factory", "noun", "page"), KINDS)
def test_owner_deletes_an_unused_item(owner_client, workspace, kind, model, factory, noun, page):
    item = factory(workspace=workspace, name="Legacy", slug="legacy")
    url = reverse("catalog_delete", args=["acme", kind, item.pk])

    confirm = owner_client.get(url, headers=HTMX).content.decode()
    response = owner_client.post(url, headers=HTMX)

    assert f"Delete {noun} “Legacy”?" in confirm
    assert response.status_code == 204
    assert triggers(response)["showToast"]["message"] == f"{noun.capitalize()} “Legacy” deleted."
    assert triggers(response)["catalogChanged"] == {}
    assert not model.objects.filter(pk=item.pk).exists()


def test_delete_without_javascript_redirects_with_a_message(owner_client, workspace):
    item = AppFactory(workspace=workspace, name="Legacy")

    response = owner_client.post(reverse("catalog_delete", args=["acme", "apps", item.pk]))

    assert response.status_code == 302
    assert "App “Legacy” deleted." in owner_client.get(response["Location"]).content.decode()


@pytest.mark.parametrize(("kind", "model", "factory", "noun", "page"), KINDS)
def test_deleting_an_item_a_token_uses_is_refused(
    owner_client, workspace, kind, model, factory, noun, page
):
    item = factory(workspace=workspace, name="Busy")
    scope = {"environments": [item]} if kind == "environments" else {kind: [item]}
    TokenFactory(workspace=workspace, key="STRIPE_KEY", **scope)
    url = reverse("catalog_delete", args=["acme", kind, item.pk])
    message = (
        f"{noun.capitalize()} “Busy” is used by 1 token (STRIPE_KEY). "
        "Remove it from that token before deleting it."
    )

    confirm = owner_client.get(url, headers=HTMX).content.decode()
    for headers in (HTMX, {}):
        response = owner_client.post(url, headers=headers)
        assert response.status_code == 200
        assert message in response.content.decode()
        assert "HX-Trigger" not in response

    assert message in confirm
    assert "disabled>Delete" in confirm.replace("\n", "")
    assert model.objects.filter(pk=item.pk).exists()


@pytest.mark.parametrize(("kind", "model", "factory", "noun", "page"), KINDS)
def test_deleting_an_item_an_access_key_is_bound_to_is_refused(
    owner_client, workspace, kind, model, factory, noun, page
):
    item = factory(workspace=workspace, name="Busy")
    context = {"environment": item} if kind == "environments" else {kind[:-1]: item}
    row, _key = make_access_key(workspace, name="ci-deploy", **context)
    url = reverse("catalog_delete", args=["acme", kind, item.pk])

    response = owner_client.post(url, headers=HTMX)

    assert response.status_code == 200
    assert (
        f"{noun.capitalize()} “Busy” is used by 1 access key (ci-deploy). "
        "Delete that access key before deleting it."
    ) in response.content.decode()
    assert model.objects.filter(pk=item.pk).exists()
    assert AccessKey.objects.filter(pk=row.pk).exists(), "the key is not deleted with it"


# --- roles -------------------------------------------------------------------------------------


def manage_urls(workspace) -> list[str]:
    product = ProductFactory(workspace=workspace)
    app = AppFactory(workspace=workspace)
    environment = workspace.environments.get(slug="sandbox")
    urls = []
    for kind, item in (("products", product), ("apps", app), ("environments", environment)):
        urls += [
            reverse("catalog_add", args=["acme", kind]),
            reverse("catalog_edit", args=["acme", kind, item.pk]),
            reverse("catalog_delete", args=["acme", kind, item.pk]),
        ]
    return urls


@pytest.mark.parametrize("member", ["editor_client", "viewer_client"])
def test_editors_and_viewers_get_403_on_every_catalog_action(request, member, workspace):
    client = request.getfixturevalue(member)
    urls = manage_urls(workspace)
    before = [list(m.objects.values_list("pk", "name")) for m in (Product, App, Environment)]

    for url in urls:
        for headers in ({}, HTMX):
            assert client.get(url, headers=headers).status_code == 403, url
            response = client.post(url, {"name": "Changed", "slug": "changed"}, headers=headers)
            assert response.status_code == 403, url

    after = [list(m.objects.values_list("pk", "name")) for m in (Product, App, Environment)]
    assert after == before


def test_catalog_actions_accept_only_get_and_post(owner_client, workspace):
    for url in manage_urls(workspace):
        assert owner_client.put(url).status_code == 405
        assert owner_client.delete(url).status_code == 405
