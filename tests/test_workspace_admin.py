"""The Django admin for workspace models: lists, search and filters load; the rules still hold."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from tests.factories import (
    AppFactory,
    MembershipFactory,
    ProductFactory,
    TokenFactory,
    UserFactory,
    WorkspaceFactory,
)
from workspaces.models import Role, Workspace

pytestmark = pytest.mark.django_db

MODELS = ["workspace", "membership", "environment", "product", "app"]


@pytest.fixture
def admin_client_with_data() -> Client:
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "x" * 20)
    workspace = WorkspaceFactory(name="Acme", slug="acme")
    MembershipFactory(workspace=workspace, user__username="olivia", role=Role.OWNER)
    ProductFactory(workspace=workspace, name="Payments", slug="payments")
    AppFactory(workspace=workspace, name="Checkout", slug="checkout")
    client = Client()
    client.force_login(admin)
    client.workspace = workspace
    return client


@pytest.mark.parametrize("model", MODELS)
def test_changelist_search_and_filter_load(admin_client_with_data, model):
    client = admin_client_with_data
    url = reverse(f"admin:workspaces_{model}_changelist")

    listing = client.get(url)
    search = client.get(url, {"q": "acme"})
    filtered = client.get(url, {"workspace__id__exact": client.workspace.pk})

    assert listing.status_code == search.status_code == 200
    assert "Acme" in search.content.decode()
    if model != "workspace":
        assert filtered.status_code == 200
        assert "Acme" in filtered.content.decode()


@pytest.mark.parametrize("model", MODELS)
def test_add_and_change_forms_load(admin_client_with_data, model):
    client = admin_client_with_data
    obj = {
        "workspace": client.workspace,
        "membership": client.workspace.memberships.first(),
        "environment": client.workspace.environments.first(),
        "product": client.workspace.products.first(),
        "app": client.workspace.apps.first(),
    }[model]

    assert client.get(reverse(f"admin:workspaces_{model}_add")).status_code == 200
    change = client.get(reverse(f"admin:workspaces_{model}_change", args=[obj.pk]))
    assert change.status_code == 200


def test_membership_filter_by_role(admin_client_with_data):
    MembershipFactory(
        workspace=admin_client_with_data.workspace, user__username="vera", role="viewer"
    )

    response = admin_client_with_data.get(
        reverse("admin:workspaces_membership_changelist"), {"role__exact": "viewer"}
    )

    html = response.content.decode()
    assert "vera" in html and "olivia" not in html


def test_adding_a_workspace_in_the_admin_gives_it_production_and_sandbox(admin_client_with_data):
    response = admin_client_with_data.post(
        reverse("admin:workspaces_workspace_add"),
        {
            "name": "Globex",
            "slug": "globex",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302, response.content.decode()
    globex = Workspace.objects.get(slug="globex")
    assert sorted(globex.environments.values_list("slug", flat=True)) == ["production", "sandbox"]


def test_a_catalog_item_cannot_be_moved_to_another_workspace(admin_client_with_data):
    product = admin_client_with_data.workspace.products.get()
    WorkspaceFactory(slug="globex")

    response = admin_client_with_data.get(
        reverse("admin:workspaces_product_change", args=[product.pk])
    )

    assert response.context["adminform"].form.fields.keys() == {"name", "slug"}


def test_the_admin_enforces_unique_names_within_a_workspace(admin_client_with_data):
    response = admin_client_with_data.post(
        reverse("admin:workspaces_product_add"),
        {"workspace": admin_client_with_data.workspace.pk, "name": "Payments", "slug": "pay2"},
    )

    assert response.status_code == 200
    assert "Product with this Workspace and Name already exists." in response.content.decode()
    assert admin_client_with_data.workspace.products.count() == 1


def test_a_product_tokens_use_cannot_be_deleted_in_the_admin(admin_client_with_data):
    workspace = admin_client_with_data.workspace
    product = workspace.products.get()
    TokenFactory(workspace=workspace, products=[product])

    response = admin_client_with_data.post(
        reverse("admin:workspaces_product_delete", args=[product.pk]), {"post": "yes"}
    )

    assert response.status_code == 403
    assert workspace.products.filter(pk=product.pk).exists()


def test_an_unused_product_can_be_deleted_in_the_admin(admin_client_with_data):
    product = admin_client_with_data.workspace.products.get()

    response = admin_client_with_data.post(
        reverse("admin:workspaces_product_delete", args=[product.pk]), {"post": "yes"}
    )

    assert response.status_code == 302
    assert not admin_client_with_data.workspace.products.exists()


def test_bulk_delete_is_not_offered_for_catalog_items(admin_client_with_data):
    response = admin_client_with_data.get(reverse("admin:workspaces_product_changelist"))

    assert "delete_selected" not in response.content.decode()


def test_a_member_without_staff_rights_cannot_open_the_admin(client):
    client.force_login(UserFactory())

    response = client.get(reverse("admin:workspaces_workspace_changelist"))

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_a_workspace_with_tokens_can_be_deleted_in_the_admin_with_its_data_key(
    admin_client_with_data,
):
    from audit.models import AuditEvent
    from keys.models import WorkspaceKey
    from tokens.models import Token

    workspace = admin_client_with_data.workspace
    TokenFactory(workspace=workspace, products=[workspace.products.get()])
    url = reverse("admin:workspaces_workspace_delete", args=[workspace.pk])

    confirm = admin_client_with_data.get(url)
    assert confirm.status_code == 200
    assert "Are you sure" in confirm.text

    response = admin_client_with_data.post(url, {"post": "yes"})

    assert response.status_code == 302
    assert not Workspace.objects.filter(pk=workspace.pk).exists()
    assert not Token.objects.exists()
    assert not WorkspaceKey.objects.exists()  # crypto-shredded
    assert not AuditEvent.objects.exists()
